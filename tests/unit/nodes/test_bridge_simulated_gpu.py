"""The budget's plan holds against ComfyUI's real memory manager (the lane's tree: 0.3.75, or 0.33 with
LTX2_COMFYUI) on a simulated CUDA card (bench/simulated_card.py: torch's CUDA memory queries answered by what the
models on the card hold; no GPU here): the README's recipes for 24 GB and 12 GB, beside a 4 GB model of ComfyUI's,
keep every stage's peak within the card; the LoRA and the encoded prompts survive; the other model is unloaded only
when the plan needs its room; the loader's defaults fit 16 GB, and on 8 GB the reference recipe's LoRA factors are
refused naming the fast recipe, which fits. ComfyUI is told what a component holds on the card, never its streamed
remainder; what it grows back stays within the stage's room; capacity is the card's free memory plus what this
process holds, less ComfyUI's reserve; a component that cannot fit the card is refused before anything is made."""

import sys
from pathlib import Path

import comfy.model_management as mm
import pytest
import torch

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.memory.budget import BUDGET
from ltx2_a2v.nodes.patcher import ComfyBridge

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import simulated_card as sim  # noqa: E402  (bench/)

GIB = 2**30


def card_limit(total: int) -> int:
    return total - sim.CONTEXT


def check_the_plan_held(rows, total: int, co_resident: int) -> None:
    reserve = mm.extra_reserved_memory()
    for row, before in zip(rows, [co_resident] + [r.others for r in rows]):
        assert row.peak <= card_limit(total), f"{row.stage}: {row.peak / GIB:.2f} GiB on a card of {total / GIB:.2f}"
        if row.others < before:  # ComfyUI gave the other model's room to this stage: only if the plan needed it
            ours = row.peak - row.others
            assert ours + before + reserve > card_limit(total), f"{row.stage}: unloaded the other model for nothing"
    stage_2 = next(r for r in rows if r.stage == "stage 2 denoise")
    lora = next(c for c in stage_2.components if c.name == "distilled LoRA")
    assert not lora.unloaded and lora.resident > 6 * GIB  # in use, never detached nor forgotten
    assert all(r.prompts == 1 for r in rows[2:])  # kept from the text encode to the end


@pytest.mark.parametrize("budget_gb", [14.0, 20.0])
def test_the_24_gb_recipe_beside_a_4_gb_model_simulated_cuda(budget_gb):
    total = sim.CARDS["24 GB"][0]
    rows, other = sim.run_recipe(sim.Recipe(budget_gb=budget_gb), total, co_resident=4 * GIB)
    check_the_plan_held(rows, total, 4 * GIB)
    if budget_gb == 14.0:  # the README's "room for a TTS model beside it"
        assert other.unloads == 0 and all(r.others == 4 * GIB for r in rows)
    stage_1 = next(r for r in rows if r.stage == "stage 1 denoise")
    assert stage_1.components[0].streamed == (19 if budget_gb == 14.0 else 0)


def test_the_12_gb_recipe_with_fp8_gemma_beside_a_4_gb_model_simulated_cuda():
    total = sim.CARDS["12 GB"][0]
    rows, _ = sim.run_recipe(sim.Recipe(), total, co_resident=4 * GIB)
    check_the_plan_held(rows, total, 4 * GIB)
    gemma = rows[0].components[0]
    assert gemma.name == "text_encoder" and 0 < gemma.streamed < gemma.units  # Gemma streams its decoder layers


def test_capacity_is_the_cards_free_memory_and_what_this_process_holds_less_comfyuis_reserve_simulated_cuda():
    card = sim.SimulatedCard(sim.CARDS["24 GB"][0])
    card.foreign = 3 * GIB  # a desktop or another process: neither free nor this process's
    saved = BUDGET.bridge
    BUDGET.bridge = ComfyBridge()
    try:
        with card.answering():
            other = sim.simulated_model(4 * GIB)
            card.others.append(other)
            mm.load_models_gpu([other])
            reserve = mm.extra_reserved_memory()
            expected = card.total - sim.CONTEXT - card.foreign - reserve
            assert BUDGET.capacity(sim.CARD) == expected  # the other model's 4 GiB can be freed: counted
            assert BUDGET.capacity(sim.CARD) < torch.cuda.mem_get_info()[1] - reserve  # not the card's total
    finally:
        BUDGET.bridge = saved
        mm.current_loaded_models[:] = [m for m in mm.current_loaded_models if m.device != sim.CARD]


