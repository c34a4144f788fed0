"""Block streaming: a transformer (or Gemma) larger than the budget runs with the units that fit resident and the
others brought in one at a time.

A unit is one block of the component's block list (a transformer block, a Gemma decoder layer), or one of the big
modules beside it (the AdaLN / timestep projections are hundreds of MB at 22B widths). `split_units` keeps as many
units resident as the room allows (less the streamed units in flight), so a transformer a little over the budget
streams only a few blocks per forward, not all 48. While the component is built, each unit's final tensors (LoRA
fused, quantized) go to a store instead of the model: pinned host memory when the compute device is a GPU, a spill
file when it is the CPU (the CPU's memory *is* the budget there, and the page cache that backs the file is not the
process's memory). The model's weight path (ltx2/components/weight_path.py) has the unit's Streamer (streamer.py) bring
its tensors in when its forward starts and send them back to the meta device when it ends, also when it raised. Only
plain-tensor policies stream (the policies' `streamable`): torchao's tensor subclasses cannot be stored as bytes.
"""

import math
import os
import tempfile
from collections import Counter
from typing import Protocol

import torch

# Top-level layers smaller than this stay resident (norms, small tables): streaming them costs more than it saves.
MIN_UNIT_BYTES = 8 * 2**20


def streaming_units(model: torch.nn.Module, blocks: str) -> list[str]:
    """Module paths streamed one at a time: every block of the list at `blocks` (a dotted path), and every large
    module beside the way down to it (a child of the root, or of a module on that way) that shares no weight with
    another (Gemma's token embedding is its output head too: streamed, it would be held twice)."""
    if not blocks:
        return []
    way = blocks.split(".")
    units = [f"{blocks}.{i}" for i in range(len(model.get_submodule(blocks)))]
    counts = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    for depth, step in enumerate(way):
        prefix = ".".join(way[:depth])
        parent = model.get_submodule(prefix)
        for name, child in parent.named_children():
            params = list(child.parameters())
            size = sum(math.prod(p.shape) * p.element_size() for p in params)
            if name != step and size >= MIN_UNIT_BYTES and all(counts[id(p)] == 1 for p in params):
                units.append(f"{prefix}.{name}" if prefix else name)
    return units


def unit_of(key: str, units: list[str]) -> str | None:
    return next((u for u in units if key.startswith(u + ".")), None)


def split_units(
    units: list[str], unit_bytes: dict[str, int], other_bytes: int, room: int, in_flight: int = 1
) -> tuple[list[str], list[str]]:
    """(resident, streamed): units kept in memory, in model order, while they fit `room` together with the layers
    that are no unit and `in_flight` streamed units (2 on a GPU, where the next unit is copied while the current
    one computes); the rest streamed. Every byte moved per forward costs host-to-device bandwidth, so the more
    that stays resident the faster the stage."""
    largest = max((unit_bytes.get(u, 0) for u in units), default=0)
    free = room - other_bytes - in_flight * largest
    resident = []
    for unit in units:
        if unit_bytes.get(unit, 0) <= free:
            resident.append(unit)
            free -= unit_bytes.get(unit, 0)
    return resident, [u for u in units if u not in resident]


def units_in_flight(device: torch.device) -> int:
    return 2 if device.type == "cuda" else 1


class HostPins(Protocol):
    """A host that rules page-locked host memory (ComfyUI: --disable-pinned-memory, its cap on Windows, and with
    Dynamic VRAM its own count of pins: nodes/patcher.py)."""

    def ask(self, nbytes: int) -> bool:
        """About to pin `nbytes`: whether that may be pinned (the host makes room among its own pins first, if it
        must). False: the bytes stay in plain host memory, copied without overlap."""

    def count(self, nbytes: int) -> None:
        """`nbytes` more (or, negative, fewer) pinned by us."""


# Set by the host bridge where the host rules pins; None: the pins are torch's alone, known to no one else.
HOST_PINS: HostPins | None = None


class PinFailed(torch.OutOfMemoryError):
    """Page-locking host memory failed: out of memory, as a device allocation would be (the budget frees what the
    pack holds and says what to change)."""


