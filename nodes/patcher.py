"""The pack's budget, bridged to ComfyUI's memory manager through ComfyUI's own protocol.

Each component in use, and each kept one, is a model ComfyUI manages: the budget loads it with
`comfy.model_management.load_models_gpu` (which first frees what the phase needs: the component's missing weights
plus its activations), as a ModelPatcher whose `partially_unload` / `partially_load` move whole transformer blocks
between the device and block streaming's store (the same units block streaming uses), so when another node needs
room ComfyUI shrinks a transformer instead of dropping it, and grows it back the next time it is loaded. "Unload
models", POST /free, ComfyUI's OOM handling and other nodes' loads all go through this.

ComfyUI watches each loaded model with a weak-reference finalizer that edits its list of loaded models when the
model dies. So the model ComfyUI sees is a small holder of the component: the component can be freed inside
ComfyUI's unload loop (the holder lives on until ComfyUI has dropped its record), and when the budget drops a
component from its own code, the holder dies with it and ComfyUI's finalizer removes the record, as for any model
that goes away.

Dynamic VRAM (ComfyUI 0.16+ on NVIDIA, comfy-aimdo): ComfyUI's own models become `ModelPatcherDynamic`s, whose
`comfy.ops` layers have their weights paged onto the device on demand, a layer at a time, from pinned host memory.
Ours cannot take part: the layers are ltx-core's (`torch.nn.Linear` and the like, not `comfy.ops` layers that
cast through `cast_bias_weight(offloadable=True)`), quantized by our policies into tensor types ComfyUI cannot
page (torchao's subclasses; fp8 weights whose scales live in our modules), and built on the device by the budget,
where ModelPatcherDynamic expects weights on the offload device and loads any non-`comfy.ops` weight whole. So
ComponentPatcher stays a legacy ModelPatcher (`is_dynamic()` False: none of ModelPatcherDynamic's asserts is on
our path), a component is resident or block-streamed by the budget as on any host, and with Dynamic VRAM:
- our pins are asked of and counted by ComfyUI, by their bytes, when block streaming makes them (ComfyPins); a
  later load of a component already whole on the device asks for no pins (ComfyBridge.load). Its first load, which
  registers it, asks what `load_models_gpu` asks of any legacy model (pins the size of the model): ComfyUI gives a
  legacy model no other way to size that request, and model_size() also sizes ComfyUI's VRAM decisions;
- ComfyUI's dynamic models give up their pages before a kept component of ours is shrunk (partially_unload). A
  request for more than the whole component still unloads it at once: ComfyUI does not ask a legacy model to
  shrink then;
- the default budget leaves `--vram-headroom` free as well as `--reserve-vram` (ComfyBridge.reserve_bytes);
- ours are loaded in a `load_models_gpu` call of their own, so no batch of ComfyUI's is made non-dynamic by them.
"""

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..memory.budget import BUDGET
from ..memory.records import ComponentRecord

GIB = 2**30


def dynamic_vram() -> bool:
    """Whether this ComfyUI pages its models' weights in on demand (comfy-aimdo: 0.16+, on by default on NVIDIA;
    never with --cpu). ComfyUI 0.3.75 has no such module."""
    try:
        import comfy.memory_management
    except ImportError:
        return False
    return bool(getattr(comfy.memory_management, "aimdo_enabled", False))


def headroom_bytes() -> int:
    """What Dynamic VRAM keeps free on the device beyond the reserve (--vram-headroom, GB; 0 without it)."""
    if not dynamic_vram():
        return 0
    from comfy.cli_args import args

    return int((getattr(args, "vram_headroom", 0) or 0) * GIB)


class _Holder(torch.nn.Module):
    """What ComfyUI's record points at: the component, until it is freed."""

    def __init__(self, component: torch.nn.Module):
        super().__init__()
        self.component = component


class PackPatcher(comfy.model_patcher.ModelPatcher):
    """What the pack registers with ComfyUI's memory manager: weights the pack itself places on the device, with no
    patches of ComfyUI's (LoRA hooks, low-VRAM casts) to move or count."""

    def current_loaded_device(self):
        return self.load_device

    def model_dtype(self):
        return torch.bfloat16

    def model_patches_to(self, device):
        return None

    def model_patches_models(self) -> list:
        return []

    def lowvram_patch_counter(self) -> int:
        return 0


