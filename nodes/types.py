"""Socket types the pack's nodes pass between each other, and the check that a prompt links them."""

from comfy_api.latest import io

from ..errors import LTX2InputError
from ..ltx2.files.safetensors_file import shown

LTX2ModelType = io.Custom("LTX2_MODEL")
LTX2LatentType = io.Custom("LTX2_LATENT")
LTX2KeyframesType = io.Custom("LTX2_KEYFRAMES")

# Where each socket's value comes from, for the message when a prompt gives a value instead of a link.
SOURCES = {
    "model": "the model output of Prepare LTX-2 (quantized)",
    "latent": "the latent output of LTX-2 A2V Sampler or LTX-2 Spatial Upscale",
    "image": "an IMAGE output (LoadImage)",
    "audio": "an AUDIO output (LoadAudio)",
    "keyframes": "the keyframes output of LTX-2 Keyframe",
}
UNCONNECTED = object()  # an optional socket's default in validate_inputs: nothing connected


def check_links(**values) -> str | None:
    """At queue time ComfyUI hands validate_inputs None for a linked input (its value does not exist yet), and the
    value itself when an API prompt gives one where a link belongs (`"model": "x"`): ComfyUI checks neither,
    and the node would fail on it with an AttributeError. A message naming the first such input, or None."""
    for name, value in values.items():
        if value is not None and value is not UNCONNECTED:
            return (
                f"{name}: the prompt gives a value ({shown(value, 40)}) where a link belongs. Connect {SOURCES[name]}."
            )
    return None


def expect(value, kind: type, name: str):
    """`value` if it is a `kind`, else the same error at run time (a node fed by another pack's node, say)."""
    if not isinstance(value, kind):
        raise LTX2InputError(
            f"{name}: got a {type(value).__name__}, not what this input takes. Connect {SOURCES[name]}."
        )
    return value
