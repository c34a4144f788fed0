"""The Gemma folder's tokenizer and image-processor files, checked when the folder is read: a damaged or foreign
one is refused naming the file, instead of failing later inside transformers, tokenizers or SentencePiece with a
message that names none.

The image processor is for image prompts (ltx-core's prompt enhancer), which A2V never uses: a processor
transformers does not know is left unloaded rather than allowed to break a run."""

import os
import threading
from pathlib import Path

from ...errors import LTX2InputError
from . import bounded_json
from .file_identity import file_keys
from .safetensors_file import open_regular, shown

# The release's tokenizer.json is 33 MB and its tokenizer.model 4.7 MB; a file far larger is not one of them.
MAX_TOKENIZER_BYTES = 256 * 2**20
MAX_SMALL_JSON_BYTES = 4 * 2**20
# JSON files transformers reads from the folder beside tokenizer.json (each optional but preprocessor_config).
SMALL_JSON = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "processor_config.json",
)
TOKENIZER_CLASSES = (None, "GemmaTokenizer", "GemmaTokenizerFast")
# Folders checked, by the identity of the files checked: GemmaRoot.open runs several times per run. -> (whether the
# image processor loads, how many token ids the tokenizer gives).
_checked: dict[tuple, tuple[bool, int]] = {}
_checked_lock = threading.Lock()


def _bad(
    root: Path, name: str, what: str, fix: str = "Copy that file from the Gemma-3 release again."
) -> LTX2InputError:
    return LTX2InputError(f"text_encoder: '{root}' has a {name} that {what}. {fix}")


def _read(root: Path, name: str, limit: int) -> bytes:
    fd, info = open_regular(root / name, "text_encoder")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > limit:
            raise _bad(root, name, f"is {info.st_size:,} bytes, far larger than the release's")
        return f.read()


def _json_object(root: Path, name: str) -> dict:
    try:
        data = bounded_json.loads(_read(root, name, MAX_SMALL_JSON_BYTES))
    except bounded_json.TooDeep as exc:
        raise _bad(root, name, f"is {exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _bad(root, name, f"is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise _bad(root, name, "is not a JSON object")
    return data


def check_tokenizer_files(root: Path) -> bool:
    """Raises LTX2InputError naming the first bad tokenizer or processor file; returns whether the image processor
    can be loaded (False: an image_processor_type transformers does not know, left unloaded)."""
    return _checked_files(root)[0]


def tokenizer_size(root: Path) -> tuple[int, str]:
    """(how many token ids the folder's tokenizer gives, the file that says so)."""
    return _checked_files(root)[1]


def _checked_files(root: Path) -> tuple[bool, tuple[int, str]]:
    names = [n for n in ("tokenizer.json", "tokenizer.model", *SMALL_JSON) if (root / n).is_file()]
    key = (str(root), tuple(names), file_keys(root / n for n in names))
    with _checked_lock:
        if key in _checked:
            return _checked[key]
    configs = {name: _json_object(root, name) for name in SMALL_JSON if name in names}
    tokenizer_class = configs.get("tokenizer_config.json", {}).get("tokenizer_class")
    if tokenizer_class not in TOKENIZER_CLASSES:
        raise _bad(
            root,
            "tokenizer_config.json",
            f"names tokenizer_class {shown(tokenizer_class)}; Gemma-3's is GemmaTokenizer",
        )
    sizes = [(_check_sentencepiece(root), "tokenizer.model")]
    if "tokenizer.json" in names:
        sizes.append((_check_tokenizer_json(root), "tokenizer.json"))
    usable = _processor_known(configs.get("preprocessor_config.json", {}))
    with _checked_lock:
        _checked[key] = (usable, max(sizes))
    return _checked[key]


def _check_tokenizer_json(root: Path) -> int:
    """Parsed by the library transformers loads it with (its parser bounds the nesting itself); the pieces of its
    vocabulary (tokens transformers adds on top, such as 5.x's `<mask>`, match only their literal text)."""
    from tokenizers import Tokenizer

    raw = _read(root, "tokenizer.json", MAX_TOKENIZER_BYTES)
    try:
        return Tokenizer.from_str(raw.decode("utf-8")).get_vocab_size(with_added_tokens=False)
    except UnicodeDecodeError:
        raise _bad(root, "tokenizer.json", "is not UTF-8 text") from None
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception for every parse error
        raise _bad(root, "tokenizer.json", f"is not a tokenizer ({shown(str(exc), 120)})") from None


def _check_sentencepiece(root: Path) -> int:
    import sentencepiece

    raw = _read(root, "tokenizer.model", MAX_TOKENIZER_BYTES)
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(raw)
    except Exception:  # noqa: BLE001 - a RuntimeError or OSError, depending on the release
        raise _bad(root, "tokenizer.model", "is not a SentencePiece model") from None
    if processor.GetPieceSize() < 4:
        raise _bad(root, "tokenizer.model", f"holds {processor.GetPieceSize()} pieces, not Gemma's vocabulary")
    return processor.GetPieceSize()


def _processor_known(preprocessor: dict) -> bool:
    name = preprocessor.get("image_processor_type")
    if not isinstance(name, str):
        return False
    from transformers.models.auto.image_processing_auto import get_image_processor_class_from_name

    try:
        return get_image_processor_class_from_name(name) is not None
    except Exception:  # noqa: BLE001 - a name that makes transformers import something missing
        return False
