"""One memory budget for every component the pack builds, in one process: every decision about what is resident
is taken here.

The budget knows each component it holds (bytes on the device, bytes kept out by block streaming, device). A
stage asks for one with a request (records.py's ComponentRequest: what it is, what it needs, how to build it). In
`cold_start` a component lives only while a stage uses it (or, asked with `hand_over`, until the next stage that
uses it: stage 1's transformer serves stage 2), so the pack holds nothing when idle; in
`persistent` components stay between runs as long as they fit; when they do not, the most recently used idle one
is evicted first (runs repeat one order of components, see make_room). The budget is at most what the device can
give now (room.py: its free memory plus what this process holds, less the host's reserve). A stage's working memory
is part of the budget: before building or using a component, room is made for the weights plus what the stage will
need beside them (its activations and upcast copy, ltx2/components/activations.py; the units in flight where it streams;
a stated margin for workspaces; at least what the host keeps free beside any model), first from our own idle
components, then through the host's memory manager (`Bridge.make_room`). A component that cannot fit even alone is
built block-streamed (streaming.py) when its request says how it splits into units, and refused, before a byte is
read, when it cannot stream or cannot fit the device even so.

Every component in use, and every kept one, is known to the host's manager (`Bridge.load`, ComfyUI's
load_models_gpu in nodes/patcher.py): when another model needs room the host can shrink a streamable component a
unit at a time instead of dropping it, grow it back no further than the running stage's room, or unload it
(host_side.py). It keeps the run report too (report.py). Nothing here imports ComfyUI.
"""

import contextlib
import threading
from collections import OrderedDict

import torch

from ..errors import LTX2InputError
from .accounting import GIB, collect_if_alive, empty_cache, module_bytes, watch
from .host_side import HostSide
from .ledger import PhaseMeter
from .reads import bytes_read
from .records import Bridge, ComponentRecord, ComponentRequest, Need
from .report import RunKeeping, RunReport
from .room import DEFAULT_RESERVE, device_capacity, workspace_margin
from .streaming import PinFailed, split_units, units_in_flight

OOM_ADVICE = (
    "{name}: out of memory while {doing} on {device}. The LTX-2 nodes have freed everything they held. To fit: pick "
    "a smaller quantization (fp8_scaled halves the transformer), set a VRAMGuard budget_gb below the free memory (a "
    "transformer over the budget then runs a block at a time), or use residency cold_start."
)


