"""A video longer than one window through the real server: the sampler makes it in windows, the refine stage follows
them, and LTX-2 Decode to Video writes the mp4 as it decodes (no float32 frames), which SaveVideo saves as it is."""

from workflows import FPS, read_mp4, saved_mp4, small_workflow


def long_workflow(prefix: str, **sampler) -> dict:
    """The small workflow at 41 frames in windows of 17 with 8 of overlap (3 windows), decoded to a VIDEO."""
    prompt = small_workflow(prefix=prefix, **{"num_frames": 41, "window_frames": 17, "overlap_frames": 8, **sampler})
    prompt["6"]["inputs"]["num_frames"] = 41
    prompt["7"]["class_type"] = "LTX2DecodeToVideo"
    prompt["9"]["inputs"]["video"] = ["7", 0]  # SaveVideo takes the decoder's VIDEO; CreateVideo is not needed
    del prompt["8"]
    return prompt


def test_a_long_video_is_made_in_windows_and_saved_from_the_decoder(host):
    result = host.run(long_workflow("windows/long"))
    assert result.status == "success", result.messages[-1]
    frames, info = read_mp4(saved_mp4(host, result))
    assert frames.shape[0] == 41 and abs(info["fps"] - FPS) < 1e-6
    assert 0 <= info["audio_seconds"] - 41 / FPS < 1024 / info["audio_rate"] + 1e-3
    notes = [n.split(",")[0] for n in host.vram()["last_run"]["notes"] if ": window " in n]
    assert notes == [f"stage {s}: window {k} of 3" for s in (1, 2) for k in (1, 2, 3)], notes


def test_a_window_shorter_than_twice_the_overlap_is_refused_at_queue_time(host):
    response = host.post_prompt(long_workflow("windows/bad", window_frames=17, overlap_frames=16))
    assert response.status_code == 400
    assert "shorter than twice the overlap" in response.json()["node_errors"]["4"]["errors"][0]["details"]
