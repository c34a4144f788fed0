"""The kept encoded prompts are one of ComfyUI's loaded models (holding nothing on the device): ComfyUI's "unload
models" (POST /free) empties them, and keeping more does not register them twice."""

import comfy.model_management as mm
import torch

from ltx2_a2v.memory.kept_outputs import KeptOutputs
from ltx2_a2v.nodes.kept_prompts import KeptOutputsPatcher, register


def registered(cache: KeptOutputs) -> list:
    return [m for m in mm.current_loaded_models if isinstance(m.model, KeptOutputsPatcher) and m.model.cache is cache]


def test_comfyuis_unload_models_empties_the_kept_prompts():
    cache = KeptOutputs("test prompts", max_entries=4, max_bytes=2**20)
    cache.on_keep = register
    device = str(mm.get_torch_device())
    cache.put(("a",), "a", (torch.zeros(10),), device)
    cache.put(("b",), "b", (torch.zeros(10),), device)
    assert len(cache) == 2 and len(registered(cache)) == 1
    mm.free_memory(1024, mm.get_torch_device())  # room ComfyUI has: nothing unloaded
    assert len(cache) == 2
    mm.unload_all_models()  # the page's "unload models", POST /free
    assert len(cache) == 0 and registered(cache) == []
    cache.put(("c",), "c", (torch.zeros(10),), device)  # kept again: registered again
    assert len(registered(cache)) == 1
    mm.unload_all_models()
    assert len(cache) == 0
