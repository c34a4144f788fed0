"""GPU benchmark: the seed article's table (LTX-2.3 22B two-stage A2V) on the real weights, measured the way
users run the pack: through a real ComfyUI host.

    .venv/bin/python bench/gpu_a2v.py --models-dir DIR [--policies none,fp8_cast,...]
        [--modes cold_start,persistent,streamed] [--resolutions 768x512,1024x768,1280x768] [--frames 97]
        [--runs 3] [--seed 42] [--steps 30] [--out bench/results/gpu_a2v.json]

One host is started (without --cpu, with --cache-none so that every run is a whole request) and the API
example workflow is queued `--runs` times per policy x mode x resolution, with those values changed. The
figures come from the pack's own report (GET /ltx2/vram): the phases' seconds (synchronized with the GPU at the
end of each), CUDA's peak allocated and reserved bytes per phase (the text encoder's, the transformers', the
decoder's: one maximum over all of them would let a bf16 Gemma hide every transformer figure), and after the run
what stays held: the pack's components, the allocator's reserved memory, page-locked host memory. The first
run of a row is reported apart (cold: the loads from disk) from the mean of the others (warm: persistent ones
reuse what they kept). Every row starts from an empty budget.
Modes: cold_start, persistent, and streamed (cold_start under a VRAMGuard budget below the transformer's size,
so that it runs a block at a time; only the policies that stream). A policy the GPU cannot run, or an out of
memory, becomes a row with its error. Writes the JSON and a chart beside it (same name, .png).

Without a CUDA GPU or without the files it exits at once, naming what is missing. The full default grid is
about a hundred runs of the 22B model: hours; narrow it with --policies, --modes and --resolutions.
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, must_hold

WORKFLOW = ROOT / "example_workflows" / "api" / "ltx2_a2v_two_stage.json"
MEDIA = ROOT / "example_workflows" / "media"
GIB = 2**30

# The seed article's grid.
POLICIES = ("none", "fp8_cast", "fp8_scaled", "torchao_fp8_dynamic", "torchao_int8_weight_only")
MODES = ("cold_start", "persistent", "streamed")
RESOLUTIONS = "768x512,1024x768,1280x768"
FRAMES, SEED, RUNS = 97, 42, 3
# The article's server ran 30 stage-1 steps (its progress bar reads 0/30); also the sampler's default.
STEPS = 30
# The streamed mode's budget when --stream-budget-gb is not given: a quarter of the transformer as the policy
# stores it (as bench/vram.py), well below one transformer, so it must stream.
STREAM_BUDGET_FRACTION = 0.25

# The LTX-2.3 release's file names (those the seed article loaded), in ComfyUI's model folders under
# --models-dir. Override them with --checkpoint, --lora, --upscaler, --text-encoder for other files.
CHECKPOINT = "ltx-2.3-22b-dev.safetensors"
# --fp8-release: the release's fp8 files alone (the checkpoint ComfyUI's own LTX-2.3 template loads, and ComfyUI's
# fp8 Gemma-3 file): with the LoRA and the upscaler about 45 GiB (arithmetic: the transformer 18.1 GiB in fp8, Gemma
# 12.7, the LoRA 6.9, the embeddings processor 2.6, the VAEs and upscaler a few), which a 64 GiB disk holds; the bf16
# checkpoint and Gemma folder beside them are another ~70 GB.
FP8_CHECKPOINT = "ltx-2.3-22b-dev-fp8.safetensors"
FP8_TEXT_ENCODER = "gemma_3_12B_it_fp8_scaled.safetensors"
LORA = "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"
UPSCALER = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
TEXT_ENCODER = "gemma-3-12b-it-qat-q4_0-unquantized"

# What ComfyUI keeps free beside any model it loads (its minimum inference memory less its reserve).
COMFYUI_FLOOR = int(0.8 * GIB)

# A prompt that frees everything the pack holds and puts the budget back to the device's (between rows).
RESET = {"1": {"class_type": "VRAMGuard", "inputs": {"budget_gb": 0.0, "action": "free_ltx2"}}}


@dataclass(frozen=True)
class Cell:
    """One row of the table: `runs` consecutive runs of one policy, mode and output size."""

    policy: str
    mode: str
    width: int
    height: int

    @property
    def label(self) -> str:
        return f"{self.policy} {self.mode} {self.width}x{self.height}"


# --- arguments ---
def resolution(text: str) -> tuple[int, int]:
    """'768x512' -> (768, 512): the output size. Stage 1 runs at half of it, which the sampler wants in
    multiples of 32 and at least 64, so each side must be a multiple of 64 and at least 128."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT (e.g. 768x512)") from None
    if width % 64 or height % 64 or min(width, height) < 128:
        raise argparse.ArgumentTypeError(
            f"{text}: width and height must be multiples of 64, at least 128 (stage 1 runs at half size, which "
            f"must be a multiple of 32); e.g. {max(128, round(width / 64) * 64)}x{max(128, round(height / 64) * 64)}"
        )
    return width, height


