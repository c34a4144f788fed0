"""Residency benchmark: the two-stage A2V pipeline on the `wide` preset under cold_start, persistent and
budgeted block streaming, two consecutive runs each.

    .venv/bin/python bench/vram.py [--policy fp8_scaled] [--out bench/results]

Each mode runs in a fresh process. Per run: seconds, the run report's peak (the device-memory ledger: tensors
live on the device at once, memory/ledger.py; CUDA's allocator on a GPU), and bytes the pack holds when idle
after it. `streamed` runs with a budget of 25% of the transformer's bytes (every block streamed),
`partly streamed` with 75% (the blocks that fit stay resident, the others stream). Writes vram.json and
vram.png.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from common import ROOT, bench_inputs, bench_model, ensure_bundle, run_child

MODES = ("cold_start", "persistent", "streamed", "partly streamed")
# Budget as a fraction of the transformer's bytes, for the streaming modes.
STREAM_BUDGET_FRACTION = {"streamed": 0.25, "partly streamed": 0.75}


def run_mode(mode: str, policy: str, models_dir: Path, preset: str) -> dict:
    """In the child process: two pipeline runs, figures for each (the run report's, measured on the ledger)."""
    import torch
    from _pack import import_pack

    import_pack()
    from ltx2_a2v.ltx2.a2v.graph import two_stage
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.memory.budget import BUDGET
    from ltx2_a2v.quant import POLICIES

    residency = "persistent" if mode == "persistent" else "cold_start"
    model = bench_model(models_dir, preset, quantization=policy, residency=residency)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    unit_bytes, other = ComponentPlan.read(model.bundle, "transformer").unit_sizes(POLICIES[policy])
    transformer_bytes = other + sum(unit_bytes.values())
    if mode in STREAM_BUDGET_FRACTION:
        BUDGET.budget_bytes = int(STREAM_BUDGET_FRACTION[mode] * transformer_bytes)

    runs = []
    for run in range(2):
        BUDGET.begin_run(f"run-{run}", policy, model.residency)
        start = time.perf_counter()
        two_stage(model, device, bench_inputs())  # stage 1 hands its transformer over to stage 2
        report = BUDGET.last_run.as_dict()
        runs.append(
            {
                "seconds": time.perf_counter() - start,
                "peak_bytes": report["peak_bytes"],  # the ledger: tensors live on the device at once, at most
                "idle_resident_bytes": BUDGET.resident_bytes(),
                "phases": report["phases"],
                "loads": report["loads"],
            }
        )
    return {
        "mode": mode,
        "policy": policy,
        "device": str(device),
        "transformer_bytes": transformer_bytes,
        "budget_bytes": BUDGET.budget_bytes,
        "largest_unit_bytes": max(unit_bytes.values()),
        "runs": runs,
    }


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gib = 2**30
    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = range(len(rows))
    for i, label in enumerate(("run 1", "run 2")):
        time_ax.bar([j + (i - 0.5) * 0.4 for j in x], [r["runs"][i]["seconds"] for r in rows], 0.4, label=label)
    time_ax.set_xticks(list(x), [r["mode"] for r in rows])
    time_ax.set_ylabel("seconds per A2V run")
    time_ax.set_title("Two consecutive runs")
    time_ax.legend()
    mem_ax.bar(
        [j - 0.3 for j in x],
        [max(run["peak_bytes"] for run in r["runs"]) / gib for r in rows],
        0.3,
        label="peak during a run",
    )
    mem_ax.bar([j for j in x], [r["runs"][-1]["idle_resident_bytes"] / gib for r in rows], 0.3, label="held when idle")
    mem_ax.bar([j + 0.3 for j in x], [r["transformer_bytes"] / gib for r in rows], 0.3, label="one transformer")
    streamed = next((r for r in rows if r["mode"] == "streamed"), None)
    if streamed:
        mem_ax.axhline(
            (streamed["budget_bytes"] + streamed["largest_unit_bytes"]) / gib,
            color="grey",
            linestyle="--",
            label="stream budget + one unit",
        )
    mem_ax.set_xticks(list(x), [r["mode"] for r in rows])
    mem_ax.set_ylabel(f"GiB ({rows[0]['device']}, wide preset, {rows[0]['policy']})")
    mem_ax.set_title("Memory")
    mem_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="wide", choices=["tiny", "wide"])
    # none by default: on a CPU, fp8 forwards are dominated by the fp8-to-bf16 conversion, which would hide
    # what residency changes.
    parser.add_argument("--policy", default="none")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_mode(args.one, args.policy, args.models_dir, args.preset)))
        return 0

    ensure_bundle(args.models_dir, args.preset)
    rows = []
    for mode in MODES:
        command = [
            sys.executable,
            __file__,
            "--one",
            mode,
            "--policy",
            args.policy,
            "--preset",
            args.preset,
            "--models-dir",
            str(args.models_dir),
        ]
        row = run_child(command)
        if row is None:
            return 1
        rows.append(row)
        print(f"bench: {mode} done", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vram.json").write_text(json.dumps({"preset": args.preset, "rows": rows}, indent=2) + "\n")
    chart(rows, args.out / "vram.png")

    mib = 2**20
    print(f"\n{'mode':16s} {'run 1 s':>8s} {'run 2 s':>8s} {'peak MiB':>9s} {'idle MiB':>9s} {'transformer MiB':>15s}")
    for r in rows:
        print(
            f"{r['mode']:16s} {r['runs'][0]['seconds']:8.2f} {r['runs'][1]['seconds']:8.2f} "
            f"{max(run['peak_bytes'] for run in r['runs']) / mib:9.1f} "
            f"{r['runs'][-1]['idle_resident_bytes'] / mib:9.1f} "
            f"{r['transformer_bytes'] / mib:15.1f}"
        )
    cold = next(r for r in rows if r["mode"] == "cold_start")
    for streamed in (r for r in rows if r["mode"] in STREAM_BUDGET_FRACTION):
        bound = streamed["budget_bytes"] + streamed["largest_unit_bytes"]
        how = next((line.split("; ")[-1] for line in streamed["runs"][0]["loads"] if "streamed:" in line), "")
        print(
            f"\n{streamed['mode']}: budget {streamed['budget_bytes'] / mib:.0f} MiB "
            f"({STREAM_BUDGET_FRACTION[streamed['mode']]:.0%} of the transformer), {how}; largest unit "
            f"{streamed['largest_unit_bytes'] / mib:.0f} MiB; peak "
            f"{max(x['peak_bytes'] for x in streamed['runs']) / mib:.0f} "
            f"MiB vs budget + one unit {bound / mib:.0f} MiB (plus activations); time vs cold_start "
            f"{streamed['runs'][1]['seconds'] / cold['runs'][1]['seconds']:.2f}x (second runs)"
        )
    print(f"wrote {args.out / 'vram.json'} and {args.out / 'vram.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
