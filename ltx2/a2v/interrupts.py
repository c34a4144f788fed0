"""Interrupt points inside a component's forward: before each of its modules runs, at most every quarter second.

The denoising loop reports each step and a load each tensor, but an encode, an upsample or a decode is one call
into ltx-core, and a stage-1 step at a large size is one call too: without these, a user's interrupt waits for
the whole call (minutes on a CPU). `check` is the pipeline's on_tensor callback, which raises when the user has
interrupted."""

import contextlib
import time
from collections.abc import Callable

import torch

EVERY_SECONDS = 0.25


@contextlib.contextmanager
def interruptible(module: torch.nn.Module, check: Callable[[str], None] | None):
    if check is None:
        yield
        return
    last = time.monotonic()

    def before(*_) -> None:
        nonlocal last
        if time.monotonic() - last >= EVERY_SECONDS:
            last = time.monotonic()
            check("")

    handles = [m.register_forward_pre_hook(before) for m in module.modules()]
    del module  # the budget alone decides when the component goes; this frame must not hold it
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
