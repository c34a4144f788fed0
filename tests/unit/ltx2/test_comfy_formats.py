"""ComfyUI's file formats, read by the pack's own loader: the three ways a file declares its quantized layers,
the packed formats dequantized with comfy-kitchen, the single-file Gemma, and LoRAs in every key spelling
ComfyUI reads, with a rank per layer and alpha."""

import json
import re

import pytest
import torch
from building import build_component
from make_tiny_bundle import write_fp8_checkpoint
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_a2v.errors import LTX2InputError, LTX2LoadError
from ltx2_a2v.ltx2.components.plan import ComponentPlan
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.lora_file import LoraFactors
from ltx2_a2v.ltx2.files.safetensors_file import read_header
from ltx2_a2v.ltx2.files.stored_formats import read_layout

LAYER = "model.diffusion_model.transformer_blocks.0.attn1.to_q"


def tensors_of(path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


@pytest.mark.parametrize("spelling", ["metadata", "comfy_quant", "scaled_fp8"])
def test_every_spelling_of_an_fp8_checkpoint_builds_the_same_transformer(tiny_paths, tmp_path, spelling):
    path = tmp_path / f"fp8-{spelling}.safetensors"
    write_fp8_checkpoint(tiny_paths["checkpoint"], path, spelling)
    layout = read_layout(read_header(path))
    assert layout.formats == read_layout(read_header(tiny_paths["fp8_checkpoint"])).formats
    assert layout.formats[f"{LAYER}.weight"] == "float8_e4m3fn"
    assert not any(k.endswith((".comfy_quant", "scaled_fp8", ".scale_weight")) for k in layout.header.entries)
    built = build_component(Bundle(checkpoint=path), "transformer", "fp8_scaled")[0].state_dict()
    reference = build_component(Bundle(checkpoint=tiny_paths["fp8_checkpoint"]), "transformer", "fp8_scaled")[0]
    for key, value in reference.state_dict().items():
        assert torch.equal(built[key], value), key


def test_a_quantized_layer_without_its_declaration_is_refused(tiny_paths, tmp_path):
    """Read as ComfyUI reads it, an fp8 weight its metadata does not declare is taken raw (values up to 448)."""
    tensors, metadata = tensors_of(tiny_paths["fp8_checkpoint"])
    layers = json.loads(metadata["_quantization_metadata"])
    del layers["layers"][LAYER]
    metadata["_quantization_metadata"] = json.dumps(layers)
    save_file(tensors, str(tmp_path / "undeclared.safetensors"), metadata=metadata)
    with pytest.raises(
        LTX2LoadError,
        match=rf"'{LAYER}.weight' is stored in fp8, and its quantization metadata "
        r"\(_quantization_metadata\) does not declare it \(1 such weights\)",
    ):
        ComponentPlan.read(Bundle(checkpoint=tmp_path / "undeclared.safetensors"), "transformer")


def test_a_format_the_pack_does_not_read_is_refused_by_name(tiny_paths, tmp_path):
    """Every format of ComfyUI 0.33's QUANT_ALGOS is read (quant/formats.py); one outside it (kitchen's SVDQuant,
    which ComfyUI does not declare) is refused by name."""
    tensors, metadata = tensors_of(tiny_paths["fp8_checkpoint"])
    layers = json.loads(metadata["_quantization_metadata"])
    layers["layers"][LAYER] = {"format": "svdquant_w4a4"}
    metadata["_quantization_metadata"] = json.dumps(layers)
    save_file(tensors, str(tmp_path / "w4a4.safetensors"), metadata=metadata)
    with pytest.raises(
        LTX2InputError,
        match=rf"w4a4.safetensors: layer '{LAYER}' is stored as 'svdquant_w4a4', a "
        "format the pack does not read",
    ):
        ComponentPlan.read(Bundle(checkpoint=tmp_path / "w4a4.safetensors"), "transformer")


def encoded(tiny_paths, part: str, policy: str = "none") -> tuple[torch.Tensor, object]:
    bundle = Bundle(checkpoint=tiny_paths["checkpoint"], text_encoder=tiny_paths[part])
    with torch.inference_mode():
        encoder, report = build_component(bundle, "text_encoder", policy)
        hidden_states, _ = encoder.encode("A young woman speaks calmly to the camera.")
    return torch.stack(hidden_states).float(), report


def test_the_single_file_gemma_encodes_as_the_folder(tiny_paths):
    """Sizes from the file's shapes over ltx-core's 12B config, the tokenizer from its `spiece_model` tensor."""
    folder, _ = encoded(tiny_paths, "text_encoder")
    single, _ = encoded(tiny_paths, "text_encoder_file")
    assert torch.equal(folder, single)


@pytest.mark.parametrize(
    "part, policy, bound",
    [
        ("text_encoder_fp8", "none", 0.06),
        ("text_encoder_fp8", "fp8_scaled", 0.06),
        ("text_encoder_fp4", "none", 0.10),
        ("text_encoder_fp4", "fp8_scaled", 0.10),
    ],
)
def test_quantized_gemma_files_encode_near_the_bf16_one(tiny_paths, part, policy, bound):
    """fp8 (scalar scales) and nvfp4 (comfy-kitchen's packing, dequantized by it): an error of their precision,
    not of a misread (raw fp8 values or packed bytes would be hundreds of percent off)."""
    reference, _ = encoded(tiny_paths, "text_encoder")
    quantized, report = encoded(tiny_paths, part, policy)
    error = float((quantized - reference).norm() / reference.norm())
    print(f"{part} under {policy}: {error:.2%} from bf16")
    assert 0 < error < bound
    assert ("nvfp4" in report.summary()) == (part == "text_encoder_fp4")


def test_a_file_that_is_no_gemma_is_refused_naming_it(tiny_paths):
    with pytest.raises(
        LTX2InputError,
        match=r"text_encoder: ltx-2.3-tiny-distilled-lora-384.safetensors is not a "
        r"Gemma-3 text encoder",
    ):
        build_component(
            Bundle(checkpoint=tiny_paths["checkpoint"], text_encoder=tiny_paths["distilled_lora"]), "text_encoder"
        )


# --- LoRA spellings ---


def respelled(tiny_paths, tmp_path, prefix: str, down_up: bool, alpha_ratio: float | None):
    tensors, _ = tensors_of(tiny_paths["distilled_lora"])
    out = {}
    for key, value in tensors.items():
        name = prefix + key.removeprefix("diffusion_model.")
        if down_up:
            name = name.replace(".lora_A.", ".lora_down.").replace(".lora_B.", ".lora_up.")
        out[name] = value
        if alpha_ratio is not None and key.endswith(".lora_A.weight"):
            out[name.rsplit(".lora_", 1)[0] + ".alpha"] = torch.tensor(alpha_ratio * value.shape[0])
    path = tmp_path / "respelled.safetensors"
    save_file(out, str(path))
    return path


@pytest.mark.parametrize("prefix, down_up", [("diffusion_model.", True), ("model.diffusion_model.", False), ("", True)])
def test_every_lora_spelling_fuses_the_same_weights(tiny_paths, tmp_path, prefix, down_up):
    reference = LoraFactors(tiny_paths["distilled_lora"], 0.7)
    lora = LoraFactors(respelled(tiny_paths, tmp_path, prefix, down_up, None), 0.7)
    assert set(lora.targets) == set(reference.targets)
    key = sorted(lora.targets)[0]
    a, b = (lora.header.entries[k].shape for k in lora.targets[key])
    weight = torch.randn(b[0], a[1]).to(torch.bfloat16)
    assert torch.equal(lora.fuse(key, weight.clone()), reference.fuse(key, weight.clone()))


def test_alpha_is_read_as_strength_times_alpha_over_rank(tiny_paths, tmp_path):
    half = LoraFactors(respelled(tiny_paths, tmp_path, "diffusion_model.", False, 0.5), 1.0)
    full = LoraFactors(tiny_paths["distilled_lora"], 0.5)
    key = sorted(half.targets)[0]
    a, b = (half.header.entries[k].shape for k in half.targets[key])
    weight = torch.zeros(b[0], a[1], dtype=torch.bfloat16)
    assert torch.equal(half.fuse(key, weight.clone()), full.fuse(key, weight.clone()))
    assert "alpha read: scale = strength x alpha / rank (0.5)" in half.describe()


def test_the_dynamic_lora_has_a_rank_per_layer(tiny_paths):
    lora = LoraFactors(tiny_paths["distilled_lora_dynamic"], 1.0)
    lora.check_against_checkpoint(read_header(tiny_paths["checkpoint"]))
    assert lora.describe().endswith("ranks 1 to 8, alpha read: scale = strength x alpha / rank (1)")


@pytest.mark.parametrize("alpha", [float("nan"), 1e6, -8.0])
def test_an_absurd_alpha_is_refused_naming_the_key(tiny_paths, tmp_path, alpha):
    tensors, _ = tensors_of(tiny_paths["distilled_lora"])
    module = sorted(tensors)[0].rsplit(".lora_", 1)[0]
    tensors[f"{module}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(tmp_path / "alpha.safetensors"))
    with pytest.raises(
        LTX2InputError,
        match=rf"'{module}.alpha' is {re.escape(f'{alpha:g}')} for rank \d+: a scale of alpha / "
        "rank outside 0 to 64",
    ):
        LoraFactors(tmp_path / "alpha.safetensors", 1.0)


@pytest.mark.parametrize("dtype, value", [(torch.float32, 1e38), (torch.bfloat16, 3e19), (torch.float32, 1e4)])
def test_factors_whose_product_is_not_a_lora_are_refused(tiny_paths, tmp_path, dtype, value):
    """Each factor finite, their product infinite (or a change thousands of times the weight): the video would be
    black, reported as a success."""
    tensors, _ = tensors_of(tiny_paths["distilled_lora"])
    a_key = sorted(k for k in tensors if k.endswith(".lora_A.weight"))[0]
    b_key = a_key.replace("lora_A", "lora_B")
    tensors[a_key] = torch.full_like(tensors[a_key], value, dtype=dtype)
    tensors[b_key] = torch.full_like(tensors[b_key], value, dtype=dtype)
    save_file(tensors, str(tmp_path / "huge.safetensors"))
    lora = LoraFactors(tmp_path / "huge.safetensors", 1.0)
    key = a_key.removeprefix("diffusion_model.").replace(".lora_A.weight", ".weight")
    weight = torch.full((tensors[b_key].shape[0], tensors[a_key].shape[1]), 0.02, dtype=torch.bfloat16)
    with pytest.raises(LTX2InputError, match=r"overflows|times its own size"):
        lora.fuse(key, weight)


def test_a_config_field_the_release_has_is_named_when_a_default_is_taken(tiny_paths, tmp_path):
    """ltx-core takes its defaults without a word, and ComfyUI other ones: the load report names what was missing."""
    tensors, metadata = tensors_of(tiny_paths["checkpoint"])
    config = json.loads(metadata["config"])
    del config["vae"]["dims"], config["vae"]["norm_layer"]
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"config": json.dumps(config)})
    _, report = build_component(Bundle(checkpoint=tmp_path / "old.safetensors"), "video_decoder")
    assert "old.safetensors lacks vae.dims, vae.norm_layer: ltx-core's defaults taken" in report.summary()
    _, report = build_component(Bundle(checkpoint=tiny_paths["checkpoint"]), "video_decoder")
    assert "lacks" not in report.summary()
