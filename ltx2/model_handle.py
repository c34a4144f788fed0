"""What LoadLTX2Quantized outputs: the chosen files and policies. Components are built only when a stage
needs them, so loading a model costs nothing until it is used."""

from dataclasses import dataclass

import torch

from .components import Bundle


@dataclass(frozen=True)
class LTX2Model:
    bundle: Bundle
    config: dict
    quantization: str = "none"
    text_encoder_quantization: str = "none"
    residency: str = "cold_start"
    distilled_lora_strength: float = 1.0

    def policy_for(self, name: str) -> str:
        if name == "transformer":
            return self.quantization
        return self.text_encoder_quantization if name == "text_encoder" else "none"

    def build(self, name: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16,
              with_distilled_lora: bool = False, on_tensor=None):
        """(component, load report). The stage-2 transformer is `with_distilled_lora=True`: fused, then quantized."""
        from ..quant.loading import build_quantized

        lora = None
        if with_distilled_lora:
            if self.bundle.distilled_lora is None:
                raise ValueError("distilled_lora: stage 2 needs the distilled LoRA; pick it in the loader node.")
            lora = (self.bundle.distilled_lora, self.distilled_lora_strength)
        return build_quantized(self.bundle, name, self.policy_for(name), device=device, dtype=dtype, lora=lora,
                               on_tensor=on_tensor)

    def describe(self) -> str:
        parts = [self.bundle.checkpoint.name, f"policy {self.quantization}", self.residency]
        if self.bundle.text_encoder is not None:
            parts.append(f"text encoder {self.bundle.text_encoder.name} ({self.text_encoder_quantization})")
        if self.bundle.distilled_lora is not None:
            parts.append(f"distilled LoRA {self.bundle.distilled_lora.name} x{self.distilled_lora_strength}")
        return ", ".join(parts)
