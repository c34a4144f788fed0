"""The policy registry: every policy as data, one line each; its backend is the quant/ module it names. Adding a
policy is one backend module (or a function in an existing one) plus one line here. Unknown names list the
valid ones."""

import importlib

import torch

from ..errors import LTX2InputError
from .policy import Backend, Policy, PolicyUnavailable

POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("none", 1, "bf16 as stored", "ltx_core_policies", "any", weight_bytes=2, text_encoder=True,
               streamable=True),
        Policy("fp8_cast", 1, "ltx-core's fp8_cast: block linears cast to float8_e4m3fn while loading, upcast in "
               "forward (no scale)", "ltx_core_policies", "any", fp8=True, streamable=True,
               on_fp8_release="fp8_scaled"),
        Policy("fp8_scaled", 1, "float8_e4m3fn weights with one scale per output row; fp8 matmuls on compute "
               "capability 8.9+, upcast elsewhere", "fp8_scaled", "any", fp8=True, text_encoder=True,
               streamable=True, on_fp8_release="fp8_scaled"),
        Policy("fp8_scaled_mm", 1, "ltx-core's fp8_scaled_mm: W8A8 through TensorRT-LLM", "ltx_core_policies",
               "NVIDIA GPU with tensorrt_llm", fp8=True, on_fp8_release="fp8_scaled_mm", needs_fp8_release=True,
               fuses_lora=False),
        Policy("torchao_fp8_dynamic", 1, "torchao Float8DynamicActivationFloat8WeightConfig, per-row scales",
               "torchao_policies", "NVIDIA GPU, compute capability 8.9+", fp8=True, on_fp8_release="fp8_scaled",
               options=(("granularity", "per_row"),)),
        Policy("torchao_fp8_weight_only", 1, "torchao Float8WeightOnlyConfig", "torchao_policies", "any", fp8=True,
               text_encoder=True, on_fp8_release="fp8_scaled"),
        Policy("torchao_int8_weight_only", 1, "torchao Int8WeightOnlyConfig", "torchao_policies", "any",
               text_encoder=True),
        Policy("torchao_int4_weight_only", 1, "torchao Int4WeightOnlyConfig, group size 128", "torchao_policies",
               "NVIDIA GPU (SM 8.0+)", weight_bytes=0.5, options=(("group_size", 128),)),
    )
}


def policy_names(text_encoder: bool = False) -> list[str]:
    return [name for name, p in POLICIES.items() if p.text_encoder or not text_encoder]


def get_policy(name: str, input_name: str = "quantization", text_encoder: bool = False) -> Policy:
    valid = policy_names(text_encoder)
    if name not in valid:
        raise LTX2InputError(f"{input_name}: unknown policy '{name}'. Valid: {', '.join(valid)}.")
    return POLICIES[name]


def backend_for(policy: Policy) -> Backend:
    """The policy's backend module, imported on first use: a backend may import packages (torchao) that only
    it needs, so the other policies work where those are missing."""
    return importlib.import_module(f".{policy.backend}", __package__)


def check_policy(policy: Policy, device: torch.device | str, input_name: str = "quantization") -> None:
    """Raises PolicyUnavailable, naming the input, what is missing and what to pick instead, before any weight is
    read."""
    try:
        backend_for(policy).check(policy, torch.device(device))
    except PolicyUnavailable as error:
        raise PolicyUnavailable(f"{input_name}: {error}") from None


def recommend_policy(device: torch.device | str) -> str:
    """The best transformer policy for `device`: fp8 W8A8 where the tensor cores run it, else scaled fp8
    storage (half the bytes of bf16 at a lower error than fp8_cast, on any device)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        if torch.cuda.get_device_capability(device) >= (8, 9):
            try:
                check_policy(POLICIES["torchao_fp8_dynamic"], device)
                return "torchao_fp8_dynamic"
            except PolicyUnavailable:
                pass
    return "fp8_scaled"
