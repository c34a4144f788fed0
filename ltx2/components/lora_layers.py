"""The distilled LoRA kept resident beside a built transformer and applied at each forward, instead of fused into
a second copy of the checkpoint: stage 2 of the reference recipe runs on stage 1's transformer, so a run reads the
checkpoint once, and `persistent` keeps one transformer plus the LoRA's factors instead of two transformers.

How a layer gets the LoRA follows how the layer stores its weight, so it is decided per policy (`none` stores every
weight plainly; a quantizing policy stores its quantized layers otherwise, its skipped ones plainly):
- A plain weight (bf16, as stored): fused at each forward with ltx-core's numerics (lora.delta_of), the fused
  weight living only during that layer's forward. The layer computes with exactly the weight a fused load builds,
  so `none` stays byte-identical to ltx-pipelines' stage 2 (tests/host/test_fidelity_host.py). It costs one
  rank-r matmul per layer and step: r / tokens of the layer's own work (384 / 4992, about 8%, at 768x512x97), for
  stage 2's 3 steps.
- A quantized weight (fp8 with or without scales, torchao's int8 / int4 / fp8 tensors): the LoRA runs beside it
  as its low-rank path, x A^T (s B)^T, in the compute dtype. Fusing needs the bf16 weight, which the quantized
  layer no longer holds: dequantizing, fusing and quantizing again at each forward would cost a pass over the
  layer and quantize the change too, where the low-rank path keeps the change exact. Against the bf16 reference
  both stay within 5 % of each other (`make bench-quant` on the wide preset: fp8_scaled 1.24 % beside, 1.27 %
  fused then quantized; int8 0.42 % / 0.40 %): the base weights' quantization sets the error, so the choice is made
  on cost, and beside costs neither a second read of the checkpoint nor a second transformer kept.
"""

import contextlib
from collections.abc import Callable, Iterator

import torch

from ..files.lora_file import LoraFactors
from .weight_path import beside, plain


class LoraLayers(torch.nn.Module):
    """One LoRA's factors on a device (buffers, so the budget counts and moves them as any component), per layer of
    the model it changes: read a layer at a time, each pair checked finite and its product checked against
    overflow on the device, in `dtype` (the compute dtype): no copy of the file in host memory, no per-layer work
    on the CPU."""

    def __init__(self, factors: LoraFactors, device: torch.device, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.factors = factors  # its header (small): for errors naming the file and layer
        self.layers: dict[str, tuple[int, float, float]] = {}  # module path -> (index, scale, norm of the change)
        if factors.strength == 0:
            return
        keys, changes = [], []
        for index, (key, a, b) in enumerate(factors.read_all(device)):
            scale = factors.scale_of(key)
            self.register_buffer(f"a{index}", a)
            self.register_buffer(f"b{index}", b)
            keys.append((key, index, scale))
            changes.append(_product_norm(a, b, scale, dtype))
        # One look at the device for every layer's check, not one per layer.
        for (key, index, scale), change in zip(keys, torch.stack(changes).tolist() if changes else []):
            # Each factor finite is not enough: huge ones multiply to infinities in any weight's dtype.
            if not change <= torch.finfo(torch.bfloat16).max:
                raise factors.overflows(key, torch.bfloat16)
            self.layers[key.removesuffix(".weight")] = (index, scale, change)

    def describe(self) -> str:
        return f"{self.factors.path.name} x{self.factors.strength:g} ({self.factors.describe()}), kept beside"

    def targets(self) -> Iterator[tuple[str, torch.Tensor, torch.Tensor, float]]:
        """(module path, A, B, scale) of every layer it changes: a factor set of the weight path."""
        for path, (index, scale, _) in self.layers.items():
            yield path, getattr(self, f"a{index}"), getattr(self, f"b{index}"), scale

    def at_strengths(self, strength_of: Callable[[str], float]) -> "ScaledLora":
        """These factors (read at strength 1) with each layer's strength: a user's LoRA, whose strength may change
        between runs, and differ between the video and the audio branch, without its file being read again."""
        return ScaledLora(self, strength_of)


class ScaledLora:
    """A factor set of the weight path over a LoraLayers read at strength 1: each layer's scale times its strength,
    layers at strength 0 left out."""

    def __init__(self, lora: LoraLayers, strength_of: Callable[[str], float]):
        self.lora, self.factors = lora, lora.factors
        self.layers: dict[str, tuple[int, float, float]] = {}
        for path, (index, scale, change) in lora.layers.items():
            strength = float(strength_of(path))
            if strength == 0:
                continue
            if not change * abs(strength) <= torch.finfo(torch.bfloat16).max:
                raise lora.factors.overflows(f"{path}.weight", torch.bfloat16)
            self.layers[path] = (index, scale * strength, change * abs(strength))

    def targets(self) -> Iterator[tuple[str, torch.Tensor, torch.Tensor, float]]:
        for path, (index, scale, _) in self.layers.items():
            yield path, getattr(self.lora, f"a{index}"), getattr(self.lora, f"b{index}"), scale


def _product_norm(a: torch.Tensor, b: torch.Tensor, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """|scale| x the Frobenius norm of B @ A, without making B @ A: sqrt(sum((B^T B) * (A A^T))), two rank x rank
    products, on the factors' device in `dtype`. Each factor is divided by its largest value first and the two
    multiplied back after the root, so factors of 1e38 overflow nothing on the way (the float64 of a CPU is not
    needed)."""
    a_max, b_max = a.abs().amax().to(dtype), b.abs().amax().to(dtype)
    a = a.to(dtype) / a_max.clamp(min=torch.finfo(dtype).tiny)
    b = b.to(dtype) / b_max.clamp(min=torch.finfo(dtype).tiny)
    unit = ((b.T @ b) * (a @ a.T)).sum().clamp(min=0).sqrt()
    return (unit.float() * a_max.float() * b_max.float() * abs(scale)).nan_to_num(nan=float("inf"))


@contextlib.contextmanager
def applied(model: torch.nn.Module, *loras: "LoraLayers | ScaledLora") -> Iterator[None]:
    """`with applied(transformer, lora, ...):` the transformer computes with the LoRAs (factor sets of its weight
    path, weight_path.py); as built outside the block.

    A change that drowns a plain weight (more than MAX_CHANGE_RATIO times its norm) is refused before any forward,
    as a fused load refuses it (the norms taken on the device, one look at it for all); a quantized weight's norm is
    not taken (that would dequantize it), its change is bounded by the overflow check alone."""
    for lora in loras:
        checked = [
            (path, change, weight)
            for path, (_, _, change) in lora.layers.items()
            if plain(weight := model.get_submodule(path)._parameters.get("weight"))
        ]
        if checked:
            sizes = torch.stack([torch.linalg.vector_norm(w).float() for *_, w in checked])
            for (path, change, _), size in zip(checked, sizes.tolist()):
                lora.factors.check_change(f"{path}.weight", change, size)
    with beside(model, loras):
        yield
