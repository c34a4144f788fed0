"""The two recipes of the two-stage graph: how each stage denoises.

`reference` is ltx-pipelines' A2VidPipelineTwoStage: stage 1 on the dev model with LTX2Scheduler's `steps`
sigmas and multimodal guidance (CFG, STG), stage 2 with the distilled LoRA on ltx-pipelines' 3-step schedule. It
stays the default, byte-identical to ltx-pipelines (tests/host/test_fidelity_host.py).

`fast` is the schedule ComfyUI's LTX-2.3 image+audio template runs: the distilled LoRA in both stages, its manual
sigmas (8 steps, then 3), CFG 1 (no negative pass, no STG): 11 transformer passes against the reference's
`steps` x 2 or 3 (one per guidance term) + 3. Both stages use the same weights (dev + distilled LoRA), so a
`persistent` model keeps one transformer for both.
"""

from dataclasses import dataclass

from ltx_pipelines.utils.constants import STAGE_2_DISTILLED_SIGMA_VALUES

from ...errors import LTX2InputError


@dataclass(frozen=True)
class Recipe:
    name: str
    base_sigmas: tuple[float, ...] | None  # None: LTX2Scheduler's for `steps`
    base_lora: bool  # stage 1 on the dev model with the distilled LoRA
    base_guided: bool  # stage 1 with the negative prompt and the user's CFG (and STG); False: CFG 1
    refine_sigmas: tuple[float, ...]


RECIPES = {
    "reference": Recipe("reference", None, False, True, tuple(STAGE_2_DISTILLED_SIGMA_VALUES)),
    # ComfyUI's video_ltx2_3_ia2v template's ManualSigmas, as it writes them.
    "fast": Recipe(
        "fast",
        (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0),
        True,
        False,
        (0.85, 0.725, 0.4219, 0.0),
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise LTX2InputError(f"recipe: '{name}' is not one of {', '.join(RECIPES)}.")
    return RECIPES[name]
