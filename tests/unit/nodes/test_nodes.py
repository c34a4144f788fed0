"""The nodes on their own, with the real ComfyUI tree but no server: saved workflows still match their schemas,
queue-time checks refuse bad numbers (NaN included) naming the input, the loader's fingerprint notices a file
replaced under the same name, and the adapters turn ComfyUI's values into the pipeline's."""

import json
import math
import os
import shutil
import time
from pathlib import Path

import folder_paths
import pytest
import torch

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.nodes.adapters import audio_in, audio_out
from ltx2_a2v.nodes.decode import LTX2Decode
from ltx2_a2v.nodes.load import LoadLTX2Quantized
from ltx2_a2v.nodes.sampler import A2VSampler
from ltx2_a2v.nodes.upscale import SpatialUpscale
from ltx2_a2v.nodes.vram_guard import VRAMGuard

ROOT = Path(__file__).resolve().parents[3]
NODES = {n.define_schema().node_id: n for n in (LoadLTX2Quantized, A2VSampler, SpatialUpscale, LTX2Decode, VRAMGuard)}


@pytest.fixture(autouse=True)
def model_folders(models_dir):
    """ComfyUI's model folders pointed at the tiny bundle, as tools/serve.py does for the host."""
    for folder in ("checkpoints", "loras", "latent_upscale_models", "text_encoders"):
        folder_paths.add_model_folder_path(folder, str(models_dir / folder), is_default=True)


@pytest.mark.parametrize("workflow", sorted((ROOT / "example_workflows" / "api").glob("*.json")), ids=lambda p: p.stem)
def test_saved_workflows_name_only_inputs_the_schemas_have(workflow):
    for node in json.loads(workflow.read_text()).values():
        if node["class_type"] not in NODES:
            continue
        schema = NODES[node["class_type"]].define_schema()
        assert set(node["inputs"]) <= {i.id for i in schema.inputs}, node["class_type"]


def sampler_values(**change) -> dict:
    values = dict(width=384, height=256, num_frames=97, frame_rate=24.0, cfg=3.0, stage="base")
    return values | change


@pytest.mark.parametrize(
    "change, words",
    [
        ({"cfg": float("nan")}, "cfg: nan is not a number"),
        ({"frame_rate": float("inf")}, "frame_rate: inf is not a number"),
        ({"cfg": 25.0}, "cfg: 25.0 is outside 1.0..20.0"),
        ({"width": 100}, "multiples of 32"),
        ({"num_frames": 20}, "8k+1"),
        ({"stage": "refine"}, "latent: the refine stage needs a latent"),
    ],
)
def test_sampler_refuses_bad_values_naming_the_input(change, words):
    assert words in A2VSampler.validate_inputs(**sampler_values(**change))


@pytest.mark.parametrize(
    "node, values",
    [
        (A2VSampler, sampler_values(model="x")),
        (A2VSampler, sampler_values(audio=[1, 2], stage="refine", latent=None)),
        (SpatialUpscale, dict(upscale_model="ltx-2.3-tiny-spatial-upscaler-x2.safetensors", model=None, latent=3)),
        (LTX2Decode, dict(model={"a": 1}, latent=None)),
    ],
)
def test_a_value_where_a_link_belongs_is_refused_naming_the_socket(node, values):
    name = next(k for k in ("model", "audio", "latent") if values.get(k) is not None)
    assert node.validate_inputs(**values).startswith(f"{name}: the prompt gives a value (")


def test_a_value_of_another_type_at_run_time_is_refused_naming_the_socket():
    from ltx2_a2v.nodes.types import expect

    with pytest.raises(LTX2InputError, match="^model: got a str, not what this input takes. Connect the model output"):
        expect("x", dict, "model")


def test_prompts_over_the_limit_are_refused_at_queue_time():
    problem = A2VSampler.validate_inputs(**sampler_values(negative_prompt="x" * 20_000_000))
    assert problem.startswith("negative_prompt: 20,000,000 characters; the limit is 16,384")


def test_a_job_whose_activations_cannot_fit_the_device_is_refused_at_queue_time():
    problem = A2VSampler.validate_inputs(**sampler_values(width=4096, height=4096, num_frames=1025))
    assert problem.startswith("width x height x num_frames: 4096x4096x1025 needs about ")
    assert "Lower num_frames or the size" in problem
    assert A2VSampler.validate_inputs(**sampler_values()) is True  # 384x256x97 fits


def test_sampler_takes_linked_values_and_a_connected_latent():
    assert A2VSampler.validate_inputs(**sampler_values(frame_rate=None, cfg=None, stage="refine"), latent=None) is True


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), 1e30, -2.0])
def test_vram_guard_refuses_a_budget_that_is_not_a_sane_number(budget):
    assert VRAMGuard.validate_inputs(budget_gb=budget, action="enforce").startswith(f"budget_gb: {budget}")


def loader_values(models_dir, **change) -> dict:
    return (
        dict(
            ckpt_name="ltx-2.3-tiny-dev.safetensors",
            text_encoder="gemma-3-tiny-it",
            quantization="fp8_scaled",
            text_encoder_quantization="none",
            residency="cold_start",
            distilled_lora="ltx-2.3-tiny-distilled-lora-384.safetensors",
            distilled_lora_strength=1.0,
        )
        | change
    )


