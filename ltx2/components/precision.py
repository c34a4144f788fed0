"""Compute dtypes: weights keep the dtype they are stored in (bf16, fp8 + scales, int8), each component computes
in the dtype its device runs best.

ComfyUI does this with its manual_cast layer classes. ltx-core's and transformers' components own weights in
many module types (linears, convolutions, norms, embeddings, snake activations, filters, scale-shift tables), so
instead of swapping classes, the upcast is a step of each model's weight path (weight_path.py): a module's
weights narrower than the compute dtype are copied when its forward starts and the stored ones put back when it
ends. A weight used outside its owner's forward (per-channel statistics, say) meets compute-dtype activations in
element-wise ops, where torch promotes it. The root module's floating inputs are cast to the compute dtype, because
ltx-core picks input dtypes from `next(model.parameters()).dtype`, which is the stored one. The copies of one
forward are made in one buffer of the model's (quant/scratch.py: a new tensor per copy made the upcasts cost more
than the conversion itself on a CPU).

Nothing is hooked where the compute dtype is the stored one (bf16 on a GPU): the model runs exactly as
ltx-pipelines runs it.
"""

from dataclasses import dataclass

import torch

from .weight_path import compose

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


def compute_in(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Make `model` compute in `dtype` without changing what it stores; returns how many modules upcast. The
    upcast is a step of the model's weight path (weight_path.py), in its order with the others."""
    return compose(model, dtype)
