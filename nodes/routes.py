"""The page's view of the budget: GET /ltx2/vram, and the `ltx2.vram` websocket event sent after each node, at
each denoising step and while a component loads (web/js/ltx2_page.js draws both)."""

import torch
from aiohttp import web
from server import PromptServer

from ..memory.budget import BUDGET

PAGE_EVENT = "ltx2.vram"


def publish() -> None:
    PromptServer.instance.send_sync(PAGE_EVENT, BUDGET.state())


def add_routes() -> None:
    @PromptServer.instance.routes.get("/ltx2/vram")
    async def vram_state(request):
        state = BUDGET.state()
        if request.query.get("diagnostics"):
            # For leak hunting: every tensor object alive in the process (a full walk of the heap, so on demand).
            import gc

            # Collected first: tensors in garbage cycles not yet collected would make the count depend on when
            # the collector last ran (a spread of 45 to 97 tensors was seen between identical runs).
            gc.collect()
            state["live_tensors"] = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))
        return web.json_response(state)
