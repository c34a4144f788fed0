"""Registers the pack's nodes with ComfyUI (V3 entry point)."""

from comfy_api.latest import ComfyExtension, io

from .a2v import A2VSampler, LTX2Decode, SpatialUpscale
from .load import LoadLTX2Quantized
from .vram_guard import VRAMGuard


class LTX2Extension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [LoadLTX2Quantized, A2VSampler, SpatialUpscale, LTX2Decode, VRAMGuard]


async def comfy_entrypoint() -> LTX2Extension:
    from .comfy_bridge import install

    install()
    return LTX2Extension()
