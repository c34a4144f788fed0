"""A test-only custom node package (it adds no node) that wraps the pack's budget to raise the out-of-memory error
a GPU would: this machine has no GPU to run out of. Loaded only by the host tests that start ComfyUI with this
folder as a second custom_nodes path (tests/host/test_oom_host.py); the pack itself holds no fault switch.

The point is read from the file LTX2_INJECT_OOM_FILE names, when a component is asked of the budget:
"load:<component>" raises while that component is made (inside the budget's own handling of a failed load),
"sampling" at the first forward of a transformer in use (inside the budget's handling of a failed run)."""

import contextlib
import logging
import os
import sys

import execution
import torch

NODE_CLASS_MAPPINGS: dict = {}


def _point() -> str:
    switch = os.environ.get("LTX2_INJECT_OOM_FILE")
    return open(switch).read().strip() if switch and os.path.isfile(switch) else ""


def _oom(point: str):
    def raise_oom(*_):
        raise torch.OutOfMemoryError(f"CUDA out of memory (injected for tests at {point})")

    return raise_oom


def _wrap(budget) -> None:
    use = budget.use

    def wrapped(request):
        point = _point()
        if point == f"load:{request.label}":
            request.build = _oom(point)
        context = use(request)
        if point == "sampling" and request.label.startswith("transformer"):
            return _raising_on_forward(context, point)
        return context

    budget.use = wrapped


@contextlib.contextmanager
def _raising_on_forward(context, point: str):
    with context as module:
        handle = module.register_forward_pre_hook(_oom(point))
        try:
            yield module
        finally:
            handle.remove()
            del module


# The pack may load after this folder (ComfyUI's order of custom_nodes folders is its own): the budget is wrapped
# when the first prompt runs, once every custom node is loaded.
_execute = execution.PromptExecutor.execute


def _pack_budget():
    """The pack's budget module: ComfyUI names a custom node package by its path (tools/serve.py links the pack as
    `ltx2_a2v`)."""
    for name, module in list(sys.modules.items()):
        if name.split("/")[-1] == "ltx2_a2v.memory.budget":
            return module
    raise ImportError("ltx2_oom_switch: the LTX-2 pack (ltx2_a2v) is not loaded in this ComfyUI")


def _execute_wrapping_first(self, *args, **kwargs):
    execution.PromptExecutor.execute = _execute
    try:
        _wrap(_pack_budget().BUDGET)
    except ImportError:  # logged, not raised: an exception here would end ComfyUI's prompt worker
        logging.exception("ltx2_oom_switch: no fault can be injected")
    return _execute(self, *args, **kwargs)


execution.PromptExecutor.execute = _execute_wrapping_first
