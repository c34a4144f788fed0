"""fp8_scaled: float8_e4m3fn weights with one float32 scale per output row.

fp8_cast stores `w.to(fp8)`: weights much smaller than fp8's normal range (e4m3's smallest normal is 2^-6)
land on its few subnormal steps, so small-magnitude layers lose most of their precision. Scaling each row so
that its largest weight maps to 448 (e4m3's max) uses the whole range; the forward multiplies the scale back.
Memory is fp8_cast's plus 4 bytes per output row.

Two forwards. On GPUs whose tensor cores multiply fp8 (compute capability 8.9+: Ada, Hopper, Blackwell) the
activations are quantized per token and the product is one `torch._scaled_mm` with the row-wise weight scales:
no bf16 copy of the weight is ever made. Elsewhere the weight is upcast to the compute dtype, multiplied, and the
output rescaled in place.
"""

import functools

import torch

# (ltx-core imported where used, as in ltx_core_policies.py: the nodes register without it.)
from .formats import SCALE_SUFFIXES
from .policy import Backend, Policy
from .scratch import room

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max


def quantize_rows(weight: torch.Tensor, rows_per_chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scale of shape [out, 1]) with weight ~= fp8 * scale.

    A slice of rows at a time through one reused float32 buffer, with in-place ops only: temporaries the size
    of the whole tensor (or many small ones spread over allocator arenas) would dominate the load's peak."""
    q = torch.empty(weight.shape, dtype=FP8, device=weight.device)
    scale = torch.empty(weight.shape[0], 1, dtype=torch.float32, device=weight.device)
    scratch = torch.empty(
        min(rows_per_chunk, weight.shape[0]), weight.shape[1], dtype=torch.float32, device=weight.device
    )
    for start in range(0, weight.shape[0], rows_per_chunk):
        rows = slice(start, start + rows_per_chunk)
        w = scratch[: weight[rows].shape[0]]
        w.copy_(weight[rows])
        row_scale = scale[rows]
        torch.maximum(w.amax(dim=1, keepdim=True), w.amin(dim=1, keepdim=True).neg_(), out=row_scale)
        row_scale.clamp_(min=1e-12).div_(FP8_MAX)
        q[rows].copy_(w.div_(row_scale).clamp_(-FP8_MAX, FP8_MAX))
    return q, scale


# Rows of activations quantized and multiplied at a time on the fp8 matmul path: a chunk holds at most this many
# input elements, so the quantization's temporaries (the chunk in float32, its fp8 copy, |x|) and the chunk's
# output stay within a few tens of MiB whatever the size (memory/room.py's margin holds them); quantized whole, a
# 1280x768 stage-2 input cost 2 GB beside the stage's activations.
QUANT_CHUNK_ELEMENTS = 2**22


