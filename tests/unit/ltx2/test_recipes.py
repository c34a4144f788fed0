"""The fast recipe: ComfyUI template's distilled schedule (8 + 3 steps, CFG 1, the distilled LoRA in both stages),
one transformer for both stages; the reference recipe stays the default."""

import pytest
import torch
from tiny_run import model_of, run_inputs

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v import stages
from ltx2_a2v.ltx2.a2v.recipes import RECIPES, get_recipe
from ltx2_a2v.memory.budget import BUDGET

CPU = torch.device("cpu")


def test_the_fast_recipe_runs_8_and_3_steps_on_one_transformer_read_once(tiny_paths):
    model = model_of(tiny_paths, residency="persistent")
    steps = {"base": [], "refine": []}
    try:
        BUDGET.begin_run("fast", "none", "persistent")
        latent = stages.sample_base(
            model,
            CPU,
            run_inputs(steps=30, recipe="fast"),
            progress=lambda d, t: steps["base"].append(t),
            hand_over=True,
        )
        assert latent.recipe == "fast"
        latent = stages.sample_refine(
            model,
            CPU,
            stages.upscale(model, CPU, latent),
            "A woman speaks.",
            1,
            progress=lambda d, t: steps["refine"].append(t),
        )
        report = BUDGET.last_run.as_dict()
    finally:
        BUDGET.free_all()
        BUDGET.mode = "cold_start"
    assert len(steps["base"]) == 8 and len(steps["refine"]) == 3  # `steps` does not apply
    used = {s["name"]: s["components"] for s in report["phases"]}
    assert [c["name"] for c in used["stage 1 denoise"]] == ["transformer (stage 2)"]  # dev + distilled LoRA
    stage_2 = used["stage 2 denoise"]
    assert [c["name"] for c in stage_2] == ["transformer (stage 2)"] and stage_2[0]["bytes_read"] == 0
    assert not any("negative_prompt" in n for n in report["notes"])  # CFG 1: never encoded


def test_the_reference_recipe_is_the_default_and_an_unknown_one_is_refused_by_name():
    assert RECIPES["reference"].base_sigmas is None and RECIPES["reference"].base_guided
    with pytest.raises(LTX2InputError, match="recipe: 'turbo' is not one of reference, fast"):
        get_recipe("turbo")
