"""Denoising time of the fast recipe against the reference recipe's, in one process.

    .venv/bin/python bench/fast_recipe.py [--preset tiny] [--models-dir DIR] [--steps 30]

Each recipe (ltx2/a2v/recipes.py) runs the two-stage pipeline twice on a `persistent` model (stage 1 at 128x96,
17 frames; the reference with `--steps` steps at CFG 3, the node's defaults; the fast one 8 + 3 steps at CFG 1);
the second run's transformers are kept, so its denoise phases' seconds are denoising only. Prints both and the
ratio.
"""

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, bench_inputs, bench_model, ensure_bundle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "wide"])
    parser.add_argument("--policy", default="none")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    args = parser.parse_args()
    ensure_bundle(args.models_dir, args.preset)

    import torch
    from _pack import import_pack

    import_pack()
    from ltx2_a2v.ltx2.a2v.graph import two_stage
    from ltx2_a2v.memory.budget import BUDGET

    model = bench_model(args.models_dir, args.preset, quantization=args.policy, residency="persistent")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    denoise = {}
    for recipe, cfg in (("reference", 3.0), ("fast", 1.0)):
        for run in range(2):
            BUDGET.begin_run(f"{recipe}-{run}", args.policy, "persistent")
            start = time.perf_counter()
            two_stage(model, device, bench_inputs(steps=args.steps, cfg=cfg, recipe=recipe), hand_over=False)
            phases = {p["name"]: p["seconds"] for p in BUDGET.last_run.as_dict()["phases"]}
            denoise[recipe] = (phases["stage 1 denoise"], phases["stage 2 denoise"], time.perf_counter() - start)
        BUDGET.free_all()

    print(f"{args.preset} bundle, policy {args.policy}, {device}; second (warm) run of each recipe")
    print("| recipe | stage 1 denoise s | stage 2 denoise s | denoise s | run s |")
    print("|---|---|---|---|---|")
    for recipe, (one, two, run) in denoise.items():
        print(f"| {recipe} | {one:.2f} | {two:.2f} | {one + two:.2f} | {run:.1f} |")
    ref, fast = (sum(denoise[r][:2]) for r in ("reference", "fast"))
    print(f"fast / reference denoising time: {fast / ref:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
