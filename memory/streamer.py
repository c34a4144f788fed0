"""Moving a model's streamed units (streaming.py) between their store and the device: around each unit's forward,
with the next one copied while the current one computes on a GPU, and as a whole when the host's memory manager
shrinks or grows the model."""

import weakref
from collections import deque

import torch

from .streaming import PinnedStore, make_store, unit_of


class CudaCopies:
    """The GPU side of streaming: copies on a side stream, the compute stream waiting for them, and an event after
    each unit's compute (what the CPU waits on, so it cannot run ahead of the GPU by more than the units in
    flight)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def copy(self, fetch):
        """(tensors, the event that ends their copy): `fetch()` run on the side stream."""
        with torch.cuda.stream(self.stream):
            tensors = fetch()
            done = torch.cuda.Event()
            done.record(self.stream)
        return tensors, done

    def use(self, tensors: dict[str, torch.Tensor], done) -> None:
        """The compute stream waits for the copy; the tensors, made on the copy stream, are freed only after the
        compute stream used them."""
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(done)
        for tensor in tensors.values():
            tensor.record_stream(compute)

    def computed(self):
        """An event after the work queued on the compute stream so far."""
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event


class Streamer:
    """The streamed units of one model: kept in a store, brought onto the device around their own forward
    (`bring_in` / `send_back`, called by the model's weight path), and moved between the device and the store as a
    whole at any time between forwards (the host's memory manager shrinks or grows the model that way:
    nodes/patcher.py).

    On a GPU the next streamed unit, in the order the last whole forward called them, is copied on a side stream
    while the current one computes (the first forward, whose order is not known yet, prefetches nothing). At most
    two units are on the device at once: before a copy begins, the CPU waits until the GPU has finished every unit
    sent back but the last, so it cannot queue copies (and the caching allocator cannot hold their memory) further
    ahead. On a CPU there is nothing to overlap with: a unit is read when its forward starts, into one buffer reused by
    every unit (`_arena`)."""

    def __init__(self, device: torch.device, units: list[str], streamed: list[str] = ()):
        self.device, self.units = device, units
        self._model = None  # a weak reference to the model, set by attach(): the model holds its path, not back
        self._store = None  # made when a first unit is kept out: a transformer that never streams has none
        self.streamed = set(streamed)
        self._order: list[str] = []  # the units the last whole forward called, in its order
        self._calls: list[str] = []  # those of the forward running now
        self._ready: dict[str, tuple[dict[str, torch.Tensor], object]] = {}  # prefetched, not yet used
        self._sent: deque = deque()  # events after the compute of units sent back, the GPU maybe not done yet
        self._unit_keys: dict[str, list[str]] = {}  # the store's keys of each streamed unit
        self._copies = CudaCopies(device) if device.type == "cuda" else None
        self._largest: int | None = None
        # On a CPU, the buffer every streamed unit is read into for its forward, in turn. A new tensor per read is a
        # fresh mapping whose pages fault in as the read fills them, and freeing it unmaps them again: 0.65 s of a
        # 2.2 s forward of the wide transformer streaming 1.36 GiB, against 0.13 s read into one reused buffer
        # (2-core AMD EPYC, fp8_scaled, 2026-12-07). It is the one unit in flight the budget keeps room for.
        self._arena: torch.Tensor | None = None

    def attach(self, model: torch.nn.Module) -> None:
        self._model = weakref.ref(model)

    @property
    def model(self) -> torch.nn.Module:
        model = self._model() if self._model is not None else None
        if model is None:
            raise RuntimeError("block streaming: the model of these units is gone")
        return model

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

    def _fetch(self, unit: str):
        def read():
            return {k: self.store.get(k, self.device) for k in self._keys(unit)}

        if self._copies is None:
            return read(), None
        while len(self._sent) > 1:  # the bound: every unit sent back but the last is done computing
            self._sent.popleft().synchronize()
        return self._copies.copy(read)

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

    def outliving_the_buffer(self, output):
        """A unit's output, cloned where it is a view of the reused buffer (a module that returns one of its own
        weights): the next unit's read would overwrite it."""
        if self._arena is None or not _holds(output, self._arena):
            return output
        return _cloned(output)

    def _learn(self, unit: str) -> None:
        """A unit called again ends a forward: its calls are the order the next ones follow."""
        if unit in self._calls:
            self._order, self._calls = self._calls, []
        self._calls.append(unit)

    def _next_streamed(self, unit: str) -> str | None:
        if unit not in self._order:
            return None
        start = self._order.index(unit)
        return next((u for u in self._order[start + 1 :] + self._order[:start] if u in self.streamed), None)

    def bring_in(self, unit: str, module: torch.nn.Module) -> None:
        """Before the unit's forward: its tensors onto the device (prefetched, or read now)."""
        self._learn(unit)
        if unit not in self.streamed:
            return
        ready = self._ready.pop(unit, None)
        if ready is None and self._copies is None:
            ready = self._read_into_arena(unit)
        elif ready is None:
            self._ready.clear()  # a prefetch that guessed wrong: not a third unit on the device
            ready = self._fetch(unit)
        tensors, done = ready
        if done is not None:
            self._copies.use(tensors, done)
        prefix = unit + "."
        module.load_state_dict({k[len(prefix) :]: t for k, t in tensors.items()}, strict=False, assign=True)

    def send_back(self, unit: str, module: torch.nn.Module) -> None:
        """After the unit's forward, also when it raised: its tensors go back to the meta device, and on a GPU the
        next streamed unit is copied while this one's compute finishes."""
        if unit not in self.streamed:
            return
        _to_meta(module)
        if self._copies is None:
            return
        self._sent.append(self._copies.computed())
        following = self._next_streamed(unit)
        if following is not None and following != unit and following not in self._ready:
            self._ready[following] = self._fetch(following)

    def settle(self) -> None:
        """When a stage stops using the model: a prefetched unit goes (the budget does not count it past the stage)
        and the GPU finishes what was sent back."""
        self._ready.clear()
        self._arena = None  # an idle model holds no unit's bytes beyond its own
        while self._sent:
            self._sent.popleft().synchronize()

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

    def largest_unit(self) -> int:
        """The bytes of its largest unit (each unit's bytes are fixed once built)."""
        if self._largest is None:
            self._largest = max((self.unit_bytes(u) for u in self.units), default=0)
        return self._largest

    def pinned_bytes(self) -> int:
        """Page-locked host memory its store holds (a spill file on a CPU pins nothing)."""
        return self._store.pinned_bytes() if isinstance(self._store, PinnedStore) else 0

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
