"""Small outputs kept between runs so that repeating an input costs nothing: an encoded prompt is a few MiB (12 MiB
for LTX-2.3's 1,024 tokens), the text encoder that makes it 24 GB to read.

A bounded cache, apart from the budget's components: those are freed after each `cold_start` run, these stay (an
avatar service repeats its prompt every request). Kept on the CPU, never on the accelerator; counted in bytes,
at most `max_entries` entries and `max_bytes` bytes (the least recently used goes first). An entry whose files
changed (`alive()` is False) is dropped, never served. Emptied by VRAMGuard's free actions and by the host's
"unload models" (the host is told of the cache through `on_keep`, nodes/kept_prompts.py).
"""

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .accounting import storage_bytes


@dataclass
class KeptEntry:
    value: object
    tensors: tuple[torch.Tensor, ...]  # what `value` holds, for its size
    nbytes: int
    alive: Callable[[], bool] | None = None  # False once the files it came from changed or vanished
    hits: int = 0


class KeptOutputs:
    def __init__(self, name: str, max_entries: int, max_bytes: int):
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.on_keep: Callable[[KeptOutputs, str], None] | None = None  # (cache, device): the host is told
        self._entries: OrderedDict[tuple, KeptEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple):
        """The value kept for `key`, or None. Entries whose files changed are dropped first (a stat per file)."""
        with self._lock:
            for dead in [k for k, e in self._entries.items() if e.alive is not None and not e.alive()]:
                del self._entries[dead]
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            entry.hits += 1
            return entry.value

    def put(
        self,
        key: tuple,
        value: object,
        tensors: tuple[torch.Tensor, ...],
        device: torch.device | str = "cpu",
        alive: Callable[[], bool] | None = None,
    ) -> bool:
        """Keeps `value` (its `tensors` already on the CPU) unless it alone is over the bound; False then.
        `device` is the one the run used: the host's "unload models" for it empties the cache."""
        if any(t.device.type != "cpu" for t in tensors):
            raise ValueError(f"{self.name}: kept outputs live on the CPU")
        nbytes = sum(storage_bytes(t) for t in tensors)
        if nbytes > self.max_bytes:
            return False
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = KeptEntry(value, tensors, nbytes, alive)
            while len(self._entries) > self.max_entries or self.nbytes() > self.max_bytes:
                self._entries.popitem(last=False)
        if self.on_keep is not None:
            self.on_keep(self, str(device))
        return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def state(self) -> dict:
        """For the page and GET /ltx2/vram."""
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self.nbytes(),
                "max_entries": self.max_entries,
                "max_bytes": self.max_bytes,
                "hits": sum(e.hits for e in self._entries.values()),
            }


# Encoded prompts (text encoder + embeddings processor output, ltx2/a2v/prompt_cache.py): 8 of LTX-2.3's 12 MiB.
ENCODED_PROMPTS = KeptOutputs("encoded prompts", max_entries=8, max_bytes=128 * 2**20)
