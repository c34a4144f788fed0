"""What a careless user or a hostile client sends, through the real server: numbers that are not numbers or far
out of range, audio no container takes, things in the model folders that are not files, huge prompts and jobs,
values where links belong, replaced files under a persistent model, heap walks asked for over HTTP. Each is
refused clearly (at the queue where it can be), nothing is left resident, and a good run follows."""

import concurrent.futures
import json
import math
import os
import shutil
import struct
import time

import numpy as np
import pytest
import requests
from workflows import load_and_report, resident, small_workflow

GOOD_RUN_SECONDS = 300


def post_raw(host, prompt: dict) -> requests.Response:
    """POST /prompt with the JSON a hostile client may send: Python's json writes NaN and Infinity as the bare
    words JavaScript's JSON.parse refuses and Python's (ComfyUI's) takes."""
    body = json.dumps({"prompt": prompt, "client_id": host.client_id}, allow_nan=True)
    return requests.post(f"{host.url}/prompt", data=body, headers={"Content-Type": "application/json"}, timeout=60)


def refused_at_queue(host, prompt: dict, node: str, words: str) -> str:
    response = post_raw(host, prompt)
    assert response.status_code == 400, response.text[:500]
    errors = response.json()["node_errors"]
    assert node in errors, errors
    text = json.dumps(errors[node])
    assert words in text, text[:1000]
    return text


def error_of(result, node_type: str) -> str:
    assert result.status == "error", result.messages[-1]
    error = result.error()
    assert error["node_type"] == node_type, error
    return error["exception_message"]


def good_run_follows(host, prefix: str) -> None:
    assert host.vram()["resident_bytes"] == 0
    result = host.run(small_workflow(prefix=prefix, seed=11), timeout=GOOD_RUN_SECONDS)
    assert result.status == "success", result.messages[-1]


# --- numbers ---


@pytest.mark.parametrize(
    "node, name, value",
    [
        ("4", "cfg", math.nan),
        ("4", "frame_rate", math.inf),
        ("6", "cfg", -math.inf),
        ("4", "image_crf", 1e30),
        ("3", "distilled_lora_strength", math.nan),
        ("3", "distilled_lora_strength", 1e30),
        ("10", "budget_gb", math.nan),
        ("10", "budget_gb", math.inf),
        ("10", "budget_gb", 1e30),
        ("7", "spatial_overlap", math.nan),
        ("4", "width", 4.5e18),
    ],
)
def test_numbers_that_are_not_numbers_or_far_out_of_range_are_refused_at_the_queue(host, node, name, value):
    prompt = small_workflow(prefix="test/hostile_number")
    prompt[node]["inputs"][name] = value
    words = f"{name}: {value} is not a number" if not math.isfinite(value) else f"{name}: {value:.3g} is outside"
    if name == "spatial_overlap":  # an INT: ComfyUI's own conversion refuses NaN first
        words = "spatial_overlap, nan, cannot convert float NaN to integer"
    refused_at_queue(host, prompt, node, words)


def test_a_good_run_follows_the_refused_numbers(host):
    good_run_follows(host, "test/after_numbers")


# --- audio ---


