"""What the sampler accepts: any image of a sensible size, audio at any rate a container can carry and any channel
count, and clear words for bad values; what it hands on (AUDIO) is always something SaveVideo can write."""

import math

import pytest
import torch

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v.inputs import AAC_RATES, MAX_SIDE, MIN_SIDE, conditioning_audio, first_image, playable
from ltx2_a2v.ltx2.a2v.limits import (
    LIMITS,
    MAX_PROMPT_CHARS,
    VAE_SPACE,
    VAE_TIME,
    check_numbers,
    check_prompt,
    check_size,
)


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


@pytest.mark.parametrize(
    "width, height, frames, words",
    [
        (100, 64, 17, "Try 96x64"),
        (64, 64, 20, "Try 17 or 25"),
        (64, 64, 0, "8k+1"),
    ],
)
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


@pytest.mark.parametrize("rate", [1, 4000, 384_000, 22050.5, float("nan"), True])
def test_a_rate_no_container_takes_is_refused_by_name(rate):
    with pytest.raises(LTX2InputError, match=f"^audio: a sample rate of {rate} Hz cannot be the video's soundtrack"):
        conditioning_audio(torch.zeros(1, 2, 100), rate, seconds=1.0)


@pytest.mark.parametrize("peak", [1e30, 32767.0])
def test_a_clip_far_louder_than_full_scale_is_refused(peak):
    with pytest.raises(LTX2InputError, match="^audio: the clip peaks at .* times full scale"):
        conditioning_audio(tone(0.5, 16000, 1) * peak, 16000, seconds=0.5)


def test_integer_samples_are_read_as_pcm():
    pcm = (tone(0.5, 16000, 1) * 32767).to(torch.int16)
    audio = conditioning_audio(pcm, 16000, seconds=0.5)
    assert 0.99 < float(audio.waveform.abs().max()) <= 1.0


def test_what_is_handed_on_is_always_writable():
    """SaveVideo's AAC takes some rates only and samples in -1..1: a clip at another rate is resampled, peaks
    above full scale are clipped."""
    odd = playable(conditioning_audio(tone(0.5, 37_000, 2) * 2, 37_000, seconds=0.5))
    assert odd.sampling_rate == 48_000 and odd.waveform.shape[-1] == 24_000 and odd.waveform.abs().max() <= 1.0
    for rate in (16_000, 44_100):
        assert rate in AAC_RATES and playable(conditioning_audio(tone(0.5, rate, 1), rate, 0.5)).sampling_rate == rate


@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (1, MIN_SIDE - 1, 640, 3), (1, 64, MAX_SIDE + 1, 3)])
def test_an_image_too_small_or_too_large_is_refused_saying_the_range(shape):
    with pytest.raises(LTX2InputError, match=f"^image: .* px; give an image {MIN_SIDE} to {MAX_SIDE} px on each side"):
        first_image(torch.zeros(shape))


def test_8_bit_images_are_taken_and_other_integers_refused():
    assert first_image(torch.full((32, 32, 3), 255, dtype=torch.uint8)).max() == 1.0
    with pytest.raises(LTX2InputError, match="^image: pixels of type torch.int32"):
        first_image(torch.zeros(32, 32, 3, dtype=torch.int32))


def test_a_prompt_over_the_limit_is_refused_before_tokenization():
    assert check_prompt("negative_prompt", "x" * MAX_PROMPT_CHARS) is None
    assert check_prompt("negative_prompt", "x" * (MAX_PROMPT_CHARS + 1)).startswith(
        f"negative_prompt: {MAX_PROMPT_CHARS + 1:,} characters; the limit is {MAX_PROMPT_CHARS:,}"
    )
    assert check_prompt("prompt", 5) == "prompt: expected text, got int."


def test_the_size_rules_are_ltx_cores_vae_scale_factors():
    from ltx_core.types import VIDEO_SCALE_FACTORS

    assert (VAE_SPACE, VAE_SPACE, VAE_TIME) == (
        VIDEO_SCALE_FACTORS.width,
        VIDEO_SCALE_FACTORS.height,
        VIDEO_SCALE_FACTORS.time,
    )
