"""The pieces round 3's fixes are made of, without a server: bounded JSON, file identity across names, the
ranges of model configs, prompts that are not text, the Gemma folder's tokenizer files."""

import json
import os
import shutil
import time

import pytest

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v.limits import check_prompt
from ltx2_a2v.ltx2.files import bounded_json
from ltx2_a2v.ltx2.files.file_identity import file_key, identity
from ltx2_a2v.ltx2.files.gemma_folder import GemmaRoot


def test_depth_counts_brackets_outside_strings_only():
    assert bounded_json.depth('{"a": [1, [2]], "b": "[[[[\\"["}') == 3
    assert bounded_json.loads('{"k": "]]]]"}') == {"k": "]]]]"}
    with pytest.raises(bounded_json.TooDeep, match="nested more than 64 levels deep"):
        bounded_json.loads("[" * 65 + "]" * 65)
    assert bounded_json.loads("[" * 64 + "]" * 64)


@pytest.mark.parametrize("text", ['"' + '\\"' * 1_000_000, '"a' * 1_000_000, "[" * 2_000_000])
def test_depth_takes_linear_time_on_hostile_text(text):
    start = time.perf_counter()
    with pytest.raises(ValueError):
        bounded_json.loads(text)
    assert time.perf_counter() - start < 5


def test_a_file_has_one_key_under_every_name(tmp_path):
    first = tmp_path / "a.safetensors"
    first.write_bytes(b"x" * 10)
    os.link(first, tmp_path / "b.safetensors")
    (tmp_path / "c.safetensors").symlink_to(first)
    keys = {file_key(tmp_path / n) for n in ("a.safetensors", "b.safetensors", "c.safetensors")}
    assert len(keys) == 1
    assert identity(first) != identity(tmp_path / "b.safetensors")  # ComfyUI's cache still tells names apart
    shutil.copy2(first, tmp_path / "d.safetensors")
    assert file_key(tmp_path / "d.safetensors") not in keys  # a copy is another file


def test_a_lone_surrogate_is_refused_naming_the_input():
    assert "prompt: character 3 (U+DC00" in check_prompt("prompt", "ab\udc00")
    assert check_prompt("prompt", "ab\U0001f600") is None


@pytest.fixture()
def gemma(tiny_paths, tmp_path):
    return shutil.copytree(tiny_paths["text_encoder"], tmp_path / "gemma")


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("text_config", "hidden_size", 2**20),
        ("text_config", "num_hidden_layers", 10_000),
        ("vision_config", "image_size", 10**6),
        (None, "mm_tokens_per_image", 10**9),
    ],
)
def test_a_gemma_config_beyond_every_release_is_refused_naming_the_key(gemma, section, key, value):
    config = json.loads((gemma / "config.json").read_text())
    (config[section] if section else config)[key] = value
    (gemma / "config.json").write_text(json.dumps(config))
    with pytest.raises(LTX2InputError, match=f"gives {key} = .*, outside what any release uses"):
        GemmaRoot.open(gemma)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("tokenizer.json", "{1: 2}", "tokenizer.json that is not a tokenizer"),
        ("tokenizer.model", bytes(range(256)) * 6, "tokenizer.model that is not a SentencePiece model"),
        ("special_tokens_map.json", "[" * 100 + "]" * 100, "special_tokens_map.json that is nested more than 64"),
        ("preprocessor_config.json", "not json", "preprocessor_config.json that is not JSON"),
    ],
)
def test_a_broken_tokenizer_or_processor_file_is_refused_when_the_folder_is_read(gemma, name, content, words):
    (gemma / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LTX2InputError, match=words):
        GemmaRoot.open(gemma)


def test_an_unknown_image_processor_is_left_unloaded(gemma):
    config = json.loads((gemma / "preprocessor_config.json").read_text())
    config["image_processor_type"] = "NoSuchImageProcessor"
    (gemma / "preprocessor_config.json").write_text(json.dumps(config))
    ops = GemmaRoot.open(gemma).tokenizer_ops()
    assert [op.name for op in ops] == ["TokenizerLoad"]
