"""A Gemma-3 release folder (shards, index, config.json, tokenizer, image processor), checked and read: its config
(which sizes the models, ltx2/components/gemma_model.py), its weight files and the tokenizer's module ops.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ltx_core.loader.module_ops import ModuleOps
from ltx_core.text_encoders.gemma import GemmaTextEncoder
from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

from ...errors import LTX2InputError
from . import bounded_json
from .config_ranges import check_gemma_config
from .gemma_tokenizer_files import check_tokenizer_files, tokenizer_size
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
    file_key = None  # its files name their keys as the key ops expect (a single file renames: gemma_single_file.py)

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
        check_tokenizer_files(root)  # the tokenizer and processor files: named when bad (gemma_tokenizer_files.py)
        gemma = cls(root)
        config = gemma.config()
        check_gemma_config(config, root)  # checked now, before anything is built or estimated from it
        pieces, source = tokenizer_size(root)
        vocab = config["text_config"].get("vocab_size")
        if isinstance(vocab, int) and pieces > vocab:
            # A prompt would give a token id past the embedding: an IndexError deep in the text encoder.
            raise _bad(
                root,
                f"has a {source} of {pieces:,} tokens and a config.json whose text_config gives vocab_size = {vocab:,} "
                "(the rows of the token embedding): the tokenizer is of another model",
                "Copy the tokenizer files of this Gemma-3 release.",
            )
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
