"""The user's own LoRAs: read in the layouts people have, fitted to the transformer (layers it does not have are
counted, a LoRA for another model refused by name), each layer at its branch's strength, and kept beside the
transformer so that a change of strength between two runs reads nothing again."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_run import model_of, run_inputs

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v import stages
from ltx2_a2v.ltx2.components.lora_layers import LoraLayers
from ltx2_a2v.ltx2.components.user_loras import UserLora, is_audio_layer
from ltx2_a2v.ltx2.files.lora_file import LoraFactors, transformer_shapes
from ltx2_a2v.ltx2.files.safetensors_file import read_header

CPU = torch.device("cpu")


def relaid(source, path, layout: str, extra: dict | None = None):
    """The LoRA at `source` written again in another key layout (the same factors)."""
    tensors = {}
    for key, value in load_file(str(source)).items():
        module, factor = key.removeprefix("diffusion_model.").rsplit(".lora_", 1)
        which = "down" if factor.startswith("A") else "up"
        if layout == "comfyui":  # ComfyUI's trainer: lora_down / lora_up with alpha = rank (a scale of 1)
            tensors[f"diffusion_model.{module}.lora_{which}.weight"] = value
            if which == "down":
                tensors[f"diffusion_model.{module}.alpha"] = torch.tensor(float(value.shape[0]))
        elif layout == "kohya":
            tensors[f"lora_unet_{module.replace('.', '_')}.lora_{which}.weight"] = value
    save_file({**tensors, **(extra or {})}, str(path))
    return path


@pytest.mark.parametrize("layout", ["comfyui", "kohya"])
def test_the_layouts_people_have_read_as_the_same_layers(tiny_paths, tmp_path, layout):
    shapes = transformer_shapes(read_header(tiny_paths["checkpoint"]))
    reference = LoraFactors(tiny_paths["user_lora"], 1.0, "lora_name")
    # per block: attn1 and audio_to_video_attn (q, k, v, out, gate) and both feed-forwards' two linears
    assert reference.fit_to(shapes) == 2 * (5 + 5 + 2 + 2)
    other = LoraFactors(relaid(tiny_paths["user_lora"], tmp_path / f"{layout}.safetensors", layout), 1.0, "lora_name")
    assert other.fit_to(shapes) == len(reference.targets)
    assert set(other.targets) == set(reference.targets)
    assert all(other.scale_of(k) == 1.0 for k in other.targets)


def test_a_lora_for_another_model_is_refused_naming_three_keys_and_a_partial_one_counted(tiny_paths, tmp_path):
    shapes = transformer_shapes(read_header(tiny_paths["checkpoint"]))
    foreign = tmp_path / "sdxl_style.safetensors"
    save_file(
        {
            f"lora_unet_down_blocks_{i}_attn.lora_{w}.weight": torch.zeros(4, 8)
            for i in range(4)
            for w in ("down", "up")
        },
        str(foreign),
    )
    with pytest.raises(
        LTX2InputError, match=r"lora_name: sdxl_style\.safetensors .*none of its 4 layers .*lora_unet_down"
    ):
        LoraFactors(foreign, 1.0, "lora_name").fit_to(shapes, "ltx-2.3-tiny-dev.safetensors")
    partial = relaid(
        tiny_paths["user_lora"],
        tmp_path / "partial.safetensors",
        "kohya",
        {
            "lora_unet_not_here.lora_down.weight": torch.zeros(4, 8),
            "lora_unet_not_here.lora_up.weight": torch.zeros(8, 4),
        },
    )
    factors = LoraFactors(partial, 1.0, "lora_name")
    assert factors.fit_to(shapes) == 28 and factors.unmatched == 1


def test_each_layer_takes_its_branchs_strength_and_cross_modal_layers_the_videos(tiny_paths):
    assert is_audio_layer("transformer_blocks.0.audio_ff.net.2") and is_audio_layer("audio_patchify_proj")
    assert not is_audio_layer("transformer_blocks.0.audio_to_video_attn.to_q")
    assert not is_audio_layer("transformer_blocks.0.video_to_audio_attn.to_q") and not is_audio_layer("av_ca_x")
    lora = UserLora(tiny_paths["user_lora"], 0.7, audio_strength=0.0)
    factors = LoraFactors(tiny_paths["user_lora"], 1.0, "lora_name")
    factors.fit_to(transformer_shapes(read_header(tiny_paths["checkpoint"])))
    scaled = LoraLayers(factors, CPU).at_strengths(lora.strength_of)
    assert scaled.layers and not any(is_audio_layer(p) for p in scaled.layers)  # the audio feed-forward left out
    assert {scale for _, scale, _ in scaled.layers.values()} == {0.7}
    assert any(p.endswith("audio_to_video_attn.to_q") for p in scaled.layers)


@pytest.mark.parametrize("policy", ["none", "fp8_scaled"])  # fused at each forward; beside quantized weights
def test_a_changed_strength_between_persistent_runs_reads_nothing_again(tiny_paths, budget, policy):
    model = model_of(tiny_paths, residency="persistent", quantization=policy)
    inputs = run_inputs(steps=1)
    try:
        runs = []
        for strength in (0.7, 0.3):
            lora = UserLora(tiny_paths["user_lora"], strength)
            budget.begin_run(f"lora-{strength}", policy, "persistent")
            latent = stages.sample_base(dataclasses.replace(model, loras=(lora,)), CPU, inputs)
            runs.append((latent.video, budget.last_run.as_dict()))
    finally:
        budget.free_all()
    (first, report_1), (second, report_2) = runs
    assert not torch.equal(first, second)  # the strength is applied
    reads = {c["name"]: c["bytes_read"] for s in report_2["phases"] for c in s["components"]}
    assert reads["transformer"] == 0 and reads[f"LoRA {tiny_paths['user_lora'].name}"] == 0, reads
    assert any(line.startswith("LoRA ltx-2.3-tiny-style-lora.safetensors: 28 layers") for line in report_1["loads"])


def test_the_fast_recipe_runs_with_keyframes_an_audio_section_and_a_user_lora(tiny_paths, budget):
    from tiny_run import portrait

    from ltx2_a2v.ltx2.a2v.graph import two_stage
    from ltx2_a2v.ltx2.a2v.run_inputs import Keyframe

    model = dataclasses.replace(model_of(tiny_paths), loras=(UserLora(tiny_paths["user_lora"], 0.7),))
    keyframe = Keyframe(portrait(seed=1)[0], -1, 0.8)
    budget.begin_run("fast, every input", "none", "cold_start")
    inputs = run_inputs(2.0, recipe="fast", cfg=1.0, keyframes=(keyframe,), audio_start=0.25, num_frames=17)
    frames, audio = two_stage(model, CPU, inputs)
    assert frames.shape[0] == 17 and audio.waveform.shape[-1] == round(17 / 24 * 16000)
    loads = budget.last_run.as_dict()["loads"]
    assert any(line.startswith("LoRA ltx-2.3-tiny-style-lora.safetensors") for line in loads), loads
    assert not budget.records
