"""One memory budget for every component the pack builds, in one process.

The budget knows each component it holds (bytes, device, last use). In `cold_start` a component lives only
while a stage uses it, so the pack holds nothing when idle; in `persistent` components stay between runs as
long as they fit; when they do not, the most recently used idle one is evicted first (runs repeat one order
of components, see make_room). Before building, it makes room: its own idle components
first, then through `bridge.free_external` (ComfyUI's memory manager, which unloads other nodes' models). The
bridge also registers each kept component with that manager, so ComfyUI can evict ours (see
nodes/comfy_bridge.py). Nothing here imports ComfyUI.

It also keeps the run report: per stage elapsed seconds and peak memory (CUDA's peak allocated, and peak
reserved by its caching allocator, on a GPU; the process's peak resident set, for both, on a CPU).
"""

import contextlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

import torch

from .errors import LTX2InputError

GIB = 2**30
# Kept free for activations, the CUDA context and whatever else shares the device.
DEFAULT_RESERVE = {"cuda": 2 * GIB, "cpu": 4 * GIB}


OOM_ADVICE = (
    "{name}: out of memory while {phase} on {device}. The LTX-2 nodes have freed everything they held. To fit: pick "
    "a smaller quantization (fp8_scaled halves the transformer), set a VRAMGuard budget_gb below the free memory (a "
    "transformer over the budget then runs a block at a time), or use residency cold_start."
)


def inject_oom(point: str) -> None:
    """Test-only switch (no GPU here to run out of): when the file named by LTX2_INJECT_OOM_FILE holds `point`
    ("load:<component>" or "sampling"), raise the out-of-memory error a GPU would."""
    path = os.environ.get("LTX2_INJECT_OOM_FILE")
    if path and os.path.isfile(path) and open(path).read().strip() == point:
        raise torch.OutOfMemoryError(f"CUDA out of memory (injected for tests at {point})")


class Bridge(Protocol):
    """How the budget talks to the host's memory manager (ComfyUI's, in nodes/comfy_bridge.py)."""

    def register(self, entry: "Entry") -> object: ...

    def unregister(self, handle: object) -> None: ...

    def free_external(self, nbytes: int, device: torch.device) -> None: ...


@dataclass
class Entry:
    key: tuple
    name: str
    module: torch.nn.Module | None
    nbytes: int
    device: torch.device
    policy: str
    last_use: float = field(default_factory=time.monotonic)
    in_use: int = 0
    handle: object = None  # the bridge's registration


@dataclass
class StageRecord:
    name: str
    seconds: float
    peak_bytes: int
    peak_reserved_bytes: int = 0  # allocated plus the allocator's cache (CUDA); the same as peak_bytes on a CPU


@dataclass
class RunReport:
    run_id: str
    policy: str = ""
    mode: str = ""
    precision: str = ""  # the compute dtypes the run used
    stages: list[StageRecord] = field(default_factory=list)
    components: list[str] = field(default_factory=list)  # what the run used, in order ("transformer, streamed")
    loads: list[str] = field(default_factory=list)  # one line per component built: policy, layers, notes
    started: float = field(default_factory=time.monotonic)
    resident_after: int = 0

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "policy": self.policy,
            "mode": self.mode,
            "precision": self.precision,
            "elapsed_seconds": round(sum(s.seconds for s in self.stages), 3),
            "peak_bytes": max((s.peak_bytes for s in self.stages), default=0),
            "peak_reserved_bytes": max((s.peak_reserved_bytes for s in self.stages), default=0),
            "resident_bytes_after": self.resident_after,
            "components": list(self.components),
            "loads": list(self.loads),
            "stages": [{"name": s.name, "seconds": round(s.seconds, 3), "peak_bytes": s.peak_bytes,
                        "peak_reserved_bytes": s.peak_reserved_bytes} for s in self.stages],
        }

    def text(self) -> str:
        d = self.as_dict()
        lines = [f"LTX-2 run: {d['elapsed_seconds']:.1f} s, peak {d['peak_bytes'] / GIB:.2f} GiB, "
                 f"{d['resident_bytes_after'] / GIB:.2f} GiB resident after ({self.mode}, {self.policy})",
                 f"  {self.precision}"]
        lines += [f"  {s['name']:<22s} {s['seconds']:7.2f} s  peak {s['peak_bytes'] / GIB:6.2f} GiB" for s in d["stages"]]
        lines += [f"  built {line}" for line in self.loads]
        return "\n".join(lines)


