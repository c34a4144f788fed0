"""One memory budget for every component the pack builds, in one process: every decision about what is resident
is taken here.

The budget knows each component it holds (bytes on the device, bytes kept out by block streaming, device). A
stage asks for one with a request (records.py's ComponentRequest: what it is, what it needs, how to make it). In
`cold_start` a component lives only while a stage uses it (or, asked with `hand_over`, until the next stage that
uses it: stage 1's transformer serves stage 2), so the pack holds nothing when idle; in
`persistent` components stay between runs as long as they fit; when they do not, the most recently used idle one
is evicted first (runs repeat one order of components, see make_room). A stage's activations are part of the
budget: before making a component, room is made for the weights plus what the stage will need beside them (its estimate,
ltx2/activations.py), first from our own idle components, then through the host's memory manager
(`Bridge.make_room`). A component that cannot fit even alone is made block-streamed (streaming.py) when its request
says how it splits into units.

Every component in use, and every kept one, is known to the host's manager (`Bridge.load`, ComfyUI's
load_models_gpu in nodes/patcher.py): when another model needs room the host can shrink a streamable component a
unit at a time (`shrink`) instead of dropping it, grow it back (`grow`), or unload it (`unloaded_by_host`).

It keeps the run report too: per stage seconds, the device-memory ledger's peak (ledger.py) and the components
used. Nothing here imports ComfyUI.
"""

import contextlib
import gc
import threading
import time
import weakref
from collections import OrderedDict

import torch

from ..errors import LTX2InputError
from .accounting import GIB, device_total_bytes, empty_cache, module_bytes
from .kept_outputs import ENCODED_PROMPTS
from .ledger import StageMeter, device_figures
from .reads import bytes_read
from .records import Bridge, ComponentRecord, ComponentRequest, Need
from .report import RunReport, StageRecord
from .streaming import split_units, units_in_flight

# Kept free for the host program and whatever else shares the device, without a host to say how much (the
# ComfyUI bridge takes ComfyUI's own reserve, --reserve-vram). Activations are budgeted per stage, not here.
DEFAULT_RESERVE = {"cuda": 1 * GIB, "cpu": 4 * GIB}

OOM_ADVICE = (
    "{name}: out of memory while {doing} on {device}. The LTX-2 nodes have freed everything they held. To fit: pick "
    "a smaller quantization (fp8_scaled halves the transformer), set a VRAMGuard budget_gb below the free memory (a "
    "transformer over the budget then runs a block at a time), or use residency cold_start."
)