def write_float_wav(path, samples: np.ndarray, rate: int) -> str:
    """A 32-bit float WAV (format 3), which keeps any value: what a damaged file or a careless script writes."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return path.name


@pytest.mark.parametrize(
    "rate, peak, words",
    [
        (1, 0.5, "audio: a sample rate of 1 Hz cannot be the video's soundtrack"),
        (16000, 1e30, "audio: the clip peaks at 1e+30 times full scale"),
    ],
)
def test_audio_no_container_can_take_is_refused_by_the_sampler(host, rate, peak, words):
    name = write_float_wav(
        host.input_dir / f"hostile_{rate}_{peak:g}.wav", peak * np.sin(np.arange(max(rate, 64)) * 0.3), rate
    )
    prompt = small_workflow(prefix="test/hostile_audio")
    prompt["2"]["inputs"]["audio"] = name
    message = error_of(host.run(prompt, timeout=120), "A2VSampler")
    assert message.startswith(words), message
    good_run_follows(host, "test/after_audio")


# --- files that are not files ---


@pytest.fixture()
def scratch(models_dir):
    """Paths made in the model folders, removed afterwards."""
    made = []
    yield made
    for path in made:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def test_a_fifo_in_the_gemma_folder_is_refused_at_once(host, tiny_paths, models_dir, scratch):
    folder = models_dir / "text_encoders" / "gemma-3-fifo-it"
    shutil.copytree(tiny_paths["text_encoder"], folder)
    scratch.append(folder)
    os.mkfifo(folder / "model-00003-of-00003.safetensors")
    message = error_of(host.run(load_and_report(text_encoder=folder.name), timeout=60), "LoadLTX2Quantized")
    assert "'model-00003-of-00003.safetensors', which is not a regular file" in message, message
    good_run_follows(host, "test/after_fifo")


@pytest.mark.parametrize("kind", ["fifo", "device", "text"])
def test_a_checkpoint_name_that_is_not_a_model_file_is_refused_without_its_bytes(host, models_dir, scratch, kind):
    path = models_dir / "checkpoints" / f"hostile-{kind}.safetensors"
    scratch.append(path)
    text = models_dir / f"notes-{kind}.txt"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        text.write_text("LTX-2.3 notes: download the checkpoint from the release page.\n" * 4)
        scratch.append(text)
        path.symlink_to(text)
    response = post_raw(host, load_and_report(ckpt_name=path.name))
    if response.status_code == 400:  # ComfyUI's list did not show it
        message = json.dumps(response.json()["node_errors"])
    else:
        message = error_of(host.wait(response.json()["prompt_id"], timeout=60), "LoadLTX2Quantized")
    assert path.name in message, message
    expected = {
        "fifo": "a pipe (FIFO), not a regular file",
        "device": "a device, not a regular file",
        "text": "not a complete .safetensors file",
    }[kind]
    assert expected in message, message
    assert "LTX-2.3 n" not in message and str(int.from_bytes(b"LTX-2.3 ", "little")) not in message
    good_run_follows(host, f"test/after_{kind}")


# --- prompts, sizes, links ---


def test_a_prompt_of_20_mb_is_refused_at_the_queue(host):
    prompt = small_workflow(prefix="test/huge_prompt")
    prompt["4"]["inputs"]["negative_prompt"] = "blurry " * 3_000_000
    refused_at_queue(host, prompt, "4", "negative_prompt: 21,000,000 characters; the limit is 16,384")


def test_a_prompt_longer_than_the_text_encoder_reads_is_cut_and_said_in_the_report(host):
    prompt = small_workflow(prefix="test/long_prompt", seed=12)
    prompt["4"]["inputs"]["negative_prompt"] = "blurry, " * 1500  # about 3,000 tokens, under the character limit
    result = host.run(prompt, timeout=GOOD_RUN_SECONDS)
    assert result.status == "success", result.messages[-1]
    notes = host.vram()["last_run"]["notes"]
    assert any(n.startswith("negative_prompt cut to the text encoder's 1024 tokens") for n in notes), notes


def test_a_job_that_cannot_fit_the_device_is_refused_at_the_queue_with_what_to_lower(host):
    prompt = small_workflow(prefix="test/huge_job")
    prompt["4"]["inputs"].update(width=4096, height=4096, num_frames=1025)
    refused_at_queue(host, prompt, "4", "4096x4096x1025 needs about")


@pytest.mark.parametrize(
    "node, name, value",
    [
        ("4", "model", "x"),
        ("6", "latent", 5),
        ("5", "model", {"a": 1}),
        ("7", "latent", "x"),
        ("4", "audio", [1]),
    ],
)
def test_a_value_where_a_link_belongs_is_refused_naming_the_input(host, node, name, value):
    prompt = small_workflow(prefix="test/literal_link")
    prompt[node]["inputs"][name] = value
    refused_at_queue(host, prompt, node, f"{name}: the prompt gives a value")


# --- persistent components and the files they were built from ---


def test_persistent_components_are_rebuilt_when_their_files_are_replaced_keeping_size_and_time(
    host, tiny_paths, models_dir, scratch
):
    """`cp -p` of another file of the same size over the checkpoint and over a Gemma shard: the next run builds
    from the new files, and the old components are not left resident beside the new ones."""
    checkpoint = models_dir / "checkpoints" / "persist-copy.safetensors"
    gemma = models_dir / "text_encoders" / "gemma-3-persist-it"
    shutil.copy2(tiny_paths["checkpoint"], checkpoint)
    shutil.copytree(tiny_paths["text_encoder"], gemma)
    scratch += [checkpoint, gemma]

    def run(prefix: str) -> list[str]:
        prompt = small_workflow(prefix=prefix, seed=13)
        prompt["3"]["inputs"].update(ckpt_name=checkpoint.name, text_encoder=gemma.name, residency="persistent")
        prompt["4"]["inputs"]["negative_prompt"] = prompt["6"]["inputs"]["negative_prompt"] = prefix  # not cached
        result = host.run(prompt, timeout=GOOD_RUN_SECONDS)
        assert result.status == "success", result.messages[-1]
        return [line.split(":")[0] for line in host.vram()["last_run"]["loads"]]

    def replace_keeping_size_and_time(path) -> None:
        before = path.stat()
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01  # the last tensor's last byte: the same header, other weights
        time.sleep(0.01)
        path.write_bytes(bytes(data))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns

    try:
        built = run("test/persist_first")
        assert "text_encoder" in built and "transformer" in built
        held = sorted(resident(host))
        assert run("test/persist_again") == []  # every component served as kept
        replace_keeping_size_and_time(checkpoint)
        replace_keeping_size_and_time(sorted(gemma.glob("model-*.safetensors"))[-1])
        rebuilt = run("test/persist_replaced")
        assert "text_encoder" in rebuilt and "transformer" in rebuilt and "video_decoder" in rebuilt, rebuilt
        assert sorted(resident(host)) == held  # the old ones dropped, not kept beside the new
    finally:
        host.free()
    good_run_follows(host, "test/after_persist")


# --- the server's own routes ---


def test_diagnostics_run_only_when_asked_with_1_and_one_at_a_time(host):
    assert "live_tensors" not in host.vram()
    for value in ("0", "yes", ""):
        state = requests.get(f"{host.url}/ltx2/vram?diagnostics={value}", timeout=30).json()
        assert "live_tensors" not in state, value
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        asked = [pool.submit(requests.get, f"{host.url}/ltx2/vram?diagnostics=1", timeout=120) for _ in range(5)]
        # Meanwhile the server serves other clients.
        assert requests.get(f"{host.url}/system_stats", timeout=30).status_code == 200
        replies = [future.result() for future in asked]
    codes = sorted(r.status_code for r in replies)
    assert codes[0] == 200 and set(codes) <= {200, 429}, codes
    assert all("live_tensors" in r.json() for r in replies if r.status_code == 200)
