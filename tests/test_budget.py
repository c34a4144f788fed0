"""The budget on its own: cold_start holds nothing after use, persistent keeps what fits and evicts idle
components to make room (most recently used first: runs repeat one order), a negative budget is refused, the
run report records each stage."""

import pytest
import torch

from ltx2_a2v.ltx2.budget import VramBudget
from ltx2_a2v.ltx2.checkpoint import read_checkpoint_config
from ltx2_a2v.ltx2.components import Bundle
from ltx2_a2v.ltx2.errors import LTX2InputError
from ltx2_a2v.ltx2.model_handle import LTX2Model
from ltx2_a2v.quant.loading import estimate_bytes

CPU = torch.device("cpu")


@pytest.fixture()
def model(tiny_paths) -> LTX2Model:
    bundle = Bundle(checkpoint=tiny_paths["checkpoint"], text_encoder=tiny_paths["text_encoder"],
                    distilled_lora=tiny_paths["distilled_lora"])
    return LTX2Model(bundle, read_checkpoint_config(bundle.checkpoint), quantization="fp8_scaled")


def use(budget: VramBudget, model: LTX2Model, name: str):
    def build():
        return model.build(name, CPU)[0]

    return budget.use(model.component_key(name, CPU), name, "fp8_scaled", CPU, estimate_bytes(model.bundle, name, "fp8_scaled"), build)


def test_cold_start_holds_nothing_after_use(model):
    budget = VramBudget()
    with use(budget, model, "transformer") as transformer:
        assert budget.resident_bytes() > 0 and transformer is not None
    assert budget.resident_bytes() == 0 and not budget.entries


def test_persistent_keeps_and_reuses_then_evicts_an_idle_component(model):
    budget = VramBudget()
    budget.mode = "persistent"
    with use(budget, model, "transformer") as first:
        pass
    with use(budget, model, "transformer") as again:
        assert again is first  # reused, not rebuilt
    transformer_bytes = budget.resident_bytes()
    budget.budget_bytes = transformer_bytes + estimate_bytes(model.bundle, "video_decoder", "none") // 2
    with use(budget, model, "video_decoder"):
        names = [e.name for e in budget.entries.values()]
    assert names == ["video_decoder"]  # the idle transformer made room


@pytest.mark.parametrize("name", ["transformer", "video_decoder", "text_encoder"])
def test_estimate_from_the_headers_is_close_to_what_is_built(model, name):
    _, report = model.build(name, CPU)
    estimate = estimate_bytes(model.bundle, name, model.policy_for(name))
    assert abs(estimate - report.resident_bytes) / report.resident_bytes < 0.1


@pytest.mark.parametrize("policy", ["fp8_scaled", "fp8_cast", "none"])
def test_estimate_of_an_fp8_release_checkpoint_is_close_to_what_is_built(tiny_paths, policy):
    # Its block weights are stored in fp8: kept so by the fp8 policies, dequantized to bf16 by the others.
    bundle = Bundle(checkpoint=tiny_paths["fp8_checkpoint"], text_encoder=tiny_paths["text_encoder"])
    fp8_model = LTX2Model(bundle, read_checkpoint_config(bundle.checkpoint), quantization=policy)
    _, report = fp8_model.build("transformer", CPU)
    estimate = estimate_bytes(bundle, "transformer", policy)
    assert abs(estimate - report.resident_bytes) / report.resident_bytes < 0.1, (estimate, report.resident_bytes)


def test_negative_budget_is_refused_by_name():
    with pytest.raises(LTX2InputError, match="budget_gb: -1"):
        VramBudget().set_budget_gb(-1)


def test_run_report_records_stages_with_time_and_peak():
    budget = VramBudget()
    budget.begin_run("run-1", "fp8_scaled", "cold_start")
    with budget.stage("stage 1 denoise", CPU):
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB held during the stage
        del block
    report = budget.last_run.as_dict()
    assert report["stages"][0]["name"] == "stage 1 denoise" and report["stages"][0]["peak_bytes"] > 64 * 2**20
    assert "stage 1 denoise" in budget.last_run.text()


