"""What flows between the sampler, upscale and decode nodes (the LTX2_LATENT socket)."""

from dataclasses import dataclass

import torch
from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessorOutput
from ltx_core.types import Audio

from .run_inputs import Keyframe
from .windows import Window


@dataclass(frozen=True)
class A2VLatent:
    video: torch.Tensor  # [1, 128, latent frames, height / 32, width / 32], unpatchified
    # The encoded conditioning audio of each window ([1, 8, frames, 16]; one for a video of one window).
    audio_latents: tuple[torch.Tensor, ...]
    audio: Audio  # the conditioning audio itself, [channels, samples], trimmed or padded to the video
    width: int
    height: int
    num_frames: int
    frame_rate: float
    seed: int
    # Stage 1's encoded positive prompt, kept on the CPU with what it depends on: a refine stage with the same
    # prompt and text encoder reuses it instead of building the 12B Gemma a second time in the run.
    prompt_encoding: tuple[tuple, EmbeddingsProcessorOutput] | None = None
    # The run's random generator as the last stage left it (torch.Generator.get_state()): the next stage with the
    # same seed, and the decoder, continue its stream, as ltx-pipelines' one generator does.
    noise_state: torch.Tensor | None = None
    # The recipe stage 1 ran (recipes.py): the refine stage follows it.
    recipe: str = "reference"
    # The images the video is conditioned on (the frame-0 image and the keyframes, frames resolved: run_inputs.py),
    # as stage 1 took them: stage 2 conditions on the same list at its own size, as ltx-pipelines does.
    images: tuple[Keyframe, ...] = ()
    # A video longer than one window: its windows (windows.py), and after the upscale each window's own upscaled
    # latent (stage 2 starts each window from it; `video` is then their join). Empty: one window, the video.
    windows: tuple[Window, ...] = ()
    window_videos: tuple[torch.Tensor, ...] = ()
