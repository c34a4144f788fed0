"""The device-memory ledger: bytes of tensors live on the compute device, and their peak since a reset, measured
the same way on every device.

On a GPU that is CUDA's caching allocator (memory_allocated, and memory_reserved with its cache). A CPU has no
such counter, and the process's resident set is not one: it holds the host program, the page cache's mapped
files and the C allocator's slack, and cannot show which tensors were alive together. So on a CPU, while the pack
runs, a dispatch mode sees the output of every torch operation and counts each new storage on the CPU until the
storage is freed (a weak reference's callback): what `memory_allocated` would count on a GPU, for the tensors the
pack makes (weights, activations, buffers). The cost is one Python call per operation, about 0.7 s per run of the
tiny bundle's two-stage workflow.
"""

import contextlib
import threading
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _storages(tensor: torch.Tensor):
    """The storages behind a tensor: its own, or those of a tensor subclass's inner tensors (torchao's)."""
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        for name in names:
            inner = getattr(tensor, name)
            if isinstance(inner, torch.Tensor):
                yield from _storages(inner)
        return
    if tensor.device.type == "cpu" and not tensor.is_meta:
        yield tensor.untyped_storage()


class _Tracker(TorchDispatchMode):
    def __init__(self, ledger: "CpuLedger"):
        super().__init__()
        self.ledger = ledger

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.ledger.add(value)
        return out


class CpuLedger:
    def __init__(self):
        self._live: dict[int, weakref.ref] = {}
        self.allocated = 0
        self.peak = 0
        # Reentrant: making the weak reference in `add` may start Python's cycle collector, which frees other
        # storages and runs their callbacks (`_freed`) on this thread while `add` holds the lock. A plain lock
        # deadlocked there: the suite hung in a two-stage run until CI's time ran out.
        self._lock = threading.RLock()
        self._local = threading.local()

    def add(self, tensor: torch.Tensor) -> None:
        for storage in _storages(tensor):
            key = storage._cdata
            if key in self._live:
                continue
            nbytes = storage.nbytes()
            with self._lock:
                self._live[key] = weakref.ref(storage, lambda _ref, key=key, nbytes=nbytes: self._freed(key, nbytes))
                self.allocated += nbytes
                self.peak = max(self.peak, self.allocated)

    def _freed(self, key: int, nbytes: int) -> None:
        with self._lock:
            if self._live.pop(key, None) is not None:
                self.allocated -= nbytes

    @contextlib.contextmanager
    def tracking(self):
        """Count what is made inside the block (on this thread); nested blocks share the outer one's mode."""
        if getattr(self._local, "active", False):
            yield
            return
        self._local.active = True
        try:
            with _Tracker(self):
                yield
        finally:
            self._local.active = False


CPU_LEDGER = CpuLedger()


def allocated_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return CPU_LEDGER.allocated


def reserved_bytes(device: torch.device) -> int:
    """What the allocator holds from the device, freed or not (CUDA's cache); on a CPU the same as allocated."""
    if device.type == "cuda":
        return torch.cuda.memory_reserved(device)
    return CPU_LEDGER.allocated


class PhaseMeter:
    """The ledger's peak over one phase of a run (allocated, and reserved on a GPU), from the bytes already live
    when it starts."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = self.peak_reserved = 0
        self.start = 0  # bytes live when the stage began (resident components, the run's latents)
        self._tracking = contextlib.nullcontext()

    def __enter__(self) -> "PhaseMeter":
        self.start = allocated_bytes(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            CPU_LEDGER.peak = CPU_LEDGER.allocated
            self._tracking = CPU_LEDGER.tracking()
            self._tracking.__enter__()
        return self

    def so_far(self) -> int:
        """The peak up to now, while the stage runs."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        return CPU_LEDGER.peak

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            # Kernels run asynchronously: the stage ends (and its seconds are taken) when the GPU is done.
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.peak_reserved = torch.cuda.max_memory_reserved(self.device)
        else:
            self._tracking.__exit__(*exc)
            self.peak = self.peak_reserved = CPU_LEDGER.peak


def device_figures(device: torch.device) -> dict:
    """What the device holds now, for the state the page and the benchmarks read: the ledger's allocated bytes,
    the allocator's reserved bytes (CUDA's cache, on top of what is allocated), and page-locked host memory held
    by torch's caching host allocator (block streaming's stores on a GPU)."""
    figures = {
        "allocated_bytes": allocated_bytes(device),
        "reserved_bytes": reserved_bytes(device),
        "pinned_host_bytes": 0,
    }
    if device.type == "cuda":
        stats = torch.cuda.host_memory_stats()
        figures["pinned_host_bytes"] = int(stats.get("reserved_bytes.current", stats.get("allocated_bytes.current", 0)))
    return figures
