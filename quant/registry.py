"""The policy registry. A policy is data (a name, a version, what it does, where it runs); its backend, one
per family, checks the environment and says how each tensor and module changes. Unknown names list the
valid ones."""

from dataclasses import dataclass
from typing import Protocol

import torch

from ..ltx2.errors import LTX2InputError


class PolicyUnavailable(LTX2InputError):
    """The policy cannot run on this device or with the installed packages (raised before any weight is read)."""


class Backend(Protocol):
    """One per policy family (a module of quant/)."""

    def check(self, policy: "Policy", device: torch.device) -> None:
        """Raise PolicyUnavailable if this device or these packages cannot run the policy."""

    def quantize(self, policy: "Policy", key: str, weight: torch.Tensor,
                 compute_dtype: torch.dtype) -> list[tuple[str, torch.Tensor]]:
        """The tensors to keep for one selected linear weight (bf16, LoRA already fused), for a model that
        computes in `compute_dtype`."""

    def module_ops(self, policy: "Policy", weight_keys: set[str]) -> tuple:
        """ltx-core ModuleOps applied to the meta model before loading (layer classes that read the new tensors)."""

    def prepare(self, policy: "Policy", model: torch.nn.Module, device: torch.device,
                compute_dtype: torch.dtype) -> list[str]:
        """Readies the built model for `device` (e.g. picks the fp8 matmul where the GPU has one); notes for the
        load report."""


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    description: str
    backend: str  # module of quant/ implementing it
    runs_on: str  # for people: where it runs
    fp8: bool = False  # stores fp8 weights: needs dims multiple of 16; a no-op on an fp8 checkpoint
    text_encoder: bool = False  # may also be used for the Gemma text encoder
    options: tuple[tuple[str, object], ...] = ()

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("none", 1, "bf16 as stored", "native", "any", text_encoder=True),
        Policy("fp8_cast", 1, "ltx-core's fp8_cast: block linears cast to float8_e4m3fn while loading, upcast in "
               "forward (no scale)", "native", "any", fp8=True),
        Policy("fp8_scaled", 1, "float8_e4m3fn weights with one scale per output row, rescaled in forward",
               "fp8_scaled", "any", fp8=True, text_encoder=True),
        Policy("fp8_scaled_mm", 1, "ltx-core's fp8_scaled_mm: W8A8 through TensorRT-LLM", "native",
               "NVIDIA GPU with tensorrt_llm", fp8=True),
        Policy("torchao_fp8_dynamic", 1, "torchao Float8DynamicActivationFloat8WeightConfig, per-row scales",
               "torchao_configs", "NVIDIA GPU, compute capability 8.9+", fp8=True,
               options=(("granularity", "per_row"),)),
        Policy("torchao_fp8_weight_only", 1, "torchao Float8WeightOnlyConfig", "torchao_configs", "any", fp8=True,
               text_encoder=True),
        Policy("torchao_int8_weight_only", 1, "torchao Int8WeightOnlyConfig", "torchao_configs", "any",
               text_encoder=True),
        Policy("torchao_int4_weight_only", 1, "torchao Int4WeightOnlyConfig, group size 128", "torchao_configs",
               "NVIDIA GPU (SM 8.0+)", options=(("group_size", 128),)),
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
    # Imported on use: a backend may import packages (torchao) that only it needs.
    if policy.backend == "native":
        from . import native as backend
    elif policy.backend == "fp8_scaled":
        from . import fp8_scaled as backend
    elif policy.backend == "torchao_configs":
        from . import torchao_configs as backend
    else:  # a registry entry without a backend is a bug of ours, not bad input
        raise RuntimeError(f"policy {policy.name}: no backend '{policy.backend}'")
    return backend


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
