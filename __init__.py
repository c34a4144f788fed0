"""LTX-2 audio-to-video for ComfyUI, quantized and within a VRAM budget.

ComfyUI imports this folder as a package. The nodes are registered only when ComfyUI's API is importable,
so the rest of the pack (ltx2/, quant/) can be imported and tested without a ComfyUI host.
"""

WEB_DIRECTORY = "./web"

try:
    import comfy_api.latest  # noqa: F401
except ImportError:
    import importlib.util
    import logging

    # Inside a ComfyUI too old for the V3 node API the nodes would silently be missing: say why. Outside
    # ComfyUI (tests, tools) there is nothing to say.
    if importlib.util.find_spec("comfy") is not None:
        logging.warning("LTX-2 A2V: this ComfyUI has no V3 node API (comfy_api.latest), so the pack's nodes are not "
                        "registered. Update ComfyUI (the pack is tested with 0.3.75).")
else:
    from .nodes.extension import comfy_entrypoint  # noqa: F401

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