def quantize_tokens(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 activations [tokens, in], float32 scale [tokens, 1]): one scale per token (row of x)."""
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp_(min=1e-12).div_(FP8_MAX)
    return (x.float() / scale).clamp_(-FP8_MAX, FP8_MAX).to(FP8), scale


def fp8_matmul_linear(
    x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """x @ (weight * weight_scale).T + bias with both operands in fp8: per-token activation scales, per-row
    weight scales, accumulated in float32 by the tensor cores, written in x's dtype. `weight` is [out, in]
    row-major, so `weight.t()` is the column-major right operand _scaled_mm wants. A chunk of rows at a time
    (QUANT_CHUNK_ELEMENTS): each token's scale is its own, so the chunks give the rows the whole would."""
    rows = x.reshape(-1, x.shape[-1])
    out = torch.empty(rows.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    step = max(1, QUANT_CHUNK_ELEMENTS // rows.shape[1])
    bias = None if bias is None else bias.to(x.dtype)
    for start in range(0, rows.shape[0], step):
        xq, x_scale = quantize_tokens(rows[start : start + step])
        out[start : start + step] = torch._scaled_mm(
            xq, weight.t(), scale_a=x_scale, scale_b=weight_scale.view(1, -1), bias=bias, out_dtype=x.dtype
        )
        del xq, x_scale
    return out.reshape(*x.shape[:-1], out.shape[-1])


# e4m3 bits moved into float16's bit positions give the value divided by 2^8, subnormals included (e4m3's
# exponent bias is 7, float16's 15): the factor goes into the per-row scale, which is multiplied in anyway.
CPU_UPCAST_FACTOR = 2.0**8


def upcast_fp8_cpu(
    weight: torch.Tensor, dtype: torch.dtype, out: torch.Tensor | None = None, chunk_elements: int = 2**21
) -> torch.Tensor:
    """`weight.to(dtype) / 2**8`, for an e4m3 weight on the CPU, exactly.

    torch converts fp8 to float32 on the CPU one element at a time (measured 2.8x the time of bf16 -> float32 on
    a 4096x16384 weight); float16 -> float32 runs on the CPU's conversion instructions. Done a slice of rows at
    a time through one int16 buffer that stays in cache: the sign-extended byte shifted into place, the
    exponent's top bit cleared. Into `out` when given (the model's scratch, quant/scratch.py)."""
    if out is None:
        out = torch.empty(weight.shape, dtype=dtype)
    rows = max(1, chunk_elements // weight.shape[1])
    source = weight.view(torch.int8)
    buffer = torch.empty(min(rows, weight.shape[0]), weight.shape[1], dtype=torch.int16)
    for start in range(0, weight.shape[0], rows):
        bits = buffer[: source[start : start + rows].shape[0]]
        bits.copy_(source[start : start + rows])
        bits.bitwise_left_shift_(7).bitwise_and_(-0x4080)  # keep bit 15 (sign) and bits 13..7 (exponent, mantissa)
        out[start : start + rows].copy_(bits.view(torch.float16))
    return out


class Fp8ScaledLinear(torch.nn.Linear):
    """A Linear whose weight is fp8 with a per-row scale; the forward computes in the input's dtype."""

    fp8_matmul = False  # set per layer by Fp8Scaled.prepare() where the GPU multiplies fp8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp8_matmul and x.dtype == torch.bfloat16:
            return fp8_matmul_linear(x, self.weight, self.weight_scale, self.bias)
        # The scale belongs to output channels, so it is applied to the (small) output rather than to the weight:
        # one upcast pass over the weight per forward instead of three. fp8 values are exact in bf16 and float32.
        # In place: the product is computed in float32 and rounded once into the output, no second output-sized
        # tensor.
        if self.weight.device.type == "cpu" and self.weight.dtype == FP8:
            with room(self.weight.shape, x.dtype, x.device) as weight:
                out = torch.nn.functional.linear(x, upcast_fp8_cpu(self.weight, x.dtype, weight))
            out.mul_(self.weight_scale.view(-1) * CPU_UPCAST_FACTOR)  # powers of two: the same rounding
        else:
            out = torch.nn.functional.linear(x, self.weight.to(x.dtype))
            out.mul_(self.weight_scale.view(-1))
        return out if self.bias is None else out.add_(self.bias)


def _convert(model: torch.nn.Module, weight_keys: set[str]) -> torch.nn.Module:
    for name, module in model.named_modules():
        if f"{name}.weight" in weight_keys and type(module) is torch.nn.Linear:
            # Same instance, new class (as ltx-core's fp8 layers do); the scale arrives with the weights.
            module.__class__ = Fp8ScaledLinear
            module.weight_scale = torch.nn.Parameter(
                torch.empty(module.out_features, 1, dtype=torch.float32, device="meta"), requires_grad=False
            )
    return model


def fp8_matmul_available(device: torch.device, compute_dtype: torch.dtype) -> str | None:
    """Why this device cannot multiply in fp8 here, or None when it can."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"device '{device}' has no fp8 tensor cores"
    if torch.cuda.get_device_capability(device) < (8, 9):
        return f"{torch.cuda.get_device_name(device)} is compute capability below 8.9"
    if compute_dtype != torch.bfloat16:
        return "the transformer computes in float32 (fp8 matmuls write bf16)"
    return _scaled_mm_fails(device.index if device.index is not None else torch.cuda.current_device())


@functools.cache
def _scaled_mm_fails(index: int) -> str | None:
    """Runs one small `_scaled_mm` with row-wise scales on GPU `index`, once per process: whether a given torch
    build supports row-wise scaling on a given GPU (8.9 vs 9.0, CUDA version) is easier to ask than to tabulate."""
    device = torch.device("cuda", index)
    try:
        a = torch.ones(16, 16, device=device, dtype=torch.bfloat16)
        fp8_matmul_linear(a, a.to(FP8), torch.ones(16, 1, device=device), None)
    except RuntimeError as error:
        return f"torch._scaled_mm with row-wise scales failed on this GPU ({str(error)[:120]})"
    return None


class Fp8Scaled(Backend):
    """Plain torch ops: runs on any device; fp8 matmuls where the GPU has them."""

    def quantize(
        self, policy: Policy, key: str, weight: torch.Tensor, compute_dtype: torch.dtype
    ) -> list[tuple[str, torch.Tensor]]:
        q, scale = quantize_rows(weight)
        return [(key, q), (key.removesuffix(".weight") + ".weight_scale", scale)]

    def stored_fp8(
        self, policy: Policy, key: str, tensor: torch.Tensor, scales: dict[str, torch.Tensor]
    ) -> list[tuple[str, torch.Tensor]] | None:
        """An fp8 release's linears are exactly this policy's layout (fp8 weight, float32 scale) once its scale (one
        per tensor) is repeated per row: kept as stored. Its stored scales are read with their weights, not kept on
        their own (an input scale has no use here: activations are scaled per token)."""
        if key.endswith(SCALE_SUFFIXES):
            return []
        if tensor.dtype == FP8 and key in scales:
            return [
                (key, tensor),
                (key.removesuffix(".weight") + ".weight_scale", scales[key].float().expand(tensor.shape[0], 1).clone()),
            ]
        return None

    def module_ops(self, policy: Policy, weight_keys: set[str]) -> tuple:
        from ltx_core.loader.module_ops import ModuleOps

        return (
            ModuleOps(
                "Fp8ScaledLinear", matcher=lambda model: True, mutator=lambda model: _convert(model, weight_keys)
            ),
        )

    def prepare(
        self, policy: Policy, model: torch.nn.Module, device: torch.device, compute_dtype: torch.dtype
    ) -> list[str]:
        layers = [m for m in model.modules() if isinstance(m, Fp8ScaledLinear)]
        if not layers:
            return []
        why_not = fp8_matmul_available(device, compute_dtype)
        for layer in layers:
            layer.fp8_matmul = why_not is None
        if why_not is None:
            return [f"{len(layers)} linears multiply in fp8 (torch._scaled_mm, per-token activation scales)"]
        return [f"fp8 weights upcast per forward: {why_not}"]

    def multiplies_fp8(self, device: torch.device, compute_dtype: torch.dtype) -> bool:
        return fp8_matmul_available(device, compute_dtype) is None
