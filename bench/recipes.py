"""The README's recipes for 24 GB and 16 GB GPUs, phase by phase, for the 22B model at 768x512x97 in bf16.

    .venv/bin/python bench/recipes.py [--models-dir DIR]

Arithmetic, not a GPU measurement: the weights from the `wide` bundle's headers (the 22B transformer's real
widths; its 2 blocks scaled to 48) and Gemma-3-12B's config; the split of the transformer into resident and
streamed blocks by the budget's own rule (memory/streaming.split_units, two blocks in flight on a GPU); the
activations by the estimates the budget reserves (ltx2/components/activations.py, checked against the device-memory
ledger on the `wide` preset within 20 %). It prints, per phase, what is on the device at its peak.
"""

import argparse
import sys
from pathlib import Path

from common import ROOT, ensure_bundle

GIB = 2**30
WIDTH, HEIGHT, FRAMES, FPS = 768, 512, 97, 24.0
RECIPES = {  # card: (VRAMGuard budget_gb, multiplies fp8 (8.9+), example card)
    "24 GB": (20.0, True, "RTX 4090 (8.9: fp8 matmuls)"),
    "24 GB, 8.6": (20.0, False, "RTX 3090 (8.6: fp8 weights upcast per forward)"),
    "16 GB": (14.0, True, "RTX 4080 / 4070 Ti Super (8.9)"),
}


def gemma_bytes(config: dict, weight_bytes: float) -> int:
    """Gemma-3-12B under a policy: decoder linears at `weight_bytes`, embedding and vision tower in bf16."""
    t, v = config["text_config"], config["vision_config"]
    hidden, layers, inter = t["hidden_size"], t["num_hidden_layers"], t["intermediate_size"]
    heads, kv, head = t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"]
    linears = layers * (hidden * heads * head * 2 + 2 * hidden * kv * head + 3 * hidden * inter)
    vision = v["num_hidden_layers"] * (4 * v["hidden_size"] ** 2 + 2 * v["hidden_size"] * v["intermediate_size"])
    return int(linears * weight_bytes + 2 * (t["vocab_size"] * hidden + vision))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    args = parser.parse_args()
    ensure_bundle(args.models_dir, "wide")

    import torch
    from _pack import import_pack
    from make_tiny_bundle import file_names

    import_pack()
    from ltx_core.model.video_vae import TilingConfig
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    from ltx2_a2v.ltx2.components import activations
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
    from ltx2_a2v.ltx2.files.lora_file import LoraFactors
    from ltx2_a2v.memory.streaming import split_units
    from ltx2_a2v.quant import POLICIES

    names = file_names("wide")
    bundle = Bundle(args.models_dir / names["checkpoint"], args.models_dir / names["text_encoder"])
    config = read_checkpoint_config(bundle.checkpoint)
    config["transformer"]["num_layers"] = 48
    policy = POLICIES["fp8_scaled"]
    plan = ComponentPlan.read(bundle, "transformer")
    unit_bytes, other = plan.unit_sizes(policy)
    block = unit_bytes["transformer_blocks.0"]
    units = {f"transformer_blocks.{i}": block for i in range(48)}
    units |= {u: b for u, b in unit_bytes.items() if not u.startswith("transformer_blocks.")}
    largest_fp8 = 4096 * 16384  # the feed-forward weights, elements
    # Stage 2 runs on stage 1's transformer with the distilled LoRA's factors beside it
    # (ltx2/components/lora_layers.py): rank 384 on every block linear, as stored (bf16), the wide bundle's block 0
    # scaled to 48 blocks.
    lora = LoraFactors(args.models_dir / names["distilled_lora"], 1.0)
    lora_block = sum(
        lora.header.entries[k].nbytes
        for weight, pair in lora.targets.items()
        if weight.startswith("transformer_blocks.0.")
        for k in pair
    )
    lora_bytes = 48 * lora_block
    gemma = GEMMA3_CONFIG_FOR_LTX.to_dict()
    bf16 = torch.bfloat16
    text_act = activations.text(gemma, config, bf16)
    gemma_fp8 = gemma_bytes(gemma, 1)
    # The embeddings processor: its connectors as the wide bundle has them (the transformer's widths), its feature
    # extractor's two projections from all of Gemma-3-12B's hidden states (3840 x 49 inputs) in bf16.
    connectors = sum(
        b
        for k, b in ComponentPlan.read(bundle, "embeddings_processor").sizes(POLICIES["none"]).items()
        if "aggregate_embed" not in k
    )
    flat = gemma["text_config"]["hidden_size"] * (gemma["text_config"]["num_hidden_layers"] + 1)
    processor = connectors + 2 * flat * (4096 + 2048)

    print(f"22B at {WIDTH}x{HEIGHT}x{FRAMES}, fp8_scaled transformer and text encoder, bf16, cold_start.")
    print(
        f"transformer {sum(units.values()) + other:,} B ({(sum(units.values()) + other) / GIB:.1f} GiB: 48 blocks of "
        f"{block / 2**20:.0f} MiB + {other / 2**20:.0f} MiB), Gemma {gemma_fp8 / GIB:.1f} GiB, embeddings processor "
        f"{processor / GIB:.1f} GiB, distilled LoRA (rank 384) {lora_bytes / GIB:.1f} GiB"
    )
    for card, (budget_gb, fp8_matmul, example) in RECIPES.items():
        budget = int(budget_gb * GIB)
        upcast = 0 if fp8_matmul else largest_fp8 * 2
        rows = [
            ("text encode (Gemma)", gemma_fp8 + upcast, text_act, ""),
            ("text encode (processor)", processor, text_act, ""),
        ]
        rows.append(
            ("image encode (stage 1)", 0, activations.image_encode(WIDTH // 2, HEIGHT // 2, bf16), "VAE encoder")
        )
        for stage, (w, h), beside in (
            ("stage 1 denoise", (WIDTH // 2, HEIGHT // 2), 0),
            ("stage 2 denoise", (WIDTH, HEIGHT), lora_bytes),
        ):
            act = activations.denoise(config, w, h, FRAMES, FPS, bf16) + upcast
            resident, streamed = split_units(list(units), units, other, budget - act - beside, in_flight=2)
            held = beside + other + sum(units[u] for u in resident) + (2 * max(units.values()) if streamed else 0)
            note = f"{len(resident)} units resident, {len(streamed)} streamed" + (", LoRA factors" if beside else "")
            rows.append((stage, held, act, note))
        rows.append(("image encode (stage 2)", 0, activations.image_encode(WIDTH, HEIGHT, bf16), "VAE encoder"))
        rows.append(
            (
                "decode (tiled 512 px, 64 frames)",
                0,
                activations.decode(
                    {"vae": {"decoder_base_channels": 128}}, WIDTH, HEIGHT, FRAMES, TilingConfig.default(), bf16
                ),
                "VAE decoder",
            )
        )
        print(f"\n{card}: {example}, VRAMGuard budget_gb {budget_gb}")
        print(f"  {'phase':34s} {'weights GiB':>11s} {'activations GiB':>15s} {'peak GiB':>8s}  notes")
        for name, weights, act, note in rows:
            print(f"  {name:34s} {weights / GIB:11.2f} {act / GIB:15.2f} {(weights + act) / GIB:8.2f}  {note}")
    print(
        "\nVAE weights (under 1 GiB) left out; the decoder's activations scale its measured factor to 128 channels "
        "(not measured on the real VAE)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
