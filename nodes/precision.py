"""The compute dtype of each family of LTX-2 components, by ComfyUI's own rules and flags.

ComfyUI runs LTX models in bf16 or float32 (its LTXV model config's supported inference dtypes): bf16 where the
device computes it natively (Ampere and newer), float32 on a CPU (ComfyUI never computes in bf16 on a CPU: on
one without AVX512-BF16 / AMX a bf16 convolution is 10x slower) and on older GPUs. The flags a user already
passes to ComfyUI decide over that: `--bf16-unet` / `--fp32-unet` for the transformer, `--bf16-vae` /
`--fp32-vae` for the VAEs, vocoder and upsampler, `--bf16-text-enc` / `--fp32-text-enc` for Gemma and the
embeddings processor, `--force-fp32` for all. Weights are stored as the quantization policy says either way.
"""

import comfy.model_management as mm
import torch
from comfy.cli_args import args

from ..ltx2.components.precision import Precision

# ComfyUI's supported_models.LTXV.supported_inference_dtypes.
LTX_DTYPES = [torch.bfloat16, torch.float32]


def _flag(bf16: bool, fp32: bool) -> torch.dtype | None:
    if fp32:
        return torch.float32
    return torch.bfloat16 if bf16 else None


def comfy_precision(device: torch.device) -> Precision:
    transformer = _flag(args.bf16_unet, args.fp32_unet) or mm.unet_manual_cast(torch.bfloat16, device, LTX_DTYPES)
    text = _flag(args.bf16_text_enc, args.fp32_text_enc)
    if text is None:
        text = torch.bfloat16 if mm.should_use_bf16(device) else torch.float32
    return Precision(
        transformer=transformer or torch.bfloat16,  # None: bf16 weights run as they are
        text_encoder=text,
        vae=mm.vae_dtype(device, allowed_dtypes=LTX_DTYPES),
    )
