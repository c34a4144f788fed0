"""Exact lifetimes: in cold_start no component's tensors outlive the block that uses it. When a component is
built, every component used before it that is not still in use is gone: no name, closure or cache of the
pipeline keeps it (the ledger would show it as the sum of both, e.g. Gemma still alive while the 2.6 GiB
embeddings processor loads)."""

import weakref

import torch
from tiny_run import model_of, run_inputs

from ltx2_a2v.ltx2.a2v.graph import two_stage
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.memory.kept_outputs import ENCODED_PROMPTS

CPU = torch.device("cpu")


def test_no_component_outlives_its_block_in_cold_start(tiny_paths, monkeypatch, budget):
    built: list[tuple[str, list[weakref.ref]]] = []
    build_component = ModelSpec.build_component

    def watched(self, name, *args, **kwargs):
        in_use = {r.name.removesuffix(" (stage 2)") for r in budget.records.values() if r.in_use}
        alive = [earlier for earlier, refs in built if earlier not in in_use and any(r() is not None for r in refs)]
        assert not alive, f"building {name} while {alive} still hold tensors"
        module, report, streamer = build_component(self, name, *args, **kwargs)
        built.append((name, [weakref.ref(t) for t in (*module.parameters(), *module.buffers())]))
        return module, report, streamer

    monkeypatch.setattr(ModelSpec, "build_component", watched)
    model = model_of(tiny_paths, quantization="fp8_scaled")
    ENCODED_PROMPTS.clear()  # the text encoder is built: no prompt kept from an earlier test
    budget.begin_run("lifetimes", "fp8_scaled", "cold_start")
    two_stage(model, CPU, run_inputs(), hand_over=False)  # each component freed when its block ends
    names = [name for name, _ in built]
    assert names[:2] == ["text_encoder", "embeddings_processor"] and names[-1] == "video_decoder"
    assert all(r() is None for _, refs in built for r in refs)  # and nothing is held after the run
    assert not budget.records
