"""How a file stores its quantized weights, in the spellings ComfyUI reads (its QUANTIZATION.md and
`comfy/utils.py`), so that a file made for ComfyUI is read here as ComfyUI reads it:

- a `_quantization_metadata` header entry: `{"format_version": "1.0", "layers": {"<layer>": {"format": ...}}}`,
  the layer named by its full key without `.weight` (Lightricks' fp8 checkpoint, ComfyUI's Gemma files);
- a `<layer>.comfy_quant` tensor per layer: the same JSON as uint8 bytes (what ComfyUI's own save writes);
- the legacy `scaled_fp8` marker tensor, with `<layer>.scale_weight` / `<layer>.scale_input` (older Comfy-Org and
  kijai files): read as `weight_scale` / `input_scale`;
- none of these: an fp8 weight with its `weight_scale` beside it is fp8 (how ltx-core's own fp8 files are read).

A file read without its metadata is read wrongly, silently: the raw fp8 values (up to 448) taken as weights, or
an nvfp4 weight's packed bytes taken as numbers. So every declared layer is checked against its tensors here: the
weight's dtype, each scale's presence, dtype and shape as its format's row says (quant/formats.py), and the values
of every small scale (a NaN or zero scale is a black video that "succeeds"); block scales are checked as their
weight streams in. Formats the pack does not read, or that the installed comfy-kitchen does not, are refused by
name. What each weight then becomes (kept as stored, or dequantized with comfy-kitchen one tensor at a time) is the
policies' business (ltx2/components/build.py).
"""

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ...errors import LTX2InputError, LTX2LoadError
from ...quant.formats import FORMATS, SCALE_SUFFIXES, Scale, StoredFormat, dequantize, missing_layout, scale_problem
from .safetensors_file import FP8_DTYPES, SafetensorsHeader, TensorEntry, iter_tensors, shown

METADATA_KEY = "_quantization_metadata"
LEGACY_MARKER = "scaled_fp8"
HADAMARD_SIZES = {4**k for k in range(1, 9)}  # comfy-kitchen's rotations: regular Hadamard matrices
LEGACY_NAMES = {".scale_weight": ".weight_scale", ".scale_input": ".input_scale"}
# Parsed layouts by file version: a checkpoint holds several components and each reads its layout.
_CACHE_SIZE = 16
_cache: OrderedDict[tuple, "StoredLayout"] = OrderedDict()
_cache_lock = threading.Lock()

__all__ = ["SCALE_SUFFIXES", "StoredLayout", "read_layout", "require_kitchen"]