def test_comfyui_is_told_the_bytes_on_the_card_and_grows_a_component_no_further_than_its_stages_room_simulated_cuda():
    """A transformer streamed in part, in use: ComfyUI's model_size is its resident part and its two units in
    flight (never the streamed remainder); ComfyUI's offer to grow it (load_models_gpu's partial load, its
    use_more_memory) brings back only what leaves the stage its activations, units in flight and margin."""
    total = sim.CARDS["16 GB"][0]
    steps = sim.steps_22b(sim.Recipe())
    card = sim.SimulatedCard(total)
    saved = BUDGET.bridge, BUDGET.mode, BUDGET.budget_bytes
    try:
        with card.answering():
            BUDGET.bridge, BUDGET.mode = ComfyBridge(), "cold_start"
            BUDGET.set_budget_gb(10)
            working = 2 * GIB
            with BUDGET.use(sim.request(steps["transformer"], working)):
                (record,) = BUDGET.records.values()
                loaded = next(m for m in mm.current_loaded_models if m.model is record.handle)
                flight = 2 * record.streamer.largest_unit()
                assert record.streamed and record.handle.model_size() == record.nbytes + flight
                mm.use_more_memory(64 * GIB, [loaded], sim.CARD)  # ComfyUI offers all it has free
                assert record.nbytes + BUDGET.working_in_use(sim.CARD) <= BUDGET.budget_for(sim.CARD)
                assert card.used() + BUDGET.working_in_use(sim.CARD) <= card_limit(total)
    finally:
        BUDGET.free_all()
        BUDGET.bridge, BUDGET.mode, BUDGET.budget_bytes = saved
        mm.current_loaded_models[:] = [m for m in mm.current_loaded_models if m.device != sim.CARD]


def test_a_component_that_cannot_fit_the_card_is_refused_before_anything_is_built_simulated_cuda():
    card = sim.SimulatedCard(sim.CARDS["8 GB"][0])
    built = []
    step = sim.Step("embeddings_processor", other_bytes=9 * GIB)
    request = sim.request(step, 1 * GIB)
    request.build = lambda streamed: built.append(streamed)
    saved = BUDGET.bridge
    try:
        with card.answering():
            BUDGET.bridge = ComfyBridge()
            with pytest.raises(LTX2InputError, match=r"embeddings_processor: needs 9\.0 GiB on cuda:0 beside"):
                with BUDGET.use(request):
                    pass
    finally:
        BUDGET.bridge = saved
    assert built == [] and not BUDGET.records


def test_the_loaders_defaults_fit_a_16_gb_card_simulated_cuda():
    """quantization none, text_encoder_quantization none (bf16): Gemma and the transformer stream what does not fit."""
    total = sim.CARDS["16 GB"][0]
    rows, _ = sim.run_recipe(sim.Recipe(quantization="none", text_encoder_quantization="none"), total)
    assert all(row.peak <= card_limit(total) for row in rows)
    streamed = {c.name for row in rows for c in row.components if c.streamed}
    assert streamed == {"text_encoder", "transformer"}


def test_on_8_gb_the_reference_recipes_lora_is_refused_naming_the_fast_recipe_simulated_cuda():
    """The LoRA's 6.9 GiB of factors cannot sit beside the transformer on 8 GB: refused when stage 2 asks for them,
    before they are read, naming the recipe that fuses the LoRA while loading instead; the fast recipe runs."""
    total = sim.CARDS["8 GB"][0]
    with pytest.raises(
        LTX2InputError, match=r"distilled LoRA: needs 6\.9 GiB on cuda:0 .* Pick A2VSampler's recipe fast"
    ):
        sim.run_recipe(sim.Recipe(), total)
    rows, _ = sim.run_recipe(sim.Recipe(recipe="fast"), total)
    assert all(row.peak <= card_limit(total) for row in rows)
