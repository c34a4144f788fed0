"""Building components as the pack does (plan, then build), for the library's unit tests."""

import torch

from ltx2_a2v.ltx2.components.build import build
from ltx2_a2v.ltx2.components.plan import ComponentPlan
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.quant import POLICIES


def build_component(
    bundle: Bundle, name: str, policy: str = "none", compute_dtype: torch.dtype = torch.float32, **kwargs
) -> tuple[torch.nn.Module, "object"]:
    """(module, load report) of one component of `bundle` under `policy`, computing in `compute_dtype` (float32,
    as the pack does on a CPU, unless a test asks for bf16)."""
    return build(ComponentPlan.read(bundle, name), POLICIES[policy], "cpu", compute_dtype, **kwargs)
