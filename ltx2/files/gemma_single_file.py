"""A Gemma-3 text encoder in ComfyUI's single-file layout (`text_encoders/gemma_3_12B_it*.safetensors`): what a
user of ComfyUI's own LTX-2.3 templates already has, in bf16, fp8 or nvfp4 ("fp4_mixed").

The file holds the language model under `model.`, the vision tower under `vision_model.`, the projector under
`multi_modal_projector.`, and the SentencePiece tokenizer's bytes as a uint8 tensor `spiece_model`; no config
and no image-processor file. Its keys are renamed here to the release folder's, so the same key ops, policies and
streaming build it as they build the folder (gemma_folder.py); its quantized layers are read as ComfyUI reads them
(stored_formats.py).

The config: ComfyUI builds the 12B from code. Here every size is read from the tensors' shapes (hidden size,
layers, heads from the per-head norms, vision patch and image size), over ltx-core's Gemma-3-12B config for what
shapes cannot tell (rope, sliding window, norms): the real file gives exactly ltx-core's config, and a smaller
file of the same family (the test bundle's) its own sizes.
"""

import copy
import json
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ltx_core.loader.module_ops import ModuleOps
from ltx_core.text_encoders.gemma import GemmaTextEncoder
from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

from ...errors import LTX2InputError
from .config_ranges import check_gemma_config
from .gemma_folder import MAX_TOKENS, GemmaRoot
from .safetensors_file import SafetensorsHeader, iter_tensors, read_header

TOKENIZER_KEY = "spiece_model"
# What tells ComfyUI's loader a Gemma-3 file (comfy/sd.py detect_te_model), and what the config is read from.
MARKER = "model.layers.0.self_attn.q_norm.weight"
PREFIXES = {
    "model.": "language_model.model.",
    "vision_model.": "vision_tower.vision_model.",
    "multi_modal_projector.": "multi_modal_projector.",
}
IMAGE_TOKENS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
# Gemma-3's image processor (the release folder's preprocessor_config.json), at the file's image size. A2V never
# calls it; ltx-core's text encoder holds one.
IMAGE_PROCESSOR = {
    "image_processor_type": "Gemma3ImageProcessor",
    "do_resize": True,
    "do_rescale": True,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "rescale_factor": 1 / 255,
    "resample": 2,
}
# Converting the 12B's 262k-piece SentencePiece model to a fast tokenizer takes seconds: done once per file version
# (its identity), for the few files a process uses.
_tokenizers: OrderedDict[tuple, object] = OrderedDict()
_tokenizers_lock = threading.Lock()
_pieces: dict[tuple, int] = {}  # files whose tokenizer was checked against their embedding, by identity


def _bad(path: Path, what: str) -> LTX2InputError:
    return LTX2InputError(
        f"text_encoder: {path.name} {what}. Pick a Gemma-3 text encoder: a single file as ComfyUI's LTX-2 templates "
        "use (gemma_3_12B_it*.safetensors) or the Gemma-3 release folder."
    )


