"""ComfyUI's own memory manager (comfy.model_management, in this process, no server) and a kept transformer:
registered through load_models_gpu, shrunk a whole block at a time when ComfyUI needs room instead of being
dropped, grown back when ComfyUI loads it again, dropped on "unload all"; the output never changes."""

import comfy.model_management as mm
import pytest
import torch
from probe import denoise_step, probe_inputs

from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.nodes.patcher import ComfyBridge

CPU = torch.device("cpu")


@pytest.fixture()
def bridged(budget):
    budget.bridge, budget.mode = ComfyBridge(), "persistent"
    return budget


def test_comfyui_shrinks_a_kept_transformer_by_blocks_grows_it_back_and_unloads_it(tiny_paths, bridged):
    bundle = Bundle(tiny_paths["checkpoint"])
    model = ModelSpec(
        bundle, read_checkpoint_config(bundle.checkpoint), quantization="fp8_scaled", residency="persistent"
    )
    inputs = probe_inputs(model.config, dtype=torch.float32)
    with model.component("transformer", CPU) as transformer:
        expected = denoise_step(transformer, *inputs)
        del transformer
    (record,) = bridged.records.values()
    assert any(loaded.model is record.handle for loaded in mm.current_loaded_models)  # ComfyUI knows it
    whole, block = record.nbytes, record.streamer.unit_bytes("transformer_blocks.1")

    # Another model needs half a block more than is free: ComfyUI asks ours to give back that much.
    mm.free_memory(mm.get_free_memory(CPU) + block // 2, CPU)
    assert record.module is not None and record.streamer.streamed == {"transformer_blocks.1"}
    assert record.nbytes == whole - block and record.label == "transformer, streamed"
    with model.component("transformer", CPU) as transformer:  # loaded again through load_models_gpu: grown back
        assert record.streamer.streamed == set() and record.nbytes == whole
        assert all(torch.equal(a, b) for a, b in zip(denoise_step(transformer, *inputs), expected))
        del transformer

    mm.unload_all_models()  # the page's "unload models"
    assert not bridged.records and not any(getattr(m.model, "record_key", None) for m in mm.current_loaded_models)
