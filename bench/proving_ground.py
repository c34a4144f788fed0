"""The GPU proving ground: the two-stage A2V at 768x512x97 on the `full` preset (the whole 22B transformer at its
real widths, random weights; the other components as small as the tiny bundle's) for each policy and residency,
without a ComfyUI host, and the seed article's table from it.

    python bench/proving_ground.py --models-dir DIR [--make-bundle] [--policies ...] [--modes ...]
        [--size 768x512x97] [--steps 30] [--runs 2] [--out DIR]

Each cell (policy x mode) runs in a fresh process: `--runs` whole requests (text encode, audio and image encode,
stage 1, 2x upscale, stage 2 with the LoRA fused, tiled decode) through the pack's budget. Per run: seconds
(each phase ends synchronized with the GPU), the ledger's peak allocated and reserved bytes per phase group
(text encoder, transformers, decoder), and after it what stays held: the pack's components, the allocator's
reserved memory, page-locked host memory. Modes: cold_start, persistent, streamed (cold_start under a budget of
a quarter of the transformer, or what the run must hold resident while it streams if that is more: stage 2's LoRA
factors beside the transformer's layers outside its units, two units in flight and the stage's working memory; the
budget's own terms, bench/common.must_hold). The first run is cold, the mean of the others warm. A policy the
device cannot run, or an out of memory, is a row with its error. Writes proving_ground.json, .md (the table) and
.png.

`--make-bundle` writes the `full` bundle first (on the GPU when there is one: seconds; 44 GB). Without a CUDA GPU
it stops at once unless `--allow-cpu` (the tests run it so, on the tiny bundle). On a GPU machine without a
package registry, bench/gpu_kit.py does it all (docs/development.md, "GPU benchmarks").
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, must_hold

GIB = 2**30
POLICIES = ("none", "fp8_cast", "fp8_scaled", "torchao_fp8_dynamic", "torchao_int8_weight_only")
MODES = ("cold_start", "persistent", "streamed")
GROUPS = {"text": ("text encode",), "denoise": ("stage 1 denoise", "stage 2 denoise"), "decode": ("decode",)}
# The seed article's figures (RTX PRO 6000 96 GiB, LTX-2.3 22B, 768x512x97, fp8_cast), for the table's last rows.
ARTICLE = [
    ("fp8_cast", "cold_start", "88.8", "23.9 peak", "0"),
    ("fp8_cast", "persistent", "39.8", "57.9 peak, 53.6 reserved", "51.7"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--preset", default="full", choices=["tiny", "wide", "full"])
    parser.add_argument("--make-bundle", action="store_true", help="write the preset's bundle first")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--size", default="768x512x97", help="output WIDTHxHEIGHTxFRAMES (stage 1 at half)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a CUDA GPU (for the tests)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.width, args.height, args.frames = (int(x) for x in args.size.split("x"))
    except ValueError:
        parser.error(f"--size {args.size}: give WIDTHxHEIGHTxFRAMES, e.g. 768x512x97")
    if args.width % 64 or args.height % 64 or (args.frames - 1) % 8:
        parser.error(f"--size {args.size}: width and height must be multiples of 64 and frames 8k+1")
    args.policies, args.modes = args.policies.split(","), args.modes.split(",")
    if bad := [m for m in args.modes if m not in MODES]:
        parser.error(f"--modes: unknown {', '.join(bad)}; valid: {', '.join(MODES)}")
    return args


def run_cell(args: argparse.Namespace, policy: str, mode: str) -> dict:
    """In the child process: the cell's runs, through the library (ltx2/a2v) and the budget."""
    import torch
    from _pack import import_pack
    from make_sample_media import voice
    from make_tiny_bundle import file_names

    import_pack()
    from ltx2_a2v.ltx2.a2v import stages
    from ltx2_a2v.ltx2.a2v.decode import decode
    from ltx2_a2v.ltx2.a2v.run_inputs import RunInputs
    from ltx2_a2v.ltx2.components.model_spec import ModelSpec
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
    from ltx2_a2v.memory.budget import BUDGET

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = file_names(args.preset)
    bundle = Bundle(
        *(args.models_dir / names[k] for k in ("checkpoint", "text_encoder", "spatial_upsampler", "distilled_lora"))
    )
    model = ModelSpec(
        bundle,
        read_checkpoint_config(bundle.checkpoint),
        quantization=policy,
        text_encoder_quantization="none",
        residency="persistent" if mode == "persistent" else "cold_start",
    )
    row = {
        "policy": policy,
        "mode": mode,
        "width": args.width,
        "height": args.height,
        "frames": args.frames,
        "steps": args.steps,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "runs": [],
    }
    waveform = torch.from_numpy(voice(args.frames / 24.0 + 0.5).astype("float32") / 32768).view(1, 1, -1)
    inputs = RunInputs(
        image=torch.rand(1, 512, 768, 3, generator=torch.Generator().manual_seed(0)),
        waveform=waveform,
        sample_rate=22050,
        prompt="A woman speaks to the camera.",
        negative_prompt="blurry, low quality",
        seed=42,
        width=args.width // 2,
        height=args.height // 2,
        num_frames=args.frames,
        steps=args.steps,
    )
    try:
        model.checked_on(device)  # a policy this GPU cannot run: a row with its message
        if mode == "streamed":
            BUDGET.budget_bytes, row["must_hold_bytes"] = streamed_budget(model, device, args)
            row["budget_bytes"] = BUDGET.budget_bytes
        for i in range(args.runs):
            BUDGET.begin_run(f"{policy}-{mode}-{i}", policy, model.residency)
            start = time.perf_counter()
            latent = stages.sample_base(model, device, inputs, hand_over=True)  # stage 2 runs on its transformer
            latent = stages.upscale(model, device, latent)
            latent = stages.sample_refine(model, device, latent, inputs.prompt, inputs.seed)
            decode(model, device, latent)
            del latent
            report = BUDGET.last_run.as_dict()
            held = BUDGET.state()["device_memory"]
            row["runs"].append(
                {
                    "seconds": report["elapsed_seconds"],
                    "wall_seconds": time.perf_counter() - start,
                    "phases": {
                        g: [
                            max((s[k] for s in report["phases"] if s["name"] in names), default=0)
                            for k in ("peak_bytes", "peak_reserved_bytes")
                        ]
                        for g, names in GROUPS.items()
                    },
                    "idle_resident_bytes": BUDGET.resident_bytes(),
                    "idle_reserved_bytes": held["reserved_bytes"],
                    "idle_pinned_bytes": held["pinned_host_bytes"],
                    "components": report["components"],
                    "run_phases": report["phases"],
                    "loads": report["loads"],
                }
            )
            print(
                f"{policy} {mode} run {i + 1}/{args.runs}: {report['elapsed_seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        row["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a policy the device cannot run, an out of memory: a row
        row["status"], row["error"] = "error", f"{type(exc).__name__}: {exc}".strip()
    return row


def streamed_budget(model, device, args: argparse.Namespace) -> tuple[int, int]:
    """(the streamed rows' budget, what the run must hold resident at least): a quarter of the transformer, so that
    most of it streams, or that least if it is more (a budget below it could only be overrun)."""
    least = must_hold(model, device, args.width, args.height, args.frames)
    return max(model.estimate_bytes("transformer") // 4, least), least


def summarize(row: dict) -> dict:
    runs = row["runs"]
    if runs:
        seconds = [r["seconds"] for r in runs]
        row["cold_seconds"] = seconds[0]
        row["warm_seconds"] = statistics.mean(seconds[1:]) if len(seconds) > 1 else None
        row["phases"] = {g: [max(r["phases"][g][i] for r in runs) for i in (0, 1)] for g in GROUPS}
        for key in ("idle_resident_bytes", "idle_reserved_bytes", "idle_pinned_bytes"):
            row[key] = runs[-1][key]
    return row


def table(rows: list[dict]) -> str:
    """The seed article's table: seconds per request, peak allocated / reserved (GiB) while the transformers run,
    and what stays held when idle; the text encoder's and the decoder's peaks beside."""
    lines = [
        "| policy | residency | cold s | warm s | denoise peak GiB (alloc / reserved) | text peak GiB | "
        "decode peak GiB | idle GiB (held / reserved / pinned) | status |",
        "|" + "---|" * 9,
    ]
    for r in rows:
        if not r["runs"]:
            lines.append(f"| {r['policy']} | {r['mode']} | - | - | - | - | - | - | {r.get('error', '')[:120]} |")
            continue
        warm = f"{r['warm_seconds']:.1f}" if r["warm_seconds"] is not None else "-"
        d, t, c = r["phases"]["denoise"], r["phases"]["text"], r["phases"]["decode"]
        lines.append(
            f"| {r['policy']} | {r['mode']} | {r['cold_seconds']:.1f} | {warm} | {d[0] / GIB:.2f} / "
            f"{d[1] / GIB:.2f} | {t[0] / GIB:.2f} | {c[0] / GIB:.2f} | {r['idle_resident_bytes'] / GIB:.2f} / "
            f"{r['idle_reserved_bytes'] / GIB:.2f} / {r['idle_pinned_bytes'] / GIB:.2f} | {r['status']} |"
        )
    for policy, mode, seconds, peak, idle in ARTICLE:
        lines.append(f"| {policy} (seed article, RTX PRO 6000) | {mode} | {seconds} | - | {peak} | - | - | {idle} | |")
    return "\n".join(lines)


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["runs"]]
    labels = [f"{r['policy']}\n{r['mode']}" for r in ok]
    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(max(10, 1.2 * len(ok)), 4.5))
    x = range(len(ok))
    time_ax.bar([i - 0.2 for i in x], [r["cold_seconds"] for r in ok], 0.4, label="cold (first run)")
    time_ax.bar([i + 0.2 for i in x], [r["warm_seconds"] or 0 for r in ok], 0.4, label="warm (mean of the others)")
    mem_ax.bar([i - 0.2 for i in x], [r["phases"]["denoise"][0] / GIB for r in ok], 0.4, label="denoise peak")
    mem_ax.bar([i + 0.2 for i in x], [r["idle_resident_bytes"] / GIB for r in ok], 0.4, label="held when idle")
    for ax, unit in ((time_ax, "seconds per request"), (mem_ax, "GiB")):
        ax.set_xticks(list(x), labels, fontsize=7)
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
    size = f"{ok[0]['width']}x{ok[0]['height']}x{ok[0]['frames']}, {ok[0]['device']}" if ok else ""
    time_ax.set_title(f"Two-stage A2V, {size}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_child(command: list[str]) -> tuple[int, str, str]:
    """Runs one cell; its stderr (a line per run) is passed on as it comes, its last line kept for the row."""
    # stdout into a file: the row is one long line, and a pipe nobody reads until stderr ends would block it.
    with tempfile.TemporaryFile("w+") as stdout:
        child = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True)
        last = ""
        for line in child.stderr:
            print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
            last = line.strip() or last
        returncode = child.wait()
        stdout.seek(0)
        return returncode, stdout.read(), last


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        policy, mode = args.one.split(":")
        print(json.dumps(run_cell(args, policy, mode)))
        return 0
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(
            "proving ground: no CUDA GPU here; it measures the 22B transformer on one (--allow-cpu runs it on "
            "the CPU anyway, for tests on a small preset)",
            file=sys.stderr,
        )
        return 1
    if args.make_bundle:
        from make_tiny_bundle import make_bundle

        start = time.monotonic()
        make_bundle(args.models_dir, args.preset, device="cuda" if torch.cuda.is_available() else "cpu")
        print(f"proving ground: wrote the {args.preset} bundle in {time.monotonic() - start:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for policy in args.policies:
        for mode in args.modes:
            command = [
                sys.executable,
                __file__,
                "--one",
                f"{policy}:{mode}",
                "--models-dir",
                str(args.models_dir),
                "--preset",
                args.preset,
                "--size",
                args.size,
                "--steps",
                str(args.steps),
                "--runs",
                str(args.runs),
            ]
            returncode, stdout, last_error = run_child(command)
            if returncode != 0:
                row = {
                    "policy": policy,
                    "mode": mode,
                    "runs": [],
                    "status": "error",
                    "error": last_error or f"the cell's process ended with {returncode}",
                }
            else:
                row = json.loads(stdout.strip().splitlines()[-1])
            rows.append(summarize(row))
            print(
                f"proving ground: {policy} {mode}: {row['status']} "
                f"{row.get('error', '')[:100] if row['status'] != 'ok' else ''}",
                flush=True,
            )
            # After every cell: a command stopped at its time limit still leaves the rows it finished.
            (args.out / "proving_ground.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
            (args.out / "proving_ground.md").write_text(table(rows) + "\n")
    print(table(rows))
    try:
        chart(rows, args.out / "proving_ground.png")
        print(f"wrote {args.out / 'proving_ground.json'}, .md and .png")
    except ImportError:  # a GPU machine's kit may leave matplotlib out (tools/make_gpu_kit.py): the table is all
        print(f"wrote {args.out / 'proving_ground.json'} and .md (no chart: matplotlib is not installed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
