"""Interrupt points inside a component's forward: before each of its modules runs, at most every quarter second.

The denoising loop reports each step and a load each tensor, but an encode, an upsample or a decode is one call
into ltx-core, and a stage-1 step at a large size is one call too: without these, a user's interrupt waits for
the whole call (minutes on a CPU). `check` is the pipeline's on_tensor callback, which raises when the user has
interrupted. The check is the first step of the model's weight path (ltx2/components/weight_path.py): it runs before a
streamed unit is brought in, and what a module's forward had brought in or upcast is put back as the interrupt
passes through it."""

from collections.abc import Callable

import torch

from ..components.weight_path import EVERY_SECONDS, checking

__all__ = ["EVERY_SECONDS", "interruptible"]


def interruptible(module: torch.nn.Module, check: Callable[[str], None] | None):
    """`with interruptible(module, check):` (None: nothing to check, nothing hooked)."""
    return checking(module, check)
