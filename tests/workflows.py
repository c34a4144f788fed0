"""What the host and page tests share: the example workflows made small for the CPU, and reading their output."""

import json
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "example_workflows" / "api" / "ltx2_a2v_two_stage.json"
UI = ROOT / "example_workflows" / "ltx2_a2v_two_stage.json"
LOAD_CHECK = ROOT / "example_workflows" / "api" / "ltx2_load_check.json"
PACK_NODES = (
    "LoadLTX2Quantized",
    "A2VSampler",
    "SpatialUpscale",
    "LTX2Decode",
    "LTX2DecodeToVideo",
    "VRAMGuard",
    "LTX2Keyframe",
    "LTX2LoRA",
)
# Small enough for the CPU: stage 1 at 128x96, 17 frames (0.71 s at 24 fps).
WIDTH, HEIGHT, FRAMES, FPS = 128, 96, 17, 24.0


def small_workflow(policy: str = "fp8_scaled", prefix: str = "test/a2v", **sampler) -> dict:
    prompt = json.loads(API.read_text())
    prompt["3"]["inputs"]["quantization"] = policy
    for node in ("4", "6"):
        prompt[node]["inputs"].update(width=WIDTH, height=HEIGHT, num_frames=FRAMES, frame_rate=FPS)
    prompt["4"]["inputs"].update({"steps": 3, **sampler})
    prompt["9"]["inputs"]["filename_prefix"] = prefix
    return prompt


def load_and_report(**overrides) -> dict:
    """The shipped load-check workflow (API format), with loader inputs overridden."""
    prompt = json.loads(LOAD_CHECK.read_text())
    prompt["1"]["inputs"].update(overrides)
    return prompt


def saved_mp4(host, result) -> Path:
    files = [f for output in result.history["outputs"].values() for f in output.get("images", [])]
    videos = [host.output_dir / f["subfolder"] / f["filename"] for f in files if f["filename"].endswith(".mp4")]
    assert len(videos) == 1, result.history["outputs"]
    return videos[0]


def read_mp4(path: Path) -> tuple[np.ndarray, dict]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        info = {
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "fps": float(video.average_rate),
            "audio_rate": audio.codec_context.sample_rate,
        }
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    info["audio_seconds"] = samples / info["audio_rate"]
    return frames, info


def resident(host) -> list[str]:
    return [c["name"] for c in host.vram()["components"] if c["resident"]]


def wait_until(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False
