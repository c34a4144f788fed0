"""What a run reads and keeps, before and after stage 2 shared stage 1's transformer and prompts were kept: bytes
read from model files, seconds, and bytes held after the run.

    .venv/bin/python bench/repeat_prompt.py [--preset wide] [--models-dir DIR] [--policy none]

In one process, the two-stage pipeline (stage 1 at 128x96, 17 frames, 4 steps) with the same prompts:
- `as before`: each run as the pack ran before: no prompt kept (the kept encodings cleared), stage 1's
  transformer freed after stage 1 and stage 2 built on a second transformer with the LoRA fused while loading
  (the fast recipe's load, with the reference recipe's sigmas: a recipe registered here for it), in `cold_start`
  and then in `persistent` (which then kept both transformers);
- `now`: `cold_start` with a new prompt, the same prompt again (no text encoder built), `persistent` twice.
Prints each run's seconds, text-encode seconds, bytes read and bytes held after it, and the ratios of `now` to
`as before`.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, bench_inputs, bench_model, ensure_bundle

MIB = 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="wide", choices=["tiny", "wide"])
    parser.add_argument("--policy", default="none")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    ensure_bundle(args.models_dir, args.preset)

    import torch
    from _pack import import_pack

    import_pack()
    from ltx2_a2v.ltx2.a2v import stages as a2v
    from ltx2_a2v.ltx2.a2v.decode import decode
    from ltx2_a2v.ltx2.a2v.recipes import RECIPES
    from ltx2_a2v.memory.budget import BUDGET
    from ltx2_a2v.memory.kept_outputs import ENCODED_PROMPTS

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    inputs = bench_inputs()

    # Stage 2 as the pack built it before: a second transformer, the LoRA fused while it loads.
    RECIPES["as before"] = replace(RECIPES["reference"], name="as before", base_lora=True)

    def run(label: str, residency: str, before: bool) -> dict:
        model = bench_model(args.models_dir, args.preset, quantization=args.policy, residency=residency)
        BUDGET.begin_run(label, args.policy, residency)
        if before:
            ENCODED_PROMPTS.clear()
        start = time.perf_counter()
        latent = a2v.sample_base(model, device, inputs, hand_over=not before)
        if before:
            latent = replace(latent, recipe="as before")
        latent = a2v.sample_refine(model, device, a2v.upscale(model, device, latent), "A woman speaks.", 42)
        decode(model, device, latent)
        report = BUDGET.last_run.as_dict()
        return {
            "run": label,
            "seconds": time.perf_counter() - start,
            "text_encode_seconds": sum(s["seconds"] for s in report["phases"] if s["name"] == "text encode"),
            "bytes_read": report["bytes_read"],
            "held_after": BUDGET.resident_bytes(),
            "components": [c for s in report["phases"] for c in s["components"]],
        }

    rows = [
        run("as before: cold_start", "cold_start", True),
        run("as before: persistent, first", "persistent", True),
        run("as before: persistent, second", "persistent", True),
    ]
    BUDGET.free_all()
    ENCODED_PROMPTS.clear()
    rows += [
        run("now: cold_start, new prompt", "cold_start", False),
        run("now: cold_start, repeated prompt", "cold_start", False),
        run("now: persistent, first", "persistent", False),
        run("now: persistent, second", "persistent", False),
    ]
    BUDGET.free_all()

    first = rows[0]
    print(f"{args.preset} bundle, policy {args.policy}, {device}")
    print("| run | seconds | text encode s | bytes read | read / as before | held after |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['seconds']:.1f} | {r['text_encode_seconds']:.2f} | {r['bytes_read'] / MIB:,.1f} MiB | "
            f"{r['bytes_read'] / first['bytes_read']:.2f}x | {r['held_after'] / MIB:,.1f} MiB |"
        )
    by = {r["run"]: r for r in rows}
    repeated = by["now: cold_start, repeated prompt"]["bytes_read"] / first["bytes_read"]
    held = by["now: persistent, second"]["held_after"] / by["as before: persistent, second"]["held_after"]
    print(
        f"\nnow / as before: bytes read per cold_start run with a repeated prompt {repeated:.3f}x; "
        f"persistent, held after a run {held:.3f}x"
    )
    print("bytes read per component, as before (cold_start) and now (cold_start, repeated prompt):")
    for r in (first, by["now: cold_start, repeated prompt"]):
        print(f"  {r['run']}: " + ", ".join(f"{c['name']} {c['bytes_read'] / MIB:,.1f} MiB" for c in r["components"]))
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "policy": args.policy, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