def names(valid: tuple[str, ...] | list[str], what: str):
    """An argparse type: a comma-separated list of `valid` names."""

    def parse(text: str) -> list[str]:
        chosen = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in valid]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none given)'}; valid: {', '.join(valid)}"
            )
        return chosen

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from _pack import import_pack

    import_pack()
    from ltx2_a2v.quant.registry import policy_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    files = parser.add_argument_group("model files (ComfyUI layout under --models-dir)")
    files.add_argument(
        "--models-dir", type=Path, help="folder holding checkpoints/, loras/, latent_upscale_models/, text_encoders/"
    )
    files.add_argument(
        "--fp8-release",
        action="store_true",
        help=f"the fp8 release files alone: {FP8_CHECKPOINT} and {FP8_TEXT_ENCODER} (Gemma kept in fp8), ~45 GiB",
    )
    files.add_argument("--checkpoint", help=f"in checkpoints/ (default {CHECKPOINT}, or {FP8_CHECKPOINT})")
    files.add_argument("--lora", default=LORA, help=f"distilled LoRA in loras/ (default {LORA})")
    files.add_argument("--upscaler", default=UPSCALER, help=f"in latent_upscale_models/ (default {UPSCALER})")
    files.add_argument(
        "--text-encoder",
        help=f"Gemma-3 folder or file in text_encoders/ (default {TEXT_ENCODER}, or {FP8_TEXT_ENCODER})",
    )
    grid = parser.add_argument_group("grid")
    grid.add_argument(
        "--policies",
        type=names(policy_names(), "policy"),
        default=list(POLICIES),
        help=f"transformer quantization policies (default {','.join(POLICIES)})",
    )
    grid.add_argument("--modes", type=names(MODES, "mode"), default=list(MODES), help=f"default {','.join(MODES)}")
    grid.add_argument(
        "--resolutions",
        type=lambda t: [resolution(v) for v in t.split(",")],
        default=[resolution(v) for v in RESOLUTIONS.split(",")],
        help=f"output sizes WIDTHxHEIGHT, comma-separated (default {RESOLUTIONS})",
    )
    grid.add_argument("--frames", type=int, default=FRAMES, help=f"8k+1 (default {FRAMES})")
    grid.add_argument("--runs", type=int, default=RUNS, help=f"consecutive runs per row (default {RUNS})")
    grid.add_argument("--seed", type=int, default=SEED)
    grid.add_argument("--steps", type=int, default=STEPS, help=f"stage-1 steps (default {STEPS})")
    grid.add_argument(
        "--text-encoder-quantization",
        choices=policy_names(text_encoder=True),
        help="default none, or fp8_scaled with --fp8-release (the file's fp8 weights kept as stored)",
    )
    grid.add_argument(
        "--stream-budget-gb",
        type=float,
        default=None,
        help=f"budget of the streamed mode (default {STREAM_BUDGET_FRACTION:.0%} of the transformer)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results" / "gpu_a2v.json",
        help="the JSON; the chart goes beside it as .png",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=ROOT / "build" / "bench" / "gpu_a2v", help="the host's input, output and log"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one run may take")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="for the test-suite: runs the same loop on the CPU (host started with --cpu)",
    )
    args = parser.parse_args(argv)
    fp8 = args.fp8_release
    args.checkpoint = args.checkpoint or (FP8_CHECKPOINT if fp8 else CHECKPOINT)
    args.text_encoder = args.text_encoder or (FP8_TEXT_ENCODER if fp8 else TEXT_ENCODER)
    args.text_encoder_quantization = args.text_encoder_quantization or ("fp8_scaled" if fp8 else "none")
    if args.frames < 9 or args.frames % 8 != 1:
        parser.error(f"--frames {args.frames}: the model takes 8k+1 frames (9, 17, ..., 97, 121)")
    if args.runs < 1 or args.steps < 1:
        parser.error("--runs and --steps must be at least 1")
    if args.stream_budget_gb is not None and args.stream_budget_gb <= 0:
        parser.error("--stream-budget-gb must be above 0 (0 would mean the device's whole memory)")
    return args