@dataclass(frozen=True)
class StoredLayout:
    """A file's header as the model reads it (legacy names renamed, marker tensors dropped), the format of each
    quantized weight by weight key (`<layer>.weight`), its layer's `.comfy_quant` options, and the values of the
    small scales (checked when the file was read)."""

    header: SafetensorsHeader
    formats: dict[str, str] = field(default_factory=dict)
    spelling: str = "none"  # where the formats were read from, for the load report
    options: dict[str, dict] = field(default_factory=dict)  # weight key -> its layer's quantization config
    small: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # scale key -> its (checked) value
    shown_keys: dict[str, str] = field(default_factory=dict, repr=False)  # key -> as the file names it (legacy)

    def format_of(self, key: str) -> StoredFormat | None:
        fmt = self.formats.get(key)
        return FORMATS[fmt] if fmt is not None else None

    def fp8_weights(self) -> set[str]:
        return {k for k, f in self.formats.items() if FORMATS[f].fp8}

    def packed(self, key: str) -> StoredFormat | None:
        """The format of `key` when it is not fp8 (comfy-kitchen reads it), else None."""
        fmt = self.format_of(key)
        return fmt if fmt is not None and not fmt.fp8 else None

    def fits(self, key: str, shape: tuple[int, ...]) -> bool:
        """Whether the stored tensor `key` holds a weight of `shape` (a packed weight: its padded blocks)."""
        fmt = self.packed(key)
        return self.header.entries[key].shape == (tuple(shape) if fmt is None else fmt.stored_shape(tuple(shape)))

    def elements(self, key: str, entry: TensorEntry) -> int:
        """How many values the stored tensor holds once unpacked (a packed 4-bit byte holds two)."""
        fmt = self.packed(key)
        return entry.nbytes // entry.dtype.itemsize * (fmt.values_per_element if fmt else 1)

    def scales_of(self, key: str) -> dict[str, str]:
        """{scale name: its key} of the tensors stored beside the weight `key`."""
        fmt, layer = self.format_of(key), key.removesuffix(".weight")
        if fmt is None:
            return {}
        return {s.name: f"{layer}.{s.name}" for s in fmt.scales if f"{layer}.{s.name}" in self.header.entries}

    def scale_tensors(self, key: str) -> dict[str, torch.Tensor]:
        """{scale name: value} of the weight `key`'s stored scales (small ones as checked, the rest read now and
        checked)."""
        found = self.scales_of(key)
        rest = {k for k in found.values() if k not in self.small}
        values = {
            **{k: v for k, v in self.small.items() if k in found.values()},
            **dict(iter_tensors(self.header, rest)),
        }
        for name, scale_key in found.items():
            self.check_scale(scale_key, values[scale_key])
        return {name: values[scale_key] for name, scale_key in found.items()}

    def scale_of(self, key: str) -> tuple[StoredFormat, Scale] | None:
        """(format, scale) when `key` is a scale stored beside a quantized weight, else None."""
        for suffix in SCALE_SUFFIXES:
            if key.endswith(suffix):
                fmt = self.format_of(key.removesuffix(suffix) + ".weight")
                scale = next((s for s in fmt.scales if f".{s.name}" == suffix), None) if fmt else None
                return (fmt, scale) if scale is not None else None
        return None

    def check_scale(self, key: str, value: torch.Tensor) -> None:
        """Refuses a scale whose values no trained model has, naming the file, the key and the value."""
        found = self.scale_of(key)
        problem = scale_problem(found[1], value) if found is not None else None
        if problem:
            raise _refuse(
                self.header,
                f"{shown(self.shown_keys.get(key, key))} {problem}",
                "Such a scale makes a black or noisy video. The file is damaged or was converted wrongly; "
                "download it again, or pick the release file.",
            )

    def dequantize(self, key: str, value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """The weight `key` (stored as its format packs it) in bf16, at the model's `shape`, with comfy-kitchen; a
        `pre_quant_scale` (ComfyUI computes W (s * x)) folded into its columns."""
        fmt = self.format_of(key)
        tensors = self.scale_tensors(key)
        smoothing = tensors.pop("pre_quant_scale", None)
        if smoothing is None:
            return dequantize(fmt, value, tensors, self.options.get(key, {}), shape, torch.bfloat16)
        weight = dequantize(fmt, value, tensors, self.options.get(key, {}), shape, torch.float32)
        return weight.mul_(smoothing.float()).to(torch.bfloat16)


def _refuse(
    header: SafetensorsHeader,
    what: str,
    fix: str = "The file is damaged or was converted wrongly; download it again, or pick the release file.",
) -> LTX2LoadError:
    return LTX2LoadError(f"{header.path.name}: {what}. {fix}")


def _layer_formats(header: SafetensorsHeader) -> tuple[dict[str, dict], str, set[str]]:
    """({layer: its quantization config}, where they were read from, entries that are markers, not tensors)."""
    markers = {k for k in header.entries if k.endswith(".comfy_quant")}
    if METADATA_KEY in header.metadata:
        try:
            data = json.loads(header.metadata[METADATA_KEY])
        except (json.JSONDecodeError, RecursionError):
            raise _refuse(header, f"its {METADATA_KEY} metadata entry is not valid JSON") from None
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, dict):
            raise _refuse(header, f"its {METADATA_KEY} metadata entry has no map of layers")
        odd = next((k for k, v in layers.items() if not isinstance(v, dict)), None)
        if odd is not None:
            raise _refuse(
                header, f"its {METADATA_KEY} entry gives layer {shown(odd)} a {type(layers[odd]).__name__}, not a map"
            )
        return layers, METADATA_KEY, markers
    if markers:
        wrong = next((k for k in sorted(markers) if header.entries[k].dtype not in (torch.uint8, torch.int8)), None)
        if wrong is not None:
            raise _refuse(
                header,
                f"its {shown(wrong)} is stored as {header.entries[wrong].dtype}; ComfyUI writes a .comfy_quant as the "
                "bytes of a JSON text (uint8)",
            )
        layers = {}
        for key, value in iter_tensors(header, markers):
            try:
                layers[key.removesuffix(".comfy_quant")] = json.loads(value.view(torch.uint8).numpy().tobytes())
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                raise _refuse(header, f"its {shown(key)} does not hold a JSON quantization config") from None
        odd = next((k for k, v in layers.items() if not isinstance(v, dict)), None)
        if odd is not None:
            raise _refuse(header, f"its {shown(odd + '.comfy_quant')} holds a {type(layers[odd]).__name__}, not a map")
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


