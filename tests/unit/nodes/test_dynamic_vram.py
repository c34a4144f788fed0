"""The pack's components under ComfyUI's Dynamic VRAM (0.16+), against the real comfy.model_management and
comfy.model_patcher of the lane's tree (LTX2_COMFYUI), in this process, no server: ours stay legacy patchers
that answer ComfyUI's callers as they expect, are loaded alone, ask ComfyUI for pins only when block streaming
makes them, let dynamic models give up pages first and leave --vram-headroom free.

Dynamic VRAM is on only on an NVIDIA GPU (never with --cpu). Tests that need it on say `mocked_gpu`: they set the
flag ComfyUI's main.py sets when comfy-aimdo starts on a GPU, and stand in for what only a GPU has (torch's
page-locking, CUDA's memory figures, a model whose pages comfy-aimdo maps); ComfyUI's own code runs as it is."""

import re
from pathlib import Path

import comfy.model_management as mm
import comfy.model_patcher
import pytest
import torch

from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.memory import streaming
from ltx2_a2v.memory.budget import BUDGET
from ltx2_a2v.memory.records import ComponentRecord
from ltx2_a2v.nodes import patcher as bridge_module
from ltx2_a2v.nodes.patcher import ComfyBridge, ComfyPins, ComponentPatcher

CPU = torch.device("cpu")
GPU = torch.device("cuda", 0)
GIB = 2**30
TREE = Path(mm.__file__).resolve().parents[1]
VERSION = re.search(r'__version__ = "([^"]+)"', (TREE / "comfyui_version.py").read_text())[1]
HAS_DYNAMIC_VRAM = hasattr(comfy.model_patcher, "ModelPatcherDynamic")
needs_dynamic_vram = pytest.mark.skipif(
    not HAS_DYNAMIC_VRAM,
    reason=f"ComfyUI {VERSION} ({TREE}) has no Dynamic VRAM (ModelPatcherDynamic, 0.16+); "
    "run with LTX2_COMFYUI=<a 0.16+ tree> and its lane's Python",
)


@pytest.fixture()
def bridged():
    BUDGET.bridge, BUDGET.mode = ComfyBridge(), "persistent"
    yield
    BUDGET.free_all()
    BUDGET.bridge, BUDGET.mode = None, "cold_start"


@pytest.fixture()
def dynamic_vram_on(monkeypatch):
    """What ComfyUI's main.py sets once comfy-aimdo has started on an NVIDIA GPU."""
    import comfy.memory_management

    monkeypatch.setattr(comfy.memory_management, "aimdo_enabled", True)


@pytest.fixture()
def kept_transformer(tiny_paths, bridged):
    """The tiny bundle's transformer (fp8_scaled: streamable), kept and registered with ComfyUI on the CPU."""
    bundle = Bundle(tiny_paths["checkpoint"])
    model = ModelSpec(
        bundle, read_checkpoint_config(bundle.checkpoint), quantization="fp8_scaled", residency="persistent"
    )
    with model.component("transformer", CPU):
        pass
    (record,) = BUDGET.records.values()
    return record


def _loaded(patcher):
    return next(loaded for loaded in mm.current_loaded_models if loaded.model is patcher)


