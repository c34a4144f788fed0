"""A test-only fault switch: this machine has no GPU to run out of, so the tests make the pack raise the
out-of-memory error a GPU would, at a named point, and check what the user sees and that nothing stays held.

The switch is off unless the server was started with LTX2_INJECT_OOM_FILE set (only the tests do that); the
file names the point ("load:<component>" or "sampling"), so one server serves several cases."""

import os

import torch

_FILE = os.environ.get("LTX2_INJECT_OOM_FILE")


def inject_oom(point: str) -> None:
    if _FILE and os.path.isfile(_FILE) and open(_FILE).read().strip() == point:
        raise torch.OutOfMemoryError(f"CUDA out of memory (injected for tests at {point})")