def _format(header: SafetensorsHeader, layer: str, conf: dict) -> StoredFormat:
    """The row of the layer's declared format, its options checked against the row's types."""
    name = conf.get("format")
    if not isinstance(name, str):
        raise _refuse(
            header,
            f"the quantization config of layer {shown(layer)} gives as its format {shown(name, 40)}, a "
            f"{type(name).__name__}, not a format name",
        )
    if name not in FORMATS:
        raise LTX2InputError(
            f"{header.path.name}: layer {shown(layer)} is stored as {shown(name, 40)}, a format the pack does not "
            f"read (it reads {', '.join(FORMATS)}). Pick the fp8 or bf16 release of this file."
        )
    fmt = FORMATS[name]
    for option, (kind, _) in fmt.options.items():
        value = fmt.option(conf, option)
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value <= 0)):
            raise _refuse(
                header,
                f"the quantization config of layer {shown(layer)} gives {option} = {shown(value, 40)}; {name} takes "
                f"{'a positive whole number' if kind is int else 'true or false' if kind is bool else 'a name'}",
            )
    return fmt


def _check_declared(header: SafetensorsHeader, entries: dict, layer: str, fmt: StoredFormat, conf: dict) -> None:
    weight = entries[f"{layer}.weight"]
    if weight.dtype not in fmt.storage:
        raise _refuse(header, f"{shown(weight.key)} is declared {fmt.name} but stored as {weight.dtype}")
    if len(weight.shape) != 2:
        raise _refuse(header, f"{shown(weight.key)} is declared {fmt.name} but is not a matrix ({list(weight.shape)})")
    rows, cols = weight.shape[0], weight.shape[1] * fmt.values_per_element  # padded, as stored
    for scale in fmt.scales:
        key = f"{layer}.{scale.name}"
        if key not in entries:
            if scale.required:
                raise _refuse(header, f"{shown(weight.key)} is stored as {fmt.name} without its {shown(key)}")
            continue
        entry = entries[key]
        if entry.dtype not in scale.dtypes:
            stores = " or ".join(str(d).removeprefix("torch.") for d in scale.dtypes)
            raise _refuse(header, f"{shown(key)} is stored as {entry.dtype}; {fmt.name} stores it as {stores}")
        allowed = fmt.scale_shapes(scale, (rows, cols), conf)
        columns = scale.shape == "columns" and len(entry.shape) == 1 and cols - fmt.pad < entry.shape[0] <= cols
        if entry.shape not in allowed and not columns:
            raise _refuse(
                header,
                f"{shown(key)} has shape {list(entry.shape)}, where {fmt.name} beside a {list(weight.shape)} weight "
                f"needs {' or '.join(str(list(s)) for s in allowed)}",
            )
    groupsize = fmt.option(conf, "convrot_groupsize") if fmt.rotated(conf) else None
    if groupsize and (cols % groupsize or groupsize not in HADAMARD_SIZES):
        raise _refuse(
            header,
            f"layer {shown(layer)} is rotated in groups of {groupsize} (convrot_groupsize), which must be a power of 4 "
            f"that tiles its {cols} columns",
        )


