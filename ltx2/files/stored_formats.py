"""How a file stores its quantized weights, in the spellings ComfyUI reads (its QUANTIZATION.md and
`comfy/utils.py`), so that a file made for ComfyUI is read here as ComfyUI reads it:

- a `_quantization_metadata` header entry: `{"format_version": "1.0", "layers": {"<layer>": {"format": ...}}}`,
  the layer named by its full key without `.weight` (Lightricks' fp8 checkpoint, ComfyUI's Gemma files);
- a `<layer>.comfy_quant` tensor per layer: the same JSON as uint8 bytes;
- the legacy `scaled_fp8` marker tensor, with `<layer>.scale_weight` / `<layer>.scale_input` (older Comfy-Org and
  kijai files): read as `weight_scale` / `input_scale`;
- none of these: an fp8 weight with its `weight_scale` beside it is fp8 (how ltx-core's own fp8 files are read).

A file read without its metadata is read wrongly, silently: the raw fp8 values (up to 448) taken as weights, or
an nvfp4 weight's packed bytes taken as numbers. So every declared layer is checked against its tensors here,
and formats the pack does not read are refused by name. fp8 weights go on to the policies (which keep them or
dequantize them, ltx2/components/build.py); the other formats are dequantized to bf16 as each weight streams in, with
comfy-kitchen, ComfyUI's own kernels (pure torch on a CPU), so one tensor at a time is ever unpacked.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ...errors import LTX2InputError, LTX2LoadError
from .safetensors_file import FP8_DTYPES, SafetensorsHeader, TensorEntry, iter_tensors, shown

METADATA_KEY = "_quantization_metadata"
LEGACY_MARKER = "scaled_fp8"
FP8_FORMATS = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}
# The formats dequantized here, with the tensors each needs beside its weight (ComfyUI's names) and the weight's
# storage dtype. Each is read with comfy-kitchen.
UNPACKED_FORMATS = {
    "nvfp4": (("weight_scale", "weight_scale_2"), torch.uint8),
    "mxfp8": (("weight_scale",), torch.float8_e4m3fn),
    "int8_tensorwise": (("weight_scale",), torch.int8),
}
# Tensors that belong to a quantized weight, never to the model itself.
SCALE_SUFFIXES = (".weight_scale", ".weight_scale_2", ".input_scale", ".pre_quant_scale")
# ComfyUI's packing pads nvfp4 and mxfp8 weights to whole 16 x 16 (32 x 32) blocks; the model's shape is the
# layer's own.
_PAD = {"nvfp4": 16, "mxfp8": 32}


@dataclass(frozen=True)
class StoredLayout:
    """A file's header as the model reads it (legacy names renamed, marker tensors dropped) and the format of
    each quantized weight, by weight key (`<layer>.weight`)."""

    header: SafetensorsHeader
    formats: dict[str, str] = field(default_factory=dict)
    spelling: str = "none"  # where the formats were read from, for the load report

    def fp8_weights(self) -> set[str]:
        return {k for k, f in self.formats.items() if f in FP8_FORMATS}

    def unpacked(self, key: str) -> str | None:
        """The format of `key` when it is dequantized here (not fp8), else None."""
        fmt = self.formats.get(key)
        return fmt if fmt in UNPACKED_FORMATS else None

    def fits(self, key: str, shape: tuple[int, ...]) -> bool:
        """Whether the stored tensor `key` holds a weight of `shape` (a packed weight: its padded blocks)."""
        entry, fmt = self.header.entries[key], self.unpacked(key)
        if fmt is None or len(shape) != 2:
            return entry.shape == tuple(shape)
        pad = _PAD.get(fmt, 1)
        rows, cols = (math.ceil(d / pad) * pad for d in shape)
        return entry.shape == ((rows, cols // 2) if fmt == "nvfp4" else (rows, cols))

    def elements(self, key: str, entry: TensorEntry) -> int:
        """How many values the stored tensor holds once unpacked (a packed nvfp4 byte holds two)."""
        count = entry.nbytes // entry.dtype.itemsize
        return count * 2 if self.unpacked(key) == "nvfp4" else count

    def dequantize(self, key: str, value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """The weight `key` (stored as its format packs it) in bf16, at the model's `shape`."""
        import comfy_kitchen as kitchen  # checked when the file was read (require_kitchen)

        fmt = self.unpacked(key)
        scales = {
            name: _read(self.header, f"{key}_{name.removeprefix('weight_')}") for name in UNPACKED_FORMATS[fmt][0]
        }
        if fmt == "nvfp4":
            out = kitchen.dequantize_nvfp4(
                value,
                scales["weight_scale_2"].float(),
                scales["weight_scale"].view(torch.float8_e4m3fn),
                torch.bfloat16,
            )
        elif fmt == "mxfp8":
            out = kitchen.dequantize_mxfp8(
                value.view(torch.float8_e4m3fn), scales["weight_scale"].view(torch.float8_e8m0fnu), torch.bfloat16
            )
        else:
            out = kitchen.dequantize_int8_simple(value, scales["weight_scale"].float()).to(torch.bfloat16)
        return out[tuple(slice(0, d) for d in shape)].contiguous() if tuple(out.shape) != tuple(shape) else out