def device_total_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    import psutil

    return psutil.virtual_memory().total


def process_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMeter:
    """Peak memory over a block: CUDA's own counters on a GPU (allocated, and reserved by the caching
    allocator), a sampling thread on the resident set on a CPU (the kernel's ru_maxrss cannot be reset between
    stages; a CPU has no separate reserved figure, so both peaks are the resident set's)."""

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device, self.interval, self.peak, self.peak_reserved = device, interval, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMeter":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak = process_rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, process_rss())

    def so_far(self) -> int:
        """The peak up to now, while the block runs."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        return self.peak

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.peak_reserved = torch.cuda.max_memory_reserved(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = self.peak_reserved = max(self.peak, process_rss())


class VramBudget:
    def __init__(self, bridge: Bridge | None = None):
        self.bridge = bridge
        self.budget_bytes: int | None = None  # None: the device's total less a reserve
        self.mode = "cold_start"
        self.entries: OrderedDict[tuple, Entry] = OrderedDict()
        self.last_run: RunReport | None = None
        self.device: torch.device | None = None  # the device last used, for the state's budget
        self.running: tuple[str, float, PeakMeter] | None = None  # the stage running now: name, start, meter
        self._lock = threading.RLock()

    # --- budget ---
    def set_budget_gb(self, gb: float) -> None:
        if gb < 0:
            raise LTX2InputError(f"budget_gb: {gb} is negative. Give 0 for the device's memory less a reserve, or a size in GB.")
        self.budget_bytes = None if gb == 0 else int(gb * GIB)

    def budget_for(self, device: torch.device) -> int:
        if self.budget_bytes is not None:
            return self.budget_bytes
        return device_total_bytes(device) - DEFAULT_RESERVE.get(device.type, 2 * GIB)

    def room_for(self, device: torch.device) -> int:
        """Bytes a new component may take once every idle component of ours is evicted."""
        in_use = sum(e.nbytes for e in self.entries.values() if e.module is not None and e.in_use and e.device == device)
        return self.budget_for(device) - in_use

    def resident_bytes(self, device: torch.device | None = None) -> int:
        return sum(e.nbytes for e in self.entries.values() if e.module is not None and (device is None or e.device == device))

    # --- components ---
    @contextlib.contextmanager
    def use(self, key: tuple, name: str, policy: str, device: torch.device, estimate: int, build):
        """Yields the component for `key`, built by `build()` if not resident. In cold_start it is freed when
        the block ends; in persistent it stays while it fits."""
        with self._lock:
            self.device = device
            entry = self.entries.get(key)
            if entry is None or entry.module is None:
                self.make_room(estimate, device, keep=key)
                try:
                    inject_oom(f"load:{name}")
                    module = build()
                except torch.OutOfMemoryError as exc:
                    self.free_all()
                    raise torch.OutOfMemoryError(OOM_ADVICE.format(name=name, phase="loading", device=device)) from exc
                entry = Entry(key, name, module, _module_bytes(module), device, policy)
                self.entries[key] = entry
                if self.mode == "persistent" and self.bridge is not None:
                    entry.handle = self.bridge.register(entry)
            self.entries.move_to_end(key)
            entry.in_use += 1
            if self.last_run is not None and name not in self.last_run.components:
                self.last_run.components.append(name)
        out_of_memory = False
        try:
            yield entry.module
        except torch.OutOfMemoryError as exc:
            out_of_memory = True
            raise torch.OutOfMemoryError(OOM_ADVICE.format(name=name, phase="running", device=device)) from exc
        finally:
            with self._lock:
                entry.in_use -= 1
                entry.last_use = time.monotonic()
                if out_of_memory:
                    self.free_all()
                elif self.mode == "cold_start":
                    self.evict(key)
                else:
                    self.enforce(device)

    def make_room(self, nbytes: int, device: torch.device, keep: tuple | None = None) -> None:
        """Evict our idle components (most recently used first) until `nbytes` more fit the budget;
        if that is not enough, ask the host's manager to free the rest."""
        budget = self.budget_for(device)
        # A run uses its components in the same order every time (text encoder, transformer, VAE, stage-2
        # transformer, decoder). When they do not all fit, the idle component used longest ago is the one the next
        # stages need soonest: least recently used first rebuilt every big component on every run. Most recently
        # used first rebuilds half as many, the fewest possible for such a cycle (tests/test_budget.py).
        for key in reversed(list(self.entries)):
            if self.resident_bytes(device) + nbytes <= budget:
                break
            entry = self.entries[key]
            if key != keep and entry.in_use == 0 and entry.device == device:
                self.evict(key)
        if self.bridge is not None:
            self.bridge.free_external(nbytes, device)

    def enforce(self, device: torch.device) -> None:
        self.device = device
        self.make_room(0, device)

    def evict(self, key: tuple, from_host: bool = False) -> None:
        """Drop a component. `from_host`: the host's manager is evicting it and removes its own record."""
        with self._lock:
            entry = self.entries.pop(key, None)
            if entry is None:
                return
            if entry.handle is not None and not from_host and self.bridge is not None:
                self.bridge.unregister(entry.handle)
            entry.module = None
            entry.handle = None
        _empty_cache(entry.device)

    def free_all(self) -> None:
        for key in [k for k, e in self.entries.items() if e.in_use == 0]:
            self.evict(key)

    # --- report ---
    def begin_run(self, run_id: str, policy: str, mode: str, precision: str = "") -> RunReport:
        if self.last_run is None or self.last_run.run_id != run_id:
            self.last_run = RunReport(run_id)
        self.last_run.policy, self.last_run.mode, self.last_run.precision = policy, mode, precision
        self.mode = mode
        if mode == "cold_start":
            self.free_all()  # components kept by an earlier persistent run
        return self.last_run

    @contextlib.contextmanager
    def stage(self, name: str, device: torch.device):
        start = time.perf_counter()
        with PeakMeter(device) as meter:
            self.running = (name, start, meter)
            try:
                yield
            finally:
                self.running = None
        if self.last_run is not None:
            self.last_run.stages.append(StageRecord(name, time.perf_counter() - start, meter.peak, meter.peak_reserved))
            self.last_run.resident_after = self.resident_bytes()

    def state(self) -> dict:
        return {
            "budget_bytes": self.budget_for(self.device) if self.device is not None else self.budget_bytes,
            "mode": self.mode,
            "components": [
                {"name": e.name, "bytes": e.nbytes, "device": str(e.device), "resident": e.module is not None,
                 "policy": e.policy, "in_use": e.in_use > 0}
                for e in self.entries.values()
            ],
            "resident_bytes": self.resident_bytes(),
            "last_run": self.last_run.as_dict() if self.last_run else None,
            "stage": self._running_state(),
        }

    def _running_state(self) -> dict | None:
        """The stage running now, for the page: its name, seconds so far and peak so far."""
        running = self.running
        if running is None:
            return None
        name, start, meter = running
        return {"name": name, "seconds": round(time.perf_counter() - start, 3), "peak_bytes": meter.so_far()}


def _module_bytes(module: torch.nn.Module) -> int:
    from .streaming_loader import tensors_bytes

    return tensors_bytes((*module.parameters(), *module.buffers()))


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        from .streaming_loader import _give_back_freed_memory

        _give_back_freed_memory()


# The one budget of this process, shared by every node of the pack.
BUDGET = VramBudget()
