"""The user's own LoRAs (a character, a style, a camera move), chained onto the model by LTX-2 LoRA nodes, applied as
ltx-pipelines applies its `loras`: in both stages, stage 2 adding the distilled LoRA after them
(`ModelLedger.with_additional_loras`). They are kept beside the transformer like the distilled LoRA
(lora_layers.py), never fused into a second copy of it, so a change of LoRA or strength reads no weight again.

Each layer takes the strength of its branch: the audio branch is every layer on a path part named `audio_...`
(audio self- and cross-attention, audio feed-forward, the audio projections and their adaptive norms), except the
cross-modal `audio_to_video_attn`; every other layer (video, the cross-modal attention both ways and their
`av_ca_` norms) takes the video strength.
"""

from dataclasses import dataclass
from pathlib import Path

# Path parts of the audio branch that are not the audio branch's own: cross-modal layers take the video strength.
CROSS_MODAL = ("audio_to_video_attn",)


@dataclass(frozen=True)
class UserLora:
    path: Path
    strength: float = 1.0
    video_strength: float | None = None  # None: `strength`
    audio_strength: float | None = None

    def strength_of(self, layer: str) -> float:
        """The strength for a layer (its module path in the transformer)."""
        override = self.audio_strength if is_audio_layer(layer) else self.video_strength
        return self.strength if override is None else override

    def describe(self) -> str:
        text = f"{self.path.name} x{self.strength:g}"
        if self.video_strength is not None:
            text += f", video x{self.video_strength:g}"
        if self.audio_strength is not None:
            text += f", audio x{self.audio_strength:g}"
        return text


def is_audio_layer(layer: str) -> bool:
    """Whether a transformer layer (module path, e.g. transformer_blocks.3.audio_ff.net.2) is of the audio branch."""
    return any(part.startswith("audio_") and part not in CROSS_MODAL for part in layer.split("."))
