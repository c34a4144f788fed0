"""Components through the spec and the process's budget: estimates from one read of the headers match what is
built, a build reads each header once and makes one meta model, a transformer over the budget is streamed with
the same output, torchao policies that cannot stream are refused by name."""

import pytest
import torch
from probe import denoise_step, probe_inputs

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.components import plan as plan_module
from ltx2_a2v.ltx2.components import table as table_module
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files import safetensors_file
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.memory.budget import BUDGET

CPU = torch.device("cpu")


@pytest.fixture()
def model(tiny_paths) -> ModelSpec:
    bundle = Bundle(
        checkpoint=tiny_paths["checkpoint"],
        text_encoder=tiny_paths["text_encoder"],
        distilled_lora=tiny_paths["distilled_lora"],
    )
    return ModelSpec(bundle, read_checkpoint_config(bundle.checkpoint), quantization="fp8_scaled")


@pytest.fixture()
def small_budget(budget):
    """The process's budget set to a size for one test (the `budget` fixture gives it back as it was)."""

    def set_to(nbytes: int) -> None:
        budget.budget_bytes = nbytes

    return set_to


@pytest.mark.parametrize("name", ["transformer", "video_decoder", "text_encoder"])
def test_estimate_from_the_headers_is_close_to_what_is_built(model, name):
    _, report, _ = model.build_component(name, CPU)
    assert abs(model.estimate_bytes(name) - report.resident_bytes) / report.resident_bytes < 0.1


@pytest.mark.parametrize("policy", ["fp8_scaled", "fp8_cast", "none"])
def test_estimate_of_an_fp8_release_checkpoint_is_close_to_what_is_built(tiny_paths, policy):
    # Its block weights are stored in fp8: kept so by the fp8 policies, dequantized to bf16 by the others.
    bundle = Bundle(checkpoint=tiny_paths["fp8_checkpoint"], text_encoder=tiny_paths["text_encoder"])
    fp8_model = ModelSpec(bundle, read_checkpoint_config(bundle.checkpoint), quantization=policy)
    _, report, _ = fp8_model.build_component("transformer", CPU)
    assert abs(fp8_model.estimate_bytes("transformer") - report.resident_bytes) / report.resident_bytes < 0.1


def test_a_build_through_the_budget_reads_the_header_once_and_makes_one_meta_model(model, monkeypatch):
    headers, metas = [], []
    read = safetensors_file.read_header

    def counting_read(path):
        headers.append(str(path))
        return read(path)

    monkeypatch.setattr(plan_module, "read_header", counting_read)
    configurator = table_module.CONFIGURATORS["transformer"]
    monkeypatch.setitem(
        table_module.CONFIGURATORS,
        "transformer",
        type(
            "Counting",
            (),
            {"from_config": staticmethod(lambda config: metas.append(1) or configurator.from_config(config))},
        ),
    )
    with model.component("transformer", CPU):
        pass
    assert headers == [str(model.bundle.checkpoint)] and len(metas) == 1


def test_transformer_larger_than_the_budget_runs_streamed_with_the_same_output(model, small_budget):
    inputs = probe_inputs(model.config, dtype=torch.float32)  # the library computes in float32 on a CPU
    full, report, _ = model.build_component("transformer", CPU)
    expected = denoise_step(full, *inputs)
    small_budget(model.estimate_bytes("transformer") // 4)
    with model.component("transformer", CPU) as transformer:
        (record,) = BUDGET.records.values()
        assert record.label == "transformer, streamed" and record.streamed
        assert record.nbytes < report.resident_bytes  # the blocks are out of memory between uses
        out = denoise_step(transformer, *inputs)
        del transformer
    assert all(torch.equal(a, b) for a, b in zip(out, expected))
    assert not BUDGET.records


def test_partly_streamed_transformer_keeps_its_resident_blocks_and_gives_the_same_output(model):
    inputs = probe_inputs(model.config, dtype=torch.float32)
    expected = denoise_step(model.build_component("transformer", CPU)[0], *inputs)
    transformer, report, _ = model.build_component("transformer", CPU, streamed=["transformer_blocks.1"])
    kept, out_of_memory = (transformer.transformer_blocks[i].ff.net[2].weight for i in (0, 1))
    assert kept.device.type == "cpu" and out_of_memory.device.type == "meta"
    assert "streamed: 1 of 2 units" in report.summary()
    assert all(torch.equal(a, b) for a, b in zip(denoise_step(transformer, *inputs), expected))


def test_a_torchao_transformer_over_the_budget_is_refused_by_name(model, small_budget):
    torchao = ModelSpec(model.bundle, model.config, quantization="torchao_int8_weight_only")
    small_budget(torchao.estimate_bytes("transformer") // 4)
    with pytest.raises(LTX2InputError, match="block streaming.*not torchao_int8_weight_only.*Pick fp8_scaled"):
        with torchao.component("transformer", CPU):
            pass


@pytest.mark.parametrize("policy", ["none", "fp8_scaled"])
def test_gemma_larger_than_the_budget_streams_its_decoder_layers_with_the_same_encoding(model, small_budget, policy):
    spec = ModelSpec(model.bundle, model.config, text_encoder_quantization=policy)
    with torch.inference_mode():
        expected, _ = spec.build_component("text_encoder", CPU)[0].encode("A young woman speaks calmly.")
        small_budget(spec.estimate_bytes("text_encoder") * 3 // 4)
        with spec.component("text_encoder", CPU) as encoder:
            (record,) = BUDGET.records.values()
            assert record.streamed and record.streamer.streamed <= {
                f"model.model.language_model.layers.{i}" for i in range(2)
            }
            hidden, _ = encoder.encode("A young woman speaks calmly.")
            del encoder
    assert all(torch.equal(a, b) for a, b in zip(hidden, expected))


def test_a_text_encoder_that_cannot_stream_is_refused_naming_its_input_before_a_byte_is_read(model, small_budget):
    from ltx2_a2v.memory.reads import bytes_read

    torchao = ModelSpec(model.bundle, model.config, text_encoder_quantization="torchao_int8_weight_only")
    small_budget(torchao.estimate_bytes("text_encoder") // 2)
    before = bytes_read()
    with pytest.raises(LTX2InputError, match=r"^text_encoder_quantization: the text_encoder does not fit .*fp8_scaled"):
        with torchao.component("text_encoder", CPU):
            pass
    assert bytes_read() == before and not BUDGET.records