class ComponentPatcher(PackPatcher):
    """One of our components as ComfyUI sees it: built on its device by the budget (nothing to move when ComfyUI
    loads it), shrunk and grown by whole streaming units, unloaded by dropping it from the budget."""

    def __init__(self, record: ComponentRecord):
        super().__init__(
            _Holder(record.module),
            load_device=record.device,
            offload_device=torch.device("cpu"),
            size=record.device_bytes,
        )
        self.record_key = record.key

    def _record(self) -> ComponentRecord | None:
        record = BUDGET.records.get(self.record_key)
        return record if record is not None and record.module is not None and record.handle is self else None

    def model_size(self) -> int:
        # What the component holds on the device at most while used (its resident part and, streamed, its units in
        # flight), never its streamed remainder: ComfyUI frees 1.1x what a model lacks of its size before loading
        # it, and a remainder that never comes to the device would make it unload other models for nothing. The
        # stage's activations come as load_models_gpu's memory_required (ComfyBridge.load).
        record = self._record()
        return record.device_bytes if record is not None else 0

    def loaded_size(self) -> int:
        # In use, its units in flight are the stage's (the budget made room for them): ComfyUI, which frees 1.1x
        # what a model lacks when loading it, is not made to free more for them than the plan holds.
        record = self._record()
        return record.nbytes + record.in_flight if record is not None else 0

    def pinned_memory_size(self) -> int:
        record = self._record()
        return record.streamer.pinned_bytes() if record is not None and record.streamer is not None else 0

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False) -> int:
        # A number, as the legacy protocol's callers expect (use_more_memory subtracts it); ModelPatcherDynamic's
        # None is for dynamic patchers only. ComfyUI offers what it would leave free beside its own working margin;
        # the budget grows no further than the running stage's room (activations, units in flight, the margin).
        return BUDGET.grow(self.record_key, extra_memory) if self._record() is not None else 0

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False) -> int:
        if self._record() is None:
            return 0
        # With Dynamic VRAM, ComfyUI's order of unloading can reach a kept component of ours while dynamic models
        # still hold pages they would give up on demand (and page back in cheaply): they give them up first, and
        # ours is shrunk only by what is still missing. The bytes freed either way count as freed.
        freed = free_dynamic_pages(self.load_device, memory_to_free, but=self) if dynamic_vram() else 0
        if freed < memory_to_free:
            freed += BUDGET.shrink(self.record_key, memory_to_free - freed)
        return freed

    def detach(self, unpatch_all=True):
        # ComfyUI unloads a model with unpatch_all=True (LoadedModel.model_unload). It calls detach(False) when it
        # moves its record of a model it loads again (the old record of the same model is taken out first: see
        # is_clone), and ModelPatcher.__del__ does too: neither unloads anything.
        if unpatch_all and self._record() is not None:
            BUDGET.unloaded_by_host(self.record_key)
            self.model.component = None
        return self.model

    def is_clone(self, other) -> bool:
        # True for itself only, as ComfyUI's own patchers: load_models_gpu takes a model's earlier record out of its
        # list before it puts the model back in front.
        return other is self


def free_dynamic_pages(device: torch.device, nbytes: int, but=None) -> int:
    """Have ComfyUI's dynamic models on `device` give up up to `nbytes` of paged-in weights, least recently loaded
    first (ModelPatcherDynamic.partially_unload frees pages only: the model stays loaded and pages them back in on
    demand); the bytes freed."""
    freed = 0
    for loaded in reversed(list(mm.current_loaded_models)):
        model = loaded.model
        if freed >= nbytes:
            break
        if model is not None and model is not but and model.is_dynamic() and loaded.device == device:
            freed += model.partially_unload(model.offload_device, nbytes - freed) or 0
    return freed


