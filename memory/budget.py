"""One memory budget for every component the pack builds, in one process: every decision about what is resident
is taken here.

The budget knows each component it holds (bytes, device, last use). In `cold_start` a component lives only
while a phase uses it, so the pack holds nothing when idle; in `persistent` components stay between runs as long
as they fit; when they do not, the most recently used idle one is evicted first (runs repeat one order of
components, see make_room). Before building, it makes room: its own idle components first, then through
`bridge.free_external` (the host's memory manager, which unloads other nodes' models). A component that cannot
fit even alone is built block-streamed (streaming.py) when its maker says how it splits into units. The bridge
also registers each kept component with the host's manager, so the host can evict ours (nodes/patcher.py).

It keeps the run report too: per phase seconds and peak memory (meter.py). Nothing here imports ComfyUI.
"""

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..errors import LTX2InputError
from .accounting import GIB, device_total_bytes, empty_cache, module_bytes
from .faults import inject_oom
from .meter import PeakMeter
from .report import PhaseRecord, RunReport
from .streaming import split_units

# Kept free for activations, the CUDA context and whatever else shares the device.
DEFAULT_RESERVE = {"cuda": 2 * GIB, "cpu": 4 * GIB}

OOM_ADVICE = (
    "{name}: out of memory while {phase} on {device}. The LTX-2 nodes have freed everything they held. To fit: pick "
    "a smaller quantization (fp8_scaled halves the transformer), set a VRAMGuard budget_gb below the free memory (a "
    "transformer over the budget then runs a block at a time), or use residency cold_start."
)


@dataclass(frozen=True)
class Need:
    """What a component will hold once built, by streaming unit (transformer blocks, big top-level layers) and
    the rest. No units: it cannot be streamed, and `cannot_stream` says why when that matters."""

    other_bytes: int
    unit_bytes: dict[str, int] = field(default_factory=dict)
    cannot_stream: str = ""

    @property
    def total(self) -> int:
        return self.other_bytes + sum(self.unit_bytes.values())


# build(streamed units) -> (the component, one line for the run report)
Build = Callable[[list[str]], tuple[torch.nn.Module, str]]


@dataclass
class ComponentRecord:
    """A component the budget holds."""

    key: tuple
    name: str  # for people: "transformer (stage 2)"
    module: torch.nn.Module | None
    nbytes: int
    device: torch.device
    policy: str
    streamed: bool = False
    last_use: float = field(default_factory=time.monotonic)
    in_use: int = 0
    handle: object = None  # the bridge's registration

    @property
    def label(self) -> str:
        return f"{self.name}, streamed" if self.streamed else self.name


class Bridge(Protocol):
    """How the budget talks to the host's memory manager (ComfyUI's, in nodes/patcher.py)."""

    def register(self, record: ComponentRecord) -> object: ...

    def unregister(self, handle: object) -> None: ...

    def free_external(self, nbytes: int, device: torch.device) -> None: ...


