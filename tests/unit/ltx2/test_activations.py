"""Activations in the budget, on the `wide` preset (the 22B transformer's widths): the estimate of each stage
matches the device-memory ledger within 20 %, and a transformer run under a budget of a quarter of its size stays
within the budget, one unit in flight and its activations."""

import pytest
import torch
from tiny_run import model_of, portrait, run_inputs

from ltx2_a2v.ltx2.a2v.graph import two_stage
from ltx2_a2v.ltx2.components import activations
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.files.gemma_folder import GemmaRoot
from ltx2_a2v.memory.budget import BUDGET
from ltx2_a2v.memory.kept_outputs import ENCODED_PROMPTS
from ltx2_a2v.memory.streaming import units_in_flight
from ltx2_a2v.quant import POLICIES

CPU = torch.device("cpu")
MIB = 2**20
pytestmark = pytest.mark.long


def wide_model(paths, residency: str) -> ModelSpec:
    return model_of(paths, quantization="fp8_scaled", residency=residency)


def run(model: ModelSpec, width: int, height: int, frames: int, run_id: str) -> dict:
    ENCODED_PROMPTS.clear()  # each run measures the text encoder's activations: none kept from the run before
    BUDGET.begin_run(run_id, model.quantization, model.residency)
    inputs = run_inputs(2.0, image=portrait(240, 320), seed=3, width=width // 2, height=height // 2, num_frames=frames)
    two_stage(model, CPU, inputs, hand_over=False)
    return {p.name + ("" if p.name != "image encode" else f" {i}"): p for i, p in enumerate(BUDGET.last_run.phases)}


def estimates(model: ModelSpec, width: int, height: int, frames: int) -> dict[str, int]:
    """Each stage's estimate (ltx2/components/activations.py) plus the largest upcast of the components it uses."""

    def upcast(label: str) -> int:
        return next(r.upcast_bytes for r in BUDGET.records.values() if r.name == label)

    dtype = torch.float32
    gemma = GemmaRoot.open(model.bundle.text_encoder).config()
    return {
        "text encode": activations.text(gemma, model.config, dtype)
        + max(upcast("text_encoder"), upcast("embeddings_processor")),
        "stage 1 denoise": activations.denoise(model.config, width // 2, height // 2, frames, 24.0, dtype)
        + upcast("transformer"),
        "stage 2 denoise": activations.denoise(model.config, width, height, frames, 24.0, dtype)
        + upcast("transformer"),  # stage 1's, with the LoRA's factors beside it
        "decode": activations.decode(model.config, width, height, frames, None, dtype) + upcast("video_decoder"),
    }


def test_each_stages_estimate_is_the_ledgers_within_20_percent(wide_paths, budget):
    # One persistent model: a first, small run builds every component, so each measured run moves only its
    # activations (one warm-up for all sizes keeps this long test short on an AVX2-only CPU).
    model = wide_model(wide_paths, "persistent")
    misses = []
    run(model, 128, 128, 9, "warm")
    for width, height, frames in [(256, 192, 17), (384, 256, 25)]:
        stages_run = run(model, width, height, frames, f"measured-{width}")
        for name, estimate in estimates(model, width, height, frames).items():
            measured = stages_run[name].peak_bytes - stages_run[name].start_bytes
            print(
                f"{width}x{height}x{frames} {name}: estimate {estimate / MIB:.0f} MiB, "
                f"ledger {measured / MIB:.0f} MiB ({estimate / measured:.2f})"
            )
            if abs(estimate - measured) > 0.2 * measured:
                misses.append((width, height, frames, name, estimate / MIB, measured / MIB))
    assert not misses, misses


def test_a_transformer_under_a_quarter_budget_stays_within_budget_one_unit_and_activations(wide_paths, budget):
    model = wide_model(wide_paths, "cold_start")
    quarter = model.estimate_bytes("transformer") // 4
    budget.budget_bytes = quarter
    stages_run = run(model, 128, 128, 9, "quarter")
    from ltx2_a2v.ltx2.components.plan import ComponentPlan

    plan = ComponentPlan.read(model.bundle, "transformer")
    unit_bytes, _ = plan.unit_sizes(POLICIES["fp8_scaled"])
    upcast = activations.upcast_bytes(plan, POLICIES["fp8_scaled"], torch.float32)
    for name, (width, height) in {"stage 1 denoise": (64, 64), "stage 2 denoise": (128, 128)}.items():
        stage = stages_run[name]
        assert all(c["streamed"] for c in stage.components if c["name"] != "distilled LoRA"), stage.components
        allowed = (
            quarter
            + units_in_flight(CPU) * max(unit_bytes.values())
            + upcast
            + activations.denoise(model.config, width, height, 9, 24.0, torch.float32)
        )
        peak = stage.peak_bytes - stage.start_bytes
        print(f"quarter budget {quarter / MIB:.0f} MiB, {name}: peak {peak / MIB:.0f} MiB, allowed {allowed / MIB:.0f}")
        assert peak <= allowed, (name, peak / MIB, allowed / MIB)
