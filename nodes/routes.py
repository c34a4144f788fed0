"""The page's view of the budget: GET /ltx2/vram, and the `ltx2.vram` websocket event sent after each node, at
each denoising step and while a component loads (web/js/ltx2_page.js draws both)."""

import asyncio
import gc

import torch
from aiohttp import web
from server import PromptServer

from ..memory.budget import BUDGET

PAGE_EVENT = "ltx2.vram"
# One heap walk at a time: each holds the interpreter for a while, and the route needs no login.
_walking = asyncio.Lock()


def publish() -> None:
    PromptServer.instance.send_sync(PAGE_EVENT, BUDGET.state())


def _live_tensors() -> int:
    """For leak hunting: every tensor object alive in the process. Collected first: tensors in garbage cycles not
    yet collected would make the count depend on when the collector last ran (a spread of 45 to 97 tensors was
    seen between identical runs)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def add_routes() -> None:
    @PromptServer.instance.routes.get("/ltx2/vram")
    async def vram_state(request):
        state = BUDGET.state()
        if request.query.get("diagnostics") == "1":
            # Off the event loop (a full walk of the heap takes seconds with a model resident, and every other
            # HTTP and websocket client would wait), and one at a time: a second request meanwhile is told so.
            if _walking.locked():
                return web.json_response({"error": "a diagnostics walk is running; ask again when it ends"},
                                         status=429)
            async with _walking:
                state["live_tensors"] = await asyncio.get_running_loop().run_in_executor(None, _live_tensors)
        return web.json_response(state)
