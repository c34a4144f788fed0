"""Hostile or damaged files are refused cheaply, before any build, naming the file and the key: headers bounded
in size and entries, tensors that overlap or leave bytes unaccounted, things that are not regular files (which
would block or never end), configs that claim more layers than the file holds, fp8 weights without their scale,
LoRA factors that are incomplete, do not fit or are not finite, Gemma folders with backups, bad JSON or strange
indexes. Messages never show the file's bytes."""

import json
import os
import shutil
import struct
import threading
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_a2v.errors import LTX2InputError, LTX2LoadError
from ltx2_a2v.ltx2.components.bundle_parts import check_bundle
from ltx2_a2v.ltx2.components.plan import ComponentPlan, bounded_build
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.gemma_folder import GemmaRoot
from ltx2_a2v.ltx2.files.lora_file import LoraFactors
from ltx2_a2v.ltx2.files.safetensors_file import MAX_ENTRIES, iter_tensors, read_header

# A hang shows as this test failing, not as a suite that never ends.
HANG_SECONDS = 10


def write_raw(path, header: dict, data: bytes = b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def f32(start: int, end: int) -> dict:
    return {"dtype": "F32", "shape": [(end - start) // 4], "data_offsets": [start, end]}


def in_thread(call):
    """call() run in a thread: (raised exception or None, whether it finished within HANG_SECONDS)."""
    outcome = []

    def run():
        try:
            call()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    return (outcome[0] if outcome else None), not thread.is_alive()


# --- the safetensors format ---


def test_overlapping_tensors_are_refused_naming_both(tmp_path):
    path = write_raw(tmp_path / "overlap.safetensors", {"a": f32(0, 8), "b": f32(4, 12)}, bytes(12))
    with pytest.raises(LTX2InputError, match=r"overlap\.safetensors.*tensor 'b' overlaps tensor 'a'"):
        read_header(path)


@pytest.mark.parametrize(
    "header, data, words",
    [
        ({"a": f32(0, 8), "b": f32(12, 20)}, 20, "4 bytes after tensor 'a' belong to no tensor"),
        ({"a": f32(0, 8)}, 24, "16 bytes after the last tensor belong to no tensor"),
        ({"a": f32(4, 12)}, 12, "4 bytes before the first tensor belong to no tensor"),
    ],
)
def test_bytes_no_tensor_describes_are_refused(tmp_path, header, data, words):
    path = write_raw(tmp_path / "gap.safetensors", header, bytes(data))
    with pytest.raises(LTX2InputError, match=words):
        read_header(path)


def test_a_header_padded_with_empty_entries_is_refused_by_count(tmp_path):
    """Zero-size entries cost no data bytes: ~1.5 M of them fit the format's header limit. More than any model file
    has are refused on their count."""
    header = {f"pad.{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(MAX_ENTRIES + 1)}
    path = write_raw(tmp_path / "padded.safetensors", header)
    with pytest.raises(LTX2InputError, match=f"lists {MAX_ENTRIES + 1} tensors, more than any model file has"):
        read_header(path)


def test_a_text_file_is_refused_without_showing_its_bytes(tmp_path):
    text = b"model: ltx-2.3\nthis is a note about the model, not the model itself\n"
    path = tmp_path / "notes.safetensors"
    path.write_bytes(text)
    with pytest.raises(LTX2InputError) as refused:
        read_header(path, "ckpt_name")
    message = str(refused.value)
    assert message.startswith("ckpt_name: ") and "notes.safetensors" in message
    assert str(int.from_bytes(text[:8], "little")) not in message and "model: l" not in message


def test_keys_in_messages_are_escaped_and_cut(tmp_path):
    key = "\x1b[31m" + "k" * 10_000
    path = write_raw(
        tmp_path / "key.safetensors", {key: {"dtype": "XX", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)
    )
    with pytest.raises(LTX2InputError) as refused:
        read_header(path)
    assert "\x1b" not in str(refused.value) and len(str(refused.value)) < 400


def test_a_fifo_named_like_a_model_is_refused_at_once(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    error, finished = in_thread(lambda: read_header(fifo, "ckpt_name"))
    assert finished, "opening a FIFO blocked"
    assert isinstance(error, LTX2InputError) and "is a pipe (FIFO), not a regular file" in str(error)


@pytest.mark.parametrize("target, kind", [("/dev/zero", "a device"), (".", "a folder")])
def test_links_to_devices_and_folders_are_refused_naming_what_they_are(tmp_path, target, kind):
    link = tmp_path / "model.safetensors"
    link.symlink_to(target if target != "." else tmp_path)
    error, finished = in_thread(lambda: read_header(link, "ckpt_name"))
    assert finished and isinstance(error, LTX2InputError) and f"is {kind}, not a regular file" in str(error)


def test_a_header_is_parsed_once_per_version_of_its_file(tiny_paths, tmp_path):
    path = shutil.copy2(tiny_paths["spatial_upsampler"], tmp_path / "up.safetensors")
    first = read_header(path)
    assert read_header(path) is first
    before = os.stat(path)
    time.sleep(0.01)
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF  # same size, other bytes, and the time kept: cp -p of another file
    open(path, "r+b").write(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = read_header(path)
    assert again is not first and again.identity != first.identity
    # A build that read the old header does not read the new file's bytes as the old layout.
    with pytest.raises(LTX2InputError, match="was replaced or changed since its header was read"):
        next(iter_tensors(first))
    assert next(iter_tensors(again))[0]


# --- what the component table bounds ---


def copy_checkpoint(src, dst, drop=(), config=None, change=None):
    with safe_open(str(src), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys() if k not in drop}
    if config is not None:
        metadata["config"] = json.dumps(config(json.loads(metadata["config"])))
    if change is not None:
        change(tensors)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


@pytest.mark.parametrize(
    "count, error, words",
    [
        # Beyond any release (48): refused as the config is read, naming the key (config_ranges.py).
        (
            2000,
            LTX2InputError,
            r"deep\.safetensors: its 'config' metadata's transformer section gives num_layers = 2000, "
            r"outside what any release uses",
        ),
        # Within the range but more than the file holds: refused while the meta model is made (plan.py).
        (
            200,
            LTX2LoadError,
            r"transformer: the config of .*deep\.safetensors describes more weights than its files hold",
        ),
    ],
)
def test_a_config_claiming_thousands_of_layers_is_refused_before_the_model_is_made(
    tiny_paths, tmp_path, count, error, words
):
    def layers(config):
        config["transformer"]["num_layers"] = count
        return config

    broken = copy_checkpoint(tiny_paths["checkpoint"], tmp_path / "deep.safetensors", config=layers)
    with pytest.raises(error, match=words):
        ComponentPlan.read(Bundle(checkpoint=broken), "transformer")


def test_making_a_model_reaches_an_interrupt_point():
    class Interrupted(Exception):
        pass

    def check(_):
        raise Interrupted

    started = time.monotonic()
    with pytest.raises(Interrupted):
        with bounded_build("transformer", "test", tensors=10**9, check=check):
            while time.monotonic() - started < HANG_SECONDS:
                torch.nn.Linear(4, 4, device="meta")


def test_an_fp8_weight_without_its_scale_is_refused_naming_it(tiny_paths, tmp_path):
    weight = "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"
    broken = copy_checkpoint(tiny_paths["fp8_checkpoint"], tmp_path / "noscale.safetensors", drop={f"{weight}_scale"})
    with pytest.raises(
        LTX2LoadError,
        match=rf"noscale.safetensors: '{weight}' is stored as float8_e4m3fn without "
        rf"its '{weight}_scale'",
    ):
        ComponentPlan.read(Bundle(checkpoint=broken), "transformer")


# --- LoRA factors ---


def lora_copy(tiny_paths, tmp_path, change):
    with safe_open(str(tiny_paths["distilled_lora"]), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(tensors)
    path = tmp_path / "lora.safetensors"
    save_file(tensors, str(path))
    return path


def a_factor(tensors, which="A"):
    return sorted(k for k in tensors if k.endswith(f".lora_{which}.weight"))[0]


def test_a_factor_without_its_partner_is_refused_naming_both(tiny_paths, tmp_path):
    removed = []
    path = lora_copy(tiny_paths, tmp_path, lambda t: removed.append(t.pop(a_factor(t, "B"))))
    with pytest.raises(
        LTX2InputError,
        match=r"distilled_lora: lora\.safetensors .*lora_A\.weight' has no partner "
        r"'.*lora_B\.weight'",
    ):
        LoraFactors(path, 1.0)


@pytest.mark.parametrize("shape_of_a", ["wider", "broadcast"])
def test_factors_that_do_not_make_the_weight_are_refused_when_picked(tiny_paths, tmp_path, shape_of_a):
    def change(tensors):
        key = a_factor(tensors)
        rank, width = tensors[key].shape
        tensors[key] = torch.zeros(rank, width + 1 if shape_of_a == "wider" else 1, dtype=tensors[key].dtype)

    path = lora_copy(tiny_paths, tmp_path, change)
    bundle = Bundle(checkpoint=tiny_paths["checkpoint"], distilled_lora=path)
    with pytest.raises(
        LTX2InputError,
        match=r"distilled_lora: lora\.safetensors does not fit the transformer of "
        r"ltx-2\.3-tiny-dev\.safetensors: '.*lora_A\.weight'",
    ):
        check_bundle(bundle)


def test_a_factor_that_is_not_finite_is_refused_as_it_streams(tiny_paths, tmp_path):
    def change(tensors):
        tensors[a_factor(tensors)][0, 0] = float("nan")

    path = lora_copy(tiny_paths, tmp_path, change)
    lora = LoraFactors(path, 1.0)
    key = next(k for k, (a, _) in lora.targets.items() if a == a_factor(dict.fromkeys(lora.header.entries)))
    weight = torch.zeros(
        lora.header.entries[lora.targets[key][1]].shape[0], lora.header.entries[lora.targets[key][0]].shape[1]
    )
    with pytest.raises(LTX2InputError, match="holds NaN or infinite values"):
        lora.fuse(key, weight)


# --- the Gemma folder ---


@pytest.fixture
def gemma(tiny_paths, tmp_path):
    root = tmp_path / "gemma"
    shutil.copytree(tiny_paths["text_encoder"], root)
    return root


def test_shards_in_a_sub_folder_are_never_read(gemma):
    backup = gemma / "backup"
    backup.mkdir()
    for shard in gemma.glob("model*.safetensors"):
        shutil.copy(shard, backup / shard.name)
    files = GemmaRoot.open(gemma).weight_files()
    assert files and all(os.path.dirname(f) == str(gemma) for f in files)
    (gemma / "model.safetensors.index.json").unlink()  # without an index: the top-level shards, still
    assert GemmaRoot.open(gemma).weight_files() == files


@pytest.mark.parametrize(
    "config, words",
    [
        (b"{not json", "config.json that is not JSON"),
        (b"[1, 2]", "config.json that is not a JSON object"),
        (json.dumps({"model_type": "gemma3", "vision_config": {}}).encode(), "config.json without a text_config"),
        (json.dumps({"model_type": "llama"}).encode(), "config.json of a 'llama' model"),
    ],
)
def test_a_bad_config_is_refused_naming_the_folder(gemma, config, words):
    (gemma / "config.json").write_bytes(config)
    with pytest.raises(LTX2InputError, match=f"^text_encoder: '.*gemma' has a {words}"):
        GemmaRoot.open(gemma)


@pytest.mark.parametrize(
    "weight_map, words",
    [
        ({"a": "../elsewhere.safetensors"}, "naming '../elsewhere.safetensors', which is not a file of the folder"),
        ({"a": "model-00009-of-00009.safetensors"}, "lacks 'model-00009-of-00009.safetensors', named by its"),
        ({}, "without a weight_map of file names"),
    ],
)
def test_an_index_naming_files_elsewhere_or_missing_is_refused(gemma, weight_map, words):
    (gemma / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(LTX2InputError, match=words):
        GemmaRoot.open(gemma)


def test_a_fifo_in_the_folder_is_refused_at_once(gemma):
    os.mkfifo(gemma / "model-00003-of-00003.safetensors")
    error, finished = in_thread(lambda: GemmaRoot.open(gemma))
    assert finished, "the folder's check blocked on a FIFO"
    assert isinstance(
        error, LTX2InputError
    ) and "'model-00003-of-00003.safetensors', which is not a regular file" in str(error)


def test_a_config_link_to_a_device_is_refused(gemma):
    (gemma / "config.json").unlink()
    (gemma / "config.json").symlink_to("/dev/zero")
    error, finished = in_thread(lambda: GemmaRoot.open(gemma))
    assert finished and isinstance(error, LTX2InputError) and "not a regular file" in str(error)
