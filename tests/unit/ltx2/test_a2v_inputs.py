"""What the sampler accepts: any image size, any audio rate and channel count, and clear words for bad values."""

import math

import pytest
import torch

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v.inputs import conditioning_audio, first_image
from ltx2_a2v.ltx2.a2v.limits import LIMITS, check_numbers, check_size


def tone(seconds: float, rate: int, channels: int) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return torch.sin(2 * math.pi * 220 * t).repeat(1, channels, 1)


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 2), (48000, 6)])
def test_any_rate_and_channel_count_becomes_stereo_of_the_video_length(rate, channels):
    audio = conditioning_audio(tone(2.0, rate, channels), rate, seconds=17 / 24)
    assert audio.sampling_rate == rate
    assert audio.waveform.shape == (1, 2, round(17 / 24 * rate))  # as ltx-pipelines' decoder rounds


def test_short_audio_is_padded_with_silence_and_long_audio_cut():
    short = conditioning_audio(tone(0.2, 16000, 1), 16000, seconds=1.0)
    assert short.waveform.shape[-1] == 16000 and short.waveform[..., 3200:].abs().max() == 0
    long = conditioning_audio(tone(5.0, 16000, 2), 16000, seconds=1.0)
    assert long.waveform.shape[-1] == 16000


@pytest.mark.parametrize("waveform", [torch.zeros(1, 2, 0), torch.full((1, 1, 10), float("nan"))])
def test_empty_or_damaged_audio_is_refused_by_name(waveform):
    with pytest.raises(LTX2InputError, match="^audio: "):
        conditioning_audio(waveform, 16000, seconds=1.0)


@pytest.mark.parametrize("shape", [(1, 100, 150, 3), (2, 480, 640, 4), (37, 53, 1)])
def test_any_image_size_and_channel_count_is_taken(shape):
    image = first_image(torch.rand(shape))
    assert image.ndim == 3 and image.shape[-1] == 3


@pytest.mark.parametrize("width, height, frames, words", [
    (100, 64, 17, "Try 96x64"), (64, 64, 20, "Try 17 or 25"), (64, 64, 0, "8k+1"),
])
def test_size_errors_say_what_to_change(width, height, frames, words):
    assert words in check_size(width, height, frames)


def test_valid_sizes_pass():
    assert check_size(768, 512, 97) is None and check_size(384, 256, 1) is None


def test_limits_name_the_input_and_a_value_to_try():
    assert check_numbers(LIMITS, steps=0) == "steps: 0 is outside 1..200; try 30 for the base stage."
    assert check_numbers(LIMITS, width=768, height=512, num_frames=97, frame_rate=24.0, steps=30) is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_float_that_is_not_a_number_is_refused_by_name(value):
    assert check_numbers(LIMITS, cfg=value).startswith(f"cfg: {value} is not a number. Give a value in 1.0..20.0")


def test_a_linked_value_is_checked_when_it_exists():
    assert check_numbers(LIMITS, frame_rate=None) is None