class PinnedStore:
    """Units kept in host memory (freed with the store), copied to the GPU when used: page-locked where the host
    allows it, so copies overlap the compute. Each pin is asked of, and counted by, the host that rules pins
    (HOST_PINS, when the store is made) for exactly its bytes."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self._host = HOST_PINS
        self._counted = 0
        self._pinned: dict[str, int] = {}  # the keys page-locked, and their bytes

    def put(self, key: str, tensor: torch.Tensor) -> None:
        host = tensor.detach().to("cpu")
        if self._host is None or self._host.ask(tensor.nbytes):
            try:
                host = host.pin_memory()
            except RuntimeError as exc:  # cudaHostAlloc failed: the host's memory is short
                raise PinFailed(
                    f"block streaming: page-locking {tensor.nbytes / 2**20:.1f} MiB of host memory failed after "
                    f"{self.pinned_bytes() / 2**20:.1f} MiB ({exc}). Free host memory, or start ComfyUI with "
                    "--disable-pinned-memory."
                ) from exc
            self._pinned[key] = host.nbytes
            self._count(host.nbytes)
        self.tensors[key] = host

    def get(self, key: str, device: torch.device) -> torch.Tensor:
        return self.tensors[key].to(device, non_blocking=True)

    def pop(self, key: str) -> None:
        del self.tensors[key]
        if key in self._pinned:
            self._count(-self._pinned.pop(key))

    def size(self, key: str) -> int:
        return self.tensors[key].nbytes

    def keys(self) -> list[str]:
        return list(self.tensors)

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def pinned_bytes(self) -> int:
        return sum(self._pinned.values())

    def _count(self, nbytes: int) -> None:
        if self._host is not None:
            self._host.count(nbytes)
            self._counted += nbytes

    def close(self) -> None:
        """The pins go with the store: the host's count loses them too."""
        self.tensors.clear()
        self._pinned.clear()
        self._count(-self._counted)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the host's count goes with the process
            pass


class SpillFull(OSError):
    """The spill file's disk is full (or the process may write no more): a clear message, nothing left behind."""


class SpillStore:
    """Units written to a nameless temp file, read back when used; gone with the store.

    The file has no name from the start (O_TMPFILE, or unlinked at once where the file system lacks it), so the
    kernel frees its space when the process ends however it ends: a ComfyUI killed mid-run leaves no spill of
    gigabytes behind in the temp folder, as a named file in a `TemporaryDirectory` did.
    """

    def __init__(self, folder: str | None = None):
        self.folder = folder or tempfile.gettempdir()
        self._file = tempfile.TemporaryFile(prefix="ltx2-stream-", dir=folder)
        self.index: dict[str, tuple[int, torch.dtype, tuple[int, ...], int]] = {}

    def put(self, key: str, tensor: torch.Tensor) -> None:
        tensor = tensor.detach().contiguous().cpu()
        raw = tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        offset = self._file.seek(0, os.SEEK_END)
        try:
            self._file.write(raw)
            self._file.flush()  # a full disk is found here, for this unit, not at a later read
        except OSError as exc:
            # The file goes at once (it has no name: closing it gives its room back), and the build that was
            # streaming into it fails; the budget then holds nothing of it.
            self.close()
            raise SpillFull(
                f"block streaming: the spill file in {self.folder} could not take {len(raw) / 2**20:.0f} MiB more "
                f"after {offset / 2**20:.0f} MiB ({exc.strerror or exc}). Free disk room there (TMPDIR chooses the "
                "folder), or raise budget_gb in VRAMGuard so that fewer blocks are streamed."
            ) from None
        self.index[key] = (offset, tensor.dtype, tuple(tensor.shape), len(raw))

    def get(self, key: str, device: torch.device, out: torch.Tensor | None = None) -> torch.Tensor:
        """The tensor, read into `out` (uint8, at least its bytes) when given."""
        offset, dtype, shape, nbytes = self.index[key]
        buffer = torch.empty(nbytes, dtype=torch.uint8) if out is None else out[:nbytes]
        if nbytes:
            self._file.flush()
            view = memoryview(buffer.numpy())
            read = 0
            while read < nbytes:
                read += os.preadv(self._file.fileno(), [view[read:]], offset + read)
        return buffer.view(dtype).reshape(shape).to(device)

    def pop(self, key: str) -> None:
        del self.index[key]  # its bytes stay in the file until the store goes

    def size(self, key: str) -> int:
        return self.index[key][3]

    def keys(self) -> list[str]:
        return list(self.index)

    def nbytes(self) -> int:
        return sum(entry[3] for entry in self.index.values())

    def close(self) -> None:
        self._file.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the kernel frees a nameless file anyway
            pass


def make_store(device: torch.device):
    return PinnedStore() if device.type == "cuda" else SpillStore()