class VramBudget:
    def __init__(self, bridge: Bridge | None = None):
        self.bridge = bridge
        self.budget_bytes: int | None = None  # None: the device's total less a reserve
        self.prompt_id: str | None = None  # the prompt whose budget this is (begin_prompt)
        self.mode = "cold_start"
        self.records: OrderedDict[tuple, ComponentRecord] = OrderedDict()
        self.last_run: RunReport | None = None
        self.device: torch.device | None = None  # the device last used, for the state's budget
        self.running: tuple[str, float, StageMeter] | None = None  # the stage running now: name, start, meter
        self._stage_components: list[dict] = []  # what the running stage used
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
        if self.budget_bytes is not None:
            return self.budget_bytes
        return self.capacity(device)

    def capacity(self, device: torch.device) -> int:
        """What the device can give the pack at most: its memory less the host's reserve."""
        reserve = (
            self.bridge.reserve_bytes(device)
            if self.bridge is not None and device.type != "cpu"
            else DEFAULT_RESERVE.get(device.type, GIB)
        )
        return device_total_bytes(device) - reserve

    def room_for(self, device: torch.device) -> int:
        """Bytes a new component may take once every idle component of ours is evicted."""
        in_use = sum(
            r.nbytes for r in self.records.values() if r.module is not None and r.in_use and r.device == device
        )
        return self.budget_for(device) - in_use

    def resident_bytes(self, device: torch.device | None = None) -> int:
        return sum(
            r.nbytes for r in self.records.values() if r.module is not None and (device is None or r.device == device)
        )

    # --- components ---
    @contextlib.contextmanager
    def use(self, request: ComponentRequest):
        """Yields the component `request` asks for: the resident one, or one made by `request.make(streamed units)`
        after making room for `request.need()` (asked only when one must be made: it reads file headers) and the
        stage's activations. A component that cannot fit even once every idle one is evicted keeps the units that
        fit resident and streams the others. In cold_start it is freed when the block ends; in persistent it stays
        while it fits. A kept component whose request says it is no longer alive (its files changed or vanished)
        is dropped, never served."""
        key, name, device, activations = request.key, request.label, request.device, request.activations
        capacity = self.capacity(device)
        if activations > capacity:
            # Refused before anything is made: such a stage would run out of memory (or, on a CPU, swap for hours
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
                if record.handed_over:
                    self._take_over(record, request)
            else:
                plan = self._make_room_for(request)
        if plan is not None:
            # Made outside the lock: reading the weights takes long, and the page's reads of the state (another
            # thread) must not wait for it. Only the prompt's thread changes the records.
            record = self._make(request, *plan)
        read = bytes_read() - read_before  # from files, by this thread: 0 for a kept component
        with self._lock:
            self.records.move_to_end(key)
            record.in_use += 1
            record.handed_over = False
            if self.bridge is not None:
                record.handle = self.bridge.load(record, activations + record.upcast_bytes)
            if self.last_run is not None and record.label not in self.last_run.components:
                self.last_run.components.append(record.label)
            if self.last_run is not None:
                self.last_run.bytes_read += read
            if self.running is not None:
                self._stage_components.append(
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
                if out_of_memory:
                    self.free_all()
                elif self.mode == "cold_start" and request.hand_over and record.module is not None:
                    record.handed_over = True
                elif self.mode == "cold_start" or record.module is None:
                    self.evict(key)
                else:
                    self.enforce(device)

    def _take_over(self, record: ComponentRecord, request: ComponentRequest) -> None:
        """A stage takes over what the previous one kept (stage 2, stage 1's transformer): room for this stage's
        activations, which may be larger (stage 2 runs at twice the size), made from other idle components first,
        then by streaming out some of the kept component's own units rather than reading it all again."""
        working = request.activations + record.upcast_bytes
        self.make_room(working, request.device, keep=record.key, group=request.group)
        short = self.resident_bytes(request.device) + working - self.budget_for(request.device)
        if short > 0:
            self.shrink(record.key, short)

    def _make_room_for(self, request: ComponentRequest) -> tuple[Need, list[str]]:
        """(what the request's component needs, the units to stream) once room is made for it: evicting idle
        components, then asking the host. Refused by name when it cannot fit and cannot be streamed."""
        device, need = request.device, request.need()
        working = request.activations + need.upcast_bytes
        room, streamed, holds = self.room_for(device) - working, [], need.total
        if need.total > room and need.unit_bytes:
            units = list(need.unit_bytes)
            resident, streamed = split_units(units, need.unit_bytes, need.other_bytes, room, units_in_flight(device))
            largest = max(need.unit_bytes.values())
            holds = need.other_bytes + sum(need.unit_bytes[u] for u in resident) + units_in_flight(device) * largest
        elif need.total > room and need.cannot_stream:
            raise LTX2InputError(need.cannot_stream)
        self.make_room(holds + working, device, keep=request.key, group=request.group)
        return need, streamed

    def _make(self, request: ComponentRequest, need: Need, streamed: list[str]) -> ComponentRecord:
        try:
            made = request.make(streamed)
        except torch.OutOfMemoryError as exc:
            self.free_all()
            raise torch.OutOfMemoryError(
                OOM_ADVICE.format(name=request.label, doing="loading", device=request.device)
            ) from exc
        record = ComponentRecord(
            request.key,
            request.label,
            made.module,
            module_bytes(made.module),
            request.device,
            request.policy_name,
            made.streamer,
            need.upcast_bytes,
            alive=request.alive,
            group=request.group,
        )
        with self._lock:
            self.records[request.key] = record
            if self.last_run is not None:
                self.last_run.loads.append(made.report_line)
        return record

    def drop_dead(self) -> None:
        """Evict the idle components whose files changed or vanished since they were built: never served again,
        and not left beside their replacement."""
        for key in [k for k, r in self.records.items() if r.in_use == 0 and r.alive is not None and not r.alive()]:
            self.evict(key)

    def make_room(self, nbytes: int, device: torch.device, keep: tuple | None = None, group: object = None) -> None:
        """Evict our idle components until `nbytes` more fit the budget: first those of other sets than `group`
        (another checkpoint's, say), least recently used first; then the group's own, most recently used first.
        Then ask the host's manager to free what its other models hold beyond that."""
        budget = self.budget_for(device)
        # A run uses its components in the same order every time (text encoder, transformer, VAE, stage-2
        # transformer, decoder). When they do not all fit, the idle component used longest ago is the one the next
        # stages need soonest: least recently used first rebuilt every big component on every run. Most recently
        # used first rebuilds half as many, the fewest possible for such a cycle (tests/unit/memory). Components
        # of another set go before any of this one's, or two sets would keep evicting each other's.
        order = [k for k, r in self.records.items() if group is not None and r.group != group]
        order += [k for k in reversed(self.records) if k not in order]
        for key in order:
            if self.resident_bytes(device) + nbytes <= budget:
                break
            record = self.records[key]
            if key != keep and record.in_use == 0 and record.device == device:
                if record.handed_over and record.streamer is not None:
                    # The next stage takes it over (stage 2, stage 1's transformer): a few of its units streamed
                    # cost that stage a copy per step; evicted, it would be read from its file whole again.
                    self.shrink(key, self.resident_bytes(device) + nbytes - budget)
                    if self.resident_bytes(device) + nbytes <= budget:
                        break
                self.evict(key)
        if self.bridge is not None and nbytes > 0:
            self.bridge.make_room(nbytes, device)

    def enforce(self, device: torch.device) -> None:
        self.device = device
        self.make_room(0, device)

    def evict(self, key: tuple) -> None:
        """Drop a component (from our own code: the host's record of it goes through Bridge.release)."""
        with self._lock:
            record = self.records.pop(key, None)
            if record is None:
                return
            gone = _watch(record.module)
            handle, record.handle, record.module, record.streamer = record.handle, None, None, None
            if handle is not None and self.bridge is not None:
                self.bridge.release(handle)
            del handle
        _collect_if_alive(gone)
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

    # --- the host's memory manager, shrinking, growing or dropping our components ---
    def shrink(self, key: tuple, nbytes: int) -> int:
        """Free about `nbytes` of an idle streamable component's device memory by streaming its units, last
        first; the bytes freed."""
        with self._lock:
            record = self.records.get(key)
            if record is None or record.module is None or record.streamer is None or record.in_use:
                return 0
            freed = 0
            for unit in reversed(record.streamer.units):
                if freed >= nbytes:
                    break
                freed += record.streamer.stream_out(unit)
            record.nbytes -= freed
        empty_cache(record.device)
        return freed

    def grow(self, key: tuple, nbytes: float) -> int:
        """Bring a streamed component's units back, first first, while they fit `nbytes` and the budget; the
        bytes brought back."""
        with self._lock:
            record = self.records.get(key)
            if record is None or record.module is None or record.streamer is None:
                return 0
            room = min(nbytes, self.budget_for(record.device) - self.resident_bytes(record.device))
            grown = 0
            for unit in record.streamer.units:
                size = record.streamer.unit_bytes(unit) if unit in record.streamer.streamed else 0
                if size and grown + size <= room:
                    grown += record.streamer.bring_back(unit)
            record.nbytes += grown
            return grown

    def unloaded_by_host(self, key: tuple) -> None:
        """The host's manager unloads the component. Its weights go now; the record (and the host's handle,
        which the host is still iterating over) is forgotten the next time the budget acts."""
        with self._lock:
            record = self.records.get(key)
            if record is None:
                return
            if record.in_use:  # freed by `use` when the stage ends
                record.module = None
                return
            self.records.pop(key)
            gone = _watch(record.module)
            record.module, record.streamer = None, None
            self._unloaded.append(record)
        _collect_if_alive(gone)
        empty_cache(record.device)

    def _forget_unloaded(self) -> None:
        self._unloaded.clear()

    # --- report ---
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

    @contextlib.contextmanager
    def stage(self, name: str, device: torch.device):
        """A timed part of a run (text encode, stage 1 denoise, ...), with its peak memory, for the report."""
        start = time.perf_counter()
        self._stage_components = []
        with StageMeter(device) as meter:
            self.running = (name, start, meter)
            try:
                yield
            finally:
                self.running = None
        if self.last_run is not None:
            self.last_run.stages.append(
                StageRecord(
                    name,
                    time.perf_counter() - start,
                    meter.peak,
                    meter.peak_reserved,
                    self._stage_components,
                    meter.start,
                )
            )
            self.last_run.resident_after = self.resident_bytes()

    def state(self) -> dict:
        """What the page and GET /ltx2/vram show. Read on the server's thread while the prompt's thread changes the
        records: under the budget's lock, which is never held while a component is made (that takes long)."""
        with self._lock:
            return {
                "budget_bytes": self.budget_for(self.device) if self.device is not None else self.budget_bytes,
                "mode": self.mode,
                "components": [
                    {
                        "name": r.label,
                        "bytes": r.nbytes,
                        "streamed_bytes": r.total_bytes - r.nbytes,
                        "device": str(r.device),
                        "resident": r.module is not None,
                        "policy": r.policy,
                        "in_use": r.in_use > 0,
                        "handed_over": r.handed_over,
                    }
                    for r in self.records.values()
                ],
                "resident_bytes": self.resident_bytes(),
                "kept_prompts": ENCODED_PROMPTS.state(),  # on the CPU, beside the budget
                "device_memory": device_figures(self.device) if self.device is not None else None,
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


def _watch(module: torch.nn.Module | None) -> list[weakref.ref]:
    return [weakref.ref(t) for t in module.parameters()] if module is not None else []


def _collect_if_alive(tensors: list[weakref.ref]) -> None:
    """A dropped component's tensors must be gone before the next one is built (the device holds both otherwise).
    Dropping the last reference frees them at once, unless part of the model sits in a reference cycle, which
    only the garbage collector frees: after a forward that records hidden states, transformers (4.5x,
    `check_model_inputs`) puts each Gemma decoder layer's original forward back as an attribute of the layer, a
    bound method of the layer itself, so every layer holds itself. Collected then, and only then: a full collection
    in a ComfyUI process takes a while."""
    if any(t() is not None for t in tensors):
        gc.collect()


# The one budget of this process, shared by every node of the pack.
BUDGET = VramBudget()