class VramBudget(HostSide, RunKeeping):
    def __init__(self, bridge: Bridge | None = None):
        self.bridge = bridge
        self.budget_bytes: int | None = None  # None: what the device can give (capacity)
        self.prompt_id: str | None = None  # the prompt whose budget this is (begin_prompt)
        self.mode = "cold_start"
        self.records: OrderedDict[tuple, ComponentRecord] = OrderedDict()
        self.last_run: RunReport | None = None
        self.device: torch.device | None = None  # the device last used, for the state's budget
        self.running: tuple[str, float, PhaseMeter] | None = None  # the phase running now: name, start, meter
        self._phase_components: list[dict] = []  # what the running phase used
        self._unloaded: list[ComponentRecord] = []  # dropped by the host: forgotten the next time the budget acts
        self._lock = threading.RLock()

    # --- budget ---
    def set_budget_gb(self, gb: float) -> None:
        if not 0 <= gb < float("inf"):
            raise LTX2InputError(
                f"budget_gb: {gb} is not a size. Give 0 for the device's memory less a reserve, or a size in GB."
            )
        self.budget_bytes = None if gb == 0 else int(gb * GIB)

    def begin_prompt(self, prompt_id: str, budget_gb: float) -> None:
        """The first call for a prompt sets its budget (0: the default); later calls for it change nothing. A
        budget never outlives its prompt, so one client's VRAMGuard cannot govern another's runs."""
        with self._lock:
            if prompt_id != self.prompt_id:
                self.prompt_id = prompt_id
                self.set_budget_gb(budget_gb)
                # What the last prompt kept for a stage it never ran (a graph ending at the upscale, say).
                self.release_handed_over()

    def budget_for(self, device: torch.device) -> int:
        """The budget on `device`: `budget_gb`, or what the device can give, whichever is less."""
        capacity = self.capacity(device)
        return capacity if self.budget_bytes is None else min(self.budget_bytes, capacity)

    def reserve(self, device: torch.device) -> int:
        """What is kept free on the device for the host and everything else."""
        if self.bridge is not None and device.type != "cpu":
            return self.bridge.reserve_bytes(device)
        return DEFAULT_RESERVE.get(device.type, GIB)

    def capacity(self, device: torch.device) -> int:
        """What the device can give the pack at most (room.py): free now plus what this process holds, less the
        host's reserve."""
        return device_capacity(device, self.reserve(device))

    def phase_working(self, device: torch.device, extra: int) -> int:
        """What a phase needs on `device` beside its components' weights: `extra` (its activations and upcast copy)
        and the workspace margin, and at least what the host keeps free beside any model it loads."""
        floor = self.bridge.working_floor(device) if self.bridge is not None and device.type != "cpu" else 0
        return max(extra + workspace_margin(device), floor)

    def working_in_use(self, device: torch.device, phase_working: int = 0) -> int:
        """What the components in use on `device` need beside their weights: the largest phase working among them
        (one phase runs at a time: its components share its activations) and each one's units in flight;
        `phase_working` for a use about to begin."""
        in_use = [r for r in self.records.values() if r.in_use and r.module is not None and r.device == device]
        return max([phase_working] + [r.working for r in in_use]) + sum(r.in_flight for r in in_use)

    def room_for(self, device: torch.device, phase_working: int = 0) -> int:
        """Bytes a new component may take once every idle component of ours is evicted."""
        in_use = sum(
            r.nbytes for r in self.records.values() if r.module is not None and r.in_use and r.device == device
        )
        return self.budget_for(device) - in_use - self.working_in_use(device, phase_working)

    def resident_bytes(self, device: torch.device | None = None) -> int:
        return sum(
            r.nbytes for r in self.records.values() if r.module is not None and (device is None or r.device == device)
        )

    # --- components ---
    @contextlib.contextmanager
    def use(self, request: ComponentRequest):
        """Yields the component `request` asks for: the resident one, or one built by `request.build(streamed units)`
        after making room for `request.need()` (asked only when one must be built: it reads file headers) and the
        stage's working memory. A component that cannot fit even once every idle one is evicted keeps the units that
        fit resident and streams the others. In cold_start it is freed when the block ends; in persistent it stays
        while it fits. A kept component whose request says it is no longer alive (its files changed or vanished)
        is dropped, never served."""
        key, name, device, activations = request.key, request.label, request.device, request.activations
        capacity = self.capacity(device)
        if activations > capacity:
            # Refused before anything is built: such a stage would run out of memory (or, on a CPU, swap for hours
            # with no interrupt point inside one huge operation).
            raise LTX2InputError(
                f"{name}: this stage needs about {activations / GIB:.1f} GiB beside the weights at this size "
                f"(estimate), more than {device} can give ({capacity / GIB:.1f} GiB). Lower the size or the number "
                "of frames, or the decode's tiles."
            )
        read_before = bytes_read()
        with self._lock:
            self._forget_unloaded()
            self.drop_dead()
            self.device = device
            record = self.records.get(key)
            if record is not None and record.module is not None:
                plan = None
                self._take_over(record, request)
            else:
                plan = self._make_room_for(request)
        if plan is not None:
            # Built outside the lock: reading the weights takes long, and the page's reads of the state (another
            # thread) must not wait for it. Only the prompt's thread changes the records.
            record = self._build(request, *plan)
        read = bytes_read() - read_before  # from files, by this thread: 0 for a kept component
        with self._lock:
            self.records.move_to_end(key)
            record.in_use += 1
            record.handed_over = False
            extra = activations + record.upcast_bytes
            record.working = self.phase_working(device, extra)
            record.in_flight = units_in_flight(device) * record.streamer.largest_unit() if record.streamed else 0
            if self.bridge is not None:
                record.handle = self.bridge.load(record, extra + workspace_margin(device))
            if self.last_run is not None and record.label not in self.last_run.components:
                self.last_run.components.append(record.label)
            if self.last_run is not None:
                self.last_run.bytes_read += read
            if self.running is not None:
                self._phase_components.append(
                    {"name": record.name, "bytes": record.nbytes, "streamed": record.streamed, "bytes_read": read}
                )
        out_of_memory = False
        try:
            yield record.module
        except torch.OutOfMemoryError as exc:
            out_of_memory = True
            raise torch.OutOfMemoryError(OOM_ADVICE.format(name=name, doing="running", device=device)) from exc
        finally:
            with self._lock:
                record.in_use -= 1
                if record.streamer is not None:
                    record.streamer.settle()  # no prefetched unit outlives the stage uncounted
                if not record.in_use:
                    record.working = record.in_flight = 0
                if out_of_memory:
                    self.free_all()
                elif record.unloaded and not record.in_use:
                    self.evict(key)  # the host asked for it while it was in use
                elif self.mode == "cold_start" and request.hand_over and record.module is not None:
                    record.handed_over = True
                elif self.mode == "cold_start" or record.module is None:
                    self.evict(key)
                else:
                    self.enforce(device)

    def _take_over(self, record: ComponentRecord, request: ComponentRequest) -> None:
        """A stage uses a component kept from before (stage 2, stage 1's transformer; a persistent run's): room for
        this stage's working memory, which may be larger (stage 2 runs at twice the size), made from other idle
        components first, then by streaming out some of the kept component's own units rather than reading it all
        again (and then its units in flight need room too); then the host is asked for what the stage adds."""
        device = request.device
        working = self.phase_working(device, request.activations + record.upcast_bytes)
        flight = units_in_flight(device) * record.streamer.largest_unit() if record.streamer is not None else 0
        self.make_room(flight if record.streamed else 0, device, record.key, request.group, working, ask_host=False)
        beside = self.working_in_use(device, working) + (flight if record.streamed else 0)
        short = self.resident_bytes(device) + beside - self.budget_for(device)
        if short > 0 and record.streamer is not None:
            self.shrink(record.key, short + (0 if record.streamed else flight))
        if self.bridge is not None:
            self.bridge.make_room(working + (flight if record.streamed else 0), device)

    def _make_room_for(self, request: ComponentRequest) -> tuple[Need, list[str]]:
        """(what the request's component needs, the units to stream) once room is made for it: evicting idle
        components, then asking the host. Refused by name when it cannot fit: over the budget and unable to stream,
        or over what the device can give even streamed."""
        device, need = request.device, request.need()
        working = self.phase_working(device, request.activations + need.upcast_bytes)
        room, streamed, holds, least = self.room_for(device, working), [], need.total, need.total
        if need.unit_bytes:
            in_flight = units_in_flight(device)
            least = need.other_bytes + in_flight * max(need.unit_bytes.values())
            if need.total > room:
                units = list(need.unit_bytes)
                resident, streamed = split_units(units, need.unit_bytes, need.other_bytes, room, in_flight)
                holds = least + sum(need.unit_bytes[u] for u in resident)
        if need.total > room and not need.unit_bytes and need.cannot_stream:
            raise LTX2InputError(need.cannot_stream)
        self._check_fits(request, need, least, working)
        self.make_room(holds, device, keep=request.key, group=request.group, working=working)
        return need, streamed

    def _check_fits(self, request: ComponentRequest, need: Need, least: int, working: int) -> None:
        """Refuses, before a byte is read, a component that cannot fit the device even at its smallest (whole, or
        with every unit streamed) beside what is in use and the stage's working memory."""
        device = request.device
        available = self.capacity(device) - (self.budget_for(device) - self.room_for(device, working))
        if least <= available:
            return
        how = "even with every unit streamed (its other layers and the units in flight) " if need.unit_bytes else ""
        raise LTX2InputError(
            f"{request.label}: needs {least / GIB:.1f} GiB on {device} {how}beside {working / GIB:.1f} GiB for this "
            f"stage, and the device can give {max(0, available) / GIB:.1f} GiB. "
            + (need.cannot_fit or "Free the other models on this device, or lower the size or the number of frames.")
        )

    def _build(self, request: ComponentRequest, need: Need, streamed: list[str]) -> ComponentRecord:
        try:
            built = request.build(streamed)
        except torch.OutOfMemoryError as exc:
            self.free_all()
            advice = OOM_ADVICE.format(name=request.label, doing="loading", device=request.device)
            raise torch.OutOfMemoryError(advice + (f" {exc}" if isinstance(exc, PinFailed) else "")) from exc
        record = ComponentRecord(
            request.key,
            request.label,
            built.module,
            module_bytes(built.module),
            request.device,
            request.policy_name,
            built.streamer,
            need.upcast_bytes,
            alive=request.alive,
            group=request.group,
        )
        with self._lock:
            self.records[request.key] = record
            if self.last_run is not None:
                self.last_run.loads.append(built.report_line)
        return record

    def drop_dead(self) -> None:
        """Evict the idle components whose files changed or vanished since they were built: never served again,
        and not left beside their replacement."""
        for key in [k for k, r in self.records.items() if r.in_use == 0 and r.alive is not None and not r.alive()]:
            self.evict(key)

    def make_room(
        self,
        nbytes: int,
        device: torch.device,
        keep: tuple | None = None,
        group: object = None,
        working: int = 0,
        ask_host: bool = True,
    ) -> None:
        """Evict our idle components until `nbytes` more fit the budget beside the working memory of what is in
        use and of a stage about to run (`working`): first those of other sets than `group` (another checkpoint's,
        say), least recently used first; then the group's own, most recently used first. Then ask the host's
        manager to free what its other models hold beyond that."""
        budget = self.budget_for(device)
        beside = self.working_in_use(device, working)
        # A run uses its components in the same order every time (text encoder, transformer, VAE, stage-2
        # transformer, decoder). When they do not all fit, the idle component used longest ago is the one the next
        # stages need soonest: least recently used first rebuilt every big component on every run. Most recently
        # used first rebuilds half as many, the fewest possible for such a cycle (tests/unit/memory). Components
        # of another set go before any of this one's, or two sets would keep evicting each other's.
        order = [k for k, r in self.records.items() if group is not None and r.group != group]
        order += [k for k in reversed(self.records) if k not in order]
        for key in order:
            if self.resident_bytes(device) + beside + nbytes <= budget:
                break
            record = self.records[key]
            if key != keep and record.in_use == 0 and record.device == device:
                if record.handed_over and record.streamer is not None:
                    # The next stage takes it over (stage 2, stage 1's transformer): a few of its units streamed
                    # cost that stage a copy per step; evicted, it would be read from its file whole again.
                    self.shrink(key, self.resident_bytes(device) + beside + nbytes - budget)
                    if self.resident_bytes(device) + beside + nbytes <= budget:
                        break
                self.evict(key)
        if ask_host and self.bridge is not None and nbytes + working > 0:
            self.bridge.make_room(nbytes + working, device)

    def enforce(self, device: torch.device) -> None:
        self.device = device
        self.make_room(0, device)

    def evict(self, key: tuple) -> None:
        """Drop a component (from our own code: the host's record of it goes through Bridge.release)."""
        with self._lock:
            record = self.records.pop(key, None)
            if record is None:
                return
            gone = watch(record.module)
            handle, record.handle, record.module, record.streamer = record.handle, None, None, None
            if handle is not None and self.bridge is not None:
                self.bridge.release(handle)
            del handle
        collect_if_alive(gone)
        empty_cache(record.device)

    def release_handed_over(self) -> None:
        """Free what a cold_start stage kept for a next stage that will not come now (the decode has begun, a node
        failed, or a new prompt begins)."""
        with self._lock:
            for key in [k for k, r in self.records.items() if r.handed_over and r.in_use == 0]:
                self.evict(key)

    def free_all(self, keep_handed_over: bool = False) -> None:
        with self._lock:
            for key in [
                k for k, r in self.records.items() if r.in_use == 0 and not (keep_handed_over and r.handed_over)
            ]:
                self.evict(key)
            self._forget_unloaded()

    # --- runs ---
    def begin_run(self, run_id: str, policy: str, mode: str, precision: str = "") -> RunReport:
        new_run = self.last_run is None or self.last_run.run_id != run_id
        if new_run:
            self.last_run = RunReport(run_id)
        self.last_run.policy, self.last_run.mode, self.last_run.precision = policy, mode, precision
        self.mode = mode
        if mode == "cold_start":
            # Components kept by an earlier persistent run; each node of a run begins it again, and what an earlier
            # stage of this run handed over stays for the stage it was kept for.
            self.free_all(keep_handed_over=not new_run)
        else:
            self.drop_dead()
        return self.last_run


# The one budget of this process, shared by every node of the pack.
BUDGET = VramBudget()
