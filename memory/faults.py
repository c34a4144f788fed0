"""A fault switch for the host tests: this machine has no GPU to run out of, so the tests make the pack raise the
out-of-memory error a GPU would, at a named point, and check what the user sees and that nothing stays held.

The switch is off unless the server runs with LTX2_INJECT_OOM_FILE set (only the tests do that); the file names
the point ("load:<component>" or "sampling"), so one server serves several cases. Both are read when a point is
passed, not at import: what the process's environment says now is what counts."""

import os

import torch


def inject_oom(point: str) -> None:
    switch = os.environ.get("LTX2_INJECT_OOM_FILE")
    if switch and os.path.isfile(switch) and open(switch).read().strip() == point:
        raise torch.OutOfMemoryError(f"CUDA out of memory (injected for tests at {point})")