class VramBudget:
    def __init__(self, bridge: Bridge | None = None):
        self.bridge = bridge
        self.budget_bytes: int | None = None  # None: the device's total less a reserve
        self.mode = "cold_start"
        self.records: OrderedDict[tuple, ComponentRecord] = OrderedDict()
        self.last_run: RunReport | None = None
        self.device: torch.device | None = None  # the device last used, for the state's budget
        self.running: tuple[str, float, PeakMeter] | None = None  # the phase running now: name, start, meter
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
        in_use = sum(r.nbytes for r in self.records.values() if r.module is not None and r.in_use and r.device == device)
        return self.budget_for(device) - in_use

    def resident_bytes(self, device: torch.device | None = None) -> int:
        return sum(r.nbytes for r in self.records.values() if r.module is not None and (device is None or r.device == device))

    def holds(self, key: tuple) -> bool:
        record = self.records.get(key)
        return record is not None and record.module is not None

    # --- components ---
    @contextlib.contextmanager
    def use(self, key: tuple, name: str, policy: str, device: torch.device, need: Callable[[], Need], build: Build):
        """Yields the component for `key`: the resident one, or one built by `build(streamed units)` after making
        room for `need()` (asked only when a build is needed: it reads file headers). A component that cannot fit
        even once every idle one is evicted keeps the units that fit resident and streams the others. In
        cold_start it is freed when the block ends; in persistent it stays while it fits."""
        with self._lock:
            self.device = device
            record = self.records.get(key)
            if record is None or record.module is None:
                record = self._build(key, name, policy, device, need(), build)
            self.records.move_to_end(key)
            record.in_use += 1
            if self.last_run is not None and record.label not in self.last_run.components:
                self.last_run.components.append(record.label)
        out_of_memory = False
        try:
            yield record.module
        except torch.OutOfMemoryError as exc:
            out_of_memory = True
            raise torch.OutOfMemoryError(OOM_ADVICE.format(name=name, phase="running", device=device)) from exc
        finally:
            with self._lock:
                record.in_use -= 1
                record.last_use = time.monotonic()
                if out_of_memory:
                    self.free_all()
                elif self.mode == "cold_start":
                    self.evict(key)
                else:
                    self.enforce(device)

    def _build(self, key: tuple, name: str, policy: str, device: torch.device, need: Need,
               build: Build) -> ComponentRecord:
        room, streamed, holds = self.room_for(device), [], need.total
        if need.total > room and need.unit_bytes:
            units = list(need.unit_bytes)
            resident, streamed = split_units(units, need.unit_bytes, need.other_bytes, room)
            holds = need.other_bytes + sum(need.unit_bytes[u] for u in resident)
        elif need.total > room and need.cannot_stream:
            raise LTX2InputError(need.cannot_stream)
        self.make_room(holds, device, keep=key)
        try:
            inject_oom(f"load:{name}")
            module, report_line = build(streamed)
        except torch.OutOfMemoryError as exc:
            self.free_all()
            raise torch.OutOfMemoryError(OOM_ADVICE.format(name=name, phase="loading", device=device)) from exc
        record = ComponentRecord(key, name, module, module_bytes(module), device, policy, streamed=bool(streamed))
        self.records[key] = record
        if self.last_run is not None:
            self.last_run.loads.append(report_line)
        if self.mode == "persistent" and self.bridge is not None:
            record.handle = self.bridge.register(record)
        return record

    def make_room(self, nbytes: int, device: torch.device, keep: tuple | None = None) -> None:
        """Evict our idle components (most recently used first) until `nbytes` more fit the budget;
        if that is not enough, ask the host's manager to free the rest."""
        budget = self.budget_for(device)
        # A run uses its components in the same order every time (text encoder, transformer, VAE, stage-2
        # transformer, decoder). When they do not all fit, the idle component used longest ago is the one the next
        # phases need soonest: least recently used first rebuilt every big component on every run. Most recently
        # used first rebuilds half as many, the fewest possible for such a cycle (tests/unit/memory).
        for key in reversed(list(self.records)):
            if self.resident_bytes(device) + nbytes <= budget:
                break
            record = self.records[key]
            if key != keep and record.in_use == 0 and record.device == device:
                self.evict(key)
        if self.bridge is not None:
            self.bridge.free_external(nbytes, device)

    def enforce(self, device: torch.device) -> None:
        self.device = device
        self.make_room(0, device)

    def evict(self, key: tuple, from_host: bool = False) -> None:
        """Drop a component. `from_host`: the host's manager is evicting it and removes its own record."""
        with self._lock:
            record = self.records.pop(key, None)
            if record is None:
                return
            if record.handle is not None and not from_host and self.bridge is not None:
                self.bridge.unregister(record.handle)
            record.module = None
            record.handle = None
        empty_cache(record.device)

    def free_all(self) -> None:
        for key in [k for k, r in self.records.items() if r.in_use == 0]:
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
    def phase(self, name: str, device: torch.device):
        """A timed part of a run (text encode, stage 1 denoise, ...), with its peak memory, for the report."""
        start = time.perf_counter()
        with PeakMeter(device) as meter:
            self.running = (name, start, meter)
            try:
                yield
            finally:
                self.running = None
        if self.last_run is not None:
            self.last_run.phases.append(PhaseRecord(name, time.perf_counter() - start, meter.peak, meter.peak_reserved))
            self.last_run.resident_after = self.resident_bytes()

    def state(self) -> dict:
        return {
            "budget_bytes": self.budget_for(self.device) if self.device is not None else self.budget_bytes,
            "mode": self.mode,
            "components": [
                {"name": r.label, "bytes": r.nbytes, "device": str(r.device), "resident": r.module is not None,
                 "policy": r.policy, "in_use": r.in_use > 0}
                for r in self.records.values()
            ],
            "resident_bytes": self.resident_bytes(),
            "last_run": self.last_run.as_dict() if self.last_run else None,
            "stage": self._running_state(),
        }

    def _running_state(self) -> dict | None:
        """The phase running now, for the page: its name, seconds so far and peak so far."""
        running = self.running
        if running is None:
            return None
        name, start, meter = running
        return {"name": name, "seconds": round(time.perf_counter() - start, 3), "peak_bytes": meter.so_far()}


# The one budget of this process, shared by every node of the pack.
BUDGET = VramBudget()