def model_files(args: argparse.Namespace) -> dict[str, Path]:
    root = args.models_dir or Path("<--models-dir not given>")
    return {
        "checkpoint": root / "checkpoints" / args.checkpoint,
        "distilled_lora": root / "loras" / args.lora,
        "spatial_upsampler": root / "latent_upscale_models" / args.upscaler,
        "text_encoder": root / "text_encoders" / args.text_encoder,
    }


def missing(args: argparse.Namespace, cuda: bool) -> list[str]:
    """What keeps the benchmark from running, one line each (empty: it can run)."""
    problems = []
    if not cuda and not args.allow_cpu:
        problems.append(
            "no CUDA GPU: torch.cuda.is_available() is False (this benchmark measures GPU memory and "
            "time; --allow-cpu runs its loop on the CPU, for the test-suite)"
        )
    if args.models_dir is None:
        problems.append(
            "--models-dir not given: the folder holding checkpoints/, loras/, latent_upscale_models/ "
            "and text_encoders/ with the LTX-2.3 release files"
        )
    else:
        for part, path in model_files(args).items():
            exists = path.exists() if part == "text_encoder" else path.is_file()  # a Gemma folder or one file
            if not exists:
                problems.append(f"missing {part}: {path}")
    return problems


def grid(args: argparse.Namespace) -> tuple[list[Cell], list[str]]:
    """The rows to run, in order, and notes on what was left out (streamed needs a policy that streams)."""
    from ltx2_a2v.quant import POLICIES

    streamable = [name for name, policy in POLICIES.items() if policy.streamable]

    cells, notes = [], []
    for policy in args.policies:
        for mode in args.modes:
            if mode == "streamed" and policy not in streamable:
                notes.append(f"{policy}: no streamed row (block streaming supports {', '.join(streamable)})")
                continue
            cells.extend(Cell(policy, mode, w, h) for w, h in args.resolutions)
    return cells, notes


# --- one run through the host ---
def workflow(cell: Cell, args: argparse.Namespace, stream_budget_gb: float | None, prefix: str) -> dict:
    """The API example workflow with this cell's policy, residency, size and the grid's frames, seed, steps."""
    prompt = json.loads(WORKFLOW.read_text())
    prompt["3"]["inputs"].update(
        ckpt_name=args.checkpoint,
        text_encoder=args.text_encoder,
        distilled_lora=args.lora,
        quantization=cell.policy,
        text_encoder_quantization=args.text_encoder_quantization,
        residency="persistent" if cell.mode == "persistent" else "cold_start",
    )
    prompt["5"]["inputs"]["upscale_model"] = args.upscaler
    for node in ("4", "6"):  # stage 1 (base) and stage 2 (refine) take stage 1's size: half the output
        prompt[node]["inputs"].update(
            width=cell.width // 2, height=cell.height // 2, num_frames=args.frames, seed=args.seed
        )
    prompt["4"]["inputs"]["steps"] = args.steps
    prompt["9"]["inputs"]["filename_prefix"] = prefix
    if cell.mode == "streamed":
        # A VRAMGuard between the loader and the samplers sets the budget before they run (as README "Memory"
        # tells users to); the report guard at the end (budget_gb 0) gives the device's budget back after.
        prompt["11"] = {
            "class_type": "VRAMGuard",
            "inputs": {"budget_gb": stream_budget_gb, "action": "enforce", "passthrough": ["3", 0]},
        }
        for node in ("4", "5", "6", "7"):
            prompt[node]["inputs"]["model"] = ["11", 0]
    return prompt


