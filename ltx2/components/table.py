"""One table of every LTX-2 component: which file it lives in, how its keys map, which configurator sizes it.

The same table builds the real LTX-2.3 release files and the test bundle's (tools/make_tiny_bundle.py writes
them from this table's inverse), so there is one loader path for both.
"""

from dataclasses import dataclass
from pathlib import Path

from ltx_core.loader import SDOps
from ltx_core.model.audio_vae import (
    AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
    AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
    VOCODER_COMFY_KEYS_FILTER,
    AudioDecoderConfigurator,
    AudioEncoderConfigurator,
    VocoderConfigurator,
)
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.model.video_vae import (
    VAE_DECODER_COMFY_KEYS_FILTER,
    VAE_ENCODER_COMFY_KEYS_FILTER,
    VideoDecoderConfigurator,
    VideoEncoderConfigurator,
)
from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS, GEMMA_LLM_KEY_OPS


@dataclass(frozen=True)
class Bundle:
    """The files one A2V run reads. Only `checkpoint` is required to build the checkpoint's components."""

    checkpoint: Path
    text_encoder: Path | None = None
    spatial_upsampler: Path | None = None
    distilled_lora: Path | None = None


@dataclass(frozen=True)
class Component:
    """How one component is found and built.

    `file` is the Bundle field holding it. `file_prefixes` maps each key prefix in the file to the module's
    prefix: it is what the component's sd_ops do, written out so the test bundle can be written by inverting it.
    `blocks`: the module path of its list of blocks, which block streaming runs one at a time when the component
    does not fit (memory/streaming.py); "" for a component that is never streamed.
    """

    name: str
    file: str
    sd_ops: SDOps | None
    file_prefixes: tuple[tuple[str, str], ...]
    blocks: str = ""


_VAE_STATS = ("per_channel_statistics.", "per_channel_statistics.")

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "transformer",
            "checkpoint",
            LTXV_MODEL_COMFY_RENAMING_MAP,
            (("model.diffusion_model.", ""),),
            blocks="transformer_blocks",
        ),
        Component(
            "embeddings_processor",
            "checkpoint",
            EMBEDDINGS_PROCESSOR_KEY_OPS,
            (
                ("text_embedding_projection.video_aggregate_embed.", "feature_extractor.video_aggregate_embed."),
                ("text_embedding_projection.audio_aggregate_embed.", "feature_extractor.audio_aggregate_embed."),
                ("text_embedding_projection.aggregate_embed.", "feature_extractor.aggregate_embed."),
                ("model.diffusion_model.video_embeddings_connector.", "video_connector."),
                ("model.diffusion_model.audio_embeddings_connector.", "audio_connector."),
            ),
        ),
        Component(
            "video_encoder",
            "checkpoint",
            VAE_ENCODER_COMFY_KEYS_FILTER,
            (("vae.encoder.", ""), ("vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component(
            "video_decoder",
            "checkpoint",
            VAE_DECODER_COMFY_KEYS_FILTER,
            (("vae.decoder.", ""), ("vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component(
            "audio_encoder",
            "checkpoint",
            AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
            (("audio_vae.encoder.", ""), ("audio_vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component(
            "audio_decoder",
            "checkpoint",
            AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
            (("audio_vae.decoder.", ""), ("audio_vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component("vocoder", "checkpoint", VOCODER_COMFY_KEYS_FILTER, (("vocoder.", ""),)),
        Component("spatial_upsampler", "spatial_upsampler", None, (("", ""),)),
        Component(
            "text_encoder",
            "text_encoder",
            GEMMA_LLM_KEY_OPS,
            (
                ("language_model.model.", "model.model.language_model."),
                ("vision_tower.", "model.model.vision_tower."),
                ("multi_modal_projector.", "model.model.multi_modal_projector."),
            ),
            blocks="model.model.language_model.layers",  # Gemma-3's decoder layers
        ),
    )
}

# ltx-core's configurators, for the components whose size comes from the checkpoint's own config. The text
# encoder and the embeddings processor are sized from the Gemma root instead (gemma_model.py, plan.py).
CONFIGURATORS = {
    "transformer": LTXModelConfigurator,
    "video_encoder": VideoEncoderConfigurator,
    "video_decoder": VideoDecoderConfigurator,
    "audio_encoder": AudioEncoderConfigurator,
    "audio_decoder": AudioDecoderConfigurator,
    "vocoder": VocoderConfigurator,
    "spatial_upsampler": LatentUpsamplerConfigurator,
}

# Tensors a component has that its files do not hold: Gemma's lm_head is tied to the token embedding, and
# ltx-core's key ops copy it. (The bundle generator leaves them out, as the release does.)
DERIVED_KEYS = {"text_encoder": {"model.lm_head.weight"}}
