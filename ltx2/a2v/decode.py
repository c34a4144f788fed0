"""The video decoded to frames, with the run's audio section beside it, as the last node hands them to ComfyUI."""

from collections.abc import Callable

import torch
from ltx_core.model.video_vae import TilingConfig, decode_video, get_video_chunks_number
from ltx_core.types import Audio

from ...memory.budget import BUDGET
from ..components import activations
from ..components.model_spec import ModelSpec
from .inputs import playable
from .interrupts import interruptible
from .latent import A2VLatent
from .stages import Progress, generator_for

OnTensor = Callable[[str], None] | None


def decode(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    tiling: TilingConfig | None = None,
) -> tuple[torch.Tensor, Audio]:
    """Frames [F, H, W, 3] float in 0..1 and the conditioning audio [channels, samples] of the video's length, as
    a container can carry it (inputs.playable).

    Tiled as `tiling` says (default: the reference's `TilingConfig.default()`, 512 px and 64 frames with
    overlaps; `TilingConfig()` decodes in one piece); progress is reported after each temporal tile."""
    tiling = TilingConfig.default() if tiling is None else tiling
    tiled = tiling.spatial_config is not None or tiling.temporal_config is not None
    total = get_video_chunks_number(latent.num_frames, tiling) if tiled else 1
    chunks = []
    working = activations.decode(
        model.config,
        latent.width,
        latent.height,
        latent.num_frames,
        tiling if tiled else None,
        model.precision_on(device).vae,
    )
    BUDGET.release_handed_over()  # no stage after the decode uses what an earlier one kept
    with torch.inference_mode(), BUDGET.stage("decode", device):
        with (
            model.component("video_decoder", device, on_tensor=on_tensor, activations=working) as decoder,
            interruptible(decoder, on_tensor),
        ):
            generator = generator_for(device, latent.seed, latent)
            # In the decoder's compute dtype: a transformer computing in bf16 beside a VAE in float32 (ComfyUI's
            # --bf16-unet alone) hands over a bf16 latent, which the decoder's float32 convolutions refuse.
            video = latent.video.to(device, model.precision_on(device).vae)
            for chunk in decode_video(video, decoder, tiling if tiled else None, generator):
                chunks.append(chunk.cpu())
                if progress is not None:
                    progress(len(chunks), max(total, len(chunks)))
            del decoder
    frames = torch.cat(chunks, dim=0).float() / 255.0
    samples = round(latent.num_frames / latent.frame_rate * latent.audio.sampling_rate)
    audio = Audio(waveform=latent.audio.waveform[0, :, :samples].cpu(), sampling_rate=latent.audio.sampling_rate)
    return frames, playable(audio)
