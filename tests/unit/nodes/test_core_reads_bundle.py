"""The test bundle is "like the release" only if a third party reads it as it reads the release: ComfyUI's own
loaders (0.16 and later run LTX-2.3 themselves) load every file of the bundle, in every format, with nothing
missing and nothing unexpected, and the fp8 weights with their scales. Runs on the ComfyUI tree the lane imports
(LTX2_COMFYUI=/path/to/ComfyUI); skipped on a ComfyUI without LTX-2.3 (the registry's 0.3.75).

Core builds Gemma-3-12B from code, whatever the file holds: for the bundle's small Gemma its config class is
given the bundle's sizes (the only change made to core, here and in `make bench-core`)."""

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest

comfy_sd = pytest.importorskip("comfy.sd")
if not Path(comfy_sd.__file__).parent.joinpath("ldm", "lightricks", "vae", "audio_vae.py").is_file():
    pytest.skip("this ComfyUI has no LTX-2.3 loaders (0.16 and later have them)", allow_module_level=True)

import comfy.lora  # noqa: E402
import comfy.text_encoders.llama as core_llama  # noqa: E402
import comfy.utils  # noqa: E402
from make_tiny_bundle import SPECIAL_TOKENS, gemma_config  # noqa: E402

from ltx2_a2v.ltx2.files.safetensors_file import iter_tensors, read_header  # noqa: E402

# What core's loaders log when a file does not match the model they build for it.
COMPLAINTS = re.compile(r"missing|unexpected|leftover|not loaded", re.IGNORECASE)


@pytest.fixture
def complaints(caplog):
    caplog.set_level(logging.WARNING)
    return lambda: [r.getMessage()[:300] for r in caplog.records if COMPLAINTS.search(r.getMessage())]


def _checkpoint(path: Path):
    model, _, vae, _ = comfy_sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=False)
    return model, vae


@pytest.mark.parametrize("part", ["checkpoint", "fp8_checkpoint"])
def test_core_loads_the_transformer_and_video_vae_with_nothing_missing(tiny_paths, part, complaints):
    model, vae = _checkpoint(tiny_paths[part])
    vae.throw_exception_if_invalid()
    assert type(model.model).__name__ == "LTXAV"
    assert complaints() == []


def test_core_reads_the_fp8_weights_with_their_scales(tiny_paths, complaints):
    key = "transformer_blocks.0.attn1.to_q"
    model, _ = _checkpoint(tiny_paths["fp8_checkpoint"])
    layer = model.model.diffusion_model.get_submodule(key)
    assert getattr(layer, "quant_format", None) == "float8_e4m3fn"
    as_core_reads_it = layer.weight.dequantize().float()
    header = read_header(tiny_paths["checkpoint"])
    bf16 = dict(iter_tensors(header, {f"model.diffusion_model.{key}.weight"})).popitem()[1].float()
    # fp8's rounding, not the raw fp8 values (up to 448: hundreds of times the weights)
    assert (as_core_reads_it - bf16).norm() / bf16.norm() < 0.05
    assert complaints() == []


def test_core_loads_the_audio_vae_and_vocoder(tiny_paths, complaints):
    sd, metadata = comfy.utils.load_torch_file(str(tiny_paths["checkpoint"]), return_metadata=True)
    sd = comfy.utils.state_dict_prefix_replace(
        sd, {"audio_vae.": "autoencoder.", "vocoder.": "vocoder."}, filter_keys=True
    )
    vae = comfy_sd.VAE(sd=sd, metadata=metadata)  # as core's LTXVAudioVAELoader does
    vae.throw_exception_if_invalid()
    assert complaints() == []


@pytest.mark.parametrize("part", ["distilled_lora", "distilled_lora_dynamic"])
def test_core_maps_every_lora_key(tiny_paths, part, complaints):
    model, _ = _checkpoint(tiny_paths["checkpoint"])
    lora = comfy.utils.load_torch_file(str(tiny_paths[part]))
    patches = comfy.lora.load_lora(lora, comfy.lora.model_lora_keys_unet(model.model, {}))
    modules = {k.rsplit(".lora_", 1)[0] for k in lora if ".lora_" in k}
    assert len(patches) == len(modules) > 0
    assert complaints() == []


def test_core_loads_the_spatial_upsampler(tiny_paths):
    import comfy.ops
    from comfy.ldm.lightricks.latent_upsampler import LatentUpsampler

    # As core's LatentUpscaleModelLoader does, strictly: a missing or unexpected key raises.
    sd, metadata = comfy.utils.load_torch_file(str(tiny_paths["spatial_upsampler"]), return_metadata=True)
    assert "post_upsample_res_blocks.0.conv2.bias" in sd  # how that loader tells an LTX upsampler
    model = LatentUpsampler.from_config(json.loads(metadata["config"]), operations=comfy.ops.disable_weight_init)
    model.load_state_dict(sd)


