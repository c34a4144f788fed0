"""Quantization benchmark: every policy on the `wide` preset (the real 22B transformer widths, 2 blocks).

    .venv/bin/python bench/quant.py [--preset wide|deep] [--models-dir DIR] [--out bench/results] [--policies ...]

`deep` has 8 of the 48 blocks (a 6.6 GB bundle): the load's transient over a larger resident model.

Each policy runs in a fresh process, and the load's peak is that process's own: its resident set's peak
(VmHWM, reset with /proc/self/clear_refs before the load, so nothing of the parent that started it counts) less
the resident set before the load; and the ledger's peak (the tensors alive at once, memory/ledger.py). Figures
per policy: resident bytes of the built transformer, the same for bf16, load peak, load seconds, one denoising
step's seconds, and the relative L2 error of that step's output against bf16 on the same inputs. Writes quant.json
and quant.png.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, ensure_bundle, run_child

POLICIES = [
    "none",
    "fp8_cast",
    "fp8_scaled",
    "fp8_scaled_mm",
    "torchao_fp8_dynamic",
    "torchao_fp8_weight_only",
    "torchao_int8_weight_only",
    "torchao_int4_weight_only",
]
# fp8_scaled as it runs on a GPU of compute capability 8.9+ (fp8 matmuls, bf16 activations quantized per token),
# with torch._scaled_mm emulated on the CPU: its error is real, its step time is not a GPU's.
W8A8 = "fp8_scaled (fp8 matmuls, emulated)"


def process_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def vm_hwm() -> int:
    """The process's peak resident set since the last reset (/proc/self/status, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure_one(policy: str, models_dir: Path, preset: str, reference: Path) -> dict:
    """Runs in the child process: load, one step, figures."""
    import torch
    from _pack import import_pack
    from make_tiny_bundle import file_names

    import_pack()
    from probe import ProbeShape, denoise_step, probe_inputs

    from ltx2_a2v.ltx2.components.build import build
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.components.precision import library_default
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
    from ltx2_a2v.memory.accounting import module_bytes
    from ltx2_a2v.memory.ledger import CPU_LEDGER
    from ltx2_a2v.quant import POLICIES, PolicyUnavailable, check_policy

    torch.set_num_threads(os.cpu_count() or 1)
    bundle = Bundle(checkpoint=models_dir / file_names(preset)["checkpoint"])
    # The compute dtype the pack uses on this device (float32 on a CPU), weights stored as the policy says; the
    # emulated fp8 matmuls take bf16 activations, as on the GPU.
    compute = torch.bfloat16 if policy == W8A8 else library_default("cpu").transformer
    inputs = probe_inputs(
        read_checkpoint_config(bundle.checkpoint), ProbeShape(frames=9, height=128, width=128), dtype=compute
    )
    row = {"policy": policy}
    # This process's own peak from here on: ru_maxrss would carry the peak of the parent that started it (the
    # kernel keeps it across exec), e.g. of writing the 3.1 GB bundle; VmHWM can be reset (clear_refs 5).
    Path("/proc/self/clear_refs").write_text("5")
    before = process_rss()
    ledger_start = CPU_LEDGER.allocated
    CPU_LEDGER.peak = ledger_start
    start = time.perf_counter()
    try:
        chosen = POLICIES["fp8_scaled" if policy == W8A8 else policy]
        check_policy(chosen, "cpu")
        with CPU_LEDGER.tracking():
            model, report = build(ComponentPlan.read(bundle, "transformer"), chosen, "cpu", compute)
    except PolicyUnavailable as exc:
        return {**row, "status": str(exc)}
    if policy == W8A8:
        from fp8_emulation import emulated_scaled_mm

        from ltx2_a2v.quant.fp8_scaled import Fp8ScaledLinear

        torch._scaled_mm = emulated_scaled_mm  # this child process only
        for layer in model.modules():
            if isinstance(layer, Fp8ScaledLinear):
                layer.fp8_matmul = True
    row["load_seconds"] = time.perf_counter() - start
    row["load_peak_bytes"] = vm_hwm() - before  # the resident set's peak during the load, above where it began
    row["load_ledger_peak_bytes"] = CPU_LEDGER.peak - ledger_start  # the tensors alive at once, at most
    row["resident_bytes"] = module_bytes(model)
    row["block_bytes"] = module_bytes(model.transformer_blocks)
    row["blocks"] = len(model.transformer_blocks)
    row["quantized_layers"], row["kept_layers"] = report.quantized, len(report.skipped)

    denoise_step(model, *inputs)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        video, audio = denoise_step(model, *inputs)
        times.append(time.perf_counter() - start)
    row["step_seconds"] = statistics.median(times)
    out = torch.cat([video.flatten(), audio.flatten()]).float()
    if policy == "none":
        torch.save(out, reference)
        row["rel_error"] = 0.0
    else:
        expected = torch.load(reference)
        row["rel_error"] = float((out - expected).norm() / expected.norm())
    row.update(stage_2(model, chosen, bundle, models_dir / file_names(preset)["distilled_lora"], compute, inputs))
    if policy == "none":
        torch.save(row.pop("stage2_out"), reference.with_suffix(".stage2.pt"))
    else:
        expected = torch.load(reference.with_suffix(".stage2.pt"))
        for name, out in (("stage2", row.pop("stage2_out")), ("stage2_fused", row.pop("stage2_fused_out", None))):
            if out is not None:
                row[f"{name}_rel_error"] = float((out - expected).norm() / expected.norm())
    return {**row, "status": "ok"}


