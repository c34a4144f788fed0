"""The kept encoded prompts (memory/kept_outputs.py), known to ComfyUI's memory manager so that "unload models",
POST /free and ComfyUI's own unloading empty them as they unload any model.

The cache is registered as a model of the run's device holding nothing there (its tensors are on the CPU): when
ComfyUI frees memory on that device it unloads it like any other model, and unloading it empties the cache. So a
repeated prompt is not encoded again until ComfyUI is asked for memory, and then the cache never stands in the
way."""

import comfy.model_management as mm
import torch

from ..memory.kept_outputs import KeptOutputs
from .patcher import PackPatcher


class _Holder(torch.nn.Module):
    """What ComfyUI's record points at (it watches the model with a weak reference): lives as long as the
    registration."""


class KeptOutputsPatcher(PackPatcher):
    def __init__(self, cache: KeptOutputs, device: torch.device):
        super().__init__(_Holder(), load_device=device, offload_device=torch.device("cpu"), size=0)
        self.cache = cache

    def model_size(self) -> int:
        return 0

    def loaded_size(self) -> int:
        return 0

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False) -> int:
        return 0

    def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False) -> int:
        return 0

    def detach(self, unpatch_all=True):
        # unpatch_all=True: ComfyUI unloads it (see nodes/patcher.py's ComponentPatcher.detach).
        # The patcher (and its holder) lives on in `_registered`: ComfyUI drops its record after this returns, and
        # a holder dying now would make ComfyUI's finalizer edit the list it is iterating over.
        if unpatch_all:
            self.cache.clear()
        return self.model

    def is_clone(self, other) -> bool:
        return other is self


_registered: dict[str, KeptOutputsPatcher] = {}  # one per device, for the process


def register(cache: KeptOutputs, device: str) -> None:
    """Called when the cache keeps an entry: the cache becomes (or stays) one of ComfyUI's loaded models of
    `device`."""
    patcher = _registered.get(device)
    if patcher is None or patcher.cache is not cache:
        patcher = _registered[device] = KeptOutputsPatcher(cache, torch.device(device))
    if not any(m.model is patcher for m in mm.current_loaded_models):
        mm.load_models_gpu([patcher])
