"""One weight path per model, its steps in one declared order whatever order they were set up in: a streamed unit
brought in, bf16 weights upcast, several LoRA factor sets fused (ltx-core's numerics for several LoRAs) or beside,
the interrupt check; an error inside a streamed unit leaves none of its tensors alive (the CPU ledger); streamed
units are prefetched in the order the last forward called them, never ahead of the GPU by more than two units."""

import weakref

import pytest
import torch
from ltx_core.loader.fuse_loras import apply_loras
from ltx_core.loader.primitives import LoraStateDictWithStrength, StateDict
from safetensors.torch import save_file

from ltx2_a2v.ltx2.components.lora_layers import LoraLayers, applied
from ltx2_a2v.ltx2.components.weight_path import checking, compose, stream
from ltx2_a2v.ltx2.files.lora_file import LoraFactors
from ltx2_a2v.memory.ledger import CPU_LEDGER, PhaseMeter
from ltx2_a2v.memory.streamer import Streamer

CPU = torch.device("cpu")
WIDTH = 32


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(WIDTH, WIDTH)
        self.b = torch.nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


class Toy(torch.nn.Module):
    """A transformer's shape: blocks, called in `order`."""

    def __init__(self, order=(0, 1, 2)):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList(Block() for _ in range(3))
        self.order = order

    def forward(self, x):
        for i in self.order:
            x = self.transformer_blocks[i](x)
        return x


UNITS = [f"transformer_blocks.{i}" for i in range(3)]


def toy(seed: int = 0, order=(0, 1, 2)) -> Toy:
    torch.manual_seed(seed)
    return Toy(order).to(torch.bfloat16).requires_grad_(False)


def lora_file(path, seed: int, rank: int = 4) -> LoraFactors:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for unit in UNITS:
        for layer in ("a", "b"):
            tensors[f"{unit}.{layer}.lora_A.weight"] = torch.randn(rank, WIDTH, generator=generator).bfloat16()
            tensors[f"{unit}.{layer}.lora_B.weight"] = torch.randn(WIDTH, rank, generator=generator).bfloat16() / 8
    save_file(tensors, str(path))
    return LoraFactors(path, 1.0)


def fused_reference(model: Toy, loras: list[LoraFactors]) -> Toy:
    """The model with the LoRAs fused by ltx-core (apply_loras: the sets' deltas summed, added in bf16)."""
    state = model.state_dict()
    sets = [
        LoraStateDictWithStrength(StateDict({k: t for k, t in _tensors(lora).items()}, CPU, 0, set()), lora.strength)
        for lora in loras
    ]
    fused = apply_loras(StateDict(state, CPU, 0, set()), sets, dtype=torch.bfloat16)
    reference = toy(order=model.order)
    reference.load_state_dict({**state, **fused.sd})
    return reference.float()


def _tensors(lora: LoraFactors) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(lora.path))


def streamed(model: Toy, units=UNITS) -> Streamer:
    streamer = Streamer(CPU, UNITS)
    streamer.attach(model)
    for unit in units:
        streamer.stream_out(unit)  # into the spill store: the unit's parameters are on the meta device now
    return streamer


def path_hooks(model: torch.nn.Module) -> list[tuple[int, int]]:
    return [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in model.modules()]


@pytest.mark.parametrize("lora_first", [False, True])
def test_streamed_upcast_with_two_lora_sets_equals_ltx_cores_fused_load_whatever_the_set_up_order(tmp_path, lora_first):
    model = toy()
    loras = [lora_file(tmp_path / "one.safetensors", 1), lora_file(tmp_path / "two.safetensors", 2)]
    reference = fused_reference(model, loras)
    x = torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        want = reference(x)
    sets = [LoraLayers(lora, CPU) for lora in loras]
    checks = []
    compose(model, torch.float32)
    if not lora_first:
        stream(model, streamed(model, UNITS[1:]))
    with applied(model, *sets), checking(model, checks.append), torch.inference_mode():
        if lora_first:
            stream(model, streamed(model, UNITS[1:]))
        got = model(x)
        assert all(pre <= 1 and post <= 1 for pre, post in path_hooks(model))  # one pair of the path's, no more
    assert torch.equal(got, want)
    assert model.transformer_blocks[2].a.weight.device.type == "meta"  # sent back
    assert model.transformer_blocks[0].a.weight.dtype == torch.bfloat16  # the stored weight, put back