@pytest.fixture
def core_gemma_of_the_bundle(monkeypatch):
    """Core's Gemma-3-12B config class, with the bundle's Gemma sizes."""
    text = gemma_config(dict.fromkeys(SPECIAL_TOKENS, 0))["text_config"]
    vision = {
        **core_llama.GEMMA3_VISION_CONFIG,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "image_size": 56,
        "num_attention_heads": 16,
    }
    small = dataclasses.make_dataclass(
        "Gemma3BundleConfig",
        [
            ("vocab_size", int, text["vocab_size"]),
            ("hidden_size", int, text["hidden_size"]),
            ("intermediate_size", int, text["intermediate_size"]),
            ("num_hidden_layers", int, text["num_hidden_layers"]),
            ("num_attention_heads", int, text["num_attention_heads"]),
            ("num_key_value_heads", int, text["num_key_value_heads"]),
        ],
        bases=(core_llama.Gemma3_12B_Config,),
        namespace={"head_dim": text["head_dim"], "vision_config": vision, "mm_tokens_per_image": 16},
    )
    monkeypatch.setattr(core_llama, "Gemma3_12B_Config", small)


@pytest.mark.parametrize("part", ["text_encoder_file", "text_encoder_fp8", "text_encoder_fp4"])
def test_core_loads_the_single_file_gemma(tiny_paths, part, core_gemma_of_the_bundle, complaints):
    clip = comfy_sd.load_clip(
        ckpt_paths=[str(tiny_paths[part]), str(tiny_paths["checkpoint"])], clip_type=comfy_sd.CLIPType.LTXV
    )
    assert clip is not None
    assert complaints() == []
    if part != "text_encoder_file":
        quantized = {getattr(m, "quant_format", None) for m in clip.cond_stage_model.modules()}
        assert quantized >= ({"float8_e4m3fn", "nvfp4"} if part == "text_encoder_fp4" else {"float8_e4m3fn"})
    tokens = clip.tokenize("A young woman speaks calmly to the camera.")  # the tokenizer from the file itself
    assert any(t[0] not in (0, 1, 2, 3) for batch in tokens.values() for t in batch[0])


# --- the split files and the low-bit files (tools/bundle_files.py), as core's own loaders read them ---

LOW_BIT = {
    "nvfp4_transformer": "nvfp4",
    "int8_transformer": "int8_tensorwise",
    "int8_convrot_transformer": "int8_tensorwise",
}


@pytest.mark.parametrize("part", ["transformer_only", *LOW_BIT])
def test_core_unet_loader_reads_the_transformer_only_files(low_bit_paths, part, complaints):
    """As core's UNETLoader loads a file of diffusion_models/; the packed layers as the pack reads them."""
    import torch

    from ltx2_a2v.ltx2.files.stored_formats import read_layout
    from ltx2_a2v.quant.formats import dequantize

    model = comfy_sd.load_diffusion_model(str(low_bit_paths[part]))
    assert type(model.model).__name__ == "LTXAV"
    assert complaints() == []
    if part in LOW_BIT:
        key = "transformer_blocks.0.attn1.to_q"
        layer = model.model.diffusion_model.get_submodule(key)
        assert getattr(layer, "quant_format", None) == LOW_BIT[part]
        layout = read_layout(read_header(low_bit_paths[part]))
        weight = f"model.diffusion_model.{key}.weight"
        stored = dict(iter_tensors(layout.header, {weight}))[weight]
        shape = tuple(layer.weight.shape)
        ours = dequantize(
            layout.format_of(weight), stored, layout.scale_tensors(weight), layout.options[weight], shape, torch.float32
        )
        assert torch.equal(layer.weight.dequantize().float(), ours)  # core computes in float32 on a CPU, as the pack


def test_core_vae_loaders_read_the_split_vaes(low_bit_paths, complaints):
    for part in ("video_vae", "audio_vae"):  # core's VAELoader, from models/vae/
        sd, metadata = comfy.utils.load_torch_file(str(low_bit_paths[part]), return_metadata=True)
        comfy_sd.VAE(sd=sd, metadata=metadata).throw_exception_if_invalid()
    # core's LTXVAudioVAELoader's way: the audio VAE and vocoder keys taken by prefix
    sd, metadata = comfy.utils.load_torch_file(str(low_bit_paths["audio_vae"]), return_metadata=True)
    sd = comfy.utils.state_dict_prefix_replace(
        sd, {"audio_vae.": "autoencoder.", "vocoder.": "vocoder."}, filter_keys=True
    )
    comfy_sd.VAE(sd=sd, metadata=metadata).throw_exception_if_invalid()
    assert complaints() == []


@pytest.mark.parametrize("part", ["text_encoder_file", "text_encoder_int8"])
def test_core_reads_the_text_projection_beside_the_gemma_file(
    low_bit_paths, part, core_gemma_of_the_bundle, complaints
):
    clip = comfy_sd.load_clip(
        ckpt_paths=[str(low_bit_paths[part]), str(low_bit_paths["text_projection"])], clip_type=comfy_sd.CLIPType.LTXV
    )
    assert clip is not None
    assert complaints() == []
    if part == "text_encoder_int8":
        quantized = {getattr(m, "quant_format", None) for m in clip.cond_stage_model.modules()}
        assert "int8_tensorwise" in quantized
