"""A run's inputs as Lightricks' reference takes them: the audio section is the samples ltx-pipelines'
`decode_audio_from_file` reads, `frames_from_audio` picks the longest 8k+1 the section covers, and keyframes are
checked against the video before anything is built."""

import math
import wave

import numpy as np
import pytest
import torch
from ltx_pipelines.utils.media_io import decode_audio_from_file

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v.inputs import conditioning_audio
from ltx2_a2v.ltx2.a2v.run_inputs import Keyframe, frames_covered, keyframe_problem, resolved_keyframes


def write_stereo_wav(path, seconds: float, rate: int) -> torch.Tensor:
    """A 16-bit stereo file, and its samples as LoadAudio gives them ([1, 2, samples], full scale 1.0)."""
    t = np.arange(round(seconds * rate)) / rate
    pcm = np.stack([np.sin(2 * math.pi * 220 * t) * 0.4, np.sin(2 * math.pi * 331 * t) * 0.3], 1) * 32767
    pcm = pcm.astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return torch.from_numpy(pcm.T.copy()).float().div(32768).unsqueeze(0)


@pytest.mark.parametrize("start, seconds", [(0.0, 0.7083), (0.25, 17 / 24), (1.3333, 0.5), (0.1, 3.0)])
def test_the_audio_section_is_the_samples_the_reference_reads(tmp_path, start, seconds):
    rate = 16000
    clip = write_stereo_wav(tmp_path / "voice.wav", 2.0, rate)
    ours = conditioning_audio(clip, rate, seconds, start).waveform
    theirs = decode_audio_from_file(str(tmp_path / "voice.wav"), torch.device("cpu"), start, seconds).waveform
    # Where the section runs past the clip's end the reference's audio stops there, the pack's is padded with
    # silence to the video's length: the samples the reference has are the same.
    assert torch.equal(ours[..., : theirs.shape[-1]], theirs)
    assert ours.shape[-1] == round(seconds * rate)
    assert not ours[..., theirs.shape[-1] :].any()


def test_a_start_past_the_end_of_the_audio_is_refused_naming_its_length():
    clip = torch.zeros(1, 2, 16000)
    with pytest.raises(LTX2InputError, match=r"audio_start: 1\.5 s is past the end of the audio, which lasts 1\.00 s"):
        conditioning_audio(clip, 16000, 0.5, 1.5)


@pytest.mark.parametrize(
    "seconds, fps, frames",
    [
        (1.0, 24.0, 17),
        (17 / 24, 24.0, 17),
        (17 / 24 - 1e-4, 24.0, 9),
        (60.0, 24.0, 1433),
        (700.0, 24.0, 14401),
        (0.01, 24.0, 1),
        (4.0, 25.0, 97),
    ],
)
def test_frames_from_audio_is_the_longest_8k_plus_1_the_section_covers(seconds, fps, frames):
    assert frames_covered(seconds, fps) == frames


def test_keyframes_are_checked_against_the_video_and_resolved_from_the_end():
    image = torch.zeros(8, 8, 3)
    frames = resolved_keyframes((Keyframe(image, -1, 0.8), Keyframe(image, 8)), 17)
    assert [(k.frame, k.strength) for k in frames] == [(16, 0.8), (8, 1.0)]
    assert "outside the 17-frame video" in keyframe_problem([(17, 1.0)], 17)
    assert "outside the 17-frame video" in keyframe_problem([(-18, 1.0)], 17)
    assert "keyframes 1 and 2 are both at frame 16" in keyframe_problem([(-1, 1.0), (16, 0.5)], 17)
    assert "strength 1.5" in keyframe_problem([(3, 1.5)], None)
    assert keyframe_problem([(40, 1.0)], None) is None  # the length is not known yet: checked when it is
    with pytest.raises(LTX2InputError, match="keyframes: keyframe 1 is at frame 30"):
        resolved_keyframes((Keyframe(image, 30),), 17)
