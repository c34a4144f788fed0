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
"""

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..memory.budget import BUDGET
from ..memory.records import ComponentRecord


class _Holder(torch.nn.Module):
    """What ComfyUI's record points at: the component, until it is freed."""

    def __init__(self, component: torch.nn.Module):
        super().__init__()
        self.component = component


class ComponentPatcher(comfy.model_patcher.ModelPatcher):
    """One of our components as ComfyUI sees it: built on its device by the budget (nothing to move when ComfyUI
    loads it), shrunk and grown by whole streaming units, unloaded by dropping it from the budget."""

    def __init__(self, record: ComponentRecord):
        super().__init__(_Holder(record.module), load_device=record.device, offload_device=torch.device("cpu"),
                         size=record.total_bytes)
        self.record_key = record.key

    def _record(self) -> ComponentRecord | None:
        record = BUDGET.records.get(self.record_key)
        return record if record is not None and record.module is not None and record.handle is self else None

    def model_size(self) -> int:
        record = self._record()
        return record.total_bytes if record is not None else 0

    def loaded_size(self) -> int:
        record = self._record()
        return record.nbytes if record is not None else 0

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

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False) -> int:
        return BUDGET.grow(self.record_key, extra_memory) if self._record() is not None else 0

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False) -> int:
        return BUDGET.shrink(self.record_key, memory_to_free) if self._record() is not None else 0

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


class ComfyBridge:
    def reserve_bytes(self, device: torch.device) -> int:
        return mm.extra_reserved_memory()

    def make_room(self, nbytes: int, device: torch.device) -> None:
        # ComfyUI frees nothing for the CPU (its own load_models_gpu does not either).
        if device.type != "cpu":
            mm.free_memory(nbytes + mm.extra_reserved_memory(), device)

    def load(self, record: ComponentRecord, working_bytes: int) -> ComponentPatcher:
        patcher = record.handle if isinstance(record.handle, ComponentPatcher) else ComponentPatcher(record)
        record.handle = patcher  # before ComfyUI asks the patcher about its record
        mm.load_models_gpu([patcher], memory_required=working_bytes)
        return patcher

    def release(self, patcher: ComponentPatcher) -> None:
        patcher.model.component = None
