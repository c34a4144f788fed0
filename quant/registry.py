"""The policy registry: every policy as data, one line each, with the backend that does its work. Adding a torchao
variant or another ltx-core policy is one line here; a new family is one Backend subclass plus its line. Unknown
names list the valid ones."""

import torch

from ..errors import LTX2InputError
from .as_stored import AsStored
from .fp8_scaled import Fp8Scaled
from .ltx_core_policies import LtxCoreFp8Cast, LtxCoreFp8ScaledMm
from .policy import Backend, Policy, PolicyUnavailable
from .torchao_policies import FP8_TENSOR_CORES, INT4_KERNELS, Torchao

POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("none", "bf16 as stored", Backend(), runs_on="any", weight_bytes=2, text_encoder=True, streamable=True),
        Policy(
            "as_stored",
            "every layer as the file stores it (nvfp4, mxfp8, int8, fp8, bf16), never dequantized at load; "
            "comfy-kitchen's kernels where the GPU has them, else dequantized per forward",
            AsStored(),
            runs_on="any",
            weight_bytes=2,
            text_encoder=True,
            streamable=True,
            on_fp8_release="as_stored",
            keeps_stored=True,
        ),
        Policy(
            "fp8_cast",
            "ltx-core's fp8_cast: block linears cast to float8_e4m3fn while loading, upcast in forward (no scale)",
            LtxCoreFp8Cast(),
            runs_on="any",
            fp8=True,
            streamable=True,
            on_fp8_release="fp8_scaled",
        ),
        Policy(
            "fp8_scaled",
            "float8_e4m3fn weights with one scale per output row; fp8 matmuls on compute "
            "capability 8.9+, upcast elsewhere",
            Fp8Scaled(),
            runs_on="any",
            fp8=True,
            text_encoder=True,
            streamable=True,
            on_fp8_release="fp8_scaled",
        ),
        Policy(
            "fp8_scaled_mm",
            "ltx-core's fp8_scaled_mm: W8A8 through TensorRT-LLM",
            LtxCoreFp8ScaledMm(),
            runs_on="NVIDIA GPU with tensorrt_llm",
            fp8=True,
            on_fp8_release="fp8_scaled_mm",
            needs_fp8_release=True,
            fuses_lora=False,
        ),
        Policy(
            "torchao_fp8_dynamic",
            "torchao Float8DynamicActivationFloat8WeightConfig, per-row scales",
            Torchao(
                lambda ao: ao.Float8DynamicActivationFloat8WeightConfig(
                    granularity=ao.PerRow(), set_inductor_config=False
                ),
                gpu=FP8_TENSOR_CORES,
            ),
            runs_on="NVIDIA GPU, compute capability 8.9+",
            fp8=True,
            on_fp8_release="fp8_scaled",
        ),
        Policy(
            "torchao_fp8_weight_only",
            "torchao Float8WeightOnlyConfig",
            Torchao(lambda ao: ao.Float8WeightOnlyConfig(set_inductor_config=False)),
            runs_on="any",
            fp8=True,
            text_encoder=True,
            on_fp8_release="fp8_scaled",
        ),
        # Version 1 (AffineQuantizedTensor), although torchao 0.15 marks it deprecated: its version 2 (Int8Tensor)
        # gave a 14% matmul error where version 1 gives 0.9% (random bf16 weights, CPU, per-row either way).
        Policy(
            "torchao_int8_weight_only",
            "torchao Int8WeightOnlyConfig",
            Torchao(lambda ao: ao.Int8WeightOnlyConfig(version=1, set_inductor_config=False)),
            runs_on="any",
            text_encoder=True,
        ),
        Policy(
            "torchao_int8_dynamic",
            "torchao Int8DynamicActivationInt8WeightConfig: int8 weights, activations quantized per token",
            Torchao(lambda ao: ao.Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)),
            runs_on="any",
        ),
        Policy(
            "torchao_int4_weight_only",
            "torchao Int4WeightOnlyConfig, group size 128",
            Torchao(
                lambda ao: ao.Int4WeightOnlyConfig(
                    group_size=128, int4_packing_format="tile_packed_to_4d", set_inductor_config=False
                ),
                gpu=INT4_KERNELS,
            ),
            runs_on="NVIDIA GPU (SM 8.0+)",
            weight_bytes=0.5,
        ),
    )
}


def policy_names(text_encoder: bool = False) -> list[str]:
    return [name for name, p in POLICIES.items() if p.text_encoder or not text_encoder]


def get_policy(name: str, input_name: str = "quantization", text_encoder: bool = False) -> Policy:
    valid = policy_names(text_encoder)
    if name not in valid:
        raise LTX2InputError(f"{input_name}: unknown policy '{name}'. Valid: {', '.join(valid)}.")
    return POLICIES[name]


def check_policy(
    policy: Policy,
    device: torch.device | str,
    input_name: str = "quantization",
    compute_dtype: torch.dtype | None = None,
) -> None:
    """Raises PolicyUnavailable, naming the input, what is missing and what to pick instead, before any weight is
    read: the device and packages first, then (given) the compute dtype (ComputeDtypeUnavailable)."""
    try:
        policy.backend.check(policy, torch.device(device))
        if compute_dtype is not None:
            policy.backend.check_compute(policy, compute_dtype)
    except PolicyUnavailable as error:
        raise type(error)(f"{input_name}: {error}") from None
