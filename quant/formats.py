"""The formats a file may store a linear weight in, one row each, as ComfyUI 0.33 names them (its
`comfy/quant_ops.py` QUANT_ALGOS): what the weight is stored as, which tensors sit beside it and the shape, dtype
and values each must have, how it is padded and blocked, and how comfy-kitchen (ComfyUI's own kernels) reads it.

A new format is one row here. Everything else asks the rows: reading a file's declarations and checking its
scales (ltx2/files/stored_formats.py), dequantizing at load, keeping the weight as stored (as_stored.py), the
bytes a layer holds. fp8 rows have no kitchen layout: the pack's own fp8 layer keeps them (fp8_scaled.py).

Every scale is checked where it is read (a header's small scales when the file is read, block scales as each
weight streams in): a NaN, infinite, zero or negative scale, or one far outside what any trained model has, makes
a black or noisy video that "succeeds"; it is refused instead, naming the key and the value.
"""

import importlib.metadata
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import cpu_decode

# A weight or activation beyond this magnitude is no trained model's (bf16 and fp16 top out near it): a scale
# whose format's largest value times it exceeds this is refused. The smallest: scales below it make a layer of
# zeros.
LARGEST_VALUE = 2.0**16
SMALLEST_SCALE = 1e-20
# comfy-kitchen's cuBLAS tile of block scales: 128 rows by 4 scales, each padded to whole tiles.
TILE_ROWS, TILE_COLUMNS = 128, 4


@dataclass(frozen=True)
class Scale:
    """A tensor stored beside a quantized weight as `<layer>.<name>`."""

    name: str
    shape: str  # "one", "one_or_rows" (one, or rows x 1), "rows", "columns", "blocks", "groups", "codebook"
    dtypes: tuple[torch.dtype, ...]  # what the file may store it as
    values: str = "positive"  # "positive", "nonnegative" (block scales: empty blocks are 0), "e8m0", "finite"
    largest: float = math.inf  # the largest plausible value
    required: bool = True
    field: str | None = "scale"  # the comfy-kitchen layout parameter it fills (None: the layer keeps it itself)
    view: torch.dtype | None = None  # read as this dtype (bytes viewed: ComfyUI's `.view(dtype)`)
    small: bool = True  # small enough to read when the header is read (block scales are read with their weight)


FLOATS = (torch.float32, torch.bfloat16, torch.float16)
_E8M0 = getattr(torch, "float8_e8m0fnu", None)
INPUT_SCALE = Scale("input_scale", "one", FLOATS, largest=LARGEST_VALUE / 448, required=False, field=None)


