"""Gives ComfyUI core's Gemma-3 text encoder the shape of the Gemma in the test bundle (`make bench-core` only).

Core's LTXAVTextEncoderLoader builds Gemma-3-12B from code (`comfy.text_encoders.llama.Gemma3_12B_Config`), whatever
the file holds, so on the bundle's small Gemma its weights would not fit. bench/core.py copies this file, as
`__init__.py`, with the bundle's Gemma `config.json` beside it as `gemma_config.json`, into a temporary custom-node
folder of the compared ComfyUI's server. Loaded as a custom node, it replaces that one config class with a subclass
holding the bundle's sizes; nothing else of core is changed, and it registers no node. It imports ComfyUI, so it is
never imported outside one.
"""

import dataclasses
import json
import logging
from pathlib import Path

import comfy.text_encoders.llama as core_llama

NODE_CLASS_MAPPINGS = {}


def bundle_gemma_config(config: dict) -> type:
    """Core's Gemma3_12B_Config with the sizes of a Hugging Face Gemma-3 `config.json`."""
    text, vision = config["text_config"], config["vision_config"]
    pattern = text.get("sliding_window_pattern", 6)
    fields = {
        name: text[name]
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
            "rms_norm_eps",
        )
        if name in text
    }
    scaling = (text.get("rope_scaling") or {}).get("factor", 1.0)
    namespace = {
        "head_dim": text["head_dim"],
        "rope_theta": [text.get("rope_theta", 1000000.0), text.get("rope_local_base_freq", 10000.0)],
        "sliding_attention": [text.get("sliding_window", 1024)] * (pattern - 1) + [False],
        "rope_scale": [scaling, 1.0],
        "vision_config": {
            **core_llama.GEMMA3_VISION_CONFIG,
            **{k: vision[k] for k in core_llama.GEMMA3_VISION_CONFIG if k in vision},
        },
        "mm_tokens_per_image": config.get("mm_tokens_per_image", 256),
    }
    return dataclasses.make_dataclass(
        "Gemma3BundleConfig",
        [(name, type(value), value) for name, value in fields.items()],
        bases=(core_llama.Gemma3_12B_Config,),
        namespace=namespace,
    )


_config = json.loads((Path(__file__).parent / "gemma_config.json").read_text())
core_llama.Gemma3_12B_Config = bundle_gemma_config(_config)
logging.info(
    "bench-core shim: core's Gemma3_12B_Config given the bundle's Gemma shape (%d layers, hidden %d)",
    _config["text_config"]["num_hidden_layers"],
    _config["text_config"]["hidden_size"],
)
