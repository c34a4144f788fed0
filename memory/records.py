"""What the budget is asked for, what it keeps of each component, and how it talks to the host's memory manager:
the budget's data, apart from its decisions (budget.py)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import torch

from .streamer import Streamer
from .streaming import units_in_flight


@dataclass(frozen=True)
class Need:
    """What a component will hold once built, by streaming unit (transformer blocks, big top-level layers) and
    the rest, and the largest weight it copies to its compute dtype during a forward. No units: it cannot be
    streamed, and `cannot_stream` says why when that matters (refused when over the budget); `cannot_fit`: what to
    do when it cannot fit the device at all (the policy that makes it fit)."""

    other_bytes: int
    unit_bytes: dict[str, int] = field(default_factory=dict)
    cannot_stream: str = ""
    upcast_bytes: int = 0
    cannot_fit: str = ""

    @property
    def total(self) -> int:
        return self.other_bytes + sum(self.unit_bytes.values())


class Built(NamedTuple):
    """A component just built for the budget."""

    module: torch.nn.Module
    streamer: Streamer | None  # a streamable component's units
    report_line: str  # for the run report's `loads`


@dataclass
class ComponentRequest:
    """What a stage asks the budget for: which component (`key`: everything its weights depend on; `label`: for
    people), under which policy, on which device, with how many bytes of activations beside it, in which set of
    files (`group`: room is made from other sets first), and whether a kept copy is still the one asked for
    (`alive`, kept with the component: it must hold nothing big). Subclasses say what it will hold (`need`, asked
    only when it must be built: it may read file headers) and how to build it with some units kept streamed
    (`build`)."""

    key: tuple
    label: str
    policy_name: str
    device: torch.device
    activations: int = 0
    group: object = None
    alive: Callable[[], bool] | None = None  # None: always
    # In cold_start, kept when the stage ends, for the next stage that asks for it (stage 1's transformer, for
    # stage 2); freed by that stage, by room being made, or by VramBudget.release_handed_over.
    hand_over: bool = field(default=False, kw_only=True)

    def need(self) -> Need:
        raise NotImplementedError

    def build(self, streamed: list[str]) -> Built:
        """The component with the units named in `streamed` kept out of memory (streamed during its forward)."""
        raise NotImplementedError


@dataclass
class ComponentRecord:
    """A component the budget holds."""

    key: tuple
    name: str  # for people: "transformer (stage 2)"
    module: torch.nn.Module | None
    nbytes: int  # on the device now
    device: torch.device
    policy: str
    streamer: Streamer | None = None  # a streamable component's units, resident or kept out
    upcast_bytes: int = 0  # its forward's largest compute-dtype copy of a weight
    in_use: int = 0
    handle: object = None  # the host's registration (nodes/patcher.py)
    alive: Callable[[], bool] | None = None  # False once the files it was built from changed or vanished
    group: object = None  # the set of files it belongs with (one model's bundle)
    handed_over: bool = False  # idle in cold_start, kept for the next stage that asks for it
    # While in use: what its stage needs beside the weights (activations, upcast copy, margin), and the bytes of
    # its streamed units in flight; `unloaded`: the host asked to unload it meanwhile (it goes when the stage ends).
    working: int = 0
    in_flight: int = 0
    unloaded: bool = False

    @property
    def streamed(self) -> bool:
        return self.streamer is not None and bool(self.streamer.streamed)

    @property
    def label(self) -> str:
        return f"{self.name}, streamed" if self.streamed else self.name

    @property
    def device_bytes(self) -> int:
        """What it holds on the device at most while used: its resident part and, streamed, its units in flight
        (never the streamed remainder, which is in host memory)."""
        if not self.streamed:
            return self.nbytes
        return self.nbytes + units_in_flight(self.device) * self.streamer.largest_unit()

    @property
    def total_bytes(self) -> int:
        """Device bytes plus those kept out of memory by streaming."""
        if self.streamer is None:
            return self.nbytes
        return self.nbytes + sum(self.streamer.unit_bytes(u) for u in self.streamer.streamed)


class Bridge(Protocol):
    """How the budget talks to the host's memory manager (ComfyUI's, in nodes/patcher.py)."""

    def reserve_bytes(self, device: torch.device) -> int:
        """What the host keeps free on the device for everything else (ComfyUI: --reserve-vram)."""

    def make_room(self, nbytes: int, device: torch.device) -> None:
        """Free other models (never ours in use) until `nbytes` more fit on the device (before a build or a
        stage)."""

    def working_floor(self, device: torch.device) -> int:
        """What the host keeps free beside any model it loads, at least (ComfyUI: its minimum inference memory less
        its reserve); 0 where it keeps nothing."""

    def load(self, record: ComponentRecord, working_bytes: int) -> object:
        """Register the component with the host for this use (`record.device_bytes` on the device, plus
        `working_bytes` beside them: activations, upcast copy, margin), or refresh its registration; returns the
        handle."""

    def release(self, handle: object) -> None:
        """The component is gone from the budget: let the host's record of it go."""
