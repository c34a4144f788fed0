"""What one A2V run is asked to make, as one object: built once by the sampler node (or a benchmark, a test) and
passed down to the stages, so that an input added to the pipeline is one field here, not one more parameter on
every call between the node and the stage that reads it.

The defaults are the sampler node's. What the model is (files, policies, the user's LoRAs) is the ModelSpec's;
what a later stage reads of the run (the image, the keyframes, the audio) travels in the latent (latent.py).
"""

import math
from dataclasses import dataclass, field

import torch
from ltx_pipelines.utils.constants import DEFAULT_IMAGE_CRF

from ...errors import LTX2InputError
from .limits import LIMITS, VAE_TIME

DEFAULT_PROMPT = "A person speaks to the camera."
DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, still frame, distorted face"


@dataclass(frozen=True)
class Keyframe:
    """An image the video passes through at a pixel frame, as ltx-pipelines' `images` entries are: `frame` 0
    replaces the first latent frame, any other frame is a keyframe appended to the latent (in both stages).
    `frame` may count from the end (-1: the last frame) until the video's length is known (`resolved`)."""

    image: torch.Tensor  # [H, W, 3] float in 0..1 (or what inputs.first_image takes)
    frame: int
    strength: float = 1.0


@dataclass(frozen=True)
class RunInputs:
    image: torch.Tensor  # the frame-0 image, ComfyUI's IMAGE or [H, W, C]
    waveform: torch.Tensor  # [channels, samples] or [batch, channels, samples]
    sample_rate: int
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    seed: int = 42
    width: int = 384  # stage 1's size: half the final one in the two-stage flow
    height: int = 256
    num_frames: int = 97
    frame_rate: float = 24.0
    steps: int = 30
    cfg: float = 3.0
    image_crf: int = DEFAULT_IMAGE_CRF
    recipe: str = "reference"
    keyframes: tuple[Keyframe, ...] = field(default=())
    audio_start: float = 0.0  # seconds into the clip where the video's audio begins
    frames_from_audio: bool = False  # num_frames becomes the longest 8k+1 the audio section covers
    # A video longer than a window is made in consecutive windows (windows.py); 0: the defaults for the frame rate
    # (about 20 s, and 1 s of overlap).
    window_frames: int = 0
    overlap_frames: int = 0

    @property
    def seconds(self) -> float:
        return self.num_frames / self.frame_rate


def frames_covered(seconds: float, frame_rate: float, limit: int = LIMITS["num_frames"][1]) -> int:
    """The longest 8k+1 frame count whose video lasts no longer than `seconds` at `frame_rate`, at most `limit`
    (itself 8k+1): what `frames_from_audio` makes of an audio section. One frame at the least."""
    frames = math.floor(seconds * frame_rate + 1e-9)  # a section of exactly n / frame_rate seconds covers n frames
    frames = max(1, (frames - 1) // VAE_TIME * VAE_TIME + 1)
    return min(frames, limit)


def resolved_keyframes(keyframes: tuple[Keyframe, ...], num_frames: int) -> tuple[Keyframe, ...]:
    """The keyframes with their frames counted from the start, checked against the video: each within it, no two
    at one frame, strengths in 0..1. Raises LTX2InputError naming the `keyframes` input."""
    problem = keyframe_problem([(k.frame, k.strength) for k in keyframes], num_frames)
    if problem:
        raise LTX2InputError(problem)
    return tuple(
        Keyframe(k.image, k.frame + num_frames if k.frame < 0 else k.frame, float(k.strength)) for k in keyframes
    )


def keyframe_problem(frames: list[tuple[int, float]], num_frames: int | None) -> str | None:
    """A message naming the `keyframes` input when (frame, strength) pairs cannot condition a video of
    `num_frames` (None: not known yet, only what does not depend on it is checked), else None. Plain numbers, so
    that the queue-time check (nodes/keyframes.py) and the run share it."""
    seen: dict[int, int] = {}
    for i, (frame, strength) in enumerate(frames, 1):
        if not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
            return f"keyframes: keyframe {i} has strength {strength}; give a strength in 0..1 (1 = exactly this image)."
        if num_frames is None:
            continue
        at = frame + num_frames if frame < 0 else frame
        if not 0 <= at < num_frames:
            return (
                f"keyframes: keyframe {i} is at frame {frame}, outside the {num_frames}-frame video (frames 0 to "
                f"{num_frames - 1}, or -1 to -{num_frames} from the end). Pick a frame inside it, e.g. -1 for the last."
            )
        if at in seen:
            return f"keyframes: keyframes {seen[at]} and {i} are both at frame {at}. Give each keyframe its own frame."
        seen[at] = i
    return None