class RunFailed(RuntimeError):
    pass


PHASE_GROUPS = {"text": ("text encode",), "denoise": ("stage 1 denoise", "stage 2 denoise"), "decode": ("decode",)}


def phase_peaks(stages: list[dict]) -> dict:
    """{group: (peak allocated, peak reserved)} over the report's phases of each group."""
    peaks = {}
    for group, names in PHASE_GROUPS.items():
        chosen = [s for s in stages if s["name"] in names]
        peaks[group] = (
            max((s["peak_bytes"] for s in chosen), default=0),
            max((s.get("peak_reserved_bytes", s["peak_bytes"]) for s in chosen), default=0),
        )
    return peaks


def measure(host, prompt: dict, timeout: float) -> dict:
    """Runs one prompt; its figures from the pack's report, and what stays held once the pack is idle."""
    start = time.monotonic()
    result = host.run(prompt, timeout)
    wall = time.monotonic() - start
    if result.status == "error":
        error = result.error()
        raise RunFailed(f"{error.get('node_type', '?')}: {error.get('exception_message', '').strip()}")
    if result.status != "success":
        raise RunFailed(result.status)
    state = host.vram()
    report = state["last_run"]
    if not report or report["run_id"] != result.prompt_id:
        raise RunFailed(f"the pack reported no run for prompt {result.prompt_id}")
    held = state.get("device_memory") or {}
    return {
        "seconds": report["elapsed_seconds"],  # the pack's phases; wall_seconds adds queueing and the mp4
        "wall_seconds": round(wall, 3),
        "peak_bytes": report["peak_bytes"],
        "peak_reserved_bytes": report.get("peak_reserved_bytes", report["peak_bytes"]),
        "phase_peaks": phase_peaks(report["phases"]),
        "idle_resident_bytes": state["resident_bytes"],
        "idle_reserved_bytes": held.get("reserved_bytes", 0),
        "idle_pinned_bytes": held.get("pinned_host_bytes", 0),
        "components": report["components"],
        "phases": report["phases"],
    }


def run_cell(host, cell: Cell, args: argparse.Namespace, stream_budget_gb: float | None) -> dict:
    """A row: the runs of one cell, or the error that stopped them."""
    row = {
        "policy": cell.policy,
        "mode": cell.mode,
        "width": cell.width,
        "height": cell.height,
        "frames": args.frames,
        "steps": args.steps,
        "seed": args.seed,
        "runs": [],
    }
    if cell.mode == "streamed":
        row["stream_budget_gb"] = stream_budget_gb
    prefix = f"gpu_a2v/{cell.policy}_{cell.mode}_{cell.width}x{cell.height}"
    try:
        reset(host, args.timeout)
        for i in range(args.runs):
            run = measure(host, workflow(cell, args, stream_budget_gb, prefix), args.timeout)
            row["runs"].append(run)
            print(
                f"bench: {cell.label} run {i + 1}/{args.runs}: {run['seconds']:.1f} s, peak "
                f"{run['peak_bytes'] / GIB:.2f} GiB allocated / {run['peak_reserved_bytes'] / GIB:.2f} reserved, "
                f"{run['idle_resident_bytes'] / GIB:.2f} GiB held when idle",
                flush=True,
            )
    except Exception as exc:  # noqa: BLE001 - any failure of a row (OOM, unsupported policy) is a result
        row["error"] = str(exc).strip() or type(exc).__name__
        print(f"bench: {cell.label}: {row['error'].strip().splitlines()[0]}", flush=True)
        if isinstance(exc, TimeoutError):
            host.interrupt()
    return summarize(row)


