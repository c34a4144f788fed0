"""Compute dtypes: weights keep the dtype they are stored in (bf16, fp8 + scales, int8), each component computes
in the dtype its device runs best.

ComfyUI does this with its manual_cast layer classes. ltx-core's and transformers' components own weights in
many module types (linears, convolutions, norms, embeddings, snake activations, filters, scale-shift tables), so
instead of swapping classes, each module that owns a weight narrower than the compute dtype gets a pair of
hooks: its weights are upcast when its forward starts and the stored ones put back when it ends. A weight used
outside its owner's forward (per-channel statistics, say) meets compute-dtype activations in element-wise ops,
where torch promotes it. The root module's floating inputs are cast to the compute dtype, because ltx-core picks
input dtypes from `next(model.parameters()).dtype`, which is the stored one. The copies of one forward are made
in one buffer of the model's (quant/scratch.py: a new tensor per copy made the upcasts cost more than the
conversion itself on a CPU).

Nothing is hooked where the compute dtype is the stored one (bf16 on a GPU): the model runs exactly as
ltx-pipelines runs it.
"""

from dataclasses import dataclass

import torch

from ...quant.scratch import Scratch, copied_out, enter, leave
from ..files.safetensors_file import FP8_DTYPES

NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "float32"}

# Which compute dtype a component follows (ComfyUI's three families: diffusion model, text encoder, VAE).
FAMILY = {
    "transformer": "transformer",
    "text_encoder": "text_encoder",
    "embeddings_processor": "text_encoder",
    "video_encoder": "vae",
    "video_decoder": "vae",
    "audio_encoder": "vae",
    "audio_decoder": "vae",
    "vocoder": "vae",
    "spatial_upsampler": "vae",
}


@dataclass(frozen=True)
class Precision:
    """The compute dtype of each family of components. Storage dtypes are the policies' business."""

    transformer: torch.dtype = torch.bfloat16
    text_encoder: torch.dtype = torch.bfloat16
    vae: torch.dtype = torch.bfloat16

    def of(self, component: str) -> torch.dtype:
        return getattr(self, FAMILY[component])

    def describe(self) -> str:
        return (
            f"compute transformer {NAMES.get(self.transformer, self.transformer)}, text encoder "
            f"{NAMES.get(self.text_encoder, self.text_encoder)}, VAE {NAMES.get(self.vae, self.vae)}"
        )

    @classmethod
    def uniform(cls, dtype: torch.dtype) -> "Precision":
        return cls(dtype, dtype, dtype)


def library_default(device: torch.device | str) -> Precision:
    """Outside ComfyUI (benchmarks, library tests), the same rule ComfyUI applies to LTX-2 by default: bf16 where
    the GPU computes it natively, float32 elsewhere (a CPU, or a GPU older than Ampere)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0):
        return Precision.uniform(torch.bfloat16)
    return Precision.uniform(torch.float32)


def _upcast(tensor: torch.Tensor | None, dtype: torch.dtype) -> bool:
    """Whether a stored tensor is cast for computing in `dtype`: plain floating tensors narrower than it. fp8
    weights are upcast (with their scales) by their own layers, torchao's tensor subclasses by their own matmul."""
    return (
        tensor is not None
        and type(tensor) in (torch.Tensor, torch.nn.Parameter)
        and tensor.is_floating_point()
        and tensor.dtype not in FP8_DTYPES
        and tensor.dtype.itemsize < dtype.itemsize
    )


def _cast_inputs(dtype: torch.dtype):
    def cast(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype not in FP8_DTYPES:
            return value.to(dtype)
        return value

    def pre_hook(_module, args, kwargs):
        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    return pre_hook


def compute_in(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Make `model` compute in `dtype` without changing what it stores; returns how many modules cast.

    A module is hooked when it owns a tensor to upcast, or a tensor on the meta device: a streamed unit's tensors
    arrive at each forward (memory/streaming), in their stored dtype, which the hook checks then. The copies are
    made in one scratch buffer per forward of the model (quant/scratch.py)."""
    scratch = Scratch(dtype)
    hooked = 0
    for module in model.modules():
        owned = [
            (table, name)
            for table in ("_parameters", "_buffers")
            for name, t in getattr(module, table).items()
            if t is not None and t.is_floating_point() and (t.device.type == "meta" or _upcast(t, dtype))
        ]
        if not owned:
            continue
        stored: list[tuple[int, dict]] = []

        def upcast(mod, _args, owned=owned, stored=stored):
            kept = {}
            stored.append((scratch.open(), kept))
            for table, name in owned:
                tensor = getattr(mod, table)[name]
                if tensor is not None and tensor.device.type != "meta" and _upcast(tensor, dtype):
                    kept[(table, name)] = tensor
                    getattr(mod, table)[name] = scratch.copy(tensor)

        def restore(mod, _args, output, stored=stored):
            # Also after an exception (always_call): the upcast copies must never outlive the forward.
            if not stored:
                return None
            top, kept = stored.pop()
            for (table, name), tensor in kept.items():
                getattr(mod, table)[name] = tensor
            # Before the buffer is reused: an output that is a copy (a forward returning its own weight) is cloned.
            output = copied_out(output) if scratch.holds(output) else None
            scratch.close(top)
            return output

        module.register_forward_pre_hook(upcast)
        module.register_forward_hook(restore, always_call=True)
        hooked += 1
    if hooked:
        model.register_forward_pre_hook(_cast_inputs(dtype), with_kwargs=True)
    if hooked or dtype.itemsize > 2:  # fp8 layers copy their weights too, without hooks (quant/fp8_scaled.py)
        # The whole forward is one stack: the buffer is kept from the first copy to the model's last.
        marks: list[int] = []
        model.register_forward_pre_hook(lambda *_: marks.append(enter(scratch)), prepend=True)
        model.register_forward_hook(lambda *_: leave(scratch, marks.pop()) if marks else None, always_call=True)
    return hooked
