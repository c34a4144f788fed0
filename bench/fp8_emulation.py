"""torch._scaled_mm with row-wise scales emulated on any device: for measuring the fp8 matmul's error where no GPU
of compute capability 8.9+ is at hand (bench/quant.py, tests/unit/quant/test_fp8_scaled_forward.py)."""

import torch


def emulated_scaled_mm(
    a: torch.Tensor,
    b: torch.Tensor,
    scale_a: torch.Tensor,
    scale_b: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """What `torch._scaled_mm` computes with row-wise scales: fp8 products are exact in float32, where the tensor
    cores accumulate."""
    out = (a.float() * scale_a) @ (b.float() * scale_b)
    return (out if bias is None else out + bias.float()).to(out_dtype)
