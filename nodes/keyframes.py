"""LTX2Keyframe ("LTX-2 Keyframe"): an image the video passes through at a frame, with its strength, chained into
the list the sampler conditions on (ltx-pipelines' `images`); and the queue-time check of that list.

ComfyUI hands a node's validate_inputs only its own inputs, a linked one as None: a sampler cannot see at queue
time the frames of the keyframes linked to it. So the prompt is read when it is queued (an on_prompt handler), the
keyframe nodes linked to each base sampler are followed, and a list that cannot condition the sampler's video
(a frame outside it, two keyframes at one frame, a strength outside 0..1) is marked on the sampler's `keyframes`
input, which its validate_inputs then refuses with the message. ComfyUI's on_prompt handlers cannot refuse a prompt
themselves (an exception is logged and the prompt goes on)."""

import logging

from comfy_api.latest import io

from ..ltx2.a2v.limits import LIMITS, check_numbers
from .adapters import image_in
from .search_aliases import search_aliases
from .types import UNCONNECTED, LTX2KeyframesType, check_links

NODE = "LTX2Keyframe"
SAMPLER = "A2VSampler"
# What the on_prompt check writes in place of a sampler's keyframes link when the list cannot work.
REFUSED = "LTX2_KEYFRAMES_REFUSED:"
MAX_FRAME = LIMITS["num_frames"][1]
# A chain longer than this is no keyframe list (a hand-written prompt that links nodes in a circle, say).
MAX_CHAIN = 256


class LTX2Keyframe(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="LTX-2 Keyframe",
            category="model/conditioning/ltxv",
            description="An image the video passes through at a frame (first, last or any between), with its "
            "strength; chain several into the sampler's keyframes input.",
            **search_aliases("keyframe", "first frame", "last frame", "first last frame", "guide", "image at frame"),
            inputs=[
                io.Image.Input("image", tooltip="Any size: resized and center-cropped to the video, as the image is"),
                io.Int.Input(
                    "frame",
                    default=-1,
                    min=-MAX_FRAME,
                    max=MAX_FRAME - 1,
                    tooltip="The video frame this image is at; negative counts from the end (-1 = the last frame). "
                    "0 replaces the sampler's image (to give the first frame a strength below 1)",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="1 = the frame is this image; lower lets the video depart from it",
                ),
                LTX2KeyframesType.Input("keyframes", optional=True, tooltip="Keyframes to add this one to"),
            ],
            outputs=[LTX2KeyframesType.Output(display_name="keyframes")],
        )

    @classmethod
    def validate_inputs(cls, frame, strength, image=None, keyframes=UNCONNECTED) -> bool | str:
        limits = {"frame": (-MAX_FRAME, MAX_FRAME - 1, "-1 for the last frame"), "strength": (0.0, 1.0, "1.0")}
        return (
            check_links(image=image, keyframes=keyframes)
            or check_numbers(limits, frame=frame, strength=strength)
            or True
        )

    @classmethod
    def execute(cls, image, frame, strength, keyframes=None) -> io.NodeOutput:
        from ..ltx2.a2v.run_inputs import Keyframe

        return io.NodeOutput((*(keyframes or ()), Keyframe(image_in(image), int(frame), float(strength))))


def _literal(value):
    """A widget's value, or None for a link ([node id, output index]) whose value is known only when it runs."""
    return None if isinstance(value, list) else value


def _chain(prompt: dict, link) -> list[tuple[int, float]] | None:
    """(frame, strength) of each keyframe node along a keyframes link, upstream first; None when some value is
    linked (known only at run time, checked then) or the link is not a chain of keyframe nodes."""
    found = []
    while isinstance(link, list) and len(found) < MAX_CHAIN:
        node = prompt.get(str(link[0])) if link else None
        if not isinstance(node, dict) or node.get("class_type") != NODE:
            return None
        inputs = node.get("inputs") or {}
        frame, strength = _literal(inputs.get("frame")), _literal(inputs.get("strength"))
        if not isinstance(frame, int) or not isinstance(strength, (int, float)):
            return None
        found.append((frame, strength))
        link = inputs.get("keyframes")
    return found[::-1] if link is None else None


def check_prompt_keyframes(json_data: dict) -> dict:
    """ComfyUI's on_prompt handler: marks a base sampler whose linked keyframes cannot condition its video."""
    from ..ltx2.a2v.run_inputs import keyframe_problem

    try:
        prompt = json_data.get("prompt")
        for node in (prompt or {}).values() if isinstance(prompt, dict) else ():
            if not isinstance(node, dict) or node.get("class_type") != SAMPLER:
                continue
            inputs = node.get("inputs")
            if not isinstance(inputs, dict) or inputs.get("stage", "base") != "base":
                continue
            frames = _chain(prompt, inputs.get("keyframes"))
            if not frames:
                continue
            num_frames = _literal(inputs.get("num_frames"))
            known = isinstance(num_frames, int) and not inputs.get("frames_from_audio")
            problem = keyframe_problem(frames, num_frames if known else None)
            if problem:
                inputs["keyframes"] = REFUSED + problem
    except Exception:  # a malformed prompt: ComfyUI's own validation says what is wrong with it
        logging.debug("LTX-2: the keyframes check skipped a prompt it could not read", exc_info=True)
    return json_data


def refused(keyframes) -> str | None:
    """The message the queue-time check left on a sampler's keyframes input, if any."""
    if isinstance(keyframes, str) and keyframes.startswith(REFUSED):
        return keyframes[len(REFUSED) :]
    return None