class ComfyPins:
    """Block streaming's pins as ComfyUI rules them: none with --disable-pinned-memory, none past its cap
    (MAX_PINNED_MEMORY: 45 % of RAM on Windows, more elsewhere), ours counted against that cap with ComfyUI's own. With
    Dynamic VRAM they are also asked of ComfyUI (it makes room among its own models' pins: RAM pressure and its
    registration cap) and counted in its total of pinned memory; elsewhere the count is ours, as ComfyUI counts only
    the pins it registers itself."""

    def __init__(self):
        self.ours = 0  # bytes we pinned, where ComfyUI's total does not count them

    def ask(self, nbytes: int) -> bool:
        if dynamic_vram():
            for make_room in (getattr(mm, "ensure_pin_budget", None), getattr(mm, "ensure_pin_registerable", None)):
                if make_room is not None:
                    make_room(nbytes)
        cap = getattr(mm, "MAX_PINNED_MEMORY", 0)
        return cap > 0 and mm.TOTAL_PINNED_MEMORY + self.ours + nbytes <= cap

    def count(self, nbytes: int) -> None:
        if dynamic_vram():
            mm.TOTAL_PINNED_MEMORY = max(0, mm.TOTAL_PINNED_MEMORY + nbytes)
        else:
            self.ours = max(0, self.ours + nbytes)


def _registered(patcher: ComponentPatcher):
    """ComfyUI's record of the patcher among its loaded models, or None."""
    return next((loaded for loaded in mm.current_loaded_models if loaded.model is patcher), None)


def _kept(device: torch.device, but=None) -> list:
    """ComfyUI's records of what must stay while ours runs on `device`: our components in use (unloaded, they would
    stay on the device anyway, uncounted by ComfyUI) and what holds nothing there (the kept encoded prompts:
    unloading them frees no device memory)."""
    kept = []
    for loaded in mm.current_loaded_models:
        model = loaded.model
        if loaded.device != device or model is None or model is but or not isinstance(model, PackPatcher):
            continue
        record = BUDGET.records.get(model.record_key) if isinstance(model, ComponentPatcher) else None
        if (record is not None and record.in_use and record.handle is model) or model.model_size() == 0:
            kept.append(loaded)
    return kept


class ComfyBridge:
    def reserve_bytes(self, device: torch.device) -> int:
        return mm.extra_reserved_memory() + headroom_bytes()

    def working_floor(self, device: torch.device) -> int:
        # load_models_gpu keeps at least its minimum inference memory (with the reserve in it) free beside any model.
        return max(0, int(mm.minimum_inference_memory()) - mm.extra_reserved_memory())

    def make_room(self, nbytes: int, device: torch.device) -> None:
        # ComfyUI frees nothing for the CPU (its own load_models_gpu does not either).
        if device.type != "cpu":
            mm.free_memory(nbytes + self.reserve_bytes(device), device, keep_loaded=_kept(device))

    def load(self, record: ComponentRecord, working_bytes: int) -> ComponentPatcher:
        patcher = record.handle if isinstance(record.handle, ComponentPatcher) else ComponentPatcher(record)
        record.handle = patcher  # before ComfyUI asks the patcher about its record
        registered = _registered(patcher)
        kept = _kept(record.device, but=patcher) if record.device.type != "cpu" else []
        if dynamic_vram() and registered is not None and not record.streamed and record.device.type != "cpu":
            # Known to ComfyUI, whole on the device: nothing to load. load_models_gpu would ask ComfyUI for pins
            # the size of the whole component (what it asks of any legacy model) though this load pins nothing;
            # room for the phase's activations is made as it would make it, keeping ours.
            needed = max(mm.minimum_inference_memory(), working_bytes + mm.extra_reserved_memory())
            mm.free_memory(needed, record.device, keep_loaded=[registered, *kept])
            return patcher
        if kept:
            # load_models_gpu frees what it asks for without a keep_loaded: what it will ask is made free first,
            # keeping ours in use and the kept prompts, so that it finds the room and unloads nothing.
            missing = patcher.model_size() - patcher.loaded_size()  # the units in flight, when it streams
            asked = missing * 1.1 + max(mm.minimum_inference_memory(), working_bytes + mm.extra_reserved_memory())
            mm.free_memory(asked, record.device, keep_loaded=[*([registered] if registered else []), *kept])
        # Alone in its batch: a batch of ComfyUI's own models is never made non-dynamic by one of ours.
        mm.load_models_gpu([patcher], memory_required=working_bytes)
        return patcher

    def release(self, patcher: ComponentPatcher) -> None:
        patcher.model.component = None