def test_transformer_larger_than_the_budget_runs_streamed_with_the_same_output(model):
    from ltx2_a2v.ltx2.budget import BUDGET
    from probe import denoise_step, probe_inputs

    inputs = probe_inputs(model.config, dtype=torch.float32)  # the library computes in float32 on a CPU
    full, report = model.build("transformer", CPU)
    expected = denoise_step(full, *inputs)
    BUDGET.budget_bytes = estimate_bytes(model.bundle, "transformer", "fp8_scaled") // 4
    try:
        with model.component("transformer", CPU) as transformer:
            entry = next(iter(BUDGET.entries.values()))
            assert entry.name == "transformer, streamed"
            assert entry.nbytes < report.resident_bytes  # the blocks are out of memory between uses
            out = denoise_step(transformer, *inputs)
            del transformer
    finally:
        BUDGET.budget_bytes = None
    assert all(torch.equal(a, b) for a, b in zip(out, expected))
    assert not BUDGET.entries


def test_split_keeps_the_units_that_fit_with_one_in_flight():
    from ltx2_a2v.ltx2.block_streaming import split_units

    # The 22B transformer in fp8_scaled by the README's arithmetic: 48 blocks of 370 MiB, 815 MiB of other layers.
    units = [f"transformer_blocks.{i}" for i in range(48)]
    sizes = dict.fromkeys(units, 370)
    resident, streamed = split_units(units, sizes, 815, room=14 * 1024)  # VRAMGuard budget_gb 14 (24 GB GPUs)
    assert resident == units[:35] and streamed == units[35:]  # 815 + 35 x 370 + 370 in flight <= 14336 MiB
    assert split_units(units, sizes, 815, room=1000) == ([], units)


def test_partly_streamed_transformer_keeps_its_resident_blocks_and_gives_the_same_output(model):
    from probe import denoise_step, probe_inputs

    inputs = probe_inputs(model.config, dtype=torch.float32)  # the library computes in float32 on a CPU
    expected = denoise_step(model.build("transformer", CPU)[0], *inputs)
    transformer, report = model.build_streamed(CPU, streamed=["transformer_blocks.1"])
    kept, out_of_memory = (transformer.transformer_blocks[i].ff.net[2].weight for i in (0, 1))
    assert kept.device.type == "cpu" and out_of_memory.device.type == "meta"
    assert "streamed: 1 of 2 units" in report.summary()
    assert all(torch.equal(a, b) for a, b in zip(denoise_step(transformer, *inputs), expected))


def test_streaming_refuses_torchao_policies_by_name(model):
    from ltx2_a2v.ltx2.block_streaming import check_streamable

    with pytest.raises(LTX2InputError, match="block streaming.*torchao_int8_weight_only.*fp8_scaled"):
        check_streamable("torchao_int8_weight_only")


def test_persistent_over_budget_keeps_some_big_components_across_runs():
    """A run uses its components in the same order each time (text encoder, stage-1 transformer, VAE and upsampler,
    stage-2 transformer, decoder). When they do not all fit, least-recently-used eviction would throw out exactly
    the one needed next and rebuild all three big ones every run; the budget must keep some of them instead.
    Sizes are the 22B model's in GiB (arithmetic, see the README), as KiB here: a budget of 46 for 48.9."""
    sizes = {"text_encoder": 12.7, "embeddings_processor": 1.0, "audio_encoder": 0.1, "video_encoder": 0.5,
             "transformer": 18.1, "spatial_upsampler": 0.5, "transformer (stage 2)": 18.1, "video_decoder": 0.8}
    run = ["text_encoder", "embeddings_processor", "audio_encoder", "video_encoder", "transformer", "video_encoder",
           "spatial_upsampler", "video_encoder", "transformer (stage 2)", "video_decoder"]
    budget = VramBudget()
    budget.mode = "persistent"
    budget.budget_bytes = 46 * 1024
    builds = []

    def build(name):
        builds.append(name)
        return torch.nn.Linear(1, int(sizes[name] * 1024) // 4, bias=False)  # float32: 4 bytes per weight

    big = {"text_encoder", "transformer", "transformer (stage 2)"}
    per_run = []
    for _ in range(6):
        before = len(builds)
        for name in run:
            nbytes = int(sizes[name] * 1024) // 4 * 4
            with budget.use((name,), name, "none", CPU, nbytes, lambda name=name: build(name)):
                pass
            assert budget.resident_bytes() <= budget.budget_bytes
        per_run.append(sum(1 for name in builds[before:] if name in big))
    # Three big components cycling through room for two: at best one is rebuilt at every other stage, 1.5 a run
    # on average. Least-recently-used eviction rebuilt all three on every run: [3, 3, 3, 3, 3, 3].
    assert per_run[0] == 3
    assert all(n <= 2 for n in per_run[1:]) and sum(per_run[1:]) <= 1.5 * len(per_run[1:]), per_run
