"""Bytes read from model files, counted where they are read (ltx2/files/safetensors_file.iter_tensors), so that the run
report can say what each component's build read: the figure that dominates a cold run (a 43 GB checkpoint, a
24 GB text encoder), and 0 for a component served as kept.

Per thread: a build runs in the thread that asked for it, and another thread reading a header meanwhile (the page,
a queue-time check) does not count in it."""

import threading

_counts = threading.local()


def count_read(nbytes: int) -> None:
    _counts.total = bytes_read() + nbytes


def bytes_read() -> int:
    """Bytes read by this thread so far: take the difference over a build."""
    return getattr(_counts, "total", 0)
