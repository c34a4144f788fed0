"""Writes a small, randomly initialised LTX-2.3 bundle laid out exactly like the release files.

    .venv/bin/python tools/make_tiny_bundle.py --models-dir DIR [--preset tiny|wide|deep|full] [--seed N] [--fp8]
                                               [--low-bit] [--split] [--device cuda]

DIR gets ComfyUI's model-folder layout:
    checkpoints/ltx-2.3-<preset>-dev.safetensors                     transformer, VAEs, vocoder, text projection
    loras/ltx-2.3-<preset>-distilled-lora-384.safetensors            distilled LoRA (ComfyUI key names)
    loras/ltx-2.3-<preset>-style-lora.safetensors                    a user's LoRA on some video and audio layers
    latent_upscale_models/ltx-2.3-<preset>-spatial-upscaler-x2.safetensors
    text_encoders/gemma-3-<preset>-it/                               config, tokenizer, image processor, 2 shards
    checkpoints/ltx-2.3-<preset>-dev-fp8.safetensors                 with --fp8: block linears stored in fp8
    diffusion_models/, vae/, text_encoders/ split files                with --split (tools/bundle_files.py)
    diffusion_models/ltx-2.3-<preset>-dev-{nvfp4,int8,int8-convrot}_transformer_only.safetensors, an int8 Gemma
                                                                     with --low-bit (and the split files)

Key names and the JSON `config` metadata are those of the release, so the pack's loader reads these files
through the same code as the real ones. `tiny` is for fast tests; `wide` keeps the real 22B transformer widths
(4096 video / 2048 audio, 32 heads, FF 4x) with 2 blocks, for memory ratios that carry over to the real model.
Everything else stays small in both. Same seed, same bytes.
"""

import argparse
import hashlib
import io
import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pack import import_pack  # noqa: E402
from bundle_files import (  # noqa: E402
    LOW_BIT_FILE_NAMES,
    LOW_BIT_FORMATS,
    SPLIT_FILE_NAMES,
    comfy_quantized,
    quantization_tensors,
    sorted_metadata,
    write_low_bit_checkpoint,
    write_split_files,
)

import_pack()
from ltx2_a2v.ltx2.components import table as ltx2_components  # noqa: E402
from ltx2_a2v.ltx2.components.gemma_model import EmbeddingsProcessorConfigurator  # noqa: E402
from ltx2_a2v.ltx2.files.gemma_single_file import IMAGE_PROCESSOR  # noqa: E402
from ltx2_a2v.ltx2.files.gemma_single_file import PREFIXES as GEMMA_FILE_PREFIXES  # noqa: E402

RANK = {"tiny": 8, "wide": 384, "deep": 384, "full": 384}
# Where random tensors are drawn (make_bundle's `device`): the CPU by default; a GPU draws the `full` preset's 19 B
# values in seconds (other values than the CPU's for the same seed, equally deterministic).
_DEVICE = torch.device("cpu")

_TRANSFORMER_COMMON = {
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "dropout": 0.0,
    "double_self_attention": False,
    "norm_elementwise_affine": False,
    "num_embeds_ada_norm": 1000,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "upcast_attention": False,
    "use_linear_projection": False,
    "qk_norm": "rms_norm",
    "standardization_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "av_ca_timestep_scale_multiplier": 1000.0,
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
    "apply_gated_attention": True,
    "cross_attention_adaln": True,
    "rope_type": "split",
    "frequencies_precision": "float64",
    # LTX-2.3: the caption projection sits in the text encoder, before the connectors ("V2").
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_projection_second_linear": False,
    "caption_proj_input_norm": False,
    "connector_num_layers": 1,
    "connector_positional_embedding_max_pos": [4096],
    "connector_apply_gated_attention": True,
}


