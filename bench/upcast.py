"""What computing in float32 with weights stored narrower costs on a CPU, per denoising step.

    .venv/bin/python bench/upcast.py [--preset wide] [--models-dir DIR]

ComfyUI computes in float32 on a CPU. Core's template then stores its weights in float32 (twice the bf16 bytes);
the pack keeps them as stored and upcasts each weight for its layer's forward (ltx2/components/precision.py; fp8 weights
in their layer, quant/fp8_scaled.py). Rows, each in a fresh process, stage 1 of the fast recipe at the `wide`
side-by-side's stage-1 size (128x96, 25 frames; 8 steps) on a `persistent` model, the second (warm) run taken:

- `scratch`: the pack, every copy of a forward made in one buffer reused as a stack (quant/scratch.py);
- `new tensors`: the same with a new tensor per copy (the scratch's `take` replaced here, as the pack ran before);
- `float32 weights`: weights stored in float32 (the build's storage dtype replaced here), nothing to upcast: what
  core's template does, the speed the upcasts are measured against.

Prints seconds per step, the stage's peak on the device-memory ledger above what was live before it, and the
resident weights; `none` on the bf16 checkpoint and `fp8_scaled` (no float32-weights row: its weights are fp8).
"""

import argparse
import json
import sys
from pathlib import Path

from common import ROOT, bench_inputs, bench_model, ensure_bundle, run_child

VARIANTS = ("scratch", "new tensors", "float32 weights")
MIB = 2**20


def measure(variant: str, policy: str, models_dir: Path, preset: str) -> dict:
    """In the child process: two stage-1 runs; the second's figures."""
    import torch
    from _pack import import_pack

    import_pack()
    from ltx2_a2v.ltx2.a2v import stages as a2v
    from ltx2_a2v.ltx2.components import build
    from ltx2_a2v.ltx2.components.precision import Precision
    from ltx2_a2v.memory.budget import BUDGET
    from ltx2_a2v.quant import scratch

    if variant == "new tensors":
        scratch.Scratch.take = lambda self, shape, dtype, device: torch.empty(shape, dtype=dtype, device=device)
    elif variant == "float32 weights":
        build.STORAGE_DTYPE = torch.float32
    model = bench_model(
        models_dir, preset, quantization=policy, residency="persistent", precision=Precision.uniform(torch.float32)
    )
    inputs = bench_inputs(negative_prompt="", num_frames=25, steps=8, cfg=1.0, recipe="fast")
    for run in range(2):
        BUDGET.begin_run(f"{variant}-{run}", policy, "persistent")
        a2v.sample_base(model, torch.device("cpu"), inputs)
    stage = next(s for s in BUDGET.last_run.phases if s.name == "stage 1 denoise")
    return {
        "variant": variant,
        "policy": policy,
        "seconds_per_step": stage.seconds / 8,
        "peak_above_start_bytes": stage.peak_bytes - stage.start_bytes,
        "resident_bytes": stage.start_bytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="wide", choices=["tiny", "wide"])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.models_dir, args.preset)))
        return 0
    ensure_bundle(args.models_dir, args.preset)
    rows = []
    for policy in ("none", "fp8_scaled"):
        for variant in VARIANTS if policy == "none" else VARIANTS[:2]:
            command = [sys.executable, __file__, "--preset", args.preset, "--models-dir", str(args.models_dir)]
            row = run_child([*command, "--child", variant, policy])
            if row is None:
                print(f"bench: {policy}, {variant} failed", file=sys.stderr)
                return 1
            rows.append(row)
            print(f"bench: {policy}, {variant}: {row['seconds_per_step']:.2f} s per step", flush=True)
    print(f"\n{args.preset} bundle, stage 1 of the fast recipe at 128x96x25, float32 compute on the CPU, warm run")
    print("| policy | weights | s per step | x float32 weights | stage peak above start MiB | resident MiB |")
    print("|---|---|---|---|---|---|")
    base = next(r["seconds_per_step"] for r in rows if r["variant"] == "float32 weights")
    for r in rows:
        print(
            f"| {r['policy']} | {r['variant']} | {r['seconds_per_step']:.2f} | {r['seconds_per_step'] / base:.2f} | "
            f"{r['peak_above_start_bytes'] / MIB:.0f} | {r['resident_bytes'] / MIB:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