@dataclass(frozen=True)
class StoredFormat:
    name: str
    storage: tuple[torch.dtype, ...]  # the weight's dtype in the file (the first is the one it is read as)
    scales: tuple[Scale, ...]
    layout: str | None = None  # comfy-kitchen's layout class; None: the pack's own fp8 layer
    kitchen: str = ""  # the first comfy-kitchen release that reads it
    values_per_element: int = 1  # values packed in one stored element (4-bit formats: 2 per byte)
    pad: int = 1  # the weight is stored padded to whole pad x pad blocks
    block: int = 0  # values per block scale along a row (0: no block scales)
    quantize_input: bool = True  # kitchen's native kernel multiplies a quantized input (ComfyUI's flag)
    options: dict = field(default_factory=dict)  # its `.comfy_quant` options and their types and defaults
    # Whether its columns are rotated in groups (convrot_groupsize): "always", never (None), or when the named option
    # is set (int8's `convrot`).
    rotation: str | None = None
    # kitchen's quantize arguments beyond its options, from the layer's options and its stored scales' shapes (for a
    # LoRA fused while loading, quantized again into the layer's layout: as_stored.py).
    quantize_kwargs: Callable[[dict, dict], dict] = field(default=lambda options, shapes: {}, repr=False)
    # A faster float32 decode on a CPU than kitchen's eager one, where there is one (cpu_decode.py), for layers
    # `rotated` leaves unrotated; None: kitchen's.
    cpu_float32: Callable | None = field(default=None, repr=False)

    def rotated(self, conf: dict) -> bool:
        return self.rotation == "always" or (self.rotation is not None and bool(self.option(conf, self.rotation)))

    @property
    def fp8(self) -> bool:
        return self.layout is None

    def stored_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the stored weight of a layer of `shape` [out, in]."""
        if len(shape) != 2:
            return tuple(shape)
        rows, cols = (math.ceil(d / self.pad) * self.pad for d in shape)
        return rows, cols // self.values_per_element

    def scale_shapes(self, scale: Scale, shape: tuple[int, ...], conf: dict) -> list[tuple[int, ...]]:
        """The shapes `scale` may have beside a weight of `shape` [out, in]."""
        rows, cols = shape if len(shape) == 2 else (0, 0)
        padded_rows, padded_cols = (math.ceil(d / self.pad) * self.pad for d in (rows, cols))
        if scale.shape == "one":
            return [(), (1,)]
        if scale.shape == "one_or_rows":
            return [(), (1,), (rows, 1)]
        if scale.shape == "rows":
            return [(rows,)]
        if scale.shape == "columns":
            return [(cols,)]
        if scale.shape == "blocks":
            tiles = math.ceil(padded_rows / TILE_ROWS) * TILE_ROWS
            blocks = math.ceil(padded_cols // self.block / TILE_COLUMNS) * TILE_COLUMNS
            return [(tiles, blocks)]
        if scale.shape == "groups":
            return [(rows, cols // max(1, self.option(conf, "group_size")))]
        return [(16,)]  # codebook

    def option(self, conf: dict, name: str):
        """A `.comfy_quant` option, top level or under `params` (ComfyUI reads both), else its default."""
        params = conf.get("params") if isinstance(conf.get("params"), dict) else {}
        return conf.get(name, params.get(name, self.options[name][1]))


def _fp8(name: str, dtype: torch.dtype) -> StoredFormat:
    largest = torch.finfo(dtype).max
    return StoredFormat(
        name,
        (dtype,),
        (Scale("weight_scale", "one", FLOATS, largest=LARGEST_VALUE / largest), INPUT_SCALE),
    )


FORMATS: dict[str, StoredFormat] = {
    f.name: f
    for f in (
        _fp8("float8_e4m3fn", torch.float8_e4m3fn),
        _fp8("float8_e5m2", torch.float8_e5m2),
        StoredFormat(
            "nvfp4",
            (torch.uint8,),
            (
                Scale(
                    "weight_scale",
                    "blocks",
                    (torch.float8_e4m3fn, torch.uint8),
                    values="nonnegative",
                    field="block_scale",
                    view=torch.float8_e4m3fn,
                    small=False,
                ),
                Scale("weight_scale_2", "one", FLOATS, largest=LARGEST_VALUE / (448 * 6)),
                INPUT_SCALE,
                # ModelOpt's AWQ smoothing: ComfyUI computes W (s * x).
                Scale("pre_quant_scale", "columns", FLOATS, largest=LARGEST_VALUE, required=False, field=None),
            ),
            layout="TensorCoreNVFP4Layout",
            kitchen="0.1.0",
            cpu_float32=cpu_decode.nvfp4,
            values_per_element=2,
            pad=16,
            block=16,
        ),
        StoredFormat(
            "mxfp8",
            (torch.float8_e4m3fn, torch.uint8),
            (
                Scale(
                    "weight_scale",
                    "blocks",
                    tuple(d for d in (_E8M0, torch.uint8) if d is not None),
                    values="e8m0",
                    view=_E8M0,
                    small=False,
                ),
                INPUT_SCALE,
            ),
            layout="TensorCoreMXFP8Layout",
            kitchen="0.2.8",
            pad=32,
            block=32,
        ),
        StoredFormat(
            "int8_tensorwise",
            (torch.int8,),
            (Scale("weight_scale", "one_or_rows", FLOATS, largest=LARGEST_VALUE / 127),),
            layout="TensorWiseINT8Layout",
            kitchen="0.2.11",
            quantize_input=False,
            options={"convrot": (bool, False), "convrot_groupsize": (int, 256)},
            rotation="convrot",
            cpu_float32=cpu_decode.int8,
            # kitchen rotates per output row only; a rotated or per-row layer has a scale per row
            quantize_kwargs=lambda options, shapes: {
                "per_channel": bool(options["convrot"]) or math.prod(shapes.get("weight_scale", ())) > 1
            },
        ),
        StoredFormat(
            "convrot_w4a4",
            (torch.int8,),
            (Scale("weight_scale", "rows", FLOATS, largest=LARGEST_VALUE / 7),),
            layout="TensorCoreConvRotW4A4Layout",
            kitchen="0.2.17",
            values_per_element=2,
            quantize_input=False,
            options={"convrot_groupsize": (int, 256), "linear_dtype": (str, "int4")},
            rotation="always",
        ),
        StoredFormat(
            "asym_w4a8_int8",
            (torch.int8,),
            (
                Scale(
                    "weight_s_rel",
                    "groups",
                    (torch.float8_e4m3fn, torch.uint8),
                    values="nonnegative",
                    view=torch.float8_e4m3fn,
                    small=False,
                ),
                Scale("weight_s_channel", "rows", FLOATS, largest=LARGEST_VALUE / 448, field="s_channel"),
                Scale("weight_codebook", "codebook", FLOATS, values="finite", required=False, field="codebook"),
            ),
            layout="AsymW4A8Int8Layout",
            kitchen="0.2.27",
            values_per_element=2,
            quantize_input=False,
            options={"group_size": (int, 16), "convrot_groupsize": (int, 256)},
            rotation="always",
            quantize_kwargs=lambda options, shapes: {"codebook": "weight_codebook" in shapes},
        ),
    )
}
# Every tensor name that belongs to a quantized weight, never to the model itself (`<layer>.<suffix>`).
SCALE_SUFFIXES = tuple(sorted({f".{s.name}" for f in FORMATS.values() for s in f.scales}))


def kitchen_version() -> str | None:
    try:
        return importlib.metadata.version("comfy-kitchen")
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_layout(fmt: StoredFormat) -> str | None:
    """Why the installed comfy-kitchen cannot read `fmt` (None: it can, or the format needs no kitchen)."""
    if fmt.layout is None:
        return None
    try:
        import comfy_kitchen.tensor as tensors
    except ImportError:
        return "comfy-kitchen is not installed"
    if getattr(tensors, fmt.layout, None) is None:
        return f"the installed comfy-kitchen {kitchen_version() or ''} has no {fmt.layout}".replace("  ", " ")
    return None


def layout_class(fmt: StoredFormat):
    import comfy_kitchen.tensor as tensors

    return getattr(tensors, fmt.layout)


def layout_params(fmt: StoredFormat, tensors: dict[str, torch.Tensor], conf: dict, shape, dtype: torch.dtype):
    """comfy-kitchen's layout parameters for a weight of `shape` [out, in] dequantized to `dtype`, from its stored
    tensors by scale name (block scales viewed as their format says)."""
    values = {}
    for scale in fmt.scales:
        if scale.field is not None and scale.name in tensors:
            tensor = tensors[scale.name]
            values[scale.field] = tensor.view(scale.view) if scale.view is not None else tensor.float()
    values.update({name: kind(fmt.option(conf, name)) for name, (kind, _) in fmt.options.items()})
    if not fmt.rotated(conf):  # kitchen takes no group size for an unrotated layer
        values.pop("convrot_groupsize", None)
    return layout_class(fmt).Params(**values, orig_dtype=dtype, orig_shape=tuple(shape))


def dequantize(
    fmt: StoredFormat,
    weight: torch.Tensor,
    tensors: dict[str, torch.Tensor],
    conf: dict,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    out: torch.Tensor | None = None,
    rows_per_chunk: int = 1024,
) -> torch.Tensor:
    """The weight of `shape` in `dtype`, from its stored form (`tensors`: its scales by name), into `out` when given.

    An fp8 weight times its scale, in float32 (the pack's fp8 rows). Any other: comfy-kitchen's own dequantize,
    a slice of rows at a time (a multiple of the 128-row tile its block scales are laid out in), so the
    temporaries of kitchen's eager path (an int32 index per value, for nvfp4) stay the size of a slice, not of the
    weight."""
    if out is None:
        out = torch.empty(shape, dtype=dtype, device=weight.device)
    if fmt.fp8:
        scale = tensors.get("weight_scale")
        value = weight.float() if scale is None else weight.float() * scale.float()
        return out.copy_(value)
    layout = layout_class(fmt)
    rows = shape[0]
    on_cpu = out.dtype == torch.float32 and out.device.type == "cpu"
    fast = fmt.cpu_float32 if on_cpu and not fmt.rotated(conf) else None
    step = max(TILE_ROWS, rows_per_chunk // TILE_ROWS * TILE_ROWS)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        part = {name: _rows_of(fmt, name, tensor, start, stop, rows) for name, tensor in tensors.items()}
        stored = weight[start : min(weight.shape[0], start + math.ceil((stop - start) / fmt.pad) * fmt.pad)]
        target = out[start:stop]
        if fast is not None:
            exact = fmt.stored_shape((stop - start, shape[1])) == tuple(stored.shape)  # no padding in this slice
            full = fast(stored.contiguous(), part, target if exact else None)
        else:
            params = layout_params(fmt, part, conf, (stop - start, shape[1]), dtype)
            full = layout.dequantize(stored.contiguous(), params)
        if full is not target:
            target.copy_(full[: stop - start, : shape[1]])
    return out


def _rows_of(fmt: StoredFormat, name: str, tensor: torch.Tensor, start: int, stop: int, rows: int) -> torch.Tensor:
    """The part of scale `name` that belongs to rows start:stop of the weight."""
    scale = next((s for s in fmt.scales if s.name == name), None)
    if scale is None or scale.shape in ("one", "columns", "codebook") or tensor.numel() == 1:
        return tensor
    if scale.shape == "blocks":  # whole 128-row tiles; `start` is a multiple of the tile
        return tensor[start : start + math.ceil((stop - start) / TILE_ROWS) * TILE_ROWS]
    return tensor[start:stop] if tensor.shape[0] == rows else tensor


def stored_bytes(fmt: StoredFormat, shape: tuple[int, ...]) -> int:
    """Bytes of the stored weight of a layer of `shape` (scales not counted)."""
    return math.prod(fmt.stored_shape(shape)) * fmt.storage[0].itemsize


def scale_problem(scale: Scale, value: torch.Tensor) -> str | None:
    """What is wrong with the values of a stored `scale` (None: nothing), worded to follow its key: "is nan",
    "holds -1 (3 of 64 values)"."""
    if scale.values == "e8m0":  # a power of two per byte; 0xFF is its NaN
        nan = value.view(torch.uint8) == 255
        return f"holds e8m0's NaN (0xFF) in {int(nan.sum())} of {nan.numel()} blocks" if bool(nan.any()) else None
    numbers = (value.view(scale.view) if scale.view is not None else value).float().reshape(-1)
    bad = ~torch.isfinite(numbers)
    if scale.values == "positive":
        bad |= numbers < SMALLEST_SCALE
    elif scale.values == "nonnegative":
        bad |= numbers < 0
    bad |= numbers.abs() > scale.largest
    if not bool(bad.any()):
        return None
    first = float(numbers[bad.nonzero()[0, 0]])
    what = f"is {first:.6g}" if numbers.numel() == 1 else f"holds {first:.6g} ({int(bad.sum())} of {numbers.numel()})"
    if not math.isfinite(first):
        return what
    if abs(first) > scale.largest:
        return f"{what}, beyond {scale.largest:.4g}: the weights it scales would exceed {LARGEST_VALUE:g}"
    return f"{what}; a scale must be {'positive' if scale.values == 'positive' else 'zero or more'}"
