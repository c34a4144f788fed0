"""The reference's inputs through the real server: keyframes (LTX-2 Keyframe chained into the sampler), an audio
section (audio_start) and a length taken from the audio (frames_from_audio). What cannot work is refused at queue
time where the prompt says it, or when the node runs where only the clip can say it; each refusal is followed by a
good run."""

import numpy as np
from test_inputs_host import write_wav
from workflows import FPS, FRAMES, read_mp4, saved_mp4, small_workflow


def with_keyframes(prefix: str, *keyframes: tuple[int, float], **sampler) -> dict:
    """The small workflow with LTX-2 Keyframe nodes (the sample portrait at each (frame, strength)), chained."""
    prompt = small_workflow(prefix=prefix, **sampler)
    link = None
    for i, (frame, strength) in enumerate(keyframes):
        node = f"kf{i}"
        inputs = {"image": ["1", 0], "frame": frame, "strength": strength}
        if link is not None:
            inputs["keyframes"] = link
        prompt[node] = {"class_type": "LTX2Keyframe", "inputs": inputs}
        link = [node, 0]
    if link is not None:
        prompt["4"]["inputs"]["keyframes"] = link
    return prompt


def refusal(host, prompt: dict) -> str:
    response = host.post_prompt(prompt)
    assert response.status_code == 400, response.text
    errors = response.json()["node_errors"]
    assert list(errors) == ["4"], errors
    return errors["4"]["errors"][0]["details"]


def test_keyframes_that_cannot_condition_the_video_are_refused_at_queue_time(host):
    assert "keyframe 1 is at frame 40, outside the 17-frame video" in refusal(host, with_keyframes("kf/a", (40, 1)))
    assert "keyframes 1 and 2 are both at frame 16" in refusal(host, with_keyframes("kf/b", (-1, 1), (16, 0.5)))
    assert "keyframe 1 has strength 1.5; give a strength in 0..1" in refusal(host, with_keyframes("kf/c", (-1, 1.5)))


def test_a_first_and_last_frame_video_from_an_audio_section(host):
    # 3 s of tone; the video's 17 frames (0.71 s) take the section from 1.2 s.
    name = write_wav(host.input_dir / "section.wav", 3.0, 16000, 1)
    prompt = with_keyframes("kf/ok", (-1, 0.8), audio_start=1.2)
    prompt["2"]["inputs"]["audio"] = name
    result = host.run(prompt)
    assert result.status == "success", result.messages[-1]
    frames, info = read_mp4(saved_mp4(host, result))
    assert frames.shape[0] == FRAMES and 0 <= info["audio_seconds"] - FRAMES / FPS < 1024 / 16000 + 1e-3


def test_an_audio_start_past_the_clip_is_refused_naming_its_length_then_the_length_follows_the_audio(host):
    name = write_wav(host.input_dir / "short.wav", 1.0, 16000, 1)
    prompt = small_workflow(prefix="section/late", audio_start=2.5)
    prompt["2"]["inputs"]["audio"] = name
    result = host.run(prompt)
    assert result.status == "error"
    assert "audio_start: 2.5 s is past the end of the audio, which lasts 1.00 s" in result.error()["exception_message"]

    # 1.5 s of audio from 0.5 s: 1.0 s, whose longest 8k+1 at 24 fps is 17 frames (the widget says 9).
    name = write_wav(host.input_dir / "one_and_a_half.wav", 1.5, 16000, 1)
    prompt = small_workflow(prefix="section/fit", num_frames=9, audio_start=0.5, frames_from_audio=True)
    prompt["2"]["inputs"]["audio"] = name
    prompt["6"]["inputs"]["num_frames"] = 9
    result = host.run(prompt)
    assert result.status == "success", result.messages[-1]
    frames, info = read_mp4(saved_mp4(host, result))
    assert frames.shape[0] == 17 and np.isclose(info["fps"], FPS)
    notes = host.vram()["last_run"]["notes"]
    assert any(n.startswith("frames_from_audio: 17 frames (0.71 s at 24 fps)") for n in notes), notes
