"""LTX-2 audio-to-video for ComfyUI, quantized and within a VRAM budget.

ComfyUI imports this folder as a package. The nodes are registered only when ComfyUI's API is importable,
so the rest of the pack (ltx2/, quant/) can be imported and tested without a ComfyUI host.
"""

WEB_DIRECTORY = "./web"

try:
    import comfy_api.latest  # noqa: F401
except ImportError:  # imported outside ComfyUI: tests, tools
    pass
else:
    from .nodes.extension import comfy_entrypoint  # noqa: F401

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
