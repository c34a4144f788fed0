"""The sampler's image and audio as the pipeline takes them, from plain tensors (the node layer converts
ComfyUI's IMAGE and AUDIO into these), checked so that what a later node gets can be written: a clip at a rate or
an amplitude no container takes is refused here, with what to do, not in SaveVideo's FFmpeg."""

import math

import torch
import torchaudio
from ltx_core.types import Audio

from ...errors import LTX2InputError

# Sample rates a clip may have: the audio encoder resamples to its own 16 kHz, and a video container's AAC
# takes 8 to 96 kHz; below 8 kHz there is no speech to hear, above 192 kHz no audio interface records.
MIN_RATE, MAX_RATE = 8_000, 192_000
# What FFmpeg's AAC encoder (SaveVideo's) accepts; a clip at another rate is resampled for the AUDIO output.
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
# Full scale is 1.0. A clip louder than this many times full scale is damaged, or integer samples handed over as
# floats (a 16-bit clip peaks at 32767): the encoder would see noise.
MAX_AMPLITUDE = 16.0
# The image's sides: smaller is not a picture of anything, larger costs the crf round trip minutes for nothing
# (it is resized to at most 4096 px).
MIN_SIDE, MAX_SIDE = 16, 8_192


def check_rate(rate) -> int:
    if (
        isinstance(rate, bool)
        or not isinstance(rate, (int, float))
        or rate != rate
        or not MIN_RATE <= rate <= MAX_RATE
        or int(rate) != rate
    ):
        raise LTX2InputError(
            f"audio: a sample rate of {rate} Hz cannot be the video's soundtrack; LTX-2 takes clips at "
            f"{MIN_RATE // 1000} to {MAX_RATE // 1000} kHz (its audio encoder works at 16 kHz). Load the file again, "
            "or resample the clip first."
        )
    return int(rate)


def conditioning_audio(waveform: torch.Tensor, rate: int, seconds: float, start: float = 0.0) -> Audio:
    """A clip ([channels, samples] or [batch, channels, samples]) as stereo float audio of `seconds` from `start`
    seconds into it, both rounded to the nearest sample as ltx-pipelines' `decode_audio_from_file(path, device,
    start_time, max_duration)` rounds them (the same samples): mono is duplicated, extra channels dropped, a section
    running past the clip's end padded with silence. A start at or past the end is refused, naming the clip's
    length."""
    waveform = clip_samples(waveform, rate)
    rate = int(rate)
    if not (isinstance(start, (int, float)) and math.isfinite(start) and start >= 0):
        raise LTX2InputError(f"audio_start: {start} is not a time in the clip; give seconds from 0.")
    length = waveform.shape[-1] / rate
    first = round(start * rate)
    if first >= waveform.shape[-1]:
        raise LTX2InputError(
            f"audio_start: {start:g} s is past the end of the audio, which lasts {length:.2f} s. Give a start "
            f"below {length:.2f} s."
        )
    waveform = waveform[..., first:]
    samples = round(seconds * rate)
    if waveform.shape[-1] < samples:
        waveform = torch.nn.functional.pad(waveform, (0, samples - waveform.shape[-1]))
    return Audio(waveform=waveform[..., :samples], sampling_rate=rate)


def clip_seconds(waveform: torch.Tensor, rate: int) -> float:
    """How long a clip lasts (checked as conditioning_audio checks it)."""
    return clip_samples(waveform, rate).shape[-1] / int(rate)


def clip_samples(waveform: torch.Tensor, rate: int) -> torch.Tensor:
    """The clip checked and made [1, 2, samples] float stereo: its first item, mono duplicated, extra channels
    dropped, integer PCM scaled to full scale 1.0."""
    rate = check_rate(rate)
    waveform = torch.as_tensor(waveform)
    if not (waveform.is_floating_point() or waveform.dtype in (torch.int16, torch.int32)):
        raise LTX2InputError(f"audio: samples of type {waveform.dtype} are not audio. Connect a LoadAudio node.")
    if not waveform.is_floating_point():  # integer PCM: to full scale 1.0
        waveform = waveform.float() / -torch.iinfo(waveform.dtype).min
    waveform = waveform.float()
    if waveform.ndim == 2:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 3 or waveform.shape[-1] == 0 or waveform.shape[1] == 0 or not torch.isfinite(waveform).all():
        raise LTX2InputError(
            f"audio: the clip is empty or damaged (waveform shape {list(waveform.shape)}, or values "
            "that are not numbers). Load the file again."
        )
    peak = float(waveform.abs().max())
    if peak > MAX_AMPLITUDE:
        raise LTX2InputError(
            f"audio: the clip peaks at {peak:.3g} times full scale (1.0); it is damaged, or integer samples were "
            "passed on as floats. Normalize it to -1..1, or load the file again."
        )
    waveform = waveform[:1]
    if waveform.shape[1] == 1:
        waveform = waveform.repeat(1, 2, 1)
    return waveform[:, :2]


def playable(audio: Audio) -> Audio:
    """The clip as a video container can carry it: at a rate AAC takes (else resampled to 48 kHz) and within full
    scale (a clip's peaks above 1.0 are clipped, as any 16-bit output would)."""
    waveform, rate = audio.waveform.float(), audio.sampling_rate
    if rate not in AAC_RATES:
        waveform, rate = torchaudio.functional.resample(waveform, rate, 48_000), 48_000
    return Audio(waveform=waveform.clamp(-1.0, 1.0), sampling_rate=rate)


def first_image(image: torch.Tensor) -> torch.Tensor:
    """An image [H, W, C] or a batch [B, H, W, C] in 0..1 (or 8-bit 0..255) -> the first image as [H, W, 3]
    float in 0..1 (grey is repeated, alpha dropped)."""
    image = torch.as_tensor(image)
    if image.ndim == 4:
        if image.shape[0] == 0:
            raise LTX2InputError("image: the batch holds no image. Connect a LoadImage node.")
        image = image[0]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise LTX2InputError(
            f"image: expected an image [height, width, 1/3/4 channels], got a tensor of shape "
            f"{list(image.shape)}. Connect a LoadImage node."
        )
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_SIDE:
        raise LTX2InputError(
            f"image: {width}x{height} px; give an image {MIN_SIDE} to {MAX_SIDE} px on each side "
            "(it is resized and center-cropped to the video's size)."
        )
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    elif not image.is_floating_point():
        raise LTX2InputError(
            f"image: pixels of type {image.dtype}; give floats in 0..1 (ComfyUI's IMAGE) or 8-bit values."
        )
    image = image.float()
    if not torch.isfinite(image).all():
        raise LTX2InputError("image: it holds values that are not numbers (NaN or infinite). Load it again.")
    if image.shape[-1] == 1:
        image = image.repeat(1, 1, 3)
    return image[..., :3]
