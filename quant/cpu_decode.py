"""Dequantizing on a CPU into float32, for the formats whose comfy-kitchen eager path is slow there: the same values,
bit for bit, in fewer passes over the weight (tests/unit/quant/test_as_stored.py compares every layer with kitchen's).

Why not kitchen's own: its eager nvfp4 decode splits each byte into two uint8 tensors, stacks them, widens the codes
to int32 and gathers one value per code, then scales: five passes and about 20 bytes of temporaries per value,
2.25x the time of gathering a byte's two values from a 256-entry table in one pass (a 2048x8192 weight, 2-core Xeon,
0.97 s against 0.43 s). Its int8 decode makes the float32 product as a new tensor, then the caller's copy; here the
product is made in the caller's buffer. Only these two layouts and only float32 on a CPU (the pack's compute dtype
there): anything else is kitchen's.
"""

import torch

# FP4 E2M1's sixteen code points, low nibble and high nibble alike.
E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
_PAIRS = torch.tensor([[E2M1[b >> 4], E2M1[b & 15]] for b in range(256)], dtype=torch.float32)  # ComfyUI: high first


def nvfp4(weight: torch.Tensor, scales: dict[str, torch.Tensor], out: torch.Tensor | None) -> torch.Tensor:
    """A [rows, cols / 2] packed nvfp4 slice as float32 [rows, cols], into `out` when it has that shape."""
    from comfy_kitchen.float_utils import from_blocked

    rows, cols = weight.shape[0], weight.shape[1] * 2
    blocks = from_blocked(scales["weight_scale"].view(torch.float8_e4m3fn), rows, cols // 16)
    scale = blocks.float().mul_(scales["weight_scale_2"].float())
    if out is None:
        out = torch.empty(rows, cols)
    torch.index_select(_PAIRS, 0, weight.reshape(-1).int(), out=out.view(-1, 2))
    return out.view(rows, cols // 16, 16).mul_(scale.unsqueeze(-1)).view(rows, cols)


def int8(weight: torch.Tensor, scales: dict[str, torch.Tensor], out: torch.Tensor | None) -> torch.Tensor:
    """An unrotated int8 slice times its scale (one, or one per row) as float32, into `out`."""
    out = torch.empty(weight.shape) if out is None else out
    return out.copy_(weight).mul_(scales["weight_scale"].float())
