"""What LTX-2.3 22B's components hold under a policy, from their shapes alone: the transformer of the `full` preset
(the release's 48 blocks at their real widths), Gemma-3-12B as ltx-core configures it (GEMMA3_CONFIG_FOR_LTX), the
embeddings processor fed by it, and the distilled LoRA (rank 384 on every block linear, as the release's). Meta
models: no file is read or written. Each component's bytes by streaming unit follow the budget's own rules
(ltx2/components/plan.py's sizes: quantized linears at the policy's bytes per weight, other floating tensors in bf16;
memory/streaming.py's units).

The video and audio VAEs, the vocoder and the spatial upsampler are not among the shapes known here: VAE_ALLOWANCE
stands for each where it runs (an allowance, stated, not a measurement).
"""

import math
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

GIB = 2**30
VAE_ALLOWANCE = 1 * GIB
LORA_RANK = 384


@dataclass(frozen=True)
class Sized:
    """A component's bytes once built: by streaming unit, and the rest."""

    name: str
    unit_bytes: dict[str, int]
    other_bytes: int
    largest_weight: int = 0  # elements of its largest quantized linear weight (its upcast copy where fp8 is upcast)

    @property
    def total(self) -> int:
        return self.other_bytes + sum(self.unit_bytes.values())


def sizes_from_meta(meta: torch.nn.Module, component: str, policy) -> dict[str, int]:
    """Bytes of each tensor of a meta model once built under `policy`, by the rules of ComponentPlan.sizes (which
    reads them from file headers): the policy's selected linears at its bytes per weight, other floating tensors in
    bf16, the rest as they are; a weight tied to another counted once."""
    from ltx2_a2v.quant.layers import TABLE, select_layers

    selected = set()
    if component in TABLE and policy.quantizes:
        selected = select_layers(meta, component, fp8=policy.fp8).weight_keys()
    sizes = {}
    for name, tensor in (*meta.named_parameters(), *meta.named_buffers()):
        elements = tensor.numel()
        if name in selected:
            sizes[name] = int(elements * policy.weight_bytes)
        elif tensor.is_floating_point():
            sizes[name] = elements * 2
        else:
            sizes[name] = elements * tensor.element_size()
    return sizes


def _sized(name: str, meta: torch.nn.Module, component: str, policy, blocks: str) -> Sized:
    from ltx2_a2v.memory.streaming import streaming_units, unit_of
    from ltx2_a2v.quant.layers import TABLE, select_layers

    units = streaming_units(meta, blocks)
    unit_bytes, other = dict.fromkeys(units, 0), 0
    for key, nbytes in sizes_from_meta(meta, component, policy).items():
        unit = unit_of(key, units)
        if unit is None:
            other += nbytes
        else:
            unit_bytes[unit] += nbytes
    largest = 0
    if component in TABLE and policy.quantizes:
        quantized = select_layers(meta, component, fp8=policy.fp8).quantize
        largest = max(math.prod(meta.get_submodule(n).weight.shape) for n in quantized)
    return Sized(name, unit_bytes, other, largest)


@cache
def transformer_meta() -> torch.nn.Module:
    from make_tiny_bundle import _meta, checkpoint_config

    from ltx2_a2v.ltx2.components.table import CONFIGURATORS

    return _meta(CONFIGURATORS["transformer"], checkpoint_config("full"))


@cache
def gemma_meta() -> torch.nn.Module:
    """Gemma-3-12B under a root as the text encoder component holds it (`model.model.language_model...`)."""
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    root = torch.nn.Module()
    with torch.device("meta"):
        root.model = Gemma3ForConditionalGeneration(Gemma3Config(**GEMMA3_CONFIG_FOR_LTX.to_dict()))
    root.model.tie_weights()
    return root


def transformer(policy) -> Sized:
    return _sized("transformer", transformer_meta(), "transformer", policy, "transformer_blocks")


def text_encoder(policy) -> Sized:
    return _sized("text_encoder", gemma_meta(), "text_encoder", policy, "model.model.language_model.layers")


def embeddings_processor() -> Sized:
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from make_tiny_bundle import _meta, checkpoint_config

    from ltx2_a2v.ltx2.components.gemma_model import EmbeddingsProcessorConfigurator
    from ltx2_a2v.quant import POLICIES

    text = GEMMA3_CONFIG_FOR_LTX.to_dict()["text_config"]
    configurator = EmbeddingsProcessorConfigurator(text["hidden_size"], text["num_hidden_layers"] + 1)
    return _sized("embeddings_processor", _meta(configurator, checkpoint_config("full")), "", POLICIES["none"], "")


def lora_bytes() -> int:
    """The distilled LoRA's factors: rank 384 (or the layer's smaller side) on every linear of the blocks, bf16."""
    total = 0
    for name, module in transformer_meta().named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("transformer_blocks."):
            rank = min(LORA_RANK, module.in_features, module.out_features)
            total += 2 * rank * (module.in_features + module.out_features)
    return total