def stage_2(model, policy, bundle, lora_path: Path, compute, inputs) -> dict:
    """A stage-2 step as the pack runs it (the distilled LoRA applied to stage 1's transformer at each forward,
    ltx2/components/lora_layers.py) and as it was built before (a second transformer, the LoRA fused then quantized):
    each one's output and step seconds. On `none` the two are the same bits (tests/unit/ltx2/test_resident_lora.py): the
    bf16 reference of the other policies."""
    import statistics as stats

    import torch
    from probe import denoise_step

    from ltx2_a2v.ltx2.components.build import build
    from ltx2_a2v.ltx2.components.lora_layers import LoraLayers, applied
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.files.lora_file import LoraFactors

    def timed(transformer) -> tuple[torch.Tensor, float]:
        denoise_step(transformer, *inputs)  # warm-up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            video, audio = denoise_step(transformer, *inputs)
            times.append(time.perf_counter() - start)
        return torch.cat([video.flatten(), audio.flatten()]).float(), stats.median(times)

    lora = LoraLayers(LoraFactors(lora_path, 1.0), torch.device("cpu"))
    with applied(model, lora):
        out, seconds = timed(model)
    row = {"stage2_out": out, "stage2_step_seconds": seconds, "lora_bytes": sum(b.nbytes for b in lora.buffers())}
    if policy.name != "none" and policy.fuses_lora:
        fused, _ = build(ComponentPlan.read(bundle, "transformer"), policy, "cpu", compute, lora=(lora_path, 1.0))
        row["stage2_fused_out"], row["stage2_fused_step_seconds"] = timed(fused)
    return row


