"""The README's card table: LTX-2.3 22B's two-stage A2V at 768x512x97 (bf16 compute, fp8 matmuls: compute
capability 8.9+) on 8, 12, 16 and 24 GB cards, stage by stage, as the budget plans it beside ComfyUI's real memory
manager.

    .venv/bin/python bench/recipes.py [--out bench/results/recipes.json]

A simulation, not a GPU measurement (bench/simulated_card.py): the card answers torch's memory queries with what
the models on it hold; the budget, the ComfyUI bridge and ComfyUI's comfy.model_management decide as they do on a
GPU. The components' sizes come from the 22B's shapes (bench/card_22b.py: the transformer of the `full` preset,
Gemma-3-12B as ltx-core configures it, the rank-384 LoRA; the VAEs and upscaler at a stated 1 GiB allowance each),
the stages' working memory from the estimates the budget reserves (ltx2/components/activations.py) and its stated margin
(memory/room.py). Per card and stage: the pack's weights on the card and its streamed units, the stage's working
memory, the peak (everything on the card at the stage's height) and the margin left (the card less the CUDA
context, bench/simulated_card.CONTEXT, less the peak).
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from common import ROOT

GIB = 2**30
# The rows: (card, its settings, the size of one of ComfyUI's own models beside the pack, what the row shows).
ROWS = (
    ("8 GB", {"recipe": "fast"}, 0, "fast recipe: the LoRA fused while loading (its factors do not fit beside)"),
    ("12 GB", {}, 0, "reference recipe, fp8 Gemma streamed"),
    ("16 GB", {}, 0, "reference recipe"),
    ("16 GB", {"quantization": "none", "text_encoder_quantization": "none"}, 0, "the loader's defaults (bf16)"),
    ("24 GB", {"budget_gb": 20.0}, 0, "reference recipe, VRAMGuard 20"),
    ("24 GB", {"budget_gb": 14.0}, 4 * GIB, "VRAMGuard 14, a 4 GiB model (TTS) of ComfyUI's beside"),
)
SHOWN = ("text encode (Gemma)", "stage 1 denoise", "stage 2 denoise", "decode (tiled)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "recipes.json")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tools"))
    from _pack import import_pack

    import_pack()
    import simulated_card as sim

    sim.load_comfyui()
    results = []
    lines = [
        "| card | settings | stage | weights on the card GiB | streamed units | working GiB | peak GiB | margin GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for card, settings, co_resident, what in ROWS:
        total = sim.CARDS[card][0]
        recipe = sim.Recipe(**settings)
        rows, other = sim.run_recipe(recipe, total, co_resident)
        results.append(
            {
                "card": card,
                "card_bytes": total,
                "settings": asdict(recipe),
                "co_resident_bytes": co_resident,
                "co_resident_unloads": other.unloads if other else None,
                "what": what,
                "stages": [asdict(r) for r in rows],
            }
        )
        for row in (r for r in rows if r.stage in SHOWN):
            weights = sum(c.resident for c in row.components)
            units = ", ".join(f"{c.name} {c.streamed} of {c.units}" for c in row.components if c.units) or "-"
            margin = total - sim.CONTEXT - row.peak
            lines.append(
                f"| {card} | {what} | {row.stage} | {weights / GIB:.1f} | {units} | {row.working / GIB:.1f} | "
                f"{row.peak / GIB:.1f} | {margin / GIB:.1f} |"
            )
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"context_bytes": sim.CONTEXT, "rows": results}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
