"""A repeated prompt costs nothing: its encoding is kept (on the CPU, bounded) and no text encoder is built for it
again, in any residency; a changed prompt or changed files encode anew."""

import shutil

import pytest
import torch

from ltx2_a2v.ltx2.a2v.prompts import encode_prompts
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.memory.budget import BUDGET
from ltx2_a2v.memory.kept_outputs import ENCODED_PROMPTS, KeptOutputs

CPU = torch.device("cpu")


@pytest.fixture()
def model(tiny_paths) -> ModelSpec:
    ENCODED_PROMPTS.clear()
    bundle = Bundle(checkpoint=tiny_paths["checkpoint"], text_encoder=tiny_paths["text_encoder"])
    yield ModelSpec(bundle, read_checkpoint_config(bundle.checkpoint))
    ENCODED_PROMPTS.clear()


def encode(model: ModelSpec, run_id: str, prompt: str, negative: str = "blurry") -> tuple[list, list[str], list]:
    """(encodings, the components built, the run's notes) of one run's text encode, in cold_start."""
    report = BUDGET.begin_run(run_id, model.quantization, "cold_start")
    with torch.inference_mode():
        encoded = encode_prompts(model, [prompt, negative], CPU)
    return encoded, [line.split(":")[0] for line in report.loads], report.notes


def same(a, b) -> bool:
    return all((x is None and y is None) or torch.equal(x, y) for x, y in zip(a, b))


def test_a_repeated_prompt_builds_no_text_encoder_and_gives_the_same_encoding(model):
    first, built, notes = encode(model, "kept-1", "A woman speaks.")
    assert built == ["text_encoder", "embeddings_processor"] and not any("prompt reused" in n for n in notes)
    assert len(ENCODED_PROMPTS) == 2 and ENCODED_PROMPTS.nbytes() > 0
    again, built, notes = encode(model, "kept-2", "A woman speaks.")
    assert built == [] and any(n.startswith("prompt reused") for n in notes), notes
    assert all(same(a, b) for a, b in zip(first, again))
    # The kept tensors are the cache's own: on the CPU, not those the run went on with.
    kept = [t for e in ENCODED_PROMPTS._entries.values() for t in e.tensors]
    assert all(t.device.type == "cpu" for t in kept)
    assert not any(t.data_ptr() == k.data_ptr() for t in first[0] if t is not None for k in kept)


def test_a_changed_prompt_encodes_only_what_changed(model):
    encode(model, "kept-3", "A woman speaks.")
    _, built, notes = encode(model, "kept-4", "A man sings.")
    assert built == ["text_encoder", "embeddings_processor"]
    assert any(n.startswith("prompt reused: negative_prompt") for n in notes), notes  # the negative was kept


def test_changed_text_encoder_files_are_never_served_from_the_cache(model, tmp_path):
    gemma = tmp_path / "gemma"
    shutil.copytree(model.bundle.text_encoder, gemma)
    copy = ModelSpec(Bundle(checkpoint=model.bundle.checkpoint, text_encoder=gemma), model.config)
    encode(copy, "kept-5", "A woman speaks.")
    shard = max(gemma.glob("*.safetensors"))
    shard.write_bytes(shard.read_bytes())  # rewritten: another file version (its inode change time moves)
    _, built, _ = encode(copy, "kept-6", "A woman speaks.")
    assert "text_encoder" in built
    assert len(ENCODED_PROMPTS) == 2  # the entries of the old files dropped, not kept beside the new


def test_the_cache_is_bounded_by_entries_and_bytes():
    cache = KeptOutputs("test", max_entries=2, max_bytes=1000)
    small = torch.zeros(100, dtype=torch.uint8)
    for i in range(3):
        assert cache.put((i,), i, (small.clone(),))
    assert len(cache) == 2 and cache.get((0,)) is None and cache.get((2,)) == 2
    assert not cache.put(("big",), 0, (torch.zeros(2000, dtype=torch.uint8),))  # alone over the bound: not kept
    assert cache.state()["bytes"] == 200
    with pytest.raises(ValueError):
        cache.put(("gpu",), 0, (torch.zeros(1, device="meta"),))