def test_loader_refuses_a_strength_that_is_not_a_number(models_dir):
    assert LoadLTX2Quantized.validate_inputs(**loader_values(models_dir)) is True
    problem = LoadLTX2Quantized.validate_inputs(**loader_values(models_dir, distilled_lora_strength=math.nan))
    assert problem.startswith("distilled_lora_strength: nan is not a number")


def test_loader_fingerprint_changes_when_a_file_is_replaced_keeping_its_size_and_time(models_dir, tmp_path):
    """`cp -p` of another file of the same size over the checkpoint keeps its size and modification time."""
    checkpoint = models_dir / "checkpoints" / "ltx-2.3-tiny-dev.safetensors"
    values = loader_values(models_dir)
    before = LoadLTX2Quantized.fingerprint_inputs(**values)
    assert LoadLTX2Quantized.fingerprint_inputs(**values) == before
    backup = tmp_path / "backup.safetensors"
    shutil.copy2(checkpoint, backup)
    stat = checkpoint.stat()
    try:
        time.sleep(0.01)
        data = bytearray(checkpoint.read_bytes())
        data[-1] ^= 0xFF  # same size, other bytes
        checkpoint.write_bytes(bytes(data))
        os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the time kept, as cp -p does
        assert checkpoint.stat().st_size == stat.st_size and checkpoint.stat().st_mtime_ns == stat.st_mtime_ns
        assert LoadLTX2Quantized.fingerprint_inputs(**values) != before
    finally:
        shutil.copy2(backup, checkpoint)


def test_audio_adapters_refuse_a_missing_clip_and_give_what_save_video_reads():
    with pytest.raises(LTX2InputError, match="^audio: no audio was given"):
        audio_in(None)
    waveform, rate = audio_in({"waveform": torch.zeros(1, 2, 100), "sample_rate": 16000})
    assert waveform.shape == (1, 2, 100) and rate == 16000

    from ltx_core.types import Audio

    out = audio_out(Audio(waveform=torch.zeros(2, 100), sampling_rate=16000))
    assert out["waveform"].shape == (1, 2, 100) and out["sample_rate"] == 16000


def test_loader_refuses_a_transformer_only_file_without_its_parts_at_queue_time(models_dir, low_bit_paths):
    """The split inputs list vae/ and text_encoders/; what the transformer-only file lacks is named when queued, and
    the panel's estimate (GET /ltx2/estimate) comes from the headers."""
    from ltx2_a2v.nodes.load import resident_estimate

    for folder in ("diffusion_models", "vae"):
        folder_paths.add_model_folder_path(folder, str(models_dir / folder), is_default=True)
    split = {p: low_bit_paths[p].name for p in ("video_vae", "audio_vae", "text_projection")}
    values = loader_values(models_dir, ckpt_name=low_bit_paths["nvfp4_transformer"].name, quantization="as_stored")
    problem = LoadLTX2Quantized.validate_inputs(**values)
    assert problem.startswith(
        "video_vae, audio_vae and text_projection: ltx-2.3-tiny-dev-nvfp4_transformer_only.safetensors is not an "
        "LTX-2 audio-video checkpoint by itself"
    ), problem
    assert LoadLTX2Quantized.validate_inputs(**values, **split) is True
    estimate = resident_estimate({**values, **split})["components"]
    assert estimate["transformer"]["bytes"] == estimate["transformer"]["file_bytes"]  # as_stored: the file's bytes
    assert estimate["text_encoder"]["bytes"] > 0


@pytest.mark.parametrize("policy", ["torchao_fp8_dynamic", "torchao_int4_weight_only"])
def test_a_gpu_only_policy_with_float32_compute_is_refused_at_queue_time_mocked_gpu(models_dir, monkeypatch, policy):
    """A GPU cannot exist here: ComfyUI's device is an RTX 4090 (compute capability 8.9, which runs both policies),
    and its flags make the transformer compute in float32 (--force-fp32 / --fp32-unet): torchao's kernels would
    assert mid-load, so the prompt is refused before it is queued; in bf16 it is queued."""
    import comfy.model_management

    from ltx2_a2v.ltx2.components.precision import Precision
    from ltx2_a2v.nodes import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(comfy.model_management, "get_torch_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr("ltx2_a2v.quant.torchao_policies._require_torchao", lambda: None)  # fbgemm is CUDA's
    monkeypatch.setattr(precision, "comfy_precision", lambda device: Precision.uniform(torch.float32))
    problem = LoadLTX2Quantized.validate_inputs(**loader_values(models_dir, quantization=policy))
    assert problem.startswith(f"quantization: {policy} computes in bfloat16 only, and this ComfyUI computes in float32")
    assert "--force-fp32" in problem and "pick fp8_scaled" in problem
    monkeypatch.setattr(precision, "comfy_precision", lambda device: Precision.uniform(torch.bfloat16))
    assert LoadLTX2Quantized.validate_inputs(**loader_values(models_dir, quantization=policy)) is True
