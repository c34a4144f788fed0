"""Which linear layers a policy quantizes, by full module path, per component: one declared table.

Paths are the module names of the built component (after ltx-core's key ops), matched from the root, never
relative to a sub-block: a pattern relative to a block silently matches nothing when applied to the whole
model, or the wrong layers when applied block by block (that is how optimum-quanto broke on LTX-2).
"""

import re
from dataclasses import dataclass, field

import torch

# component -> (pattern every quantized layer's path must match, ((skip pattern, why), ...))
TABLE: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "transformer": (
        r"^transformer_blocks\.\d+\.",
        (
            (r"(^|\.)norm[^.]*$|_norm$", "normalization"),
            (r"adaln|timestep_embedder|scale_shift", "AdaLN / timestep conditioning"),
            (r"(^|\.)(audio_)?patchify_proj$|(^|\.)(audio_)?proj_out$", "patchify / output projection"),
            (r"caption_projection", "caption projection"),
            # One output per head: tiny, and it gates the whole attention output.
            (r"\.to_gate_logits$", "attention gate"),
        ),
    ),
    "text_encoder": (
        r"^model\.model\.language_model\.layers\.\d+\.",
        (
            (r"embed_tokens", "token embedding"),
            (r"norm", "normalization"),
            (r"lm_head", "output head"),
        ),
    ),
}

# fp8 kernels (torchao, scaled_mm) need both dims to be multiples of 16.
FP8_MULTIPLE = 16


@dataclass
class LayerSelection:
    quantize: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why

    def weight_keys(self) -> set[str]:
        return {f"{name}.weight" for name in self.quantize}


def select_layers(model: torch.nn.Module, component: str, fp8: bool = False) -> LayerSelection:
    """The Linear layers of `model` (a meta model is enough) that a policy quantizes, and why the others are not."""
    selection = LayerSelection()
    if component not in TABLE:
        return selection
    scope, skips = TABLE[component]
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        reason = next((why for pattern, why in skips if re.search(pattern, name)), None)
        if reason is None and not re.search(scope, name):
            reason = "outside the repeated blocks"
        if reason is None and fp8 and (module.in_features % FP8_MULTIPLE or module.out_features % FP8_MULTIPLE):
            reason = f"dims {module.out_features}x{module.in_features} not multiples of {FP8_MULTIPLE}"
        if reason is None:
            selection.quantize.append(name)
        else:
            selection.skipped[name] = reason
    return selection
