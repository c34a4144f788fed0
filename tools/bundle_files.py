"""The test bundle's files in the layouts ComfyUI users download, written from its bf16 files as ComfyUI writes them
(tools/make_tiny_bundle.py calls these with --low-bit and --split):

- low-bit transformer-only files: the transformer's block linears in nvfp4, int8 (tensorwise) or int8 with
  ComfyUI's rotation (`convrot`), each weight packed by comfy-kitchen's own layout classes and declared as ComfyUI's
  save declares it (a `<layer>.comfy_quant` tensor of JSON bytes, or a `_quantization_metadata` header entry); they
  run with the split VAE files below;
- split files, as the public split releases lay them out: a transformer-only checkpoint for diffusion_models/ (the
  `model.diffusion_model.` keys, the text connectors with them as ComfyUI 0.33 loads them, and the config's
  `transformer` section), the video VAE for vae/ (its keys unprefixed, as ComfyUI's VAELoader reads them, with the
  `vae` config), the audio VAE with its vocoder (`audio_vae.` and `vocoder.` keys, the `audio_vae` and `vocoder`
  config: ComfyUI's audio-VAE loader and its VAELoader read it) and the text projection for text_encoders/ (the
  `text_embedding_projection.` keys, which ComfyUI's LTX-2 text-encoder loader takes beside the Gemma file).
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

# Relative to the models folder, in ComfyUI's folder names.
# The low-bit transformers are transformer-only files, as such releases are: they run with the split VAE files.
LOW_BIT_FILE_NAMES = {
    "nvfp4_transformer": "diffusion_models/ltx-2.3-{preset}-dev-nvfp4_transformer_only.safetensors",
    "int8_transformer": "diffusion_models/ltx-2.3-{preset}-dev-int8_transformer_only.safetensors",
    "int8_convrot_transformer": "diffusion_models/ltx-2.3-{preset}-dev-int8-convrot_transformer_only.safetensors",
    "text_encoder_int8": "text_encoders/gemma_3_{preset}_it_int8.safetensors",
}
SPLIT_FILE_NAMES = {
    "transformer_only": "diffusion_models/ltx-2.3-{preset}-dev_transformer_only.safetensors",
    "video_vae": "vae/ltx-2.3-{preset}_video_vae.safetensors",
    "audio_vae": "vae/ltx-2.3-{preset}_audio_vae.safetensors",
    "text_projection": "text_encoders/ltx-2.3-{preset}_text_projection.safetensors",
}
# Each low-bit checkpoint's format, its `.comfy_quant` options, and how it is declared: as ComfyUI's own save writes
# a diffusion model, a `.comfy_quant` tensor per layer. (Its UNETLoader reads a `_quantization_metadata` entry of a
# `model.diffusion_model.`-prefixed file twice, once under the stripped names, and warns of the other copy.)
LOW_BIT_FORMATS = {
    "nvfp4_transformer": ("nvfp4", {}, "comfy_quant"),
    "int8_transformer": ("int8_tensorwise", {}, "comfy_quant"),
    "int8_convrot_transformer": ("int8_tensorwise", {"convrot": True}, "comfy_quant"),
}
LAYOUTS = {"nvfp4": "TensorCoreNVFP4Layout", "int8_tensorwise": "TensorWiseINT8Layout"}


def quantization_tensors(layers: dict[str, dict], spelling: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """How ComfyUI's files say which layers are quantized (its QUANTIZATION.md): a `_quantization_metadata` header
    entry, or a `<layer>.comfy_quant` tensor (the config's JSON as bytes) per layer. (tensors, metadata)."""
    if spelling == "metadata":
        return {}, {"_quantization_metadata": json.dumps({"format_version": "1.0", "layers": layers}, sort_keys=True)}
    return (
        {
            f"{layer}.comfy_quant": torch.tensor(list(json.dumps(conf).encode()), dtype=torch.uint8)
            for layer, conf in layers.items()
        },
        {},
    )


def sorted_metadata(path: Path) -> None:
    """safetensors writes a header's metadata map in no fixed order: with two entries or more, the same file would
    differ from run to run. The header is written again with its keys sorted (the same bytes, reordered)."""
    with open(path, "r+b") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (length - len(raw))  # safetensors pads the header with spaces too
        f.seek(8)
        f.write(raw)


def rotation_groups(columns: int) -> int:
    """ComfyUI's rotation group (256), or for a small layer the largest power of 4 (kitchen's Hadamard sizes) that
    tiles its columns."""
    return next(g for g in (256, 64, 16, 4) if columns % g == 0)


def comfy_quantized(layer: str, value: torch.Tensor, fmt: str, options: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """({key: tensor} of the layer quantized by comfy-kitchen as ComfyUI's mixed-precision layer saves it, its
    `.comfy_quant` config)."""
    from comfy_kitchen.tensor import QuantizedTensor

    conf = {"format": fmt}
    kwargs = {}
    if options.get("convrot"):
        groups = rotation_groups(value.shape[1])
        kwargs = {"per_channel": True, "convrot": True, "convrot_groupsize": groups}
        conf.update(convrot=True, convrot_groupsize=groups)
    quantized = QuantizedTensor.from_float(value.to(torch.bfloat16), LAYOUTS[fmt], **kwargs)
    return {k: v.contiguous() for k, v in quantized.state_dict(f"{layer}.weight").items()}, conf


def write_low_bit_checkpoint(src: Path, dst: Path, fmt: str, options: dict, spelling: str) -> None:
    """The (transformer-only) checkpoint with the transformer's block linears (those the pack's fp8 policies select)
    in `fmt`."""
    from ltx2_a2v.ltx2.components.table import CONFIGURATORS
    from ltx2_a2v.ltx2.files.safetensors_file import iter_tensors, read_header
    from ltx2_a2v.quant.layers import select_layers

    header = read_header(src)
    with torch.device("meta"):
        model = CONFIGURATORS["transformer"].from_config(header.config())
    targets = {"model.diffusion_model." + k for k in select_layers(model, "transformer", fp8=True).weight_keys()}
    tensors, layers = {}, {}
    for key, value in iter_tensors(header):
        if key in targets:
            layer = key.removesuffix(".weight")
            quantized, layers[layer] = comfy_quantized(layer, value, fmt, options)
            tensors.update(quantized)
        else:
            tensors[key] = value
    extra, quant_metadata = quantization_tensors(layers, spelling)
    tensors.update(extra)
    save_file(tensors, str(dst), metadata={**header.metadata, **quant_metadata})
    sorted_metadata(dst)


def write_split_files(checkpoint: Path, paths: dict[str, Path]) -> None:
    """The checkpoint's parts as the split releases hold them (see the module's docstring)."""
    from ltx2_a2v.ltx2.files.safetensors_file import iter_tensors, read_header

    header = read_header(checkpoint)
    config = header.config()
    parts = {
        "transformer_only": ({"model.diffusion_model.": "model.diffusion_model."}, ("transformer",)),
        "video_vae": ({"vae.": ""}, ("vae",)),
        "audio_vae": ({"audio_vae.": "audio_vae.", "vocoder.": "vocoder."}, ("audio_vae", "vocoder")),
        "text_projection": ({"text_embedding_projection.": "text_embedding_projection."}, ()),
    }
    for part, (prefixes, sections) in parts.items():
        tensors = {}
        for key, value in iter_tensors(header):
            prefix = next((p for p in prefixes if key.startswith(p)), None)
            if prefix is not None:
                tensors[prefixes[prefix] + key[len(prefix) :]] = value
        metadata = {"config": json.dumps({s: config[s] for s in sections}, sort_keys=True)} if sections else None
        paths[part].parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(paths[part]), metadata=metadata or {"format": "pt"})