def _parse(header: SafetensorsHeader) -> StoredLayout:
    """The file's layout under its own key names, every declaration and small scale checked."""
    layers, spelling, markers = _layer_formats(header)
    legacy = spelling.startswith(LEGACY_MARKER)
    entries, shown_keys = {}, {}
    for key, entry in header.entries.items():
        if key in markers:
            continue
        new = key
        for old, name in LEGACY_NAMES.items():
            if legacy and key.endswith(old):
                new = key.removesuffix(old) + name
                shown_keys[new] = key
        entries[new] = TensorEntry(new, entry.dtype, entry.shape, entry.start, entry.nbytes)
    formats, options = {}, {}
    for layer, conf in layers.items():
        fmt, weight = _format(header, layer, conf), f"{layer}.weight"
        if weight not in entries:
            raise _refuse(header, f"its quantization metadata names layer {shown(layer)}, which has no weight")
        _check_declared(header, entries, layer, fmt, conf)
        formats[weight], options[weight] = fmt.name, conf
    undeclared = [k for k, e in entries.items() if e.dtype in FP8_DTYPES and k.endswith(".weight") and k not in formats]
    if undeclared:
        # Read as ComfyUI reads it, such a weight's raw fp8 values (up to 448) would be the weights: noise.
        raise _refuse(
            header,
            f"{shown(undeclared[0])} is stored in fp8, and its quantization metadata ({spelling}) "
            f"does not declare it ({len(undeclared)} such weights)",
        )
    readers = {FORMATS[f].name: FORMATS[f] for f in formats.values() if not FORMATS[f].fp8}
    if readers:
        require_kitchen(header.path.name, sorted(readers))
        for fmt in readers.values():
            why = missing_layout(fmt)
            if why is not None:
                layer = next(k for k, f in formats.items() if f == fmt.name).removesuffix(".weight")
                raise LTX2InputError(
                    f"{header.path.name}: layer {shown(layer)} is stored as {fmt.name}, which comfy-kitchen reads from "
                    f"release {fmt.kitchen} on, and {why}. Update it in ComfyUI's Python: python -m pip install -U "
                    f'"comfy-kitchen>={fmt.kitchen}"; or pick the fp8 or bf16 release of this file.'
                )
    normalized = SafetensorsHeader(header.path, header.metadata, entries, header.identity)
    layout = StoredLayout(normalized, formats, spelling, options, {}, shown_keys)
    small = {
        f"{w.removesuffix('.weight')}.{s.name}"
        for w, f in formats.items()
        for s in FORMATS[f].scales
        if s.small and f"{w.removesuffix('.weight')}.{s.name}" in entries
    }
    for key, value in iter_tensors(normalized, small):
        layout.check_scale(key, value)
        layout.small[key] = value
    return layout


def read_layout(header: SafetensorsHeader, rename: Callable[[str], str | None] | None = None) -> StoredLayout:
    """The file's layout; `rename` maps its keys to the names the component's key ops expect (None drops a key:
    a tokenizer stored as a tensor, say). Refuses a declared layer without the tensors its format needs, or with
    scales no trained model has. Parsed once per version of the file."""
    cache_key = (str(header.path), header.identity) if header.identity else None
    with _cache_lock:
        layout = _cache.get(cache_key) if cache_key else None
    if layout is None:
        layout = _parse(header)
        if cache_key:
            with _cache_lock:
                _cache[cache_key] = layout
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
    if rename is None:
        return layout

    def renamed(table: dict) -> dict:
        return {new: v for k, v in table.items() if (new := rename(k)) is not None}

    entries = {
        new: TensorEntry(new, e.dtype, e.shape, e.start, e.nbytes)
        for k, e in layout.header.entries.items()
        if (new := rename(k)) is not None
    }
    header = SafetensorsHeader(layout.header.path, layout.header.metadata, entries, layout.header.identity)
    shown_keys = {new: layout.shown_keys.get(k, k) for k in layout.header.entries if (new := rename(k)) is not None}
    return StoredLayout(
        header,
        renamed(layout.formats),
        layout.spelling,
        renamed(layout.options),
        renamed(layout.small),
        shown_keys,
    )


def require_kitchen(file_name: str, formats: list[str]) -> None:
    try:
        import comfy_kitchen  # noqa: F401
    except ImportError:
        raise LTX2InputError(
            f"{file_name} stores weights as {', '.join(formats)}, which the pack reads with comfy-kitchen (ComfyUI "
            "0.16 and later install it). Install it with `python -m pip install comfy-kitchen` in ComfyUI's Python, "
            "or pick the fp8 or bf16 release of this file."
        ) from None