def chart(rows: list[dict], path: Path, preset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    names = [r["policy"] for r in ok]
    gib = 2**30
    fig, (mem, err) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = range(len(ok))
    mem.bar([i - 0.2 for i in x], [r["resident_bytes"] / gib for r in ok], 0.4, label="resident")
    mem.bar([i + 0.2 for i in x], [r["load_peak_bytes"] / gib for r in ok], 0.4, label="load peak")
    mem.axhline(ok[0]["bf16_resident_bytes"] / gib, color="grey", linestyle="--", label="bf16 resident")
    mem.set_xticks(list(x), names, rotation=30, ha="right")
    mem.set_ylabel(f"GiB ({preset} preset: {ok[0]['blocks']} blocks at 22B widths)")
    mem.set_title("Transformer memory per policy")
    mem.legend()
    quantized = [r for r in ok if r["policy"] != "none"]
    q = range(len(quantized))
    for offset, field, label, color in (
        (-0.27, "rel_error", "stage 1 step", "tab:red"),
        (0.0, "stage2_rel_error", "stage 2 step, LoRA applied to stage 1's transformer", "tab:orange"),
        (0.27, "stage2_fused_rel_error", "stage 2 step, second transformer (LoRA fused, then quantized)", "tab:grey"),
    ):
        err.bar([i + offset for i in q], [r.get(field, 0) * 100 for r in quantized], 0.27, label=label, color=color)
    err.set_xticks(list(q), [r["policy"] for r in quantized], rotation=30, ha="right")
    err.set_ylabel("relative L2 error vs bf16 (%)")
    err.set_title("One denoising step, same inputs")
    err.legend(fontsize=7)
    skipped = [r["policy"] for r in rows if r["status"] != "ok"]
    if skipped:
        fig.text(0.01, 0.01, "not run on this machine: " + ", ".join(skipped), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)


def _or_dash(value: float | None, width: int, places: int) -> str:
    return f"{value:{width}.{places}f}" if value is not None else f"{'-':>{width}s}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="wide", choices=["tiny", "wide", "deep"])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--policies", nargs="*", default=[*POLICIES, W8A8])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: measure one policy, print JSON
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure_one(args.one, args.models_dir, args.preset, args.reference)))
        return 0

    ensure_bundle(args.models_dir, args.preset)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference.pt"
        for policy in ["none", *[p for p in args.policies if p != "none"]]:
            command = [
                sys.executable,
                __file__,
                "--one",
                policy,
                "--preset",
                args.preset,
                "--models-dir",
                str(args.models_dir),
                "--reference",
                str(reference),
            ]
            row = run_child(command)
            rows.append(row if row is not None else {"policy": policy, "status": "failed (see the error above)"})
            print(f"bench: {policy}: {rows[-1]['status'][:90]}", flush=True)
    base = rows[0]
    for row in rows:
        if row["status"] == "ok":
            row["bf16_resident_bytes"] = base["resident_bytes"]
            row["resident_ratio"] = row["resident_bytes"] / base["resident_bytes"]
            row["blocks_ratio"] = row["block_bytes"] / base["block_bytes"]
            row["peak_over_resident"] = row["load_peak_bytes"] / row["resident_bytes"]
            # Arithmetic, not a measurement: the preset has the 22B's non-block layers at full size but only
            # `blocks` of its 48 blocks; scale the measured per-block bytes to 48.
            per_block = row["block_bytes"] / row["blocks"]
            base_per_block = base["block_bytes"] / base["blocks"]
            rest, base_rest = row["resident_bytes"] - row["block_bytes"], base["resident_bytes"] - base["block_bytes"]
            row["ratio_48_blocks"] = (rest + 48 * per_block) / (base_rest + 48 * base_per_block)
            # Arithmetic: the load's transient (one tensor in flight and the quantizer's scratch) does not grow
            # with the depth, so at 48 blocks it sits on top of the 48-block resident bytes.
            resident_48 = rest + 48 * per_block
            row["peak_over_resident_48"] = (resident_48 + row["load_peak_bytes"] - row["resident_bytes"]) / resident_48

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quant.json").write_text(json.dumps({"preset": args.preset, "rows": rows}, indent=2) + "\n")
    chart(rows, args.out / "quant.png", args.preset)
    mib = 2**20
    print(
        f"\n{'policy':36s} {'resident MiB':>12s} {'x bf16':>7s} {'blocks x':>8s} {'48-blk x':>8s} "
        f"{'load peak MiB':>13s} {'ledger MiB':>10s} {'peak/res':>8s} {'48-blk':>7s} {'load s':>7s} {'step s':>7s} "
        f"{'rel err':>8s} {'st2 err':>8s} {'st2 2nd':>8s} {'st2 s':>7s} {'2nd s':>7s}"
    )
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['policy']:36s} {r['status'][:100]}")
            continue
        print(
            f"{r['policy']:36s} {r['resident_bytes'] / mib:12.1f} {r['resident_ratio']:7.3f} "
            f"{r['blocks_ratio']:8.3f} {r['ratio_48_blocks']:8.3f} "
            f"{r['load_peak_bytes'] / mib:13.1f} {r['load_ledger_peak_bytes'] / mib:10.1f} "
            f"{r['peak_over_resident']:8.3f} {r['peak_over_resident_48']:7.3f} {r['load_seconds']:7.2f} "
            f"{r['step_seconds']:7.3f} {r['rel_error']:8.4f} {r.get('stage2_rel_error', 0):8.4f} "
            f"{_or_dash(r.get('stage2_fused_rel_error'), 8, 4)} {r['stage2_step_seconds']:7.3f} "
            f"{_or_dash(r.get('stage2_fused_step_seconds'), 7, 3)}"
        )
    print(
        "\nx bf16: whole transformer as built; blocks x: the transformer blocks alone; 48-blk x: arithmetic, "
        "the measured per-block bytes scaled to the 22B's 48 blocks. load peak: the child's resident set (VmHWM "
        "reset before the load) above where it began; ledger: the tensors alive at once during the load; "
        "peak/res: load peak / resident; 48-blk: the same with the transient on the 48-block resident bytes "
        "(arithmetic). st2 err: a stage-2 step with the distilled LoRA applied to this policy's stage-1 "
        "transformer, as the pack runs it, against bf16's (the LoRA fused); st2 2nd: the same with a second "
        "transformer built with the LoRA fused, then quantized (how stage 2 was built before); st2 s / 2nd s: their "
        "step seconds."
    )
    print(f"wrote {args.out / 'quant.json'} and {args.out / 'quant.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
