"""The page's view of the budget: GET /ltx2/vram, and the `ltx2.vram` websocket event sent after each node, at
each denoising step and while a component loads (web/js/ltx2_page.js draws both)."""

import asyncio
import gc
import itertools
import operator
import time

import torch
from aiohttp import web
from server import PromptServer

from ..memory.budget import BUDGET

PAGE_EVENT = "ltx2.vram"
# One heap walk at a time: each holds the interpreter for a while, and the route needs no login.
_walking = asyncio.Lock()
# A walk's cost is bounded per request: after a walk of t seconds the next one waits at least WALK_SPACING x t
# (and MIN_WALK_INTERVAL), so a client looping on it takes at most about a fifth of the interpreter.
WALK_SPACING = 4.0
MIN_WALK_INTERVAL = 1.0
_next_walk = [0.0]


def publish() -> None:
    PromptServer.instance.send_sync(PAGE_EVENT, BUDGET.state())


def _queue_busy() -> bool:
    """Whether a prompt runs or waits. The count is refused then: a walk competes with the run for the
    interpreter, and its result would count the run's working tensors, not leaks."""
    queue = getattr(PromptServer.instance, "prompt_queue", None)
    return queue is not None and queue.get_tasks_remaining() > 0


def _live_tensors() -> int:
    """For leak hunting: every tensor object alive in the process. Collected first: tensors in garbage cycles not
    yet collected would make the count depend on when the collector last ran (a spread of 45 to 97 tensors was
    seen between identical runs).

    The count itself is one C call with no Python code inside (the iterators are made before the heap is listed,
    and `sum` drives them), so no other thread runs while the list of every object exists: a list held across a
    thread switch holds references to objects another thread is still building (a tuple being resized), which
    made CPython fail there ("bad argument to internal function") and torch warn of storages freed while
    referenced."""
    gc.collect()
    objects = itertools.chain.from_iterable(map(operator.call, (gc.get_objects,)))
    return sum(map(issubclass, map(type, objects), itertools.repeat(torch.Tensor)))


def _refuse(status: int, why: str, retry_after: float) -> web.Response:
    return web.json_response({"error": why}, status=status, headers={"Retry-After": str(max(1, round(retry_after)))})


_estimating = asyncio.Lock()  # one estimate at a time: each reads headers and makes meta models


def add_routes() -> None:
    @PromptServer.instance.routes.get("/ltx2/estimate")
    async def resident_estimate(request):
        """The loader's resident estimate from the files' headers (nodes/load.py), off the event loop."""
        from ..errors import LTX2InputError, LTX2LoadError
        from .load import resident_estimate as estimate

        async with _estimating:
            try:
                found = await asyncio.get_running_loop().run_in_executor(None, estimate, dict(request.query))
            except (LTX2InputError, LTX2LoadError) as error:
                found = {"error": str(error)}
        return web.json_response(found)

    @PromptServer.instance.routes.get("/ltx2/vram")
    async def vram_state(request):
        state = BUDGET.state()
        if request.query.get("diagnostics") == "1":
            # Off the event loop (a full collection takes seconds with a model resident, and every other HTTP and
            # websocket client would wait), one at a time, never while a prompt runs or waits, and spaced out.
            if _queue_busy():
                return _refuse(
                    409,
                    "diagnostics: the live-tensor count walks the whole heap and is taken only "
                    "while the queue is idle; ask again when the running prompts have ended",
                    5,
                )
            wait = _next_walk[0] - time.monotonic()
            if _walking.locked() or wait > 0:
                return _refuse(
                    429, "diagnostics: a walk is running or ran just now; ask again in a moment", max(wait, 1)
                )
            async with _walking:
                start = time.monotonic()
                state["live_tensors"] = await asyncio.get_running_loop().run_in_executor(None, _live_tensors)
                took = time.monotonic() - start
                _next_walk[0] = time.monotonic() + max(MIN_WALK_INTERVAL, WALK_SPACING * took)
        return web.json_response(state)
