"""Inputs users really feed the workflow, through the real server: audio clips of any rate, channel count and
length (and missing or empty ones), and an fp8 release checkpoint under the fp8 policies. Each bad input is
followed by a good run."""

import math
import wave

import numpy as np
import pytest
from workflows import FPS, FRAMES, read_mp4, saved_mp4, small_workflow


def write_wav(path, seconds: float, rate: int, channels: int) -> str:
    """A 16-bit PCM tone (the format most TTS nodes and recorders write)."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * math.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(tone[:, None], channels, axis=1).tobytes())
    return path.name


def with_audio(name: str, prefix: str) -> dict:
    prompt = small_workflow(prefix=prefix)
    prompt["2"]["inputs"]["audio"] = name
    return prompt


# The video is 17 frames at 24 fps (0.71 s); the clips are shorter, longer and of other rates and layouts.
@pytest.mark.parametrize(
    "seconds, rate, channels",
    [
        (0.2, 16000, 1),  # short mono TTS: padded with silence
        (3.0, 48000, 2),  # long stereo: cut
        (1.0, 22050, 1),  # another rate
        (1.0, 44100, 6),  # 5.1: the first two channels are kept
    ],
)
def test_any_audio_clip_gives_audio_of_the_video_length(host, seconds, rate, channels):
    name = write_wav(host.input_dir / f"clip_{rate}_{channels}ch_{seconds}s.wav", seconds, rate, channels)
    result = host.run(with_audio(name, f"test/audio_{rate}_{channels}"))
    assert result.status == "success", result.messages[-1]
    _, info = read_mp4(saved_mp4(host, result))
    assert info["audio_rate"] == rate
    # AAC writes whole frames of 1024 samples: up to one more frame than the video's length.
    assert 0 <= info["audio_seconds"] - FRAMES / FPS < 1024 / rate + 1e-3, info


def test_audio_file_missing_is_refused_at_queue_time(host):
    response = host.post_prompt(with_audio("not-there.wav", "test/audio_missing"))
    assert response.status_code == 400
    assert "2" in response.json()["node_errors"]


def test_empty_wav_file_is_refused_by_comfyui_loadaudio(host):
    name = write_wav(host.input_dir / "empty.wav", 0.0, 16000, 1)
    result = host.run(with_audio(name, "test/audio_empty_file"))
    assert result.status == "error" and result.error()["node_type"] == "LoadAudio"
    assert host.run(small_workflow(prefix="test/after_empty_file")).status == "success"


def test_audio_without_samples_is_named_by_the_sampler_and_the_next_run_succeeds(host):
    # ComfyUI's EmptyAudio with duration 0 passes on a waveform of 0 samples (LoadAudio refuses empty files).
    prompt = small_workflow(prefix="test/audio_empty")
    prompt["2"] = {"class_type": "EmptyAudio", "inputs": {"duration": 0.0, "sample_rate": 16000, "channels": 1}}
    result = host.run(prompt)
    assert result.status == "error"
    error = result.error()
    assert error["node_type"] == "A2VSampler" and error["exception_message"].startswith("audio: the clip is empty")
    assert host.vram()["resident_bytes"] == 0
    assert host.run(small_workflow(prefix="test/after_empty_audio")).status == "success"


def test_fp8_release_checkpoint_is_not_quantized_again(host, tiny_paths):
    """fp8_cast on an fp8 file gave garbage in LTX-2 (issue 193): here both fp8 policies keep the stored fp8
    weights and scales, so they give the same video, and the run report says so."""
    fp8_name = tiny_paths["fp8_checkpoint"].name
    frames = {}
    for policy in ("fp8_cast", "fp8_scaled"):
        prompt = small_workflow(policy, prefix=f"test/fp8_release_{policy}", seed=8)
        prompt["3"]["inputs"]["ckpt_name"] = fp8_name
        result = host.run(prompt)
        assert result.status == "success", result.messages[-1]
        frames[policy] = read_mp4(saved_mp4(host, result))[0]
        loads = host.vram()["last_run"]["loads"]
        transformer = [line for line in loads if line.startswith("transformer")]
        assert len(transformer) == 1  # read once: stage 2 runs on stage 1's transformer
        assert all(
            f"{fp8_name} is already fp8: {policy} keeps its fp8 weights as stored" in line for line in transformer
        ), loads
    assert np.array_equal(frames["fp8_cast"], frames["fp8_scaled"])
