"""The sampler's image and audio as the pipeline takes them, from plain tensors (the node layer converts
ComfyUI's IMAGE and AUDIO into these)."""

import torch
from ltx_core.types import Audio

from ...errors import LTX2InputError


def conditioning_audio(waveform: torch.Tensor, rate: int, seconds: float) -> Audio:
    """A clip ([channels, samples] or [batch, channels, samples]) as stereo float audio of `seconds`, rounded to
    the nearest sample as ltx-pipelines' audio decoder rounds: mono is duplicated, extra channels dropped, a short
    clip padded with silence, a long one cut."""
    waveform = torch.as_tensor(waveform).float()
    if waveform.ndim == 2:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 3 or waveform.shape[-1] == 0 or not torch.isfinite(waveform).all():
        raise LTX2InputError(f"audio: the clip is empty or damaged (waveform shape {list(waveform.shape)}).")
    waveform = waveform[:1]
    if waveform.shape[1] == 1:
        waveform = waveform.repeat(1, 2, 1)
    waveform = waveform[:, :2]
    samples = round(seconds * rate)
    if waveform.shape[-1] < samples:
        waveform = torch.nn.functional.pad(waveform, (0, samples - waveform.shape[-1]))
    return Audio(waveform=waveform[..., :samples], sampling_rate=int(rate))


def first_image(image: torch.Tensor) -> torch.Tensor:
    """An image [H, W, C] or a batch [B, H, W, C] in 0..1 -> the first image as [H, W, 3] float."""
    image = torch.as_tensor(image)
    if image.ndim == 4:
        image = image[0]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or min(image.shape[:2]) < 2:
        raise LTX2InputError(f"image: expected an RGB image, got a tensor of shape {list(image.shape)}.")
    if image.shape[-1] == 1:
        image = image.repeat(1, 1, 3)
    return image[..., :3].float()