def stream_budget(args: argparse.Namespace, policy: str) -> float:
    """GiB: --stream-budget-gb, or a quarter of the transformer as `policy` stores it (from the file headers), or
    what the largest size's run must hold resident if that is more (bench/common.must_hold, with ComfyUI's 0.8 GiB
    kept free beside any model): a budget below it could only be overrun."""
    if args.stream_budget_gb is not None:
        return args.stream_budget_gb
    import torch

    from ltx2_a2v.ltx2.components.model_spec import ModelSpec
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config

    paths = model_files(args)
    bundle = Bundle(paths["checkpoint"], paths["text_encoder"], paths["spatial_upsampler"], paths["distilled_lora"])
    model = ModelSpec(bundle, read_checkpoint_config(bundle.checkpoint), quantization=policy)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width, height = max(args.resolutions, key=lambda size: size[0] * size[1])
    least = must_hold(model, device, width, height, args.frames, floor=COMFYUI_FLOOR if device.type == "cuda" else 0)
    return max(STREAM_BUDGET_FRACTION * model.estimate_bytes("transformer"), least) / GIB


# --- results ---
def summarize(row: dict) -> dict:
    """Adds the row's figures over its runs: the first run's seconds (cold) and the mean of the others (warm),
    the highest peaks per phase group, what the last run left held; status 'ok', or 'error' (with no figures
    when not one run finished)."""
    runs = row["runs"]
    row["status"] = "error" if "error" in row else "ok"
    if (
        row["status"] == "ok"
        and row["mode"] == "streamed"
        and not any(c.endswith(", streamed") for run in runs for c in run["components"])
    ):
        row["status"] = "not streamed"  # the budget was not below the transformer
    if runs:
        seconds = [r["seconds"] for r in runs]
        row.update(
            cold_seconds=seconds[0],
            warm_seconds=statistics.mean(seconds[1:]) if len(seconds) > 1 else None,
            peak_bytes=max(r["peak_bytes"] for r in runs),
            peak_reserved_bytes=max(r["peak_reserved_bytes"] for r in runs),
            phase_peaks={g: [max(r["phase_peaks"][g][i] for r in runs) for i in (0, 1)] for g in PHASE_GROUPS},
            idle_resident_bytes=runs[-1]["idle_resident_bytes"],
            idle_reserved_bytes=runs[-1]["idle_reserved_bytes"],
            idle_pinned_bytes=runs[-1]["idle_pinned_bytes"],
        )
    return row


