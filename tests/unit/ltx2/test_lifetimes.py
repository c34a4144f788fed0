"""Exact lifetimes: in cold_start no component's tensors outlive the block that uses it. When a component is
built, every component used before it that is not still in use is gone: no name, closure or cache of the
pipeline keeps it (the ledger would show it as the sum of both, e.g. Gemma still alive while the 2.6 GiB
embeddings processor loads)."""

import math
import weakref

import torch

from ltx2_a2v.ltx2.a2v import stages
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.memory.kept_outputs import ENCODED_PROMPTS

CPU = torch.device("cpu")


def test_no_component_outlives_its_block_in_cold_start(tiny_paths, monkeypatch, budget):
    built: list[tuple[str, list[weakref.ref]]] = []
    materialize = ModelSpec.materialize

    def watched(self, name, *args, **kwargs):
        in_use = {r.name.removesuffix(" (stage 2)") for r in budget.records.values() if r.in_use}
        alive = [earlier for earlier, refs in built if earlier not in in_use and any(r() is not None for r in refs)]
        assert not alive, f"building {name} while {alive} still hold tensors"
        module, report, streamer = materialize(self, name, *args, **kwargs)
        built.append((name, [weakref.ref(t) for t in (*module.parameters(), *module.buffers())]))
        return module, report, streamer

    monkeypatch.setattr(ModelSpec, "materialize", watched)
    bundle = Bundle(
        tiny_paths["checkpoint"],
        tiny_paths["text_encoder"],
        tiny_paths["spatial_upsampler"],
        tiny_paths["distilled_lora"],
    )
    model = ModelSpec(bundle, read_checkpoint_config(bundle.checkpoint), quantization="fp8_scaled")
    ENCODED_PROMPTS.clear()  # the text encoder is built: no prompt kept from an earlier test
    budget.begin_run("lifetimes", "fp8_scaled", "cold_start")
    image = torch.rand(1, 96, 128, 3, generator=torch.Generator().manual_seed(0))
    voice = torch.sin(2 * math.pi * 220 * torch.arange(16000) / 16000).repeat(1, 2, 1)
    latent = stages.sample_base(
        model, CPU, image, voice, 16000, "A woman speaks.", "blurry", 1, 64, 64, 9, 24.0, 2, 3.0
    )
    latent = stages.sample_refine(model, CPU, stages.upscale(model, CPU, latent), "A woman speaks.", 1)
    stages.decode(model, CPU, latent)
    names = [name for name, _ in built]
    assert names[:2] == ["text_encoder", "embeddings_processor"] and names[-1] == "video_decoder"
    assert all(r() is None for _, refs in built for r in refs)  # and nothing is held after the run
    assert not budget.records
