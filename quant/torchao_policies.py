"""torchao's quantizers (fp8 dynamic W8A8, fp8 / int8 / int4 weight-only), applied one weight at a time.

Each selected weight is wrapped in a bias-less Linear of its own, quantized with `quantize_`, and its
quantized tensor subclass is what the model receives: the bf16 model never exists in memory. The subclass
carries its own matmul, so the model's Linear layers stay as they are.

Every config is built with `set_inductor_config=False`: torchao's default changes global torch.compile
settings of the whole ComfyUI process when a model is quantized.
"""

import warnings

import torch

from .policy import Policy, PolicyUnavailable

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


# The GPU-only policies: the compute capability each needs, what it runs there, and what to pick elsewhere.
GPU_NEEDS = {
    "torchao_fp8_dynamic": (
        (8, 9),
        "runs fp8 matmuls on tensor cores of compute capability 8.9+ (RTX 40xx, L4, H100, Blackwell)",
        "Pick fp8_scaled (fp8 storage, same memory, any device) or torchao_int8_weight_only.",
    ),
    # The tile-packed int4 format runs on tinygemm's kernels (`aten._weight_int4pack_mm`), built into torch for
    # NVIDIA GPUs of compute capability 8.0+; torchao's default "plain" format would need fbgemm-gpu-genai's
    # Hopper-only kernels instead.
    "torchao_int4_weight_only": (
        (8, 0),
        "uses torch's int4 GPU kernels (NVIDIA, compute capability 8.0+: A100, RTX 30xx and newer)",
        "Pick torchao_int8_weight_only or fp8_scaled (half of bf16's memory).",
    ),
}


def check(policy: Policy, device: torch.device) -> None:
    _require_torchao()
    if policy.name not in GPU_NEEDS:
        return
    capability, what, instead = GPU_NEEDS[policy.name]
    cuda = device.type == "cuda" and torch.cuda.is_available()
    if not cuda or torch.cuda.get_device_capability(device) < capability:
        where = torch.cuda.get_device_name(device) if cuda else f"'{device}'"
        raise PolicyUnavailable(f"{policy.name} {what}; this device is {where}. {instead}")


def config_for(policy: Policy):
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        Int4WeightOnlyConfig,
        Int8WeightOnlyConfig,
        PerRow,
        PerTensor,
    )

    if policy.name == "torchao_fp8_dynamic":
        granularity = PerRow() if policy.option("granularity") == "per_row" else PerTensor()
        return Float8DynamicActivationFloat8WeightConfig(granularity=granularity, set_inductor_config=False)
    if policy.name == "torchao_fp8_weight_only":
        return Float8WeightOnlyConfig(set_inductor_config=False)
    if policy.name == "torchao_int8_weight_only":
        # Version 1 (AffineQuantizedTensor), although torchao 0.15 marks it deprecated: its version 2 (Int8Tensor)
        # gave a 14% matmul error where version 1 gives 0.9% (random bf16 weights, CPU, per-row either way).
        return Int8WeightOnlyConfig(set_inductor_config=False, version=1)
    if policy.name == "torchao_int4_weight_only":
        return Int4WeightOnlyConfig(group_size=policy.option("group_size"), int4_packing_format="tile_packed_to_4d",
                                    set_inductor_config=False)
    raise RuntimeError(f"policy {policy.name} is not a torchao policy")


def quantize(policy: Policy, key: str, weight: torch.Tensor, compute_dtype: torch.dtype) -> list[tuple[str, torch.Tensor]]:
    from torchao.quantization import quantize_

    # torchao's tensors dequantize to the dtype they were made from, and their matmul needs the activations in
    # it: quantized from the compute dtype, they multiply compute-dtype activations (the stored bytes and values
    # are the same; a bf16 weight is exact in float32).
    if weight.is_floating_point() and weight.dtype.itemsize < compute_dtype.itemsize:
        weight = weight.to(compute_dtype)

    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    layer.weight = torch.nn.Parameter(weight, requires_grad=False)
    # torchao 0.15's Float8Tensor cannot be used inside inference_mode (where ComfyUI runs every node) when it
    # was made outside it ("Cannot set version_counter for inference tensor"); the loader therefore always
    # quantizes inside inference_mode (see ltx2/build.py).
    with warnings.catch_warnings():
        # The deprecation notice of Int8WeightOnlyConfig version 1, chosen on purpose (see config_for).
        warnings.filterwarnings("ignore", message="Config Deprecation: version 1 of Int8WeightOnlyConfig")
        quantize_(layer, config_for(policy))
    return [(key, layer.weight.detach())]


def stored_fp8(policy: Policy, key: str, tensor: torch.Tensor, scales) -> None:  # noqa: ARG001
    return None  # no torchao policy takes an fp8 release as stored (see the registry's on_fp8_release)


def module_ops(policy: Policy, weight_keys: set[str]) -> tuple:  # noqa: ARG001 - the tensor subclass does the work
    return ()


def prepare(policy: Policy, model: torch.nn.Module, device: torch.device, compute_dtype: torch.dtype) -> list[str]:  # noqa: ARG001
    return []
