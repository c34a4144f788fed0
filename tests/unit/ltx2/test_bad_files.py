"""The loader refuses incomplete or mismatched files by name, before reading any weight."""

import json

import pytest
import torch
from building import build_component
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_a2v.errors import LTX2InputError, LTX2LoadError
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config


def _copy_checkpoint(src, dst, drop=None, reshape=None):
    with safe_open(str(src), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != drop}
    if reshape is not None:
        tensors[reshape] = torch.zeros(3, 5, dtype=torch.bfloat16)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


def test_missing_tensor_is_named(tiny_paths, tmp_path):
    key = "model.diffusion_model.transformer_blocks.1.attn1.to_k.weight"
    broken = _copy_checkpoint(tiny_paths["checkpoint"], tmp_path / "missing.safetensors", drop=key)
    with pytest.raises(LTX2LoadError, match="transformer_blocks.1.attn1.to_k.weight"):
        build_component(Bundle(checkpoint=broken), "transformer")


def test_misshaped_tensor_is_named(tiny_paths, tmp_path):
    key = "vae.decoder.conv_in.conv.weight"
    broken = _copy_checkpoint(tiny_paths["checkpoint"], tmp_path / "shape.safetensors", reshape=key)
    with pytest.raises(LTX2LoadError, match=r"vae\.decoder\.conv_in\.conv\.weight.*\[3, 5\]"):
        build_component(Bundle(checkpoint=broken), "video_decoder")


def test_other_components_still_load_from_a_file_broken_elsewhere(tiny_paths, tmp_path):
    key = "model.diffusion_model.transformer_blocks.1.attn1.to_k.weight"
    broken = _copy_checkpoint(tiny_paths["checkpoint"], tmp_path / "missing.safetensors", drop=key)
    assert build_component(Bundle(checkpoint=broken), "video_decoder") is not None


def test_checkpoint_of_another_family_is_refused(tmp_path):
    unet = tmp_path / "unet.safetensors"
    save_file(
        {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4)},
        str(unet),
        metadata={"config": json.dumps({"model": "sd15"})},
    )
    with pytest.raises(LTX2InputError, match="not an LTX-2 audio-video checkpoint"):
        read_checkpoint_config(unet)


def test_file_that_is_not_safetensors_is_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04\x95pickle-ish bytes" * 10)
    with pytest.raises(LTX2InputError, match="not a complete .safetensors file"):
        read_checkpoint_config(junk)


def test_text_encoder_folder_without_tokenizer_is_refused(tiny_paths, tmp_path):
    root = tmp_path / "gemma"
    root.mkdir()
    for p in tiny_paths["text_encoder"].iterdir():
        if p.name != "tokenizer.model":
            (root / p.name).write_bytes(p.read_bytes())
    with pytest.raises(LTX2InputError, match="tokenizer.model"):
        build_component(Bundle(checkpoint=tiny_paths["checkpoint"], text_encoder=root), "text_encoder")
