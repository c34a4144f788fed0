"""ComfyUI's IMAGE and AUDIO values to the plain tensors the pipeline takes, and back."""

import torch

from ..errors import LTX2InputError


def audio_in(audio) -> tuple[torch.Tensor, object]:
    """ComfyUI's AUDIO ({'waveform': [batch, channels, samples], 'sample_rate'}) -> (waveform, sample rate)."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise LTX2InputError("audio: no audio was given. Connect a LoadAudio node (any sample rate, mono or stereo).")
    if not isinstance(audio["waveform"], torch.Tensor):
        raise LTX2InputError("audio: its waveform is not a tensor. Connect a LoadAudio node.")
    return audio["waveform"], audio["sample_rate"]  # checked by the pipeline (ltx2/a2v/inputs.py)


def audio_out(audio) -> dict:
    """The pipeline's audio (ltx-core's Audio: [channels, samples]) as ComfyUI's AUDIO, which SaveVideo writes."""
    return {"waveform": audio.waveform.unsqueeze(0).float(), "sample_rate": audio.sampling_rate}


def image_in(image) -> torch.Tensor:
    """ComfyUI's IMAGE ([batch, height, width, channels] in 0..1), as a tensor."""
    if not isinstance(image, torch.Tensor):
        raise LTX2InputError("image: no image was given. Connect a LoadImage node.")
    return image
