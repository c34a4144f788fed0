"""The release files on 8, 12, 16 and 24 GB cards, by arithmetic from bytes measured on the `wide` bundle (the 22B
transformer's widths, 2 of its 48 blocks): what stays resident, how many blocks stream, and each stage's peak, at
768x512x97 (stage 1 at 384x256, stage 2 at 768x512: the reference two-stage recipe).

- transformer: the bytes of a block and of everything outside the blocks, as each file builds under its policy
  (ComponentPlan.sizes: what the pack's estimate and budget use, equal to what is built: tests/unit/quant), times 48
  blocks; the blocks that fit stay, the rest stream two at a time in flight (memory/streaming.py on a GPU);
- stage 2 adds the distilled LoRA's factors (rank 384, kept beside the transformer: measured per block on the
  bundle's LoRA, which has the release's rank);
- Gemma-3-12B (which cannot stream) from its config's shapes (ltx-core's GEMMA3_CONFIG_FOR_LTX): the language
  model's linears in the file's format (nvfp4: half a byte per weight and a byte per 16 for the block scales;
  fp8 and int8: a byte), the embedding and the vision tower in bf16;
- activations from ltx2/components/activations.py's estimates (bf16 compute); the card's reserve as the budget's
  default (1 GiB: memory/budget.py).
"""

GIB = 2**30
CARDS = (8, 12, 16, 24)
BLOCKS = 48
# (row name, transformer file of the bundle, its policy, Gemma format)
ROWS = (
    ("bf16 release, fp8_scaled / fp8 Gemma", "checkpoint", "fp8_scaled", "fp8"),
    ("fp8 release, as_stored / fp8 Gemma", "fp8_checkpoint", "as_stored", "fp8"),
    ("int8 transformer, as_stored / int8 Gemma", "int8_transformer", "as_stored", "int8"),
    ("nvfp4 transformer, as_stored / fp4_mixed Gemma", "nvfp4_transformer", "as_stored", "nvfp4"),
)
BYTES_PER_WEIGHT = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "nvfp4": 0.5 + 1 / 16}


def gemma_12b_bytes(fmt: str) -> int:
    import torch
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from ltx2_a2v.quant.layers import select_layers

    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(GEMMA3_CONFIG_FOR_LTX.to_dict()))
    wrapped = torch.nn.Module()
    wrapped.model = model  # the names ltx-core's text encoder gives them (quant/layers.py's table)
    quantized = select_layers(wrapped, "text_encoder").weight_keys()
    total = 0
    for key, tensor in wrapped.state_dict().items():
        if key == "model.lm_head.weight":
            continue  # tied to the embedding
        total += tensor.numel() * (BYTES_PER_WEIGHT[fmt] if key in quantized else 2)
    return int(total)


def card_table(paths: dict) -> dict:
    import torch

    from ltx2_a2v.ltx2.components import activations
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.ltx2.files.lora_file import LoraFactors
    from ltx2_a2v.memory.streaming import split_units
    from ltx2_a2v.quant import POLICIES

    split = {k: paths[k] for k in ("video_vae", "audio_vae", "text_projection")}
    lora = LoraFactors(paths["distilled_lora"], 1.0)
    lora_per_block = sum(
        lora.header.entries[k].nbytes
        for a, b in lora.targets.values()
        for k in (a, b)
        if k.split("transformer_blocks.")[1].startswith("0.")
    )
    config = {"transformer": {}, "vae": {}}  # the 22B's widths (activations.DEFAULTS_22B)
    stage_1 = activations.denoise(config, 384, 256, 97, 24.0, torch.bfloat16)
    stage_2 = activations.denoise(config, 768, 512, 97, 24.0, torch.bfloat16)
    text = activations.text({}, config, torch.bfloat16)
    rows = []
    for label, part, policy, gemma in ROWS:
        bundle = Bundle(checkpoint=paths[part], **({} if part.endswith("checkpoint") else split))
        unit_bytes, other = ComponentPlan.read(bundle, "transformer").unit_sizes(POLICIES[policy])
        block = unit_bytes["transformer_blocks.0"]
        others = {u: b for u, b in unit_bytes.items() if not u.startswith("transformer_blocks.")}
        units = [f"transformer_blocks.{i}" for i in range(BLOCKS)] + list(others)
        sizes = {**dict.fromkeys(units[:BLOCKS], block), **others}
        gemma_bytes = gemma_12b_bytes(gemma)
        for card in CARDS:
            budget = card * GIB - GIB
            found = {"row": label, "card_gb": card, "transformer_gib": round((sum(sizes.values()) + other) / GIB, 2)}
            for stage, working, extra in (("stage_1", stage_1, 0), ("stage_2", stage_2, lora_per_block * BLOCKS)):
                resident, streamed = split_units(units, sizes, other + extra, budget - working, in_flight=2)
                largest = max((sizes[u] for u in streamed), default=0)
                peak = other + extra + sum(sizes[u] for u in resident) + 2 * largest + working
                found[stage] = {
                    "resident_units": len(resident),
                    "streamed_units": len(streamed),
                    "peak_gib": round(peak / GIB, 2),
                    "fits": peak <= budget,
                }
            found["gemma_gib"] = round(gemma_bytes / GIB, 2)
            found["text_peak_gib"] = round((gemma_bytes + text) / GIB, 2)
            found["text_fits"] = gemma_bytes + text <= budget
            rows.append(found)
    print(
        "\n| card | files | transformer GiB | stage 1: resident / streamed blocks, peak | stage 2 (+ LoRA) | "
        "Gemma GiB, text-encode peak |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        one, two = r["stage_1"], r["stage_2"]
        print(
            f"| {r['card_gb']} GB | {r['row']} | {r['transformer_gib']} | {one['resident_units']} / "
            f"{one['streamed_units']}, {one['peak_gib']}{'' if one['fits'] else ' (over)'} | {two['resident_units']} / "
            f"{two['streamed_units']}, {two['peak_gib']}{'' if two['fits'] else ' (over)'} | {r['gemma_gib']}, "
            f"{r['text_peak_gib']}{'' if r['text_fits'] else ' (over)'} |"
        )
    return {"rows": rows, "lora_bytes": lora_per_block * BLOCKS, "activations": [stage_1, stage_2, text]}