def _count(entries, pattern: str) -> int:
    found = {int(m.group(1)) for k in entries if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


@dataclass(frozen=True)
class GemmaFile:
    path: Path

    @classmethod
    def open(cls, path: str | Path) -> "GemmaFile":
        gemma = cls(Path(path))
        entries = gemma.header.entries
        if MARKER not in entries or "model.embed_tokens.weight" not in entries:
            raise _bad(gemma.path, "is not a Gemma-3 text encoder (it has no model.layers.0.self_attn.q_norm)")
        if TOKENIZER_KEY not in entries or entries[TOKENIZER_KEY].dtype.itemsize != 1:
            raise _bad(gemma.path, f"has no tokenizer inside (a uint8 '{TOKENIZER_KEY}' tensor, as ComfyUI writes it)")
        gemma.config()  # checked now, before anything is built from it
        gemma.check_tokenizer()
        return gemma

    @property
    def header(self) -> SafetensorsHeader:
        return read_header(self.path, "text_encoder")  # parsed once per version of the file

    def weight_files(self) -> tuple[str, ...]:
        return (str(self.path),)

    @staticmethod
    def file_key(key: str) -> str | None:
        """The release folder's name for a key of this file (None: not a weight, the tokenizer)."""
        for prefix, release in PREFIXES.items():
            if key.startswith(prefix):
                return release + key[len(prefix) :]
        return None

    def config(self) -> dict:
        """Gemma-3-12B's config (ltx-core's) with every size the tensors give."""
        shapes = {k: e.shape for k, e in self.header.entries.items()}
        try:
            vocab, hidden = shapes["model.embed_tokens.weight"]
            head_dim = shapes[MARKER][0]
            text = {
                "hidden_size": hidden,
                "vocab_size": vocab,
                "head_dim": head_dim,
                "query_pre_attn_scalar": head_dim,
                "num_hidden_layers": _count(shapes, r"model\.layers\.(\d+)\."),
                "intermediate_size": shapes["model.layers.0.mlp.gate_proj.weight"][0],
                "num_attention_heads": shapes["model.layers.0.self_attn.q_proj.weight"][0] // head_dim,
                "num_key_value_heads": shapes["model.layers.0.self_attn.k_proj.weight"][0] // head_dim,
            }
            patch = shapes["vision_model.embeddings.patch_embedding.weight"]
            positions = shapes["vision_model.embeddings.position_embedding.weight"][0]
            vision = {
                "hidden_size": patch[0],
                "patch_size": patch[-1],
                "image_size": round(positions**0.5) * patch[-1],
                "intermediate_size": shapes["vision_model.encoder.layers.0.mlp.fc1.weight"][0],
                "num_hidden_layers": _count(shapes, r"vision_model\.encoder\.layers\.(\d+)\."),
            }
        except (KeyError, ValueError, IndexError):
            raise _bad(self.path, "lacks tensors every Gemma-3 file has (embeddings, layer 0, vision tower)") from None
        if min(text.values()) <= 0 or min(vision.values()) <= 0:
            raise _bad(self.path, "has tensors of sizes no Gemma-3 has")
        # As a folder's config.json is: a stray `model.layers.99999.` key would size a model of 100,000 layers.
        check_gemma_config({"text_config": text, "vision_config": vision}, self.path, "its tensors' shapes")
        config = copy.deepcopy(GEMMA3_CONFIG_FOR_LTX.to_dict())
        config["text_config"].update(text)
        config["vision_config"].update(vision)
        # The 12B's 16 vision heads where the width allows (the vision tower is not used by A2V).
        if vision["hidden_size"] % config["vision_config"]["num_attention_heads"]:
            config["vision_config"]["num_attention_heads"] = 1
        patches_per_side = vision["image_size"] // vision["patch_size"]
        config["mm_tokens_per_image"] = min(16, patches_per_side) ** 2  # the 12B: 16 x 16 of 64 x 64 patches
        return config

    def text_dims(self) -> tuple[int, int]:
        text = self.config()["text_config"]
        return text["hidden_size"], text["num_hidden_layers"] + 1

    def check_tokenizer(self) -> None:
        """The tokenizer stored in the file has no more pieces than the embedding has rows: a prompt would otherwise
        give a token id past the table, an IndexError deep in the text encoder. Once per version of the file."""
        header = self.header
        key = (str(self.path), *header.identity)
        with _tokenizers_lock:
            if key in _pieces:
                return
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(next(iter_tensors(header, {TOKENIZER_KEY}))[1].numpy().tobytes())
        except Exception:  # noqa: BLE001 - a RuntimeError or OSError, depending on the release
            raise _bad(self.path, f"holds a '{TOKENIZER_KEY}' that is not a SentencePiece model") from None
        rows = header.entries["model.embed_tokens.weight"].shape[0]
        if processor.GetPieceSize() > rows:
            raise _bad(
                self.path,
                f"holds a tokenizer of {processor.GetPieceSize():,} pieces ('{TOKENIZER_KEY}') and a token embedding "
                f"of {rows:,} rows ('model.embed_tokens.weight'): its tokenizer is of another model",
            )
        with _tokenizers_lock:
            _pieces[key] = processor.GetPieceSize()

    def tokenizer(self):
        """transformers' fast tokenizer, made from the SentencePiece model stored in the file."""
        header = self.header
        key = (str(self.path), *header.identity)
        with _tokenizers_lock:
            if key in _tokenizers:
                _tokenizers.move_to_end(key)
                return _tokenizers[key]
        model = next(iter_tensors(header, {TOKENIZER_KEY}))[1].numpy().tobytes()
        # ltx-core's tokenizer reads a folder: a private one, gone once the tokenizer is made.
        with tempfile.TemporaryDirectory(prefix="ltx2-gemma-tokenizer-") as folder:
            (Path(folder) / "tokenizer.model").write_bytes(model)
            settings = {
                "tokenizer_class": "GemmaTokenizer",
                "add_bos_token": True,
                "add_eos_token": False,
                "extra_special_tokens": IMAGE_TOKENS,
            }
            (Path(folder) / "tokenizer_config.json").write_text(json.dumps(settings))
            try:
                tokenizer = LTXVGemmaTokenizer(folder, MAX_TOKENS)
            except Exception as exc:  # noqa: BLE001 - sentencepiece and transformers raise many types on a bad model
                raise _bad(
                    self.path, f"holds a '{TOKENIZER_KEY}' that is not a SentencePiece model ({type(exc).__name__})"
                ) from None
        with _tokenizers_lock:
            _tokenizers[key] = tokenizer
            while len(_tokenizers) > 2:
                _tokenizers.popitem(last=False)
        return tokenizer

    def tokenizer_ops(self) -> tuple[ModuleOps, ...]:
        vision = self.config()["vision_config"]

        def load_tokenizer(module: GemmaTextEncoder) -> GemmaTextEncoder:
            module.tokenizer = self.tokenizer()
            return module

        def load_processor(module: GemmaTextEncoder) -> GemmaTextEncoder:
            from transformers import Gemma3ImageProcessor, Gemma3Processor

            size = {"height": vision["image_size"], "width": vision["image_size"]}
            module.processor = Gemma3Processor(
                image_processor=Gemma3ImageProcessor(**IMAGE_PROCESSOR, size=size), tokenizer=module.tokenizer.tokenizer
            )
            return module

        return (
            ModuleOps(
                "TokenizerLoad",
                matcher=lambda m: isinstance(m, GemmaTextEncoder) and m.tokenizer is None,
                mutator=load_tokenizer,
            ),
            ModuleOps(
                "ProcessorLoad",
                matcher=lambda m: isinstance(m, GemmaTextEncoder) and m.processor is None,
                mutator=load_processor,
            ),
        )


def open_text_encoder(path: str | Path) -> "GemmaRoot | GemmaFile":
    """The text encoder the loader's `text_encoder` names: a release folder or a single ComfyUI-layout file."""
    path = Path(path)
    return GemmaRoot.open(path) if path.is_dir() else GemmaFile.open(path)