def test_ours_answer_comfyuis_legacy_callers_as_they_expect(kept_transformer):
    """Any tree: a legacy patcher (dynamic models' asserts are never on its path), sizes in bytes, partially_load a
    number (use_more_memory subtracts it: ModelPatcherDynamic's None would raise there), no pins on a CPU."""
    patcher = kept_transformer.handle
    assert isinstance(patcher, ComponentPatcher)
    if HAS_DYNAMIC_VRAM:  # ComfyUI's protocol for RAM and pins, 0.16+
        assert not isinstance(patcher, comfy.model_patcher.ModelPatcherDynamic) and not patcher.is_dynamic()
        assert patcher.loaded_ram_size() == 0 and patcher.partially_unload_ram(GIB) == 0
    assert patcher.model_size() == patcher.loaded_size() == kept_transformer.nbytes > 0
    assert patcher.pinned_memory_size() == 0  # a spill file on a CPU, not pins
    loaded = _loaded(patcher)
    block = kept_transformer.streamer.unit_bytes("transformer_blocks.1")
    assert not loaded.model_unload(block // 2)  # shrunk by one block, still loaded
    assert patcher.loaded_size() == kept_transformer.nbytes == patcher.model_size() - block
    mm.use_more_memory(GIB, [loaded], CPU)  # ComfyUI's caller of partially_load: grows it back
    assert patcher.loaded_size() == patcher.model_size() and not kept_transformer.streamed


@needs_dynamic_vram
def test_comfyuis_pin_eviction_and_non_dynamic_frees_pass_ours_by(kept_transformer):
    """0.16+: a non-dynamic free asking for pins (what load_models_gpu asks for any legacy batch) evicts pins of
    dynamic models only; ours has none of their pin state and is never asked for it."""
    patcher = kept_transformer.handle
    mm.free_memory(0, CPU, pins_required=64 * GIB)
    assert list(mm.models_for_pin_eviction(None)) == [] and _loaded(patcher).model is patcher
    assert mm.free_pins(GIB) == 0 and kept_transformer.module is not None


def test_ours_are_loaded_alone_never_in_a_batch_of_comfyuis(tiny_paths, bridged, monkeypatch):
    """Any tree: every load_models_gpu call a run's component makes holds that component and nothing else, so no
    batch of ComfyUI's own (dynamic) models is made non-dynamic by ours, and ours adds no model to a batch."""
    batches = []
    real = mm.load_models_gpu
    monkeypatch.setattr(
        mm, "load_models_gpu", lambda models, *a, **k: (batches.append(list(models)), real(models, *a, **k))[1]
    )
    bundle = Bundle(tiny_paths["checkpoint"])
    model = ModelSpec(
        bundle, read_checkpoint_config(bundle.checkpoint), quantization="fp8_scaled", residency="persistent"
    )
    for _ in range(2):
        with model.component("transformer", CPU):
            pass
    (record,) = BUDGET.records.values()
    assert batches == [[record.handle], [record.handle]] and record.handle.model_patches_models() == []


def test_without_dynamic_vram_the_reserve_is_comfyuis_alone():
    """0.3.75, --cpu, or Dynamic VRAM off: --reserve-vram only, as before."""
    assert not bridge_module.dynamic_vram()
    assert ComfyBridge().reserve_bytes(GPU) == mm.extra_reserved_memory()


@needs_dynamic_vram
def test_the_default_budget_leaves_dynamic_vram_headroom_mocked_gpu(dynamic_vram_on, monkeypatch):
    from comfy.cli_args import args

    monkeypatch.setattr(args, "vram_headroom", 1.5)
    assert ComfyBridge().reserve_bytes(GPU) == mm.extra_reserved_memory() + int(1.5 * GIB)
    monkeypatch.setattr(args, "vram_headroom", 0)
    assert ComfyBridge().reserve_bytes(GPU) == mm.extra_reserved_memory()


@pytest.fixture()
def pinning_without_a_gpu(monkeypatch):
    """torch page-locks host memory through CUDA: without a GPU a pinned tensor is a plain copy. ComfyUI allows pins
    on an NVIDIA GPU (its cap, MAX_PINNED_MEMORY, is -1 on a CPU)."""
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self.clone())
    monkeypatch.setattr(mm, "MAX_PINNED_MEMORY", 64 * GIB)


@needs_dynamic_vram
def test_streamings_pins_are_asked_of_and_counted_by_comfyui_mocked_gpu(
    dynamic_vram_on, pinning_without_a_gpu, monkeypatch
):
    asked = []
    for name in ("ensure_pin_budget", "ensure_pin_registerable"):
        real = getattr(mm, name)
        monkeypatch.setattr(
            mm, name, lambda size, *a, real=real, name=name, **k: (asked.append((name, size)), real(size, *a, **k))[1]
        )
    monkeypatch.setattr(streaming, "HOST_PINS", ComfyPins())
    start = mm.TOTAL_PINNED_MEMORY
    store = streaming.PinnedStore()
    store.put("a", torch.ones(1000, dtype=torch.bfloat16))
    store.put("b", torch.ones(3000, dtype=torch.uint8))
    assert asked == [
        ("ensure_pin_budget", 2000),
        ("ensure_pin_registerable", 2000),
        ("ensure_pin_budget", 3000),
        ("ensure_pin_registerable", 3000),
    ]
    assert mm.TOTAL_PINNED_MEMORY == start + 5000
    store.pop("a")  # a unit brought back onto the device
    assert mm.TOTAL_PINNED_MEMORY == start + 3000
    del store  # the component is dropped: its pins go from ComfyUI's count
    assert mm.TOTAL_PINNED_MEMORY == start


