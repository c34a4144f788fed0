"""ltx-core's own policies, used as ltx-core defines them: `none` (bf16 as stored: the base backend),
`fp8_cast` (its plain cast to fp8, upcast in the forward) and `fp8_scaled_mm` (its W8A8 layers on a release's fp8
weights, through TensorRT-LLM)."""

import torch

from .policy import Backend, Policy, PolicyUnavailable

# ltx-core is imported where it is used: the registry imports every backend, and the nodes must register (and say
# what to install) in a ComfyUI that lacks ltx-core (tests/host/test_missing_dependency.py).


class LtxCoreFp8Cast(Backend):
    def quantize(
        self, policy: Policy, key: str, weight: torch.Tensor, compute_dtype: torch.dtype
    ) -> list[tuple[str, torch.Tensor]]:
        from ltx_core.quantization.fp8_cast import TRANSFORMER_LINEAR_DOWNCAST_MAP

        # ltx-core's own key-value op, so the cast is exactly its fp8_cast (plain cast, no scale).
        return [(r.new_key, r.new_value) for r in TRANSFORMER_LINEAR_DOWNCAST_MAP.apply_to_key_value(key, weight)]

    def module_ops(self, policy: Policy, weight_keys: set[str]) -> tuple:
        from ltx_core.quantization.fp8_cast import UPCAST_DURING_INFERENCE

        return (UPCAST_DURING_INFERENCE,)


class LtxCoreFp8ScaledMm(Backend):
    def check(self, policy: Policy, device: torch.device) -> None:
        if device.type != "cuda" or not torch.cuda.is_available():
            raise PolicyUnavailable(
                f"{policy.name} runs fp8 matmuls through TensorRT-LLM on an NVIDIA GPU; this device is "
                f"'{device}'. Pick fp8_scaled (same memory, any device) or torchao_int8_weight_only."
            )
        # Imported here, not only looked up: ltx-core's fp8_scaled_mm layers call TensorRT-LLM's operators, which
        # exist only once the package is imported; a package that is found but fails to import (built for another
        # torch or CUDA) must be refused here, not at the first forward.
        try:
            import tensorrt_llm  # noqa: F401
        except Exception as error:  # noqa: BLE001 - ImportError, or whatever a broken build raises on import
            raise PolicyUnavailable(
                f"{policy.name} needs TensorRT-LLM, which cannot be imported here ({type(error).__name__}: "
                f"{str(error)[:160]}). Install it with `pip install tensorrt-llm` (the version ltx-core's "
                "`fp8-trtllm` extra pins, built for your torch and CUDA). Pick torchao_fp8_dynamic (fp8 W8A8 on "
                "compute capability 8.9+) or fp8_scaled instead."
            ) from None

    def stored_fp8(
        self, policy: Policy, key: str, tensor: torch.Tensor, scales: dict[str, torch.Tensor]
    ) -> list[tuple[str, torch.Tensor]]:
        """Every tensor of the release's fp8 file goes through ltx-core's own layout change (weights transposed for
        TensorRT-LLM, scales as its layers read them)."""
        from ltx_core.quantization.fp8_scaled_mm import FP8_TRANSPOSE_SD_OPS

        return [(r.new_key, r.new_value) for r in FP8_TRANSPOSE_SD_OPS.apply_to_key_value(key, tensor)]

    def module_ops(self, policy: Policy, weight_keys: set[str]) -> tuple:
        from ltx_core.quantization.fp8_scaled_mm import FP8_PREPARE_MODULE_OPS

        return (FP8_PREPARE_MODULE_OPS,)
