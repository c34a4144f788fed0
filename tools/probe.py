"""One transformer denoising step at a fixed small shape: the same inputs for every policy, so outputs and
timings compare side by side (tests and the quantization benchmark)."""

from dataclasses import dataclass

import torch
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape, VideoPixelShape


@dataclass(frozen=True)
class ProbeShape:
    frames: int = 9
    height: int = 64
    width: int = 64
    fps: float = 24.0
    context_tokens: int = 64


def probe_inputs(
    config: dict,
    shape: ProbeShape = ProbeShape(),
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
) -> tuple[Modality, Modality]:
    """Noisy video and audio latents at sigma 0.8 with random text context, deterministic for `seed`."""
    transformer = config["transformer"]
    gen = torch.Generator().manual_seed(seed)
    pixels = VideoPixelShape(batch=1, frames=shape.frames, height=shape.height, width=shape.width, fps=shape.fps)
    video_shape = VideoLatentShape.from_pixel_shape(pixels, latent_channels=transformer.get("in_channels", 128))
    audio_shape = AudioLatentShape.from_video_pixel_shape(pixels)
    video_tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), video_shape, shape.fps)
    audio_tools = AudioLatentTools(AudioPatchifier(patch_size=1), audio_shape)

    def state(tools, latent_shape):
        noise = torch.randn(*latent_shape.to_torch_shape(), generator=gen).to(dtype)
        return tools.create_initial_state(device, dtype, initial_latent=noise.to(device))

    sigma = torch.tensor([0.8], device=device)

    def modality(latent_state, width: int) -> Modality:
        context = torch.randn(1, shape.context_tokens, width, generator=gen).to(dtype).to(device)
        return Modality(
            latent=latent_state.latent,
            sigma=sigma,
            timesteps=latent_state.denoise_mask * sigma,
            positions=latent_state.positions,
            context=context,
        )

    video = modality(state(video_tools, video_shape), transformer["cross_attention_dim"])
    audio = modality(state(audio_tools, audio_shape), transformer["audio_cross_attention_dim"])
    return video, audio


def denoise_step(transformer: torch.nn.Module, video: Modality, audio: Modality) -> tuple[torch.Tensor, torch.Tensor]:
    """The transformer's velocity prediction for both modalities (one forward)."""
    with torch.inference_mode():
        return transformer(video, audio, BatchedPerturbationConfig.empty(1))
