"""The Gemma-3 text encoder and ltx-core's embeddings processor as models, sized by the Gemma files the user has.

ltx-core 1.0.0 builds both from a hard-coded 12B config (`GEMMA3_CONFIG_FOR_LTX`), whatever root it is given;
these configurators take the config read from the files (ltx2/files/gemma_folder.py, gemma_single_file.py), so the
same code builds the real 12B encoder and the test bundle's small one. Below them, the key and module operations
for the transformers release that made the meta model.
"""

from dataclasses import dataclass

import torch
from ltx_core.loader import KeyValueOperationResult, SDOps
from ltx_core.loader.module_ops import ModuleOps
from ltx_core.text_encoders.gemma import (
    GEMMA_LLM_KEY_OPS,
    GEMMA_MODEL_OPS,
    EmbeddingsProcessor,
    GemmaTextEncoder,
)
from ltx_core.text_encoders.gemma.embeddings_connector import (
    AudioEmbeddings1DConnectorConfigurator,
    Embeddings1DConnectorConfigurator,
)
from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2


class GemmaTextEncoderConfigurator:
    """Builds the Gemma-3 model from the config it is given (ltx-core's ignores it)."""

    @classmethod
    def from_config(cls, config: dict) -> GemmaTextEncoder:
        # Imported here: transformers is slow to import and only the text encoder needs it.
        from transformers import Gemma3Config, Gemma3ForConditionalGeneration

        with torch.device("meta"):
            model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))
        return GemmaTextEncoder(model=model)


@dataclass(frozen=True)
class EmbeddingsProcessorConfigurator:
    """ltx-core's embeddings processor, with the feature extractor sized for the Gemma it is fed by.

    The feature extractor's input is every Gemma hidden state concatenated (hidden x (layers + 1)); ltx-core
    fixes that to 3840 x 49. Here the Gemma dims come from the chosen root.
    """

    gemma_hidden_size: int
    gemma_hidden_states: int

    def from_config(self, config: dict) -> EmbeddingsProcessor:
        transformer = config.get("transformer", {})
        flat_dim = self.gemma_hidden_size * self.gemma_hidden_states
        if transformer.get("caption_proj_before_connector", False):
            # LTX-2.3 (22B): per-token RMS norm and one projection per modality (ltx-core's "V2").
            video_dim = transformer["num_attention_heads"] * transformer["attention_head_dim"]
            audio_dim = transformer["audio_num_attention_heads"] * transformer["audio_attention_head_dim"]
            extractor = FeatureExtractorV2(
                video_aggregate_embed=torch.nn.Linear(flat_dim, video_dim, bias=True),
                embedding_dim=self.gemma_hidden_size,
                audio_aggregate_embed=torch.nn.Linear(flat_dim, audio_dim, bias=True),
            )
        else:
            # LTX-2 (19B): one shared projection to the Gemma width ("V1").
            extractor = FeatureExtractorV1(
                aggregate_embed=torch.nn.Linear(flat_dim, self.gemma_hidden_size, bias=False), is_av=True
            )
        return EmbeddingsProcessor(
            video_connector=Embeddings1DConnectorConfigurator.from_config(config),
            audio_connector=AudioEmbeddings1DConnectorConfigurator.from_config(config),
            feature_extractor=extractor,
        )


# --- transformers 5.x ---
# ltx-core 1.0.0 was written for transformers 4.x, where Gemma-3's vision tower nests a `vision_model` and the
# language model has a second, local rotary embedding (`rotary_emb_local`) and `rope_scaling`. transformers 5.x
# flattened the vision tower (`vision_tower.embeddings...`), keeps one rotary embedding with a buffer per layer
# type, and renamed `rope_scaling` to `rope_parameters`. ltx-core's key ops then leave the vision weights on the
# meta device and its module op fails on the missing attributes. On 4.x ltx-core's own ops are used unchanged;
# on 5.x these, which map the release's (4.x-named) keys onto the model's names and compute the non-persistent
# buffers the way transformers computes them itself.

NESTED_VISION = "model.model.vision_tower.vision_model."


def _flat_vision_key_ops() -> SDOps:
    return (
        SDOps("GEMMA_KEY_OPS_FLAT_VISION")
        .with_matching(prefix="language_model.model.")
        .with_replacement("language_model.model.", "model.model.language_model.")
        .with_matching(prefix="vision_tower.vision_model.")
        .with_replacement("vision_tower.vision_model.", "model.model.vision_tower.")
        .with_matching(prefix="multi_modal_projector.")
        .with_replacement("multi_modal_projector.", "model.model.multi_modal_projector.")
        .with_kv_operation(
            operation=lambda key, value: [
                KeyValueOperationResult(key, value),
                KeyValueOperationResult("model.lm_head.weight", value),
            ],
            key_prefix="model.model.language_model.embed_tokens.weight",
        )
    )


def gemma_key_ops(meta_model: torch.nn.Module) -> SDOps:
    """File keys -> the Gemma model's parameter names, for the transformers release that built `meta_model`."""
    if any(key.startswith(NESTED_VISION) for key in meta_model.state_dict()):
        return GEMMA_LLM_KEY_OPS
    return _flat_vision_key_ops()


def _populate_buffers(module: GemmaTextEncoder) -> GemmaTextEncoder:
    """The model's non-persistent buffers (they are not in the files, and the meta model has none), computed as
    transformers computes them: each rotary embedding made again on the CPU from its own config, the embedding
    scale, the vision position ids."""
    for sub in module.modules():
        if type(sub).__name__.endswith("RotaryEmbedding"):
            fresh = type(sub)(config=sub.config, device="cpu")
            for name, buffer in fresh.named_buffers(recurse=False):
                sub.register_buffer(name, buffer, persistent=False)
        if hasattr(sub, "embed_scale") and isinstance(getattr(sub, "embed_scale"), torch.Tensor):
            sub.register_buffer("embed_scale", torch.tensor(sub.embedding_dim**0.5), persistent=False)
        if hasattr(sub, "position_ids") and isinstance(getattr(sub, "position_ids"), torch.Tensor):
            positions = sub.position_ids.shape[-1]
            sub.register_buffer("position_ids", torch.arange(positions).unsqueeze(0), persistent=False)
    return module


def gemma_module_ops(meta_model: torch.nn.Module) -> tuple:
    if any(key.startswith(NESTED_VISION) for key in meta_model.state_dict()):
        return (GEMMA_MODEL_OPS,)
    return (ModuleOps("GemmaBuffers", matcher=lambda m: isinstance(m, GemmaTextEncoder), mutator=_populate_buffers),)