def _transformer(video_heads: int, video_head_dim: int, audio_heads: int, audio_head_dim: int, layers: int) -> dict:
    # Cross-modal RoPE needs as many audio heads as video heads; the connectors feed the cross-attention,
    # so their widths equal the transformer's.
    return {
        **_TRANSFORMER_COMMON,
        "num_layers": layers,
        "num_attention_heads": video_heads,
        "attention_head_dim": video_head_dim,
        "cross_attention_dim": video_heads * video_head_dim,
        "audio_num_attention_heads": audio_heads,
        "audio_attention_head_dim": audio_head_dim,
        "audio_cross_attention_dim": audio_heads * audio_head_dim,
        "connector_num_attention_heads": video_heads,
        "connector_attention_head_dim": video_head_dim,
        "audio_connector_num_attention_heads": audio_heads,
        "audio_connector_attention_head_dim": audio_head_dim,
    }


# Every field a reader of the release's `vae` config reads, written out: ltx-core and ComfyUI default the ones
# left out differently (ltx-core: pixel norm, uniform log-variance; ComfyUI: group norm, per-channel), and ComfyUI
# needs `dims` to build the VAE at all.
_VAE = {
    "_class_name": "CausalVideoAutoencoder",
    "dims": 3,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "patch_size": 4,
    "norm_layer": "pixel_norm",
    "latent_log_var": "uniform",
    "causal_decoder": False,
    "spatial_padding_mode": "zeros",
    "timestep_conditioning": False,
    "encoder_base_channels": 128,
    "decoder_base_channels": 16,
    # 32x spatial, 8x temporal compression, as the release; one block per stage.
    "encoder_blocks": [
        ["res_x", {"num_layers": 1}],
        ["compress_space_res", {"multiplier": 1}],
        ["compress_time_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
    ],
    # Built in reverse: the decoder starts with a res block at the latent's resolution, as the release's does (and
    # as ComfyUI's detection of an LTX VAE looks for: decoder.up_blocks.0.res_blocks.0).
    "decoder_blocks": [
        ["res_x", {"num_layers": 1}],
        ["compress_space", {"multiplier": 2}],
        ["compress_time", {"multiplier": 2}],
        ["compress_all", {"multiplier": 1}],
        ["compress_all", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
    ],
}

_AUDIO_VAE = {
    "model": {
        "params": {
            "sampling_rate": 16000,
            # Written out in full, as for the video VAE: ComfyUI reads out_ch, in_channels, resolution and norm_type
            # from here, with no defaults.
            "ddconfig": {
                "ch": 128,
                "out_ch": 2,
                "in_channels": 2,
                "resolution": 256,
                "ch_mult": [1, 1, 1],
                "num_res_blocks": 1,
                "attn_resolutions": [],
                "mid_block_add_attention": False,
                "z_channels": 8,
                "double_z": True,
                "dropout": 0.0,
                "downsample_time": False,
                "norm_type": "pixel",
                "causality_axis": "height",
                "mel_bins": 64,
            },
        }
    },
    "preprocessing": {"stft": {"hop_length": 160, "filter_length": 1024}, "mel": {"n_mel_channels": 64}},
}

_GENERATOR = {
    "resblock": "AMP1",
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "upsample_initial_channel": 32,
    "stereo": True,
    "use_tanh_at_final": False,
    "activation": "snakebeta",
    "use_bias_at_final": False,
}

_VOCODER = {
    "vocoder": {**_GENERATOR, "upsample_rates": [8, 4, 5], "upsample_kernel_sizes": [16, 8, 11]},
    "bwe": {
        **_GENERATOR,
        "upsample_rates": [6, 5, 8],
        "upsample_kernel_sizes": [12, 11, 16],
        "input_sampling_rate": 16000,
        "output_sampling_rate": 48000,
        "hop_length": 80,
        "n_fft": 512,
        "num_mels": 64,
    },
}

PRESETS = {
    "tiny": {"transformer": _transformer(2, 32, 2, 16, layers=2)},
    # The LTX-2.3 22B widths: 32 x 128 video, 32 x 64 audio; 2 of its 48 blocks.
    "wide": {"transformer": _transformer(32, 128, 32, 64, layers=2)},
    # 8 of the 48 blocks: the load's transient measured where it weighs less than on `wide` (bench/quant.py).
    "deep": {"transformer": _transformer(32, 128, 32, 64, layers=8)},
    # The whole 22B transformer (48 blocks at the real widths; 38 GB in bf16), everything else as small as `tiny`'s:
    # the GPU proving ground (bench/proving_ground.py).
    "full": {"transformer": _transformer(32, 128, 32, 64, layers=48)},
}

UPSAMPLER_CONFIG = {
    "in_channels": 128,
    "mid_channels": 32,
    "num_blocks_per_stage": 1,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}

# Gemma-3 shaped text encoder: text and vision towers, 2 text layers, a 512-token vocabulary.
SPECIAL_TOKENS = ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
VOCAB_SIZE = 512


def gemma_config(token_ids: dict[str, int]) -> dict:
    return {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": token_ids["<start_of_image>"],
        "eoi_token_index": token_ids["<end_of_image>"],
        "image_token_index": token_ids["<image_soft_token>"],
        "eos_token_id": [1, token_ids["<end_of_turn>"]],
        "initializer_range": 0.02,
        "mm_tokens_per_image": 4,
        "torch_dtype": "bfloat16",
        "text_config": {
            "model_type": "gemma3_text",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "vocab_size": VOCAB_SIZE,
            # What shapes cannot tell is Gemma-3-12B's (ltx-core's GEMMA3_CONFIG_FOR_LTX), as a single ComfyUI-layout
            # file of this Gemma is read (ltx2/files/gemma_single_file.py): the folder and the file then encode alike.
            "max_position_embeddings": 131072,
            "sliding_window": 1024,
            "sliding_window_pattern": 6,
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "rms_norm_eps": 1e-6,
            "hidden_activation": "gelu_pytorch_tanh",
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 56,
            "patch_size": 14,
            "vision_use_head": False,
        },
    }


def checkpoint_config(preset: str) -> dict:
    return {"transformer": PRESETS[preset]["transformer"], "vae": _VAE, "audio_vae": _AUDIO_VAE, "vocoder": _VOCODER}


def file_names(preset: str) -> dict[str, str]:
    """Paths relative to the models folder, in ComfyUI's folder names."""
    return {
        "checkpoint": f"checkpoints/ltx-2.3-{preset}-dev.safetensors",
        "distilled_lora": f"loras/ltx-2.3-{preset}-distilled-lora-384.safetensors",
        # The distilled LoRA 1.1 as ComfyUI's templates use it: a rank per layer, with alpha keys.
        "distilled_lora_dynamic": f"loras/ltx-2.3-{preset}-distilled-lora-dynamic.safetensors",
        # A user's LoRA (a style or a character) on part of the transformer: some video and audio layers.
        "user_lora": f"loras/ltx-2.3-{preset}-style-lora.safetensors",
        "spatial_upsampler": f"latent_upscale_models/ltx-2.3-{preset}-spatial-upscaler-x2.safetensors",
        "text_encoder": f"text_encoders/gemma-3-{preset}-it",
        # The same Gemma as one file in ComfyUI's layout (gemma_3_12B_it.safetensors).
        "text_encoder_file": f"text_encoders/gemma_3_{preset}_it.safetensors",
    }


# With --fp8: the release's fp8 checkpoint and ComfyUI's quantized Gemma files.
FP8_FILE_NAMES = {
    "fp8_checkpoint": "checkpoints/ltx-2.3-{preset}-dev-fp8.safetensors",
    "text_encoder_fp8": "text_encoders/gemma_3_{preset}_it_fp8_scaled.safetensors",
    "text_encoder_fp4": "text_encoders/gemma_3_{preset}_it_fp4_mixed.safetensors",
}


def random_tensor(seed: int, key: str, shape: tuple[int, ...], dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """A deterministic tensor for `key`, scaled so that activations stay finite through the network."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    gen = torch.Generator(_DEVICE).manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    if _DEVICE.type != "cpu" and len(shape) > 1 and math.prod(shape) >= 2**20:
        return (torch.randn(shape, generator=gen, device=_DEVICE) / math.sqrt(math.prod(shape[1:]))).to(dtype).cpu()
    name = key.rsplit(".", 1)[-1]
    if name == "std-of-means":
        value = 0.5 + torch.rand(shape, generator=gen)
    elif name == "mean-of-means":
        value = 0.1 * torch.randn(shape, generator=gen)
    elif name == "learnable_registers":
        value = torch.rand(shape, generator=gen) * 2.0 - 1.0
    elif len(shape) <= 1:
        # Norm scales near one, biases and per-channel parameters small.
        base = torch.ones(shape) if "norm" in key and name == "weight" else torch.zeros(shape)
        value = base + 0.02 * torch.randn(shape, generator=gen)
    else:
        fan_in = math.prod(shape[1:])
        value = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return value.to(dtype)


# How the release files name each component's tensors: (file prefix, module prefix) pairs, what the component's key
# ops (ltx2/components/table.py) undo when the pack reads them; the bundle is written by inverting them.
_VAE_STATS = ("per_channel_statistics.", "per_channel_statistics.")
FILE_PREFIXES = {
    "transformer": (("model.diffusion_model.", ""),),
    "embeddings_processor": (
        ("text_embedding_projection.video_aggregate_embed.", "feature_extractor.video_aggregate_embed."),
        ("text_embedding_projection.audio_aggregate_embed.", "feature_extractor.audio_aggregate_embed."),
        ("text_embedding_projection.aggregate_embed.", "feature_extractor.aggregate_embed."),
        ("model.diffusion_model.video_embeddings_connector.", "video_connector."),
        ("model.diffusion_model.audio_embeddings_connector.", "audio_connector."),
    ),
    "video_encoder": (("vae.encoder.", ""), ("vae." + _VAE_STATS[0], _VAE_STATS[1])),
    "video_decoder": (("vae.decoder.", ""), ("vae." + _VAE_STATS[0], _VAE_STATS[1])),
    "audio_encoder": (("audio_vae.encoder.", ""), ("audio_vae." + _VAE_STATS[0], _VAE_STATS[1])),
    "audio_decoder": (("audio_vae.decoder.", ""), ("audio_vae." + _VAE_STATS[0], _VAE_STATS[1])),
    "vocoder": (("vocoder.", ""),),
    "spatial_upsampler": (("", ""),),
    "text_encoder": (
        ("language_model.model.", "model.model.language_model."),
        ("vision_tower.", "model.model.vision_tower."),
        ("multi_modal_projector.", "model.model.multi_modal_projector."),
    ),
}
# Tensors a component has that its files do not hold: Gemma's lm_head is tied to the token embedding, and ltx-core's
# key ops copy it. Left out, as the release leaves it out.
DERIVED_KEYS = {"text_encoder": {"model.lm_head.weight"}}


def _file_key(name: str, module_key: str) -> str:
    # The longest module prefix that matches decides (the VAE statistics share the file with the VAE body).
    file_prefix, module_prefix = max(
        (pair for pair in FILE_PREFIXES[name] if module_key.startswith(pair[1])), key=lambda pair: len(pair[1])
    )
    return file_prefix + module_key[len(module_prefix) :]


def _component_tensors(name: str, model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    skip = DERIVED_KEYS.get(name, set())
    return {
        _file_key(name, key): random_tensor(seed, _file_key(name, key), tuple(meta.shape))
        for key, meta in model.state_dict().items()
        if key not in skip
    }


def _meta(configurator, config: dict) -> torch.nn.Module:
    with torch.device("meta"):
        return configurator.from_config(config)


def write_checkpoint(path: Path, preset: str, seed: int, gemma: dict) -> None:
    components = ltx2_components
    config = checkpoint_config(preset)
    text = gemma["text_config"]
    processor = EmbeddingsProcessorConfigurator(text["hidden_size"], text["num_hidden_layers"] + 1)
    models = {name: _meta(configurator, config) for name, configurator in components.CONFIGURATORS.items()}
    models.pop("spatial_upsampler")
    models["embeddings_processor"] = _meta(processor, config)
    tensors = {}
    for name, model in models.items():
        tensors.update(_component_tensors(name, model, seed))
    save_file(tensors, str(path), metadata={"config": json.dumps(config, sort_keys=True)})


def write_upsampler(path: Path, seed: int) -> None:
    model = _meta(ltx2_components.CONFIGURATORS["spatial_upsampler"], UPSAMPLER_CONFIG)
    tensors = _component_tensors("spatial_upsampler", model, seed)
    save_file(tensors, str(path), metadata={"config": json.dumps(UPSAMPLER_CONFIG, sort_keys=True)})


def write_lora(path: Path, preset: str, seed: int, dynamic: bool = False) -> None:
    """A LoRA on every linear of the transformer blocks, under ComfyUI's `diffusion_model.` key names. `dynamic`:
    as the distilled LoRA 1.1 "dynamic" file, each layer at its own rank (the full rank, 3/4 and 1/2 of it in
    turn), with an `alpha` key each (alpha = rank: the scale is the strength, as in the uniform file)."""
    model = _meta(ltx2_components.CONFIGURATORS["transformer"], checkpoint_config(preset))
    rank = RANK[preset]
    tensors = {}
    linears = [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith("transformer_blocks.")
    ]
    for i, (name, module) in enumerate(linears):
        r = min(rank, module.in_features, module.out_features)
        if dynamic:
            r = max(1, r * (4 - i % 3) // 4)
        a_key, b_key = f"diffusion_model.{name}.lora_A.weight", f"diffusion_model.{name}.lora_B.weight"
        tensors[a_key] = random_tensor(seed, a_key, (r, module.in_features))
        tensors[b_key] = (random_tensor(seed, b_key, (module.out_features, r)).float() * 0.1).to(torch.bfloat16)
        if dynamic:
            tensors[f"diffusion_model.{name}.alpha"] = torch.tensor(float(r), dtype=torch.bfloat16)
    # One metadata entry only: safetensors writes the metadata map in no fixed order, and the bytes must not vary.
    save_file(tensors, str(path), metadata={"format": "pt"})


# The layers of each block the user LoRA changes: video self-attention and feed-forward, the audio feed-forward and
# the audio-to-video cross attention (a cross-modal layer: it takes the video strength).
USER_LORA_LAYERS = ("attn1.", "ff.", "audio_ff.", "audio_to_video_attn.")


def write_user_lora(path: Path, preset: str, seed: int, rank: int = 4) -> None:
    """A user's LoRA as Lightricks' trainer writes one (`diffusion_model.` keys, lora_A / lora_B, no alpha) on the
    USER_LORA_LAYERS of every block, large enough to move the frames visibly at strength 0.7."""
    model = _meta(ltx2_components.CONFIGURATORS["transformer"], checkpoint_config(preset))
    tensors = {}
    for name, module in model.named_modules():
        block = name.split(".", 2)[-1] if name.startswith("transformer_blocks.") else ""
        if isinstance(module, torch.nn.Linear) and block.startswith(USER_LORA_LAYERS):
            r = min(rank, module.in_features, module.out_features)
            a_key, b_key = f"diffusion_model.{name}.lora_A.weight", f"diffusion_model.{name}.lora_B.weight"
            tensors[a_key] = random_tensor(seed + 1, a_key, (r, module.in_features))
            tensors[b_key] = (random_tensor(seed + 1, b_key, (module.out_features, r)).float() * 4).to(torch.bfloat16)
    save_file(tensors, str(path), metadata={"format": "pt"})


def write_tokenizer(root: Path) -> dict[str, int]:
    """A SentencePiece BPE tokenizer with Gemma's special ids (pad 0, eos 1, bos 2, unk 3) and image tokens."""
    import sentencepiece as spm
    from transformers import GemmaTokenizerFast

    words = (
        "a the young woman man speaks sings calmly softly to camera in lit room light face eyes mouth lips moves "
        "head hair smiles looks talks warm cold bright dark morning evening city street beach forest studio music "
        "voice song slowly quickly close wide shot portrait scene video audio frame motion wind blows gently"
    ).split()
    # A fixed corpus: every sentence is a deterministic walk over the word list.
    corpus = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) for i in range(400)]
    # Written through model_writer: with model_prefix the file would record its own path, and differ per folder.
    model_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model_bytes,
        vocab_size=VOCAB_SIZE,
        model_type="bpe",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",  # Gemma's names for them: the tokenizer's bos_token "<bos>" must be id 2 here too
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=SPECIAL_TOKENS,
        byte_fallback=True,
        num_threads=1,
        minloglevel=2,
    )
    (root / "tokenizer.model").write_bytes(model_bytes.getvalue())
    # transformers' own conversion of the SentencePiece model, as from_pretrained does on a folder holding only
    # tokenizer.model, in 4.x and 5.x alike. (5.x's GemmaTokenizerFast(vocab_file=...) no longer converts it: it
    # makes a tokenizer of the special tokens alone, which reads every word as <unk>.)
    tokenizer = GemmaTokenizerFast.from_pretrained(
        str(root),
        add_bos_token=True,  # as Gemma's release: 4.x's default, not 5.x's
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    tokenizer.save_pretrained(str(root))
    # transformers 5.x records the absolute path it read the model from; the same seed must give the same bytes
    # in any folder, and the file is found by its name anyway.
    config_path = root / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    if config.pop("vocab_file", None) is not None:
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    return {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}


def write_gemma(root: Path, seed: int) -> dict:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    root.mkdir(parents=True, exist_ok=True)
    config = gemma_config(write_tokenizer(root))
    (root / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    vision = config["vision_config"]
    # Gemma-3's image processor settings, as the pack supplies them for a single file (ltx2/files/gemma_single_file.py).
    preprocessor = {
        **IMAGE_PROCESSOR,
        "processor_class": "Gemma3Processor",
        "size": {"height": vision["image_size"], "width": vision["image_size"]},
        "do_convert_rgb": None,
    }
    (root / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2, sort_keys=True) + "\n")

    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config))
    # ltx-core wraps the HF model as `.model`; the release files hold the HF model's keys in their older
    # (transformers < 4.52) layout, which the component's prefixes map to. transformers 5.x flattened the vision
    # tower: its keys get the release's `vision_model.` back (ltx2/components/gemma_model.py maps it off again when
    # loading).
    tensors = {}
    for key, meta in model.state_dict().items():
        module_key = "model." + key
        if module_key.startswith("model.model.vision_tower.") and ".vision_model." not in module_key:
            module_key = module_key.replace("model.model.vision_tower.", "model.model.vision_tower.vision_model.", 1)
        if module_key in DERIVED_KEYS["text_encoder"]:
            continue
        file_key = _file_key("text_encoder", module_key)
        tensors[file_key] = random_tensor(seed, file_key, tuple(meta.shape))
    # Two shards and an index, as the release.
    keys = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": keys[: len(keys) // 2],
        "model-00002-of-00002.safetensors": keys[len(keys) // 2 :],
    }
    weight_map = {}
    for shard, shard_keys in shards.items():
        save_file({k: tensors[k] for k in shard_keys}, str(root / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in shard_keys})
    total = sum(t.nbytes for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (root / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return config


def _fp8(value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8_e4m3fn weight, its float32 scalar scale), as Lightricks' and ComfyUI's fp8 files store a weight."""
    scale = value.float().abs().amax().clamp(min=1e-12) / torch.finfo(torch.float8_e4m3fn).max
    return (value.float() / scale).to(torch.float8_e4m3fn), scale.reshape(())


def write_fp8_checkpoint(src: Path, dst: Path, spelling: str = "metadata") -> None:
    """The checkpoint as Lightricks' fp8 release stores it: block linear weights in float8_e4m3fn with a float32
    scalar `weight_scale` and an `input_scale`, declared to ComfyUI as its QUANTIZATION.md says (`spelling`:
    "metadata" or "comfy_quant"); or "scaled_fp8", the legacy spelling of older Comfy-Org / kijai files (a marker
    tensor, `.scale_weight` / `.scale_input`)."""
    from ltx2_a2v.ltx2.files.safetensors_file import iter_tensors, read_header
    from ltx2_a2v.quant.layers import select_layers

    header = read_header(src)
    model = _meta(ltx2_components.CONFIGURATORS["transformer"], header.config())
    targets = {"model.diffusion_model." + k for k in select_layers(model, "transformer", fp8=True).weight_keys()}
    weight_scale, input_scale = (
        ("scale_weight", "scale_input") if spelling == "scaled_fp8" else ("weight_scale", "input_scale")
    )
    tensors, layers = {}, {}
    for key, value in iter_tensors(header):
        if key in targets:
            layer = key.removesuffix(".weight")
            tensors[key], tensors[f"{layer}.{weight_scale}"] = _fp8(value)
            tensors[f"{layer}.{input_scale}"] = torch.ones((), dtype=torch.float32)
            layers[layer] = {"format": "float8_e4m3fn"}
        else:
            tensors[key] = value
    metadata = dict(header.metadata)
    if spelling == "scaled_fp8":
        tensors["model.diffusion_model.scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    else:
        extra, quant_metadata = quantization_tensors(layers, spelling)
        tensors.update(extra)
        metadata.update(quant_metadata)
    save_file(tensors, str(dst), metadata=metadata)
    sorted_metadata(dst)


# ComfyUI's single-file Gemma: its key prefixes for the release folder's (ltx2/files/gemma_single_file.py reads
# them back).
_GEMMA_FILE_PREFIXES = {release: comfy for comfy, release in GEMMA_FILE_PREFIXES.items()}
_GEMMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def write_gemma_file(folder: Path, path: Path, quantized: str | None = None) -> None:
    """The Gemma folder as one file in ComfyUI's layout (gemma_3_12B_it*.safetensors): `model.`, `vision_model.`,
    `multi_modal_projector.` keys and the SentencePiece model as a uint8 `spiece_model` tensor. `quantized`:
    "fp8" (every language-model linear in float8_e4m3fn with a scalar scale, as gemma_3_12B_it_fp8_scaled),
    "fp4_mixed" (as gemma_3_12B_it_fp4_mixed: nvfp4, packed by comfy-kitchen as ComfyUI packs it, except the
    first layer's linears in fp8) or "int8" (int8 tensorwise, by comfy-kitchen); declared in a
    `_quantization_metadata` entry."""
    from ltx2_a2v.ltx2.files.safetensors_file import iter_tensors, read_header

    tensors, layers = {}, {}
    for shard in sorted(folder.glob("model-*.safetensors")):
        for key, value in iter_tensors(read_header(shard)):
            prefix = next(p for p in _GEMMA_FILE_PREFIXES if key.startswith(p))
            name = _GEMMA_FILE_PREFIXES[prefix] + key[len(prefix) :]
            layer = name.removesuffix(".weight")
            is_linear = name.startswith("model.layers.") and layer.rsplit(".", 1)[-1] in _GEMMA_LINEARS
            if quantized is None or not is_linear or not name.endswith(".weight"):
                tensors[name] = value
            elif quantized == "int8":
                quantized_tensors, layers[layer] = comfy_quantized(layer, value, "int8_tensorwise", {})
                tensors.update(quantized_tensors)
            elif quantized == "fp8" or layer.startswith("model.layers.0."):
                tensors[name], tensors[f"{layer}.weight_scale"] = _fp8(value)
                layers[layer] = {"format": "float8_e4m3fn"}
            else:
                import comfy_kitchen as kitchen

                scale = value.float().abs().amax().clamp(min=1e-12) / (448.0 * 6.0)  # fp8 block scales x fp4's max
                tensors[name], block_scale = kitchen.quantize_nvfp4(value, scale, pad_16x=True)
                tensors[f"{layer}.weight_scale"] = block_scale
                tensors[f"{layer}.weight_scale_2"] = scale.reshape(())
                layers[layer] = {"format": "nvfp4"}
    tensors["spiece_model"] = torch.frombuffer(bytearray((folder / "tokenizer.model").read_bytes()), dtype=torch.uint8)
    metadata = quantization_tensors(layers, "metadata")[1] if layers else {"format": "pt"}
    save_file(tensors, str(path), metadata=metadata)


def make_bundle(
    models_dir: str | Path,
    preset: str = "tiny",
    seed: int = 0,
    fp8: bool = False,
    device: str = "cpu",
    low_bit: bool = False,
    split: bool = False,
) -> dict[str, Path]:
    """Writes the bundle and returns the absolute path of each part."""
    global _DEVICE
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset '{preset}'. Choose one of: {', '.join(PRESETS)}.")
    _DEVICE = torch.device(device)
    models_dir = Path(models_dir)
    paths = {part: models_dir / rel for part, rel in file_names(preset).items()}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    gemma = write_gemma(paths["text_encoder"], seed)
    write_gemma_file(paths["text_encoder"], paths["text_encoder_file"])
    write_checkpoint(paths["checkpoint"], preset, seed, gemma)
    write_lora(paths["distilled_lora"], preset, seed)
    write_lora(paths["distilled_lora_dynamic"], preset, seed, dynamic=True)
    write_user_lora(paths["user_lora"], preset, seed)
    write_upsampler(paths["spatial_upsampler"], seed)
    if fp8:
        paths.update({part: models_dir / rel.format(preset=preset) for part, rel in FP8_FILE_NAMES.items()})
        write_fp8_checkpoint(paths["checkpoint"], paths["fp8_checkpoint"])
        write_gemma_file(paths["text_encoder"], paths["text_encoder_fp8"], "fp8")
        write_gemma_file(paths["text_encoder"], paths["text_encoder_fp4"], "fp4_mixed")
    if low_bit or split:
        paths.update(write_formats(models_dir, preset, paths, low_bit, split))
    return paths


def write_formats(models_dir: Path, preset: str, paths: dict[str, Path], low_bit: bool, split: bool) -> dict:
    """The low-bit and split files (tools/bundle_files.py) of a bundle already written; their paths."""
    names = {**SPLIT_FILE_NAMES, **(LOW_BIT_FILE_NAMES if low_bit else {})}  # low-bit transformers run with them
    written = {part: Path(models_dir) / rel.format(preset=preset) for part, rel in names.items()}
    for path in written.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    write_split_files(paths["checkpoint"], written)
    if low_bit:
        for part, (fmt, options, spelling) in LOW_BIT_FORMATS.items():
            write_low_bit_checkpoint(written["transformer_only"], written[part], fmt, options, spelling)
        write_gemma_file(paths["text_encoder"], written["text_encoder_int8"], "int8")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", required=True, help="ComfyUI models folder to write into")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fp8", action="store_true", help="also write the checkpoint as an fp8 release stores it")
    parser.add_argument(
        "--low-bit",
        action="store_true",
        help="also write nvfp4, int8 and int8-convrot checkpoints and an int8 single-file Gemma, as ComfyUI does",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="also write the split files: transformer-only, video VAE, audio VAE with vocoder, text projection",
    )
    parser.add_argument("--device", default="cpu", help="where to draw the random values (cuda: the full preset fast)")
    args = parser.parse_args()
    formats = {"low_bit": args.low_bit, "split": args.split}
    paths = make_bundle(args.models_dir, args.preset, args.seed, fp8=args.fp8, device=args.device, **formats)
    for part, path in paths.items():
        size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        print(f"{part:18s} {size / 2**20:9.1f} MiB  {path}")


if __name__ == "__main__":
    main()
