"""The video decoded to frames, with the run's audio section beside it, as the last node hands them to ComfyUI."""

from collections.abc import Callable
from pathlib import Path

import torch
from ltx_core.model.video_vae import TilingConfig, decode_video, get_video_chunks_number
from ltx_core.types import Audio

from ...memory.budget import BUDGET
from ..components import activations
from ..components.model_spec import ModelSpec
from . import finite
from .inputs import playable
from .interrupts import interruptible
from .latent import A2VLatent
from .stages import Progress, generator_for
from .video_file import Mp4Writer

OnTensor = Callable[[str], None] | None


def decode_chunks(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    on_chunk: Callable[[torch.Tensor], None],
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    tiling: TilingConfig | None = None,
) -> None:
    """The video decoded a temporal tile at a time, each chunk of frames ([F, H, W, 3] uint8, on the CPU) handed to
    `on_chunk` as it comes: what the decoder holds is one tile's, however long the video.

    Tiled as `tiling` says (default: the reference's `TilingConfig.default()`, 512 px and 64 frames with
    overlaps; `TilingConfig()` decodes in one piece); progress is reported after each temporal tile."""
    tiling = TilingConfig.default() if tiling is None else tiling
    tiled = tiling.spatial_config is not None or tiling.temporal_config is not None
    total = get_video_chunks_number(latent.num_frames, tiling) if tiled else 1
    done = 0
    working = activations.decode(
        model.config,
        latent.width,
        latent.height,
        latent.num_frames,
        tiling if tiled else None,
        model.precision_on(device).vae,
    )
    BUDGET.release_handed_over()  # no stage after the decode uses what an earlier one kept
    with torch.inference_mode(), BUDGET.phase("decode", device):
        with (
            model.component("video_decoder", device, on_tensor=on_tensor, activations=working) as decoder,
            interruptible(decoder, on_tensor),
            finite.watched(decoder, model, "decode", "video_decoder"),
        ):
            generator = generator_for(device, latent.seed, latent)
            # In the decoder's compute dtype: a transformer computing in bf16 beside a VAE in float32 (ComfyUI's
            # --bf16-unet alone) hands over a bf16 latent, which the decoder's float32 convolutions refuse.
            video = latent.video.to(device, model.precision_on(device).vae)
            for chunk in decode_video(video, decoder, tiling if tiled else None, generator):
                on_chunk(chunk.cpu())
                done += 1
                if progress is not None:
                    progress(done, max(total, done))
            del decoder


def video_audio(latent: A2VLatent) -> Audio:
    """The run's audio section of the video's length, as a container can carry it (inputs.playable)."""
    samples = round(latent.num_frames / latent.frame_rate * latent.audio.sampling_rate)
    audio = Audio(waveform=latent.audio.waveform[0, :, :samples].cpu(), sampling_rate=latent.audio.sampling_rate)
    return playable(audio)


def decode(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    tiling: TilingConfig | None = None,
) -> tuple[torch.Tensor, Audio]:
    """Frames [F, H, W, 3] float in 0..1 (ComfyUI's IMAGE: 4 bytes per value, all frames at once) and the audio."""
    chunks = []
    decode_chunks(model, device, latent, chunks.append, progress, on_tensor, tiling)
    frames = torch.cat(chunks, dim=0)
    del chunks
    return frames.float().div_(255.0), video_audio(latent)


def decode_to_mp4(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    path: str | Path,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    tiling: TilingConfig | None = None,
) -> tuple[Path, Audio]:
    """The video written to an mp4 at `path` as it is decoded (video_file.py): no frame kept past its chunk."""
    audio = video_audio(latent)
    with Mp4Writer(path, latent.frame_rate, audio) as out:
        decode_chunks(model, device, latent, out.write, progress, on_tensor, tiling)
    return Path(path), audio