def _read(header: SafetensorsHeader, key: str) -> torch.Tensor:
    return next(iter_tensors(header, {key}))[1]


def _refuse(header: SafetensorsHeader, what: str) -> LTX2LoadError:
    return LTX2LoadError(
        f"{header.path.name}: {what}. The file is damaged or was converted wrongly; download it "
        "again, or pick the release file."
    )


def _layer_formats(header: SafetensorsHeader) -> tuple[dict[str, dict], str, set[str]]:
    """({layer: its quantization config}, where they were read from, entries that are markers, not tensors)."""
    if METADATA_KEY in header.metadata:
        try:
            data = json.loads(header.metadata[METADATA_KEY])
        except (json.JSONDecodeError, RecursionError):
            raise _refuse(header, f"its {METADATA_KEY} metadata entry is not valid JSON") from None
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, dict) or not all(isinstance(v, dict) for v in layers.values()):
            raise _refuse(header, f"its {METADATA_KEY} metadata entry has no map of layers")
        markers = {k for k in header.entries if k.endswith(".comfy_quant")}
        return layers, METADATA_KEY, markers
    markers = {k for k in header.entries if k.endswith(".comfy_quant")}
    if markers:
        layers = {}
        for key, value in iter_tensors(header, markers):
            try:
                layers[key.removesuffix(".comfy_quant")] = json.loads(value.numpy().tobytes())
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                raise _refuse(header, f"its {shown(key)} does not hold a JSON quantization config") from None
        if not all(isinstance(v, dict) for v in layers.values()):
            raise _refuse(header, "one of its .comfy_quant tensors holds no JSON object")
        return layers, ".comfy_quant tensors", markers
    legacy = {k for k in header.entries if k == LEGACY_MARKER or k.endswith("." + LEGACY_MARKER)}
    if legacy:
        marker = header.entries[min(legacy)]
        fmt = "float8_e5m2" if marker.dtype == torch.float8_e5m2 else "float8_e4m3fn"
        layers = {
            k.removesuffix(".scale_weight"): {"format": fmt} for k in header.entries if k.endswith(".scale_weight")
        }
        return layers, f"{LEGACY_MARKER} (legacy)", legacy
    layers = {
        k.removesuffix(".weight"): {"format": "float8_e4m3fn" if e.dtype == torch.float8_e4m3fn else "float8_e5m2"}
        for k, e in header.entries.items()
        if e.dtype in FP8_DTYPES and k.endswith(".weight")
    }
    return layers, "weight_scale" if layers else "none", set()


