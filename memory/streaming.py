"""Block streaming: a transformer larger than the budget runs with the units that fit resident and the others
brought in one at a time.

A unit is one transformer block, or one of the big top-level layers (the AdaLN / timestep projections are
hundreds of MB at 22B widths). `split_units` keeps as many units resident as the room allows (less one
streamed unit in flight), so a transformer a little over the budget streams only a few blocks per forward, not
all 48. While the component is built, each unit's final tensors (LoRA fused, quantized) go to a store instead of
the model: pinned host memory when the compute device is a GPU, a spill file when it is the CPU (the CPU's
memory *is* the budget there, and the page cache that backs the file is not the process's memory). A forward
pre-hook brings the unit's tensors in, a forward hook sends them back to the meta device. Only plain-tensor
policies stream (the policies' `streamable`): torchao's tensor subclasses cannot be stored as bytes.
"""

import math
import os
import tempfile
from typing import Protocol

import torch

# Top-level layers smaller than this stay resident (norms, small tables): streaming them costs more than it saves.
MIN_UNIT_BYTES = 8 * 2**20


def streaming_units(model: torch.nn.Module) -> list[str]:
    """Module paths streamed one at a time: every transformer block and every large top-level child."""
    units = [f"transformer_blocks.{i}" for i in range(len(getattr(model, "transformer_blocks", [])))]
    for name, child in model.named_children():
        if name == "transformer_blocks":
            continue
        size = sum(math.prod(p.shape) * p.element_size() for p in child.parameters())
        if size >= MIN_UNIT_BYTES:
            units.append(name)
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
    """A host that keeps its own count of pinned host memory (ComfyUI with Dynamic VRAM: nodes/patcher.py)."""

    def ask(self, nbytes: int) -> None:
        """About to pin `nbytes`: the host makes room among its own pins first, if it must."""

    def count(self, nbytes: int) -> None:
        """`nbytes` more (or, negative, fewer) pinned by us."""


# Set by the host bridge where the host counts pins; None: the pins are torch's alone, known to no one else.
HOST_PINS: HostPins | None = None


class PinnedStore:
    """Units kept in page-locked host memory (freed with the store), copied to the GPU when used. Each pin is asked
    of, and counted by, the host that counts pins (HOST_PINS, when the store is made) for exactly its bytes."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self._host = HOST_PINS
        self._counted = 0

    def put(self, key: str, tensor: torch.Tensor) -> None:
        if self._host is not None:
            self._host.ask(tensor.nbytes)
        self.tensors[key] = tensor.detach().to("cpu").pin_memory()
        self._count(self.tensors[key].nbytes)

    def get(self, key: str, device: torch.device) -> torch.Tensor:
        return self.tensors[key].to(device, non_blocking=True)

    def pop(self, key: str) -> None:
        self._count(-self.tensors.pop(key).nbytes)

    def size(self, key: str) -> int:
        return self.tensors[key].nbytes

    def keys(self) -> list[str]:
        return list(self.tensors)

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def _count(self, nbytes: int) -> None:
        if self._host is not None:
            self._host.count(nbytes)
            self._counted += nbytes

    def close(self) -> None:
        """The pins go with the store: the host's count loses them too."""
        self.tensors.clear()
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


