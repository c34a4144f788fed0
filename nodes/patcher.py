"""The pack's budget, bridged to ComfyUI: its kept components are models ComfyUI's manager knows, so another
node's load_models_gpu, the OOM handler, "unload models" in the page and POST /free evict them; and the
budget asks that manager to free other nodes' models when it needs room.

ComfyUI's manager can only free what it manages (comfy.model_management.current_loaded_models). Each
component the budget keeps is registered there through a ModelPatcher subclass (as ComfyUI-GGUF wraps its
models), whose unload hands the component back to the budget, which drops it.
"""

import logging

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..memory.budget import BUDGET, ComponentRecord

# Patchers ComfyUI has unloaded. Its records hold them only by weakref and watch their model with a finalizer
# that edits its list of loaded models; if a patcher died inside ComfyUI's unload loop, that list would change
# under the loop. They are kept here until ComfyUI has dropped its record, then let go from our own code.
_RETIRED: list = []


class _Holder(torch.nn.Module):
    """What ComfyUI's records point at, instead of the component itself.

    ComfyUI watches the model of each record with a weakref finalizer that edits its list of loaded models
    when the model dies. Unloading ours frees the component at once, inside ComfyUI's loop over that list; if
    the component itself were watched, the list would change under the loop (it did: IndexError in the
    prompt worker). The holder outlives the unload, so the finalizer never fires mid-loop."""

    def __init__(self, component: torch.nn.Module):
        super().__init__()
        self.component = component


class LTX2ComponentPatcher(comfy.model_patcher.ModelPatcher):
    """A component of ours as ComfyUI sees it: already on its device, unloaded as a whole (its weights may be
    quantized tensors ComfyUI's partial-offload code does not know), by dropping it from the budget."""

    def __init__(self, record: ComponentRecord):
        super().__init__(_Holder(record.module), load_device=record.device, offload_device=torch.device("cpu"),
                         size=record.nbytes)
        self.record_key = record.key
        self.record_name = record.label

    def loaded_size(self) -> int:
        held = BUDGET.records.get(self.record_key)
        return self.size if held is not None and held.module is not None else 0

    def current_loaded_device(self):
        return self.load_device

    def model_dtype(self):
        return torch.bfloat16

    def model_patches_to(self, device):
        return None

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False) -> int:
        return 0  # built on its device already

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False) -> int:
        return 0  # all or nothing: ComfyUI then calls detach()

    def detach(self, unpatch_all=True):
        # Also called by ModelPatcher.__del__: only the patcher of the budget's current record may evict it (an
        # old patcher of the same component must not evict the one built since).
        held = BUDGET.records.get(self.record_key)
        if self.model is not None:
            self.model.component = None
        if held is not None and held.handle is self:
            logging.info("LTX-2: ComfyUI's memory manager unloads %s", self.record_name)
            _RETIRED.append(self)
            BUDGET.evict(self.record_key, from_host=True)
        return self.model

    def is_clone(self, other) -> bool:
        return other is self


def _let_go_of_retired() -> None:
    """Forget unloaded patchers whose record ComfyUI has removed (called from the pack's own code only)."""
    _RETIRED[:] = [p for p in _RETIRED if any(loaded.model is p for loaded in mm.current_loaded_models)]


class ComfyBridge:
    def register(self, record: ComponentRecord) -> LTX2ComponentPatcher:
        _let_go_of_retired()
        patcher = LTX2ComponentPatcher(record)
        loaded = mm.LoadedModel(patcher)
        loaded.model_load()  # no weight moves (see the patcher); sets the records free_memory reads
        mm.current_loaded_models.insert(0, loaded)
        return patcher

    def unregister(self, patcher: LTX2ComponentPatcher) -> None:
        _let_go_of_retired()
        for i, loaded in enumerate(mm.current_loaded_models):
            if loaded.model is patcher:
                mm.current_loaded_models.pop(i)
                if loaded.model_finalizer is not None:
                    loaded.model_finalizer.detach()
                break
        patcher.model.component = None

    def free_external(self, nbytes: int, device: torch.device) -> None:
        # ComfyUI frees until `nbytes` are free on the device; on the CPU it does nothing for loads, so it is
        # asked only for real devices, as its own load_models_gpu does.
        if device.type != "cpu" and nbytes > 0:
            mm.free_memory(nbytes, device)
