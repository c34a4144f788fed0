"""Bad files through the real server: each gets a clear error tied to the node, and a good run follows."""

import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from workflows import load_and_report, small_workflow


def _good_run_follows(host):
    assert host.run(load_and_report()).status == "success"


def _error_of(result, node_type):
    assert result.status == "error", result.messages[-1]
    error = result.error()
    assert error["node_type"] == node_type, error
    return error["exception_message"]


def _write_checkpoint(path, tiny_paths, drop=None, reshape=None):
    with safe_open(str(tiny_paths["checkpoint"]), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != drop}
    if reshape:
        tensors[reshape] = torch.zeros(3, 5, dtype=torch.bfloat16)
    save_file(tensors, str(path), metadata=metadata)


@pytest.fixture()
def checkpoints(models_dir):
    folder = models_dir / "checkpoints"
    made = []
    yield folder, made
    for path in made:
        path.unlink(missing_ok=True)


def test_truncated_header_and_truncated_data_say_the_file_is_incomplete(host, tiny_paths, checkpoints):
    folder, made = checkpoints
    data = tiny_paths["checkpoint"].read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0]
    cases = {"cut-header.safetensors": data[: 8 + header_len // 2], "cut-data.safetensors": data[: len(data) // 2]}
    for name, content in cases.items():
        (folder / name).write_bytes(content)
        made.append(folder / name)
    for name in cases:
        message = _error_of(host.run(load_and_report(ckpt_name=name)), "LoadLTX2Quantized")
        assert name in message and "not a complete .safetensors file" in message and "download it again" in message
    _good_run_follows(host)


def test_random_bytes_and_a_renamed_pickle_are_refused_without_loading_a_pickle(host, checkpoints, tmp_path):
    folder, made = checkpoints
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "model.pt")
    cases = {"random.safetensors": bytes(range(256)) * 64, "pickle.safetensors": (tmp_path / "model.pt").read_bytes()}
    for name, content in cases.items():
        (folder / name).write_bytes(content)
        made.append(folder / name)
    for name in cases:
        message = _error_of(host.run(load_and_report(ckpt_name=name)), "LoadLTX2Quantized")
        assert "not a complete .safetensors file" in message
    _good_run_follows(host)


@pytest.mark.parametrize(
    "keys, missing",
    [
        ({"model.diffusion_model.input_blocks.0.0.weight": (4, 4)}, "vae."),  # an image UNet
        ({"model.diffusion_model.transformer_blocks.0.attn1.to_q.weight": (4, 4), "vae.decoder.x": (2,)}, "audio_vae."),
    ],
)
def test_checkpoint_of_another_family_is_refused_before_loading(host, checkpoints, keys, missing):
    folder, made = checkpoints
    path = folder / f"other-{missing.strip('.')}.safetensors"
    save_file({k: torch.zeros(s) for k, s in keys.items()}, str(path), metadata={"config": json.dumps({"x": 1})})
    made.append(path)
    message = _error_of(host.run(load_and_report(ckpt_name=path.name)), "LoadLTX2Quantized")
    assert "not an LTX-2 audio-video checkpoint" in message and missing in message
    _good_run_follows(host)


def test_missing_or_misshaped_tensor_is_named_before_anything_is_built(host, tiny_paths, checkpoints):
    # The loader compares the checkpoint's header with the LoRA's (ltx2/files/checkpoint.py, check_bundle): a
    # transformer weight missing or mis-shaped is found there, naming the key and both files.
    folder, made = checkpoints
    _write_checkpoint(
        folder / "missing-key.safetensors",
        tiny_paths,
        drop="model.diffusion_model.transformer_blocks.1.ff.net.2.weight",
    )
    _write_checkpoint(
        folder / "bad-shape.safetensors",
        tiny_paths,
        reshape="model.diffusion_model.transformer_blocks.0.attn1.to_k.weight",
    )
    made += [folder / "missing-key.safetensors", folder / "bad-shape.safetensors"]
    for name, words in (
        ("missing-key.safetensors", "transformer_blocks.1.ff.net.2.weight"),
        ("bad-shape.safetensors", "transformer_blocks.0.attn1.to_k.weight"),
    ):
        prompt = small_workflow(prefix=f"test/{name}")
        prompt["3"]["inputs"]["ckpt_name"] = name
        message = _error_of(host.run(prompt), "LoadLTX2Quantized")
        assert words in message and name in message
        assert host.vram()["resident_bytes"] == 0  # nothing half-built kept
    assert host.run(small_workflow(prefix="test/after-bad-files", seed=9)).status == "success"


def test_checkpoint_deleted_after_the_list_was_built(host, tiny_paths, checkpoints):
    folder, made = checkpoints
    path = folder / "deleted.safetensors"
    path.write_bytes(tiny_paths["checkpoint"].read_bytes())
    host.object_info("LoadLTX2Quantized")  # the page's list now holds it
    path.unlink()
    response = host.post_prompt(load_and_report(ckpt_name="deleted.safetensors"))
    if response.status_code == 400:  # the list was refreshed: refused at the queue
        assert "deleted.safetensors" in json.dumps(response.json()["node_errors"])
    else:  # refused when the loader runs
        message = _error_of(host.wait(response.json()["prompt_id"]), "LoadLTX2Quantized")
        assert "deleted.safetensors" in message and "models/checkpoints" in message
    _good_run_follows(host)