def read_layout(header: SafetensorsHeader, rename: Callable[[str], str | None] | None = None) -> StoredLayout:
    """The file's layout; `rename` maps its keys to the names the component's key ops expect (None drops a key:
    a tokenizer stored as a tensor, say). Refuses a declared layer without the tensors its format needs."""
    layers, spelling, markers = _layer_formats(header)
    legacy = spelling.startswith(LEGACY_MARKER)
    entries = {}
    for key, entry in header.entries.items():
        if key in markers:
            continue
        if legacy and key.endswith(".scale_weight"):
            key = key.removesuffix(".scale_weight") + ".weight_scale"
        elif legacy and key.endswith(".scale_input"):
            key = key.removesuffix(".scale_input") + ".input_scale"
        entries[key] = TensorEntry(key, entry.dtype, entry.shape, entry.start, entry.nbytes)
    formats = {}
    for layer, conf in layers.items():
        fmt, weight = conf.get("format"), f"{layer}.weight"
        if fmt not in FP8_FORMATS and fmt not in UNPACKED_FORMATS:
            known = ", ".join([*FP8_FORMATS, *UNPACKED_FORMATS])
            raise LTX2InputError(
                f"{header.path.name}: layer {shown(layer)} is stored as {shown(fmt, 40)}, a format the pack does not "
                f"read (it reads {known}). Pick the fp8 or bf16 release of this file."
            )
        if conf.get("convrot") or (isinstance(conf.get("params"), dict) and conf["params"].get("convrot")):
            raise LTX2InputError(
                f"{header.path.name}: layer {shown(layer)} is stored rotated (int8 convrot), which "
                "the pack does not read. Pick the fp8 or bf16 release of this file."
            )
        if weight not in entries:
            raise _refuse(header, f"its quantization metadata names layer {shown(layer)}, which has no weight")
        needs, dtype = UNPACKED_FORMATS.get(fmt, (("weight_scale",), FP8_FORMATS.get(fmt)))
        if entries[weight].dtype != dtype and not (fmt == "mxfp8" and entries[weight].dtype == torch.uint8):
            raise _refuse(header, f"{shown(weight)} is declared {fmt} but stored as {entries[weight].dtype}")
        missing = [f"{layer}.{n}" for n in needs if f"{layer}.{n}" not in entries]
        if missing:
            raise _refuse(header, f"{shown(weight)} is stored as {fmt} without its {shown(missing[0])}")
        formats[weight] = fmt
    undeclared = [k for k, e in entries.items() if e.dtype in FP8_DTYPES and k.endswith(".weight") and k not in formats]
    if undeclared:
        # Read as ComfyUI reads it, such a weight's raw fp8 values (up to 448) would be the weights: noise.
        raise _refuse(
            header,
            f"{shown(undeclared[0])} is stored in fp8, and its quantization metadata ({spelling}) "
            f"does not declare it ({len(undeclared)} such weights)",
        )
    if formats and any(f in UNPACKED_FORMATS for f in formats.values()):
        require_kitchen(header.path.name, sorted({f for f in formats.values() if f in UNPACKED_FORMATS}))
    if rename is not None:
        renamed = {}
        for key, entry in entries.items():
            new = rename(key)
            if new is not None:
                renamed[new] = TensorEntry(new, entry.dtype, entry.shape, entry.start, entry.nbytes)
        entries = renamed
        formats = {rename(k): f for k, f in formats.items() if rename(k) is not None}
    normalized = SafetensorsHeader(header.path, header.metadata, entries, header.identity)
    return StoredLayout(normalized, formats, spelling)


def require_kitchen(file_name: str, formats: list[str]) -> None:
    try:
        import comfy_kitchen  # noqa: F401
    except ImportError:
        raise LTX2InputError(
            f"{file_name} stores weights as {', '.join(formats)}, which the pack reads with comfy-kitchen (ComfyUI "
            "0.16 and later install it). Install it with `python -m pip install comfy-kitchen` in ComfyUI's Python, "
            "or pick the fp8 or bf16 release of this file."
        ) from None
