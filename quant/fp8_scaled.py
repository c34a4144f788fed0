"""fp8_scaled: float8_e4m3fn weights with one float32 scale per output row.

fp8_cast stores `w.to(fp8)`: weights much smaller than fp8's normal range (e4m3's smallest normal is 2^-6)
land on its few subnormal steps, so small-magnitude layers lose most of their precision. Scaling each row so
that its largest weight maps to 448 (e4m3's max) uses the whole range; the forward multiplies the scale back.
Memory is fp8_cast's plus 4 bytes per output row.
"""

import torch
from ltx_core.loader.module_ops import ModuleOps

from .registry import Policy

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max


def check(policy: Policy, device: torch.device) -> None:  # noqa: ARG001 - plain torch ops, any device
    return None


def quantize_rows(weight: torch.Tensor, rows_per_chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scale of shape [out, 1]) with weight ~= fp8 * scale.

    A slice of rows at a time through one reused float32 buffer, with in-place ops only: temporaries the size
    of the whole tensor (or many small ones spread over allocator arenas) would dominate the load's peak."""
    q = torch.empty(weight.shape, dtype=FP8, device=weight.device)
    scale = torch.empty(weight.shape[0], 1, dtype=torch.float32, device=weight.device)
    scratch = torch.empty(min(rows_per_chunk, weight.shape[0]), weight.shape[1], dtype=torch.float32,
                          device=weight.device)
    for start in range(0, weight.shape[0], rows_per_chunk):
        rows = slice(start, start + rows_per_chunk)
        w = scratch[: weight[rows].shape[0]]
        w.copy_(weight[rows])
        row_scale = scale[rows]
        torch.maximum(w.amax(dim=1, keepdim=True), w.amin(dim=1, keepdim=True).neg_(), out=row_scale)
        row_scale.clamp_(min=1e-12).div_(FP8_MAX)
        q[rows].copy_(w.div_(row_scale).clamp_(-FP8_MAX, FP8_MAX))
    return q, scale


def quantize(policy: Policy, key: str, weight: torch.Tensor) -> list[tuple[str, torch.Tensor]]:  # noqa: ARG001
    q, scale = quantize_rows(weight)
    return [(key, q), (key.removesuffix(".weight") + ".weight_scale", scale)]


class Fp8ScaledLinear(torch.nn.Linear):
    """A Linear whose weight is fp8 with a per-row scale; the forward computes in the input's dtype.

    The scale belongs to output channels, so it is applied to the (small) output rather than to the weight:
    one upcast pass over the weight per forward instead of three. fp8 values are exact in bf16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.linear(x, self.weight.to(x.dtype))
        out = (out.float() * self.weight_scale.view(-1)).to(x.dtype)
        return out if self.bias is None else out + self.bias.to(x.dtype)


def _convert(model: torch.nn.Module, weight_keys: set[str]) -> torch.nn.Module:
    for name, module in model.named_modules():
        if f"{name}.weight" in weight_keys and type(module) is torch.nn.Linear:
            # Same instance, new class (as ltx-core's fp8 layers do); the scale arrives with the weights.
            module.__class__ = Fp8ScaledLinear
            module.weight_scale = torch.nn.Parameter(
                torch.empty(module.out_features, 1, dtype=torch.float32, device="meta"), requires_grad=False
            )
    return model


def module_ops(policy: Policy, weight_keys: set[str]) -> tuple:  # noqa: ARG001
    return (ModuleOps("Fp8ScaledLinear", matcher=lambda model: True, mutator=lambda model: _convert(model, weight_keys)),)
