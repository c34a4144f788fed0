"""The example graph in one call, base -> upscale -> refine -> decode, as the sampler, upscale and decode nodes
run it in one prompt (stage 1 hands its transformer over to stage 2): for benchmarks, tests and scripts that
drive the pipeline without a ComfyUI host."""

import torch
from ltx_core.types import Audio

from ..components.model_spec import ModelSpec
from .decode import decode
from .latent import A2VLatent
from .run_inputs import RunInputs
from .stages import Progress, sample_base, sample_refine, upscale


def two_stage_latent(
    model: ModelSpec,
    device: torch.device | str,
    inputs: RunInputs,
    progress: Progress | None = None,
    hand_over: bool = True,
) -> A2VLatent:
    """Stage 1, the 2x upscale and stage 2 with the run's own prompt and seed: the latent the decoder takes.
    `hand_over`: stage 1 keeps its transformer for stage 2, as a prompt with both samplers does."""
    device = torch.device(device)
    latent = sample_base(model, device, inputs, progress, hand_over=hand_over)
    latent = upscale(model, device, latent)
    return sample_refine(model, device, latent, inputs.prompt, inputs.seed, progress, image_crf=inputs.image_crf)


def two_stage(
    model: ModelSpec,
    device: torch.device | str,
    inputs: RunInputs,
    progress: Progress | None = None,
    hand_over: bool = True,
) -> tuple[torch.Tensor, Audio]:
    """(frames [F, H, W, 3] in 0..1, the audio section) of the whole two-stage run."""
    latent = two_stage_latent(model, device, inputs, progress, hand_over)
    return decode(model, torch.device(device), latent, progress)
