"""LTX-2 audio-to-video for ComfyUI, quantized and within a VRAM budget.

ComfyUI imports this folder as a package and awaits `comfy_entrypoint` (its V3 node API). The nodes are imported
only then, so the rest of the pack (ltx2/, quant/, memory/) imports and tests without a ComfyUI host.
"""

import importlib.util
import logging

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: the pack's extension (its nodes, the budget bridged to ComfyUI's memory manager,
    the page's route)."""
    from .nodes.extension import comfy_entrypoint as entrypoint

    return await entrypoint()


def _has_v3_api() -> bool:
    try:
        return importlib.util.find_spec("comfy_api.latest") is not None
    except ImportError:  # no comfy_api at all
        return False


# Inside a ComfyUI too old for the V3 node API the nodes would silently be missing: say why. Outside ComfyUI
# (tests, tools) there is nothing to say.
if importlib.util.find_spec("comfy") is not None and not _has_v3_api():
    logging.warning(
        "LTX-2 A2V: this ComfyUI has no V3 node API (comfy_api.latest), so the pack's nodes are not "
        "registered. Update ComfyUI (the pack is tested with 0.3.75 and 0.33.0)."
    )
    del comfy_entrypoint