def test_without_dynamic_vram_pins_are_torchs_alone_mocked_gpu(pinning_without_a_gpu, monkeypatch):
    """Any tree, Dynamic VRAM off: nothing asked, nothing counted, as before."""
    monkeypatch.setattr(streaming, "HOST_PINS", ComfyPins())
    start = mm.TOTAL_PINNED_MEMORY
    store = streaming.PinnedStore()
    store.put("a", torch.ones(1000))
    assert mm.TOTAL_PINNED_MEMORY == start
    del store
    assert mm.TOTAL_PINNED_MEMORY == start


@needs_dynamic_vram
def test_loading_a_kept_component_asks_comfyui_for_no_pins_mocked_gpu(dynamic_vram_on, bridged, monkeypatch):
    """The first load registers the component (load_models_gpu, which sizes its pin request by the component, as
    for any legacy model); a later load of the same whole component pins nothing and asks for no pins: ComfyUI
    only makes room for the phase's activations, keeping ours."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * GIB, 80 * GIB))
    monkeypatch.setattr(
        torch.cuda, "memory_stats", lambda device=None: {"active_bytes.all.current": 0, "reserved_bytes.all.current": 0}
    )
    frees = []
    real = mm.free_memory
    monkeypatch.setattr(mm, "free_memory", lambda *a, **k: (frees.append((a, k)), real(*a, **k))[1])
    module = torch.nn.Linear(64, 64)
    record = ComponentRecord(("dynamic-vram-test",), "stand-in component", module, 64 * 65 * 4, GPU, "none")
    BUDGET.records[record.key] = record
    try:
        BUDGET.bridge.load(record, 1000)
        assert [k.get("pins_required") for _, k in frees] == [record.nbytes]  # load_models_gpu's request
        frees.clear()
        BUDGET.bridge.load(record, 1000)
        ((args, kwargs),) = frees
        assert args[1] == GPU and kwargs.get("pins_required", 0) == 0
        assert [loaded.model for loaded in kwargs["keep_loaded"]] == [record.handle]
        assert args[0] == max(mm.minimum_inference_memory(), 1000 + mm.extra_reserved_memory())
    finally:
        mm.current_loaded_models[:] = [m for m in mm.current_loaded_models if m.model is not record.handle]
        BUDGET.records.pop(record.key, None)


class _PagedModel(comfy.model_patcher.ModelPatcher):
    """Stands in for a ModelPatcherDynamic (which needs a GPU for comfy-aimdo's pages): `paged` bytes on the
    device that partially_unload gives up, the model staying loaded."""

    def __init__(self, paged: int):
        super().__init__(torch.nn.Linear(4, 4), load_device=CPU, offload_device=CPU, size=paged)
        self.paged = paged

    def is_dynamic(self):
        return True

    def loaded_size(self):
        return self.paged

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
        freed = min(self.paged, memory_to_free)
        self.paged -= freed
        return freed


@needs_dynamic_vram
def test_dynamic_models_give_up_pages_before_a_kept_component_shrinks_mocked_gpu(dynamic_vram_on, kept_transformer):
    record = kept_transformer
    block = record.streamer.unit_bytes("transformer_blocks.1")
    paged = _PagedModel(block)
    stand_in = mm.LoadedModel(paged)
    mm.current_loaded_models.append(stand_in)
    try:
        ours = _loaded(record.handle)
        # ComfyUI's order reaches ours first: the dynamic model's pages go, ours stays whole.
        assert not ours.model_unload(block // 2)
        assert paged.paged == block - block // 2 and not record.streamed
        # More than its pages are left: it gives all of them, ours streams a block for the rest.
        assert not ours.model_unload(block)
        assert paged.paged == 0 and record.streamer.streamed == {"transformer_blocks.1"}
    finally:
        mm.current_loaded_models.remove(stand_in)
