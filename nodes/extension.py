"""Registers the pack's nodes with ComfyUI (V3 entry point), bridges the budget to ComfyUI's memory manager and
adds the page's route."""

from comfy_api.latest import ComfyExtension, io

from .decode import LTX2Decode, LTX2DecodeToVideo
from .keyframes import LTX2Keyframe
from .load import LoadLTX2Quantized
from .lora import LTX2LoRA
from .sampler import A2VSampler
from .upscale import SpatialUpscale
from .vram_guard import VRAMGuard


class LTX2Extension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            LoadLTX2Quantized,
            A2VSampler,
            SpatialUpscale,
            LTX2Decode,
            VRAMGuard,
            LTX2Keyframe,
            LTX2LoRA,
            LTX2DecodeToVideo,
        ]


async def comfy_entrypoint() -> LTX2Extension:
    from server import PromptServer

    from ..memory import streaming
    from ..memory.budget import BUDGET
    from ..memory.kept_outputs import ENCODED_PROMPTS
    from .kept_prompts import register
    from .keyframes import check_prompt_keyframes
    from .patcher import ComfyBridge, ComfyPins
    from .routes import add_routes

    if not isinstance(BUDGET.bridge, ComfyBridge):  # once per process
        BUDGET.bridge = ComfyBridge()
        streaming.HOST_PINS = ComfyPins()
        ENCODED_PROMPTS.on_keep = register
        add_routes()
        PromptServer.instance.add_on_prompt_handler(check_prompt_keyframes)
    return LTX2Extension()
