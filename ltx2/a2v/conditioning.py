"""The images a video is conditioned on, encoded as ltx-pipelines' `combined_image_conditionings` encodes its
`images` list: each image prepared as `load_image_conditioning` prepares a file (8-bit RGB, the crf round trip,
resize and center crop, [-1, 1]) and encoded on its own; one at frame 0 replaces the first latent frame
(`VideoConditionByLatentIndex`), any other becomes a keyframe appended to the latent at its pixel frame
(`VideoConditionByKeyframeIndex`). Both stages condition on the same list, at their own size."""

from collections.abc import Callable

import torch
from ltx_core.conditioning import VideoConditionByKeyframeIndex, VideoConditionByLatentIndex
from ltx_pipelines.utils.media_io import normalize_latent, preprocess, resize_and_center_crop

from ...memory.budget import BUDGET
from ..components import activations
from ..components.model_spec import ModelSpec
from . import finite
from .inputs import first_image
from .interrupts import interruptible
from .run_inputs import Keyframe
from .windows import Window


def conditioning_images(image: torch.Tensor, keyframes: tuple[Keyframe, ...]) -> tuple[Keyframe, ...]:
    """The run's `images`, in ltx-pipelines' order: the sampler's image at frame 0 and full strength, then the
    keyframes (frames resolved, run_inputs.resolved_keyframes) as chained. A keyframe at frame 0 takes the image
    input's place (its image and strength): that is how the first frame is given a strength below 1."""
    first = [] if any(k.frame == 0 for k in keyframes) else [Keyframe(first_image(image), 0, 1.0)]
    return (*first, *(Keyframe(first_image(k.image), k.frame, k.strength) for k in keyframes))


def encode_images(
    model: ModelSpec,
    images: tuple[Keyframe, ...],
    width: int,
    height: int,
    crf: int,
    device: torch.device,
    on_tensor: Callable[[str], None] | None = None,
) -> list[torch.Tensor]:
    """Each image encoded at width x height by one video encoder, in order, in the transformer's dtype."""
    precision = model.precision_on(device)
    working = activations.image_encode(width, height, precision.vae)
    encoded = []
    with (
        BUDGET.phase("image encode", device),
        model.component("video_encoder", device, on_tensor=on_tensor, activations=working) as encoder,
        interruptible(encoder, on_tensor),
    ):
        for keyframe in images:
            # ComfyUI's floats are 8-bit values / 255: back to the bytes a file would have given.
            rgb8 = (keyframe.image * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
            pixels = torch.tensor(preprocess(rgb8, crf), dtype=torch.float32)
            pixels = normalize_latent(resize_and_center_crop(pixels, height, width), device, precision.vae)
            latent = encoder(pixels)
            finite.check(model, "image encode", "video_encoder", latent)
            encoded.append(latent.to(precision.transformer))
        del encoder
    return encoded


def conditioning_items(images: tuple[Keyframe, ...], encoded: list[torch.Tensor], window: Window | None = None):
    """The conditioning items of the encoded images: all of them at their frames, or those a window of a long video
    owns (windows.py), at its own frames (the frame-0 image in the first window only)."""
    items = []
    for keyframe, latent in zip(images, encoded):
        frame = keyframe.frame
        if window is not None:
            if not window.owns(frame):
                continue
            frame -= window.first_frame
        if frame == 0:
            items.append(VideoConditionByLatentIndex(latent=latent, strength=keyframe.strength, latent_idx=0))
        else:
            items.append(VideoConditionByKeyframeIndex(keyframes=latent, frame_idx=frame, strength=keyframe.strength))
    return items


def image_conditionings(
    model: ModelSpec,
    images: tuple[Keyframe, ...],
    width: int,
    height: int,
    crf: int,
    device: torch.device,
    on_tensor: Callable[[str], None] | None = None,
) -> list:
    """Each image encoded at width x height, in order, as its conditioning item."""
    return conditioning_items(images, encode_images(model, images, width, height, crf, device, on_tensor))
