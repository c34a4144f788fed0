"""What LoadLTX2Quantized outputs: the chosen files and policies. Components are built only when a stage
needs them, so loading a model costs nothing until it is used."""

from dataclasses import dataclass

import torch

from .components import Bundle, build_component


@dataclass(frozen=True)
class LTX2Model:
    bundle: Bundle
    config: dict
    quantization: str = "none"
    text_encoder_quantization: str = "none"
    residency: str = "cold_start"
    distilled_lora_strength: float = 1.0

    def build(self, name: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
        return build_component(self.bundle, name, device=device, dtype=dtype)

    def describe(self) -> str:
        parts = [self.bundle.checkpoint.name, f"policy {self.quantization}", self.residency]
        if self.bundle.text_encoder is not None:
            parts.append(f"text encoder {self.bundle.text_encoder.name} ({self.text_encoder_quantization})")
        if self.bundle.distilled_lora is not None:
            parts.append(f"distilled LoRA {self.bundle.distilled_lora.name} x{self.distilled_lora_strength}")
        return ", ".join(parts)
