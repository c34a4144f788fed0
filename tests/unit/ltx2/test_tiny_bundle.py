"""The bundle generator: every part loads back through the pack's loader, shapes follow the config,
same seed gives the same bytes."""

import hashlib
import json

import pytest
import safetensors
import torch
from building import build_component
from make_tiny_bundle import PRESETS, checkpoint_config, make_bundle

from ltx2_a2v.ltx2.components.plan import ComponentPlan
from ltx2_a2v.ltx2.components.table import COMPONENTS, Bundle
from ltx2_a2v.ltx2.files.safetensors_file import read_header


def _bundle(paths) -> Bundle:
    return Bundle(
        checkpoint=paths["checkpoint"],
        text_encoder=paths["text_encoder"],
        spatial_upsampler=paths["spatial_upsampler"],
        distilled_lora=paths["distilled_lora"],
    )


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_every_component_loads_through_the_pack_loader(tiny_paths, name):
    model = build_component(_bundle(tiny_paths), name)[0]
    tensors = list(model.parameters()) + list(model.buffers())
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert all(torch.isfinite(t.float()).all() for t in model.parameters())


def test_transformer_shapes_follow_the_config(tiny_paths):
    config = checkpoint_config("tiny")["transformer"]
    model = build_component(_bundle(tiny_paths), "transformer")[0]
    assert len(model.transformer_blocks) == config["num_layers"]
    block = model.transformer_blocks[0]
    video_dim = config["num_attention_heads"] * config["attention_head_dim"]
    audio_dim = config["audio_num_attention_heads"] * config["audio_attention_head_dim"]
    assert block.attn1.to_q.weight.shape == (video_dim, video_dim)
    assert block.audio_attn1.to_q.weight.shape == (audio_dim, audio_dim)
    assert block.ff.net[0].proj.weight.shape == (4 * video_dim, video_dim)


def test_checkpoint_metadata_holds_the_config(tiny_paths):
    with safetensors.safe_open(str(tiny_paths["checkpoint"]), framework="pt") as f:
        assert json.loads(f.metadata()["config"]) == json.loads(json.dumps(checkpoint_config("tiny")))
        prefixes = {key.split(".")[0] for key in f.keys()}
    assert prefixes == {"model", "vae", "audio_vae", "vocoder", "text_embedding_projection"}


def test_text_encoder_and_projection_give_transformer_sized_context(tiny_paths):
    bundle = _bundle(tiny_paths)
    with torch.inference_mode():
        encoder = build_component(bundle, "text_encoder")[0]
        hidden_states, mask = encoder.encode("A young woman speaks calmly to the camera.")
        out = build_component(bundle, "embeddings_processor")[0].process_hidden_states(hidden_states, mask)
    config = checkpoint_config("tiny")["transformer"]
    assert out.video_encoding.shape == (1, 1024, config["cross_attention_dim"])
    assert out.audio_encoding.shape == (1, 1024, config["audio_cross_attention_dim"])
    assert 0 < int(mask.sum()) < 1024


def test_the_bundle_tokenizer_reads_words_as_gemma_does(tiny_paths):
    """Written in any lane, the tokenizer starts with <bos> (id 2) and reads its corpus' words as words: a
    tokenizer of the special tokens alone (what transformers 5.x made of the SentencePiece model when handed it as
    vocab_file) reads every word as <unk>, and every prompt would give the same encoding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_paths["text_encoder"]))
    ids = tokenizer("a young woman speaks calmly")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id == 2 and (tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 0)
    assert tokenizer.unk_token_id not in ids and len(set(ids)) == len(ids) == 6, ids


def test_distilled_lora_targets_real_transformer_keys(tiny_paths):
    layout = read_header(tiny_paths["distilled_lora"]).entries
    transformer_keys = set(build_component(_bundle(tiny_paths), "transformer")[0].state_dict())
    targets = {k.removeprefix("diffusion_model.").rsplit(".lora_", 1)[0] + ".weight" for k in layout}
    assert targets and targets <= transformer_keys
    assert all(k.startswith("diffusion_model.transformer_blocks.") for k in layout)


def _digests(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, models_dir, low_bit_paths):
    make_bundle(tmp_path / "again", "tiny", seed=0, fp8=True, low_bit=True, split=True)
    make_bundle(tmp_path / "other", "tiny", seed=1)
    first, again, other = _digests(models_dir), _digests(tmp_path / "again"), _digests(tmp_path / "other")
    tiny_files = {k: v for k, v in first.items() if "tiny" in k}
    assert tiny_files == again
    changed = {k for k in other if again[k] != other[k]}
    assert any(k.startswith("checkpoints/") for k in changed) and any(k.startswith("loras/") for k in changed)


def test_tiny_preset_is_small(models_dir, low_bit_paths):
    from bundle_files import LOW_BIT_FILE_NAMES, SPLIT_FILE_NAMES

    formats = {models_dir / n.format(preset="tiny") for n in (*LOW_BIT_FILE_NAMES.values(), *SPLIT_FILE_NAMES.values())}
    files = [p for p in models_dir.rglob("*") if p.is_file() and "tiny" in str(p)]
    assert sum(p.stat().st_size for p in files if p not in formats) < 64 * 2**20
    assert sum(p.stat().st_size for p in formats) < 32 * 2**20  # the low-bit and split files (--low-bit, --split)


def test_wide_preset_keeps_the_22b_widths():
    wide = PRESETS["wide"]["transformer"]
    assert wide["num_attention_heads"] * wide["attention_head_dim"] == 4096
    assert wide["audio_num_attention_heads"] * wide["audio_attention_head_dim"] == 2048
    assert wide["cross_attention_dim"] == 4096 and wide["audio_cross_attention_dim"] == 2048


@pytest.mark.long
def test_wide_bundle_loads_through_the_pack_loader(wide_paths):
    paths = wide_paths
    bundle = _bundle(paths)
    for name in COMPONENTS:
        ComponentPlan.read(bundle, name)  # every file matches its config
    transformer, report = build_component(bundle, "transformer", "fp8_scaled", lora=(paths["distilled_lora"], 1.0))
    assert transformer.transformer_blocks[0].attn1.to_q.weight.shape == (4096, 4096)
    assert report.quantized == 56