def table(rows: list[dict]) -> str:
    """Peaks in GiB as allocated/reserved, per phase group; idle: held by the pack / reserved / pinned host."""
    head = (
        f"{'policy':26s} {'mode':11s} {'resolution':>12s} {'runs':>4s} {'cold s':>7s} {'warm s':>7s} "
        f"{'text GiB':>11s} {'denoise GiB':>11s} {'decode GiB':>11s} {'idle GiB':>14s}  status"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        size = f"{r['width']}x{r['height']}x{r['frames']}"
        if r["runs"]:
            warm = f"{r['warm_seconds']:7.2f}" if r["warm_seconds"] is not None else f"{'-':>7s}"
            peaks = " ".join(f"{a / GIB:5.1f}/{b / GIB:5.1f}" for a, b in (r["phase_peaks"][g] for g in PHASE_GROUPS))
            idle = (
                f"{r['idle_resident_bytes'] / GIB:4.1f}/{r['idle_reserved_bytes'] / GIB:4.1f}/"
                f"{r['idle_pinned_bytes'] / GIB:4.1f}"
            )
            figures = f"{r['cold_seconds']:7.2f} {warm} {peaks} {idle:>14s}"
        else:
            figures = " ".join(f"{'-':>{w}s}" for w in (7, 7, 11, 11, 11, 14))
        status = r["status"]
        if "error" in r:
            first = r["error"].strip().splitlines()[0] if r["error"].strip() else ""
            status += ": " + (first[:90] + "..." if len(first) > 90 else first)
        lines.append(f"{r['policy']:26s} {r['mode']:11s} {size:>12s} {len(r['runs']):4d} {figures}  {status}")
    return "\n".join(lines)


def chart(rows: list[dict], path: Path, device: str) -> None:
    """Seconds per run (cold: light, warm: solid), and memory while the transformers run (peak allocated, peak
    reserved), the text encoder's peak (dot) and what is held when idle (tick), one bar per policy and mode,
    grouped by resolution. Rows that failed are marked at zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({(r["width"], r["height"]) for r in rows})
    series = list(dict.fromkeys((r["policy"], r["mode"]) for r in rows))
    by_key = {(r["policy"], r["mode"], r["width"], r["height"]): r for r in rows}
    width = 0.8 / max(1, len(series))
    colors = plt.get_cmap("tab20").colors
    fig, (time_ax, mem_ax) = plt.subplots(2, 1, figsize=(max(8.0, 1.2 + 0.35 * len(series) * len(sizes)), 9))
    for i, (policy, mode) in enumerate(series):
        color, label = colors[i % len(colors)], f"{policy} / {mode}"
        for j, (w, h) in enumerate(sizes):
            r = by_key.get((policy, mode, w, h))
            if r is None:
                continue
            x = j - 0.4 + (i + 0.5) * width
            if not r["runs"]:
                for ax in (time_ax, mem_ax):
                    ax.plot(
                        x,
                        0,
                        marker="x",
                        color=color,
                        markersize=9,
                        linestyle="none",
                        label=label and f"{label} (failed)",
                    )
                label = None
                continue
            time_ax.bar(x, r["cold_seconds"], width, color=color, alpha=0.35)
            if r["warm_seconds"] is not None:
                time_ax.bar(x, r["warm_seconds"], width, color=color, label=label)
            label = None  # once per series
            denoise, denoise_reserved = r["phase_peaks"]["denoise"]
            mem_ax.bar(x, denoise_reserved / GIB, width, color=color, alpha=0.35)
            mem_ax.bar(x, denoise / GIB, width, color=color)
            mem_ax.plot(x, r["phase_peaks"]["text"][0] / GIB, marker="o", color="black", markersize=4)
            mem_ax.plot(x, r["idle_resident_bytes"] / GIB, marker="_", color="black", markersize=12, markeredgewidth=2)
    for ax in (time_ax, mem_ax):
        ax.set_xticks(range(len(sizes)), [f"{w}x{h}" for w, h in sizes])
    frames = rows[0]["frames"] if rows else 0
    time_ax.set_ylabel("seconds per run (light: first, cold; solid: mean of the others)")
    time_ax.set_title(f"LTX-2.3 two-stage A2V, {frames} frames, {device}  (x: failed)")
    time_ax.legend(fontsize=7, ncol=2)
    mem_ax.set_ylabel("GiB")
    mem_ax.set_title(
        "denoising: peak allocated (solid), peak reserved (light); text encoder peak (dot); held when idle (tick)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the benchmark ---
def device_name(host) -> str:
    """The host's device as ComfyUI names it (GET /system_stats), with its memory."""
    import requests

    device = (requests.get(f"{host.url}/system_stats", timeout=30).json().get("devices") or [{}])[0]
    return f"{device.get('name', '?')}, {device.get('vram_total', 0) / GIB:.0f} GiB"


def reset(host, timeout: float) -> None:
    """Empty budget, device-sized again, before a row."""
    result = host.run(RESET, timeout)
    if result.status != "success" or host.vram()["resident_bytes"] != 0:
        raise RunFailed(f"the reset before the row did not free the pack's memory: {result.messages[-1:]}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    problems = missing(args, cuda)
    if problems:
        print("bench/gpu_a2v.py cannot run:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    cells, notes = grid(args)
    for note in notes:
        print(f"bench: {note}", flush=True)

    from comfy_host import ComfyHost

    work = args.work_dir.resolve()
    host = ComfyHost(args.models_dir.resolve(), work, cpu=not cuda, extra_args=("--cache-none",))
    for media in MEDIA.iterdir():
        shutil.copy(media, host.input_dir / media.name)
    rows = []
    try:
        host.wait_ready(timeout=600)
        device = device_name(host)
        print(f"bench: host on {device}, {len(cells)} rows x {args.runs} runs; log {host.log_path}", flush=True)
        budgets = {}
        for cell in cells:
            if cell.mode == "streamed" and cell.policy not in budgets:
                budgets[cell.policy] = stream_budget(args, cell.policy)
            rows.append(run_cell(host, cell, args, budgets.get(cell.policy) if cell.mode == "streamed" else None))
        reset(host, args.timeout)
    finally:
        host.stop()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.write_text(
        json.dumps({"device": device, "settings": settings, "notes": notes, "rows": rows}, indent=2) + "\n"
    )
    chart(rows, args.out.with_suffix(".png"), device)
    print("\n" + table(rows))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
