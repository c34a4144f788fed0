"""A video longer than one window: consecutive windows, each conditioned on the one before, joined into one latent.
The first window is a one-window run of the same first frames, byte for byte; a video of one window runs as before;
the run goes on through the upscale, stage 2 and the decode, window by window."""

import pytest
import torch
from tiny_run import model_of, run_inputs

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v import stages
from ltx2_a2v.ltx2.a2v.decode import decode
from ltx2_a2v.ltx2.a2v.windows import check_windows, plan_windows

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "frames, window, overlap",
    [(97, 97, 24), (1441, 481, 24), (161, 49, 16), (169, 49, 16), (57, 49, 16), (33, 17, 8), (14401, 481, 24)],
)
def test_windows_cover_the_video_once_and_join_to_its_latent_frames(frames, window, overlap):
    windows = plan_windows(frames, window, overlap)
    assert windows[0].latent_frames + sum(w.latent_frames - w.overlap for w in windows[1:]) == (frames - 1) // 8 + 1
    assert all(sum(w.owns(f) for w in windows) == 1 for f in range(0, frames, 7))  # each frame made by one window
    assert all(w.latent_frames > w.overlap for w in windows)


def test_a_window_and_overlap_that_cannot_work_are_named():
    assert "window_frames must be 8k+1" in check_windows(50, 8)
    assert "overlap_frames: 20 is off the VAE's time grid" in check_windows(49, 20)
    assert "shorter than twice the overlap" in check_windows(33, 24)
    assert check_windows(49, 16) is None


def test_the_first_window_of_a_long_run_is_a_one_window_run_byte_for_byte(tiny_paths, budget):
    model = model_of(tiny_paths, residency="persistent")
    try:
        budget.begin_run("one window", "none", "persistent")
        one = stages.sample_base(model, CPU, run_inputs(3.0, num_frames=17))
        budget.begin_run("three windows", "none", "persistent")
        long = stages.sample_base(model, CPU, run_inputs(3.0, num_frames=41, window_frames=17, overlap_frames=8))
        notes = budget.last_run.notes
    finally:
        budget.free_all()
    assert [(w.start, w.latent_frames) for w in long.windows] == [(0, 3), (2, 3), (4, 2)]
    assert long.video.shape[2] == 6 and one.video.shape[2] == 3
    assert torch.equal(long.video[:, :, :3], one.video)
    assert torch.equal(long.audio_latents[0], one.audio_latents[0])
    assert [n.split(",")[0] for n in notes if n.startswith("stage 1: window")] == [
        "stage 1: window 1 of 3",
        "stage 1: window 2 of 3",
        "stage 1: window 3 of 3",
    ]


def test_a_long_run_goes_through_upscale_stage_2_and_decode(tiny_paths, budget):
    model = model_of(tiny_paths)
    steps = []
    budget.begin_run("long", "none", "cold_start")
    inputs = run_inputs(3.0, num_frames=41, window_frames=17, overlap_frames=8)
    latent = stages.sample_base(model, CPU, inputs, progress=lambda d, t: steps.append((d, t)), hand_over=True)
    latent = stages.upscale(model, CPU, latent)
    assert len(latent.window_videos) == 3 and latent.video.shape[2] == 6
    latent = stages.sample_refine(model, CPU, latent, inputs.prompt, inputs.seed)
    frames, audio = decode(model, CPU, latent)
    assert frames.shape[:3] == (41, 128, 128) and audio.waveform.shape[-1] == round(41 / 24 * 16000)
    assert steps[-1] == (6, 6) and len(steps) == 6  # one bar over the 3 windows' 2 steps
    assert not budget.records


def test_a_window_setting_that_cannot_work_is_refused_before_anything_is_built(tiny_paths, budget):
    with pytest.raises(LTX2InputError, match="overlap_frames: 12 is off the VAE's time grid"):
        stages.sample_base(model_of(tiny_paths), CPU, run_inputs(num_frames=41, window_frames=17, overlap_frames=12))
    assert not budget.records


class Stop(Exception):
    pass


def test_an_interrupt_in_a_later_window_leaves_nothing_resident(tiny_paths, budget):
    def progress(done: int, total: int) -> None:
        if done == 3:  # the second window's first step
            raise Stop

    budget.begin_run("interrupted", "none", "cold_start")
    with pytest.raises(Stop):
        stages.sample_base(
            model_of(tiny_paths), CPU, run_inputs(3.0, num_frames=41, window_frames=17, overlap_frames=8), progress
        )
    assert not budget.records
