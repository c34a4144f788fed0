"""Block streaming's page-locked host memory as ComfyUI rules it (the lane's real comfy.model_management): none
with --disable-pinned-memory, none past ComfyUI's cap (its Windows limit), and a pin that fails is an out of
memory: the budget lets everything go and says what to change. torch page-locks through CUDA, so the pins are
mocked (`mocked_gpu`); ComfyUI's rules and the budget run as they are."""

import comfy.model_management as mm
import pytest
import torch

from ltx2_a2v.memory import streaming
from ltx2_a2v.memory.budget import VramBudget
from ltx2_a2v.memory.records import Built, ComponentRequest, Need
from ltx2_a2v.nodes.patcher import ComfyPins

GIB = 2**30


@pytest.fixture()
def pins(monkeypatch):
    """torch's page-locking stands in for (a GPU cannot exist here): what was pinned, in order."""
    pinned = []

    def pin_memory(self):
        pinned.append(self.nbytes)
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(streaming, "HOST_PINS", ComfyPins())
    return pinned


def test_with_disable_pinned_memory_units_stay_in_plain_host_memory_mocked_gpu(pins, monkeypatch):
    monkeypatch.setattr(mm, "MAX_PINNED_MEMORY", -1)  # what ComfyUI sets for --disable-pinned-memory
    store = streaming.PinnedStore()
    store.put("a", torch.ones(1000))
    assert (
        pins == [] and store.pinned_bytes() == 0 and torch.equal(store.get("a", torch.device("cpu")), torch.ones(1000))
    )


def test_pins_stop_at_comfyuis_cap_mocked_gpu(pins, monkeypatch):
    monkeypatch.setattr(mm, "MAX_PINNED_MEMORY", 6000)  # ComfyUI's cap (a share of RAM; smaller on Windows)
    monkeypatch.setattr(mm, "TOTAL_PINNED_MEMORY", 1000)  # ComfyUI's own pins
    store = streaming.PinnedStore()
    for key in "abc":
        store.put(key, torch.ones(500))  # 2000 bytes each
    assert pins == [2000, 2000] and store.pinned_bytes() == 4000  # the third would pass the cap: kept unpinned
    store.pop("a")
    store.put("d", torch.ones(500))
    assert pins == [2000, 2000, 2000] and store.pinned_bytes() == 4000


class PinningRequest(ComponentRequest):
    """A component whose build keeps a unit in pinned host memory, as block streaming's does on a GPU (named
    "transformer"; any other is built without)."""

    def need(self) -> Need:
        return Need(4096)

    def build(self, streamed: list[str]) -> Built:
        if self.label == "transformer":
            streaming.PinnedStore().put("transformer_blocks.0.weight", torch.ones(1024))
        return Built(torch.nn.Linear(4, 4), None, "built")


def test_a_pin_that_fails_is_an_out_of_memory_that_frees_everything_mocked_gpu(monkeypatch):
    def failing(self):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(torch.Tensor, "pin_memory", failing)
    monkeypatch.setattr(streaming, "HOST_PINS", None)  # outside ComfyUI: torch's pins alone
    budget = VramBudget()
    budget.mode = "persistent"
    with budget.use(PinningRequest(("kept",), "kept", "none", torch.device("cpu"), group="g")):
        pass
    assert budget.resident_bytes() > 0
    with pytest.raises(torch.OutOfMemoryError) as raised:
        with budget.use(PinningRequest(("pinning",), "transformer", "none", torch.device("cpu"), group="g")):
            pass
    message = str(raised.value)
    assert "transformer: out of memory while loading" in message and "--disable-pinned-memory" in message
    assert budget.resident_bytes() == 0 and not budget.records