def test_two_sets_beside_a_quantized_weight_add_both_low_rank_paths(tmp_path):
    from ltx2_a2v.quant.fp8_scaled import Fp8ScaledLinear, quantize_rows

    model = toy()
    for block in model.transformer_blocks:
        for layer in (block.a, block.b):
            q, scale = quantize_rows(layer.weight)
            layer.__class__ = Fp8ScaledLinear
            layer.weight = torch.nn.Parameter(q, requires_grad=False)
            layer.weight_scale = torch.nn.Parameter(scale, requires_grad=False)
    compose(model, torch.float32)
    one, two = (LoraLayers(lora_file(tmp_path / f"{i}.safetensors", i), CPU) for i in (1, 2))
    layer, x = model.transformer_blocks[0].a, torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        base = layer(x)
        outputs = {}
        for name, sets in (("one", [one]), ("two", [two]), ("both", [one, two])):
            with applied(model, *sets):
                outputs[name] = layer(x)
    torch.testing.assert_close(outputs["both"] - base, (outputs["one"] - base) + (outputs["two"] - base))
    assert not torch.equal(outputs["one"], base) and not torch.equal(outputs["two"], base)


class Boom(Exception):
    pass


def test_an_error_inside_a_streamed_unit_leaves_none_of_its_tensors_alive_cpu_ledger():
    model = toy()
    compose(model, torch.float32)
    streamer = streamed(model)
    stream(model, streamer)
    seen = []  # each layer's weight as its forward sees it (after the path's steps): the unit's, upcast
    for block in model.transformer_blocks:
        for layer in (block.a, block.b):
            layer.register_forward_pre_hook(lambda mod, _: seen.append(weakref.ref(mod.weight)))
    model.transformer_blocks[1].b.register_forward_pre_hook(lambda *_: (_ for _ in ()).throw(Boom()))
    meter = PhaseMeter(CPU)
    with meter, torch.inference_mode():
        x = torch.randn(5, WIDTH)
        try:
            model(x)
        except Boom:
            pass
        streamer.settle()  # as the budget does when the stage's use of the model ends, raised or not
        after = CPU_LEDGER.allocated
    assert len(seen) == 4 and meter.peak > meter.start + x.nbytes  # units were brought in and upcast
    # None of their tensors (nor their upcast copies, nor the buffer a CPU reads units into) is alive after the
    # error: the ledger holds the input alone.
    assert after == meter.start + x.untyped_storage().nbytes() and all(ref() is None for ref in seen)
    assert all(p.device.type == "meta" and p.dtype == torch.bfloat16 for p in model.transformer_blocks.parameters())


class SimulatedEvent:
    def __init__(self, timeline: list, what: str):
        self.timeline, self.what, self.done = timeline, what, False

    def synchronize(self):
        self.done = True
        self.timeline.append(("wait", self.what))


class SimulatedCudaCopies:
    """Stands in for CudaCopies (a side stream and events need a GPU): records what is copied and waited for."""

    def __init__(self, timeline: list):
        self.timeline, self.sent = timeline, []

    def copy(self, fetch):
        tensors = fetch()
        unit = next(iter(tensors)).rsplit(".", 2)[0]
        self.timeline.append(("copy", unit, [e.what for e in self.sent if not e.done]))
        return tensors, SimulatedEvent(self.timeline, f"copied {unit}")

    def use(self, tensors, done):
        pass

    def computed(self):
        event = SimulatedEvent(self.timeline, f"computed {len(self.sent)}")
        self.sent.append(event)
        return event


def test_prefetch_follows_the_last_forwards_calls_and_never_runs_two_units_ahead_simulated_cuda():
    model = toy(order=(2, 0, 1))  # called in another order than the model's
    compose(model, torch.float32)
    streamer = streamed(model)
    timeline: list = []
    streamer._copies = SimulatedCudaCopies(timeline)
    stream(model, streamer)
    for unit in UNITS:  # after the path's hook: the unit is in by then
        model.get_submodule(unit).register_forward_pre_hook(lambda *_, unit=unit: timeline.append(("call", unit)))
    with torch.inference_mode():
        for _ in range(3):
            model(torch.randn(2, WIDTH))
    streamer.settle()
    two, zero, one = (f"transformer_blocks.{i}" for i in (2, 0, 1))
    steps = [(s[0], s[1]) for s in timeline if s[0] in ("copy", "call")]
    assert steps == [
        # The first forward: its order not known yet, each unit copied when it is called.
        ("copy", two), ("call", two), ("copy", zero), ("call", zero), ("copy", one), ("call", one),
        # Then each unit copied while the one before it in call order computes; the last one's prefetch is the
        # first unit of the next forward.
        ("copy", two), ("call", two), ("copy", zero), ("call", zero), ("copy", one), ("call", one), ("copy", two),
        ("call", two), ("copy", zero), ("call", zero), ("copy", one), ("call", one), ("copy", two),
    ]  # fmt: skip
    # No copy begins while the GPU may still compute more than the unit sent back last.
    assert all(len(s[2]) <= 1 for s in timeline if s[0] == "copy")
    assert not streamer._ready and not streamer._sent  # the stage's end: the last prefetch goes