class Streamer:
    """The streamed units of one model: kept in a store, brought onto the device around their own forward, and
    moved between the device and the store as a whole at any time between forwards (the host's memory manager
    shrinks or grows the model that way: nodes/patcher.py).

    On a GPU the next streamed unit, in the order the forward calls them (learned on the first pass), is copied
    on a side stream while the current one computes; the compute stream waits for its event before using it. On
    a CPU there is nothing to overlap with: a unit is read when its forward starts, into one buffer reused by every
    unit (`_arena`)."""

    def __init__(self, device: torch.device, units: list[str], streamed: list[str] = ()):
        self.device, self.units = device, units
        self.model: torch.nn.Module | None = None  # set by attach()
        self._store = None  # made when a first unit is kept out: a transformer that never streams has none
        self.streamed = set(streamed)
        self._order: list[str] = []  # units as the forward calls them
        self._ready: dict[str, tuple[dict[str, torch.Tensor], object]] = {}
        self._unit_keys: dict[str, list[str]] = {}  # the store's keys of each streamed unit
        self._copies = torch.cuda.Stream(device) if device.type == "cuda" else None
        # On a CPU, the buffer every streamed unit is read into for its forward, in turn. A new tensor per read is a
        # fresh mapping whose pages fault in as the read fills them, and freeing it unmaps them again: 0.65 s of a
        # 2.2 s forward of the wide transformer streaming 1.36 GiB, against 0.13 s read into one reused buffer
        # (2-core EPYC, fp8_scaled). It is the one unit in flight the budget keeps room for (units_in_flight).
        self._arena: torch.Tensor | None = None

    def attach(self, model: torch.nn.Module) -> None:
        """Hooks on every unit of the built model, after the compute-dtype hooks (ltx2/components/precision.py): a unit
        is brought in before those upcast it, and sent back after they put the stored tensors back."""
        self.model = model
        for unit in self.units:
            module = model.get_submodule(unit)
            module.register_forward_pre_hook(lambda mod, _args, unit=unit: self._bring_in(unit, mod), prepend=True)
            module.register_forward_hook(lambda mod, _args, out, unit=unit: self._send_back(unit, mod, out))

    @property
    def store(self):
        if self._store is None:
            self._store = make_store(self.device)
        return self._store

    def keep_out(self, key: str, tensor: torch.Tensor) -> bool:
        """While the model is built: takes a streamed unit's tensor into the store instead of the model."""
        if unit_of(key, sorted(self.streamed)) is None:
            return False
        self.store.put(key, tensor)
        return True

    def _keys(self, unit: str) -> list[str]:
        if unit not in self._unit_keys:
            self._unit_keys[unit] = [k for k in self.store.keys() if k.startswith(unit + ".")]
        return self._unit_keys[unit]

    def _read_into_arena(self, unit: str) -> tuple[dict[str, torch.Tensor], None]:
        """A streamed unit's tensors for its forward on a CPU, as views of the reused buffer (64-byte aligned)."""
        spans = [(k, (self.store.size(k) + 63) // 64 * 64) for k in self._keys(unit)]
        total = sum(span for _, span in spans)
        if self._arena is None or self._arena.numel() < total:
            self._arena = None  # the smaller one goes first: never two at once
            self._arena = torch.empty(total, dtype=torch.uint8)
        tensors, start = {}, 0
        for key, span in spans:
            tensors[key] = self.store.get(key, self.device, out=self._arena[start : start + span])
            start += span
        return tensors, None

    def _fetch(self, unit: str):
        if self._copies is None:
            return {k: self.store.get(k, self.device) for k in self._keys(unit)}, None
        with torch.cuda.stream(self._copies):
            tensors = {k: self.store.get(k, self.device) for k in self._keys(unit)}
            done = torch.cuda.Event()
            done.record(self._copies)
        return tensors, done

    def _next_streamed(self, unit: str) -> str | None:
        order = self._order if len(self._order) == len(self.units) else self.units
        if unit not in order:
            return None
        start = order.index(unit)
        return next((u for u in order[start + 1 :] + order[:start] if u in self.streamed), None)

    def _bring_in(self, unit: str, module: torch.nn.Module) -> None:
        if unit not in self._order:
            self._order.append(unit)
        if unit not in self.streamed:
            return
        fetch = self._read_into_arena if self._copies is None else self._fetch
        tensors, done = self._ready.pop(unit, None) or fetch(unit)
        if done is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(done)
            for tensor in tensors.values():
                tensor.record_stream(compute)  # made on the copy stream, freed after the compute stream used it
        prefix = unit + "."
        module.load_state_dict({k[len(prefix) :]: t for k, t in tensors.items()}, strict=False, assign=True)
        following = self._next_streamed(unit) if self._copies is not None else None
        if following is not None and following != unit and following not in self._ready:
            self._ready[following] = self._fetch(following)

    def _send_back(self, unit: str, module: torch.nn.Module, output=None):
        if unit in self.streamed:
            _to_meta(module)
            if self._arena is not None and _holds(output, self._arena):
                return _cloned(output)  # an output that is one of its weights must outlive the buffer's next read
        return None

    def stream_out(self, unit: str) -> int:
        """Moves a resident unit into the store; the bytes it freed on the device."""
        if unit in self.streamed:
            return 0
        module, freed = self.model.get_submodule(unit), 0
        for name, tensor in module.state_dict().items():
            self.store.put(f"{unit}.{name}", tensor)
            freed += tensor.nbytes
        _to_meta(module)
        self.streamed.add(unit)
        self._unit_keys.pop(unit, None)
        return freed

    def bring_back(self, unit: str) -> int:
        """Makes a streamed unit resident again; the bytes it takes on the device."""
        if unit not in self.streamed:
            return 0
        tensors, done = self._ready.pop(unit, None) or self._fetch(unit)
        if done is not None:
            done.synchronize()
        prefix = unit + "."
        self.model.get_submodule(unit).load_state_dict(
            {k[len(prefix) :]: t for k, t in tensors.items()}, strict=False, assign=True
        )
        for key in tensors:
            self.store.pop(key)
        self.streamed.discard(unit)
        self._unit_keys.pop(unit, None)
        return sum(t.nbytes for t in tensors.values())

    def pinned_bytes(self) -> int:
        """Page-locked host memory its store holds (a spill file on a CPU pins nothing)."""
        return self._store.nbytes() if isinstance(self._store, PinnedStore) else 0

    def unit_bytes(self, unit: str) -> int:
        if unit in self.streamed:
            return sum(self.store.size(k) for k in self._keys(unit))
        return sum(t.nbytes for t in self.model.get_submodule(unit).state_dict().values())


def _holds(value, buffer: torch.Tensor) -> bool:
    if isinstance(value, torch.Tensor):
        return value.device.type == "cpu" and value.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
    return isinstance(value, (tuple, list)) and any(_holds(v, buffer) for v in value)


def _cloned(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    return type(value)(_cloned(v) for v in value) if isinstance(value, (tuple, list)) else value


def _to_meta(module: torch.nn.Module) -> None:
    for sub in module.modules():
        for name, param in list(sub.named_parameters(recurse=False)):
            sub.register_parameter(
                name, torch.nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=False)
            )
