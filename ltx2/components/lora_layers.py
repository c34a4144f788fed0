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
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ...quant.scratch import room
from ..files.lora_file import LoraFactors, delta_of

# The weights fused at a forward: what a load stores them as (build.STORAGE_DTYPE) and the other float types.
PLAIN_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


class LoraLayers(torch.nn.Module):
    """A LoRA's factors on a device (buffers, so the budget counts and moves them as any component), per layer of
    the model it changes, each pair checked finite and its product checked against overflow when read."""

    def __init__(self, factors: LoraFactors, device: torch.device):
        super().__init__()
        self.factors = factors  # its header (small): for errors naming the file and layer
        self.layers: dict[str, tuple[int, float, float]] = {}  # module path -> (index, scale, norm of the change)
        if factors.strength == 0:
            return
        for index, (key, a, b) in enumerate(factors.read_all()):
            scale = factors.scale_of(key)
            change = _product_norm(a, b, scale)
            # Each factor finite is not enough: huge ones multiply to infinities in any weight's dtype.
            if not change <= torch.finfo(torch.bfloat16).max:
                raise factors.overflows(key, torch.bfloat16)
            self.register_buffer(f"a{index}", a.to(device))
            self.register_buffer(f"b{index}", b.to(device))
            self.layers[key.removesuffix(".weight")] = (index, scale, change)

    def describe(self) -> str:
        return f"{self.factors.path.name} x{self.factors.strength:g} ({self.factors.describe()}), kept beside"


def _product_norm(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    """|scale| x the Frobenius norm of B @ A, without making B @ A: sqrt(sum((B^T B) * (A A^T))), two rank x rank
    products, in float64 (factors of 1e38 do not overflow there)."""
    a, b = a.double(), b.double()
    return abs(scale) * float(((b.T @ b) * (a @ a.T)).sum().clamp(min=0).sqrt())


def _plain(weight: torch.Tensor | None) -> bool:
    return (
        weight is not None
        and type(weight) in (torch.Tensor, torch.nn.Parameter)
        and weight.dtype in PLAIN_DTYPES
        and weight.device.type != "meta"
    )


class _OnLayer:
    """The LoRA on one layer: fused into a plain weight for the length of a forward (hooks before and after it),
    or added beside a quantized one."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, scale: float):
        self.a, self.b, self.scale = a, b, scale
        self.swapped: list[torch.Tensor | None] = []

    def before(self, module: torch.nn.Module, _args) -> None:
        # Runs first (prepended): a precision hook (precision.compute_in) then upcasts the fused weight, as it
        # would upcast a weight fused while loading.
        weight = module._parameters.get("weight")
        if _plain(weight):
            self.swapped.append(weight)
            module._parameters["weight"] = delta_of(weight, self.a, self.b, self.scale).add_(weight)
        else:
            self.swapped.append(None)

    def after(self, module: torch.nn.Module, args, output):
        # Also after an exception (always_call): the stored weight is put back whatever happens.
        original = self.swapped.pop() if self.swapped else None
        if original is not None:
            module._parameters["weight"] = original
            return None
        if output is None or not args:
            return None
        x = args[0]
        with contextlib.ExitStack() as copies:
            # Factors kept in bf16 and computing in float32 (a CPU): their copies in the model's scratch, where
            # the layer's own weight copy was a moment ago, not beside it.
            a, b = (
                f if f.dtype == x.dtype else copies.enter_context(room(f.shape, x.dtype, x.device)).copy_(f)
                for f in (self.a, self.b)
            )
            low = F.linear(F.linear(x, a) * self.scale, b)
        return output.add_(low.to(output.dtype))  # in place: the output is this forward's own


@contextlib.contextmanager
def applied(model: torch.nn.Module, lora: LoraLayers) -> Iterator[None]:
    """`with applied(transformer, lora):` the transformer computes with the LoRA; as built outside the block.

    A change that drowns a plain weight (more than MAX_CHANGE_RATIO times its norm) is refused before any forward,
    as a fused load refuses it; a quantized weight's norm is not taken (that would dequantize it), its change is
    bounded by the overflow check alone."""
    handles = []
    try:
        for path, (index, scale, change) in lora.layers.items():
            module = model.get_submodule(path)
            weight = module._parameters.get("weight")
            if _plain(weight):
                lora.factors.check_change(f"{path}.weight", change, float(torch.linalg.vector_norm(weight)))
            on_layer = _OnLayer(getattr(lora, f"a{index}"), getattr(lora, f"b{index}"), scale)
            handles.append(module.register_forward_pre_hook(on_layer.before, prepend=True))
            handles.append(module.register_forward_hook(on_layer.after, always_call=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
