"""The parts of a stage that a long video runs once per window (windows.py): the audio encoded per window, the
upscale per window, and the denoising of consecutive windows, each conditioned on the previous window's last
latent frames and joined into one latent. A video of one window runs each part once, exactly as a one-window
stage: the same calls, the same random draws.

Each window is a video of its own for everything that holds memory (its tokens, its audio latent, its upscale), so a
stage's peak is one window's whatever the video's length; what grows with the length is the joined latent, kept
in host memory."""

import time
from collections.abc import Callable, Iterator

import torch
from ltx_core.conditioning import VideoConditionByLatentIndex
from ltx_core.model.audio_vae import encode_audio
from ltx_core.model.upsampler import upsample_video
from ltx_core.types import Audio, AudioLatentShape

from ...memory.budget import BUDGET
from ..components import activations
from ..components.model_spec import ModelSpec
from . import finite
from .inputs import conditioning_audio
from .interrupts import interruptible
from .run_inputs import RunInputs
from .windows import Window

# Shown on the node while a stage runs a long video (its own text; None where nothing is shown).
Say = Callable[[str], None] | None


def window_audio(
    model: ModelSpec, device: torch.device, inputs: RunInputs, windows: list[Window], dtype: torch.dtype, on_tensor
) -> list[torch.Tensor]:
    """Each window's audio latent: its own section of the clip (from audio_start plus the window's first frame)
    encoded as a one-window run encodes its audio, cut to the window's audio frames."""
    rate = inputs.sample_rate
    working = activations.audio_encode(windows[0].frames / inputs.frame_rate, rate)
    latents = []
    with (
        BUDGET.phase("audio encode", device),
        model.component("audio_encoder", device, on_tensor=on_tensor, activations=working) as enc,
        interruptible(enc, on_tensor),
    ):
        for window in windows:
            seconds = window.frames / inputs.frame_rate
            start = inputs.audio_start + window.first_frame / inputs.frame_rate
            audio = conditioning_audio(inputs.waveform, rate, seconds, start)
            latent = encode_audio(Audio(audio.waveform.to(device), audio.sampling_rate), enc)
            finite.check(model, "audio encode", "audio_encoder", latent)
            frames = AudioLatentShape.from_duration(batch=1, duration=seconds, channels=8, mel_bins=16).frames
            latents.append(latent[:, :, :frames].to(dtype))
        del enc
    return latents


def latent_windows(video: torch.Tensor, windows: list[Window]) -> Iterator[torch.Tensor]:
    """Each window's slice of a joined latent [1, C, F, H, W]."""
    for window in windows:
        yield video[:, :, window.start : window.start + window.latent_frames]


def joined(parts: list[torch.Tensor], windows: list[Window]) -> torch.Tensor:
    """Windows' latents as one: the first whole, each later one without the overlap it shares with the one before."""
    return torch.cat([part if w.index == 0 else part[:, :, w.overlap :] for part, w in zip(parts, windows)], dim=2)


def upscale_windows(
    model: ModelSpec, device: torch.device, video: torch.Tensor, windows: list[Window], on_tensor
) -> list[torch.Tensor]:
    """Each window's slice upsampled on its own, as a one-window run upsamples its latent (the upsampler's group
    norms reach across all frames: one window at a time is what keeps its peak and its numbers a window's)."""
    upscaled = []
    with (
        # Kept for stage 2's image conditioning, the next thing to run (no denoising between: no peak grows).
        model.component("video_encoder", device, on_tensor=on_tensor, hand_over=True) as encoder,
        model.component("spatial_upsampler", device, on_tensor=on_tensor) as upsampler,
        interruptible(encoder, on_tensor),
        interruptible(upsampler, on_tensor),
    ):
        for part in latent_windows(video, windows):
            result = upsample_video(part.to(device), encoder, upsampler)
            finite.check(model, "upscale", "spatial_upsampler", result)
            upscaled.append(result if len(windows) == 1 else result.cpu())
        del encoder, upsampler
    return upscaled


def denoise_windows(
    windows: list[Window],
    items_of: Callable[[Window], list],
    denoise_window: Callable[[Window, list, Callable[[int, int], None] | None], torch.Tensor],
    progress: Callable[[int, int], None] | None,
    say: Say = None,
    stage: str = "stage 1",
) -> torch.Tensor:
    """The windows denoised in turn (`denoise_window(window, conditionings, progress)` -> its latent), each after
    the first conditioned on its predecessor's last `overlap` latent frames at strength 1 (they come out unchanged),
    joined into one latent: the first window whole, each later one without its overlap. Progress runs over all
    windows' steps; a video of one window is that window's latent itself."""
    done, previous = [], None
    for window in windows:
        items = items_of(window)
        if previous is not None:
            overlap = previous[:, :, -window.overlap :]
            items = [VideoConditionByLatentIndex(latent=overlap, strength=1.0, latent_idx=0), *items]
        text = f"{stage}: window {window.index + 1} of {len(windows)}"
        if len(windows) > 1 and say is not None:
            say(text)
        started = time.perf_counter()
        step = _window_progress(progress, window.index, len(windows))
        latent = denoise_window(window, items, step)
        if len(windows) > 1 and BUDGET.last_run is not None:
            last = window.start + window.latent_frames - 1
            seconds = time.perf_counter() - started
            BUDGET.last_run.notes.append(f"{text}, latent frames {window.start} to {last}, {seconds:.1f} s")
        previous = latent
        if len(windows) == 1:
            return latent
        # Finished windows wait in host memory: the device holds one window's latent at a time.
        done.append(latent.cpu())
    return joined(done, windows)


def _window_progress(progress, index: int, count: int):
    """One bar over every window's steps: window `index`'s (step, steps) as (steps before it + step, all steps)."""
    if progress is None:
        return None

    def step(current: int, total: int) -> None:
        progress(index * total + current, count * total)

    return step
