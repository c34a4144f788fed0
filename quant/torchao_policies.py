"""torchao's quantizers, applied one weight at a time: one backend, configured per policy by the torchao config it
builds (`Torchao(config=...)` in the registry) and, for the GPU-only ones, the GPU it needs.

Each selected weight is wrapped in a bias-less Linear of its own, quantized with `quantize_`, and its
quantized tensor subclass is what the model receives: the bf16 model never exists in memory. The subclass
carries its own matmul, so the model's Linear layers stay as they are.

Every config is built with `set_inductor_config=False`: torchao's default changes global torch.compile
settings of the whole ComfyUI process when a model is quantized.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .policy import Backend, ComputeDtypeUnavailable, Policy, PolicyUnavailable

# The torchao release built for each torch (torchao's releases are built against one torch minor version); the
# pack is tested with the first and the last of these.
TORCHAO_FOR_TORCH = {(2, 9): "0.15.0", (2, 10): "0.16.0", (2, 11): "0.17.0"}


def torchao_for(torch_version: str) -> str:
    """What to install for the torch that is installed: `torchao==X`, or where to look it up."""
    major, minor = (int("".join(c for c in part if c.isdigit()) or 0) for part in torch_version.split(".")[:2])
    release = TORCHAO_FOR_TORCH.get((major, minor))
    if release is None:
        return f"the torchao release built for torch {major}.{minor} (pytorch/ao's compatibility table)"
    return f"`pip install torchao=={release}` (the release built for torch {major}.{minor})"


def _require_torchao() -> None:
    # Imported, not just looked up: a torchao built for another torch is found but fails to import.
    try:
        import torchao  # noqa: F401
    except ImportError as error:
        raise PolicyUnavailable(
            f"torchao cannot be imported ({error}). Install {torchao_for(torch.__version__)}, or pick fp8_scaled, "
            "which needs no extra package."
        ) from None


@dataclass(frozen=True)
class GpuNeed:
    """What a GPU-only policy needs, what it runs there, and what to pick elsewhere; `compute`: the compute dtypes
    its kernels take (float32 activations assert deep inside torchao, mid-load)."""

    capability: tuple[int, int]
    what: str
    instead: str
    compute: tuple[torch.dtype, ...] = (torch.bfloat16,)


FP8_TENSOR_CORES = GpuNeed(
    (8, 9),
    "runs fp8 matmuls on tensor cores of compute capability 8.9+ (RTX 40xx, L4, H100, Blackwell)",
    "Pick fp8_scaled (fp8 storage, same memory, any device) or torchao_int8_weight_only.",
)
# The tile-packed int4 format runs on tinygemm's kernels (`aten._weight_int4pack_mm`), built into torch for NVIDIA
# GPUs of compute capability 8.0+; torchao's default "plain" format would need fbgemm-gpu-genai's Hopper-only
# kernels instead.
INT4_KERNELS = GpuNeed(
    (8, 0),
    "uses torch's int4 GPU kernels (NVIDIA, compute capability 8.0+: A100, RTX 30xx and newer)",
    "Pick torchao_int8_weight_only or fp8_scaled (half of bf16's memory).",
)


@dataclass(frozen=True)
class Torchao(Backend):
    """`config(torchao.quantization)` -> the torchao config of the policy (built when used: torchao is imported
    only by the policies that need it); `gpu`: what it needs of a GPU, None when it runs anywhere."""

    config: Callable[[object], object]
    gpu: GpuNeed | None = None

    def check(self, policy: Policy, device: torch.device) -> None:
        _require_torchao()
        if self.gpu is None:
            return
        cuda = device.type == "cuda" and torch.cuda.is_available()
        if not cuda or torch.cuda.get_device_capability(device) < self.gpu.capability:
            where = torch.cuda.get_device_name(device) if cuda else f"'{device}'"
            raise PolicyUnavailable(f"{policy.name} {self.gpu.what}; this device is {where}. {self.gpu.instead}")

    def check_compute(self, policy: Policy, compute_dtype: torch.dtype) -> None:
        if self.gpu is not None and compute_dtype not in self.gpu.compute:
            raise ComputeDtypeUnavailable(
                f"{policy.name} computes in {', '.join(str(d).removeprefix('torch.') for d in self.gpu.compute)} "
                f"only, and this ComfyUI computes in {str(compute_dtype).removeprefix('torch.')} (--force-fp32, "
                "--fp32-unet or --fp32-text-enc). Start ComfyUI without that flag, or pick fp8_scaled (any compute "
                "dtype)."
            )

    def quantize(
        self, policy: Policy, key: str, weight: torch.Tensor, compute_dtype: torch.dtype
    ) -> list[tuple[str, torch.Tensor]]:
        import torchao.quantization

        # torchao's tensors dequantize to the dtype they were made from, and their matmul needs the activations in
        # it: quantized from the compute dtype, they multiply compute-dtype activations (the stored bytes and
        # values are the same; a bf16 weight is exact in float32).
        if weight.is_floating_point() and weight.dtype.itemsize < compute_dtype.itemsize:
            weight = weight.to(compute_dtype)

        layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
        layer.weight = torch.nn.Parameter(weight, requires_grad=False)
        # torchao 0.15's Float8Tensor cannot be used inside inference_mode (where ComfyUI runs every node) when it
        # was made outside it ("Cannot set version_counter for inference tensor"); the loader therefore always
        # quantizes inside inference_mode (see ltx2/components/build.py).
        with warnings.catch_warnings():
            # The deprecation notice of Int8WeightOnlyConfig version 1, chosen on purpose (see the registry).
            warnings.filterwarnings("ignore", message="Config Deprecation: version 1 of Int8WeightOnlyConfig")
            torchao.quantization.quantize_(layer, self.config(torchao.quantization))
        return [(key, layer.weight.detach())]
