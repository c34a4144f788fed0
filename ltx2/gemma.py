"""The Gemma-3 text encoder root, read from its own files.

ltx-core 1.0.0 builds the text encoder and the embeddings processor's feature extractor from a hard-coded
12B config (`GEMMA3_CONFIG_FOR_LTX`), whatever root it is given. We read `config.json` from the root
instead, so the same code builds the real 12B encoder and the small one of the test bundle.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

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
from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

from ..errors import LTX2InputError
from . import bounded_json
from .config_ranges import check_gemma_config
from .gemma_files import check_tokenizer_files
from .safetensors_file import open_regular, shown

# Files the tokenizer and image processor are made from (tokenizer_ops), plus the config we read.
REQUIRED_FILES = ("config.json", "tokenizer.model", "preprocessor_config.json")
INDEX = "model.safetensors.index.json"
# config.json and the index are a few kB in the release; anything much larger is not one.
MAX_JSON_BYTES = 4 * 2**20
# The tokenizer's limit, as ltx-core's text encoder sets it (LTXVGemmaTokenizer(..., 1024)).
MAX_TOKENS = 1024


def _bad(root: Path, what: str, fix: str = "Copy the whole Gemma-3 release folder again.") -> LTX2InputError:
    return LTX2InputError(f"text_encoder: '{root}' {what}. {fix}")


def read_json(path: Path, root: Path) -> dict:
    """A JSON object from a regular file of the Gemma folder, or a clear error naming the file."""
    fd, info = open_regular(path, "text_encoder")
    if info.st_size > MAX_JSON_BYTES:
        os.close(fd)
        raise _bad(root, f"has a {path.name} of {info.st_size} bytes, not a Gemma-3 one (a few kB)")
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    try:
        data = bounded_json.loads(raw.decode("utf-8"))
    except bounded_json.TooDeep as exc:
        raise _bad(root, f"has a {path.name} {exc}, not a Gemma-3 one (a few levels)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(root, f"has a {path.name} that is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise _bad(root, f"has a {path.name} that is not a JSON object")
    return data


def _positive(section: dict, key: str) -> bool:
    value = section.get(key)
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class GemmaRoot:
    """A Gemma-3 folder as released: config, tokenizer, image processor and `model*.safetensors` shards, all at
    its top level. Sub-folders are never read: a backup copy of the shards in one must not override the real ones
    (ltx-core searches the folder recursively; the pack does not)."""

    path: Path
    file_key = None  # its files name their keys as the key ops expect (a single file renames: gemma_file.py)

    @classmethod
    def open(cls, path: str | Path) -> "GemmaRoot":
        root = Path(path)
        if not root.is_dir():
            raise LTX2InputError(
                f"text_encoder: '{root}' is not a folder. Put the Gemma-3 root folder (config.json, tokenizer.model, "
                "model-*.safetensors) under ComfyUI's models/text_encoders/ and pick it."
            )
        # Everything at the top level that is not a folder is something a library may open: a pipe or a device
        # there would block or never end, so each must be a regular file (or a link to one).
        for entry in os.scandir(root):
            if not entry.is_dir() and not entry.is_file():
                raise _bad(
                    root,
                    f"holds '{entry.name}', which is not a regular file (a pipe, a device or a broken link)",
                    "Remove it, or put the real file there.",
                )
        missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
        if missing:
            raise _bad(
                root,
                f"lacks {', '.join(missing)} at its top level",
                "Copy the whole Gemma-3 release folder, not only its weights.",
            )
        check_tokenizer_files(root)  # the tokenizer and processor files: named when bad (gemma_files.py)
        gemma = cls(root)
        check_gemma_config(gemma.config(), root)  # checked now, before anything is built or estimated from it
        gemma.weight_files()
        return gemma

    def weight_files(self) -> tuple[str, ...]:
        """The shards the index names, when there is an index (as in the release); else the top-level
        `model*.safetensors` files."""
        index = self.path / INDEX
        if index.exists():
            weight_map = read_json(index, self.path).get("weight_map")
            if (
                not isinstance(weight_map, dict)
                or not weight_map
                or not all(isinstance(v, str) for v in weight_map.values())
            ):
                raise _bad(self.path, f"has an {INDEX} without a weight_map of file names")
            names = sorted(set(weight_map.values()))
            outside = [n for n in names if Path(n).name != n or n in (".", "..")]
            if outside:
                raise _bad(
                    self.path, f"has an {INDEX} naming {shown(outside[0])}, which is not a file of the folder itself"
                )
            absent = [n for n in names if not (self.path / n).is_file()]
            if absent:
                raise _bad(
                    self.path,
                    f"lacks {shown(absent[0])}, named by its {INDEX} ({len(absent)} of {len(names)} shards missing)",
                )
            return tuple(str(self.path / n) for n in names)
        shards = sorted(p for p in self.path.glob("model*.safetensors") if p.is_file())
        if not shards:
            raise _bad(self.path, "has no model*.safetensors weight files at its top level")
        return tuple(str(p) for p in shards)

    def config(self) -> dict:
        config = read_json(self.path / "config.json", self.path)
        if config.get("model_type") != "gemma3":
            raise _bad(
                self.path,
                f"has a config.json of a {shown(config.get('model_type'), 40)} model; LTX-2 needs "
                "Gemma-3 (model_type 'gemma3')",
                "Pick the Gemma-3 folder.",
            )
        text, vision = config.get("text_config"), config.get("vision_config")
        if not isinstance(text, dict) or not all(_positive(text, k) for k in ("hidden_size", "num_hidden_layers")):
            raise _bad(self.path, "has a config.json without a text_config giving hidden_size and num_hidden_layers")
        if not isinstance(vision, dict):
            raise _bad(self.path, "has a config.json without a vision_config")
        return config

    def text_dims(self) -> tuple[int, int]:
        """(hidden size, number of hidden states the encoder returns: layers + the embedding layer)."""
        text = self.config()["text_config"]
        return text["hidden_size"], text["num_hidden_layers"] + 1

    def tokenizer_ops(self) -> tuple[ModuleOps, ...]:
        """ltx-core's tokenizer and image-processor module ops, made from this folder's top-level files (ltx-core's
        own, module_ops_from_gemma_root, take the first match of a recursive search)."""
        root = str(self.path)

        def load_tokenizer(module: GemmaTextEncoder) -> GemmaTextEncoder:
            module.tokenizer = LTXVGemmaTokenizer(root, MAX_TOKENS)
            return module

        def load_processor(module: GemmaTextEncoder) -> GemmaTextEncoder:
            from transformers import AutoImageProcessor, Gemma3Processor

            image_processor = AutoImageProcessor.from_pretrained(root, local_files_only=True)
            module.processor = Gemma3Processor(image_processor=image_processor, tokenizer=module.tokenizer.tokenizer)
            return module

        tokenizer = ModuleOps(
            "TokenizerLoad",
            mutator=load_tokenizer,
            matcher=lambda m: isinstance(m, GemmaTextEncoder) and m.tokenizer is None,
        )
        if not check_tokenizer_files(self.path):  # an image processor transformers does not know: A2V needs none
            return (tokenizer,)
        return (
            tokenizer,
            ModuleOps(
                "ProcessorLoad",
                matcher=lambda m: isinstance(m, GemmaTextEncoder) and m.processor is None,
                mutator=load_processor,
            ),
        )


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
