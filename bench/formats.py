"""The low-bit files a ComfyUI user has, each kept as stored (`as_stored`) and dequantized at load (`none`); the
wide A2V graph on them under a quarter budget; and, by arithmetic, what the release files hold on 8-24 GB cards.

    .venv/bin/python bench/formats.py [--preset wide] [--models-dir DIR] [--out bench/results] [--part all]

`--part files`: per file x policy, in this process one build after another, each measured on the device-memory
ledger from what was live before it (memory/ledger.py): load seconds, ledger peak / resident, resident / the bytes
the component's tensors take in the file, one forward's output against the same weights dequantized in float32 by
comfy-kitchen (each layer's whole weight, not the pack's row slices), seconds per forward. The transformers are the
bundle's transformer-only files (nvfp4, int8, int8-convrot, tools/bundle_files.py) and Lightricks' fp8 release; the
Gemma files ComfyUI's single file in fp8, fp4_mixed and int8.
`--part graph`: the two-stage graph (128x96, 17 frames, 3 + 3 steps, `persistent`), each configuration in a fresh
process, unbudgeted and under a budget of a quarter of the bf16 transformer (block streaming): its seconds and
ledger peak, then stage 1 again, warm (what streaming costs, without the loads). as_stored on the nvfp4 transformer
with the split files and the fp4_mixed Gemma; fp8_scaled on the bf16 files.
`--part streaming`: per policy, the transformer whole and streamed under that quarter budget, forwards at stage 1's
size timed in turns (the machine's other load falls on both alike): what block streaming costs per forward.
`--part cards`: from the bytes per block measured here (the `wide` preset holds the 22B's widths), the release
files at 768x512x97 on 8, 12, 16 and 24 GB cards (bench/format_cards.py). Writes formats.json.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from common import ROOT, bench_inputs, run_child

MIB = 2**20
TRANSFORMERS = ("fp8_checkpoint", "nvfp4_transformer", "int8_transformer", "int8_convrot_transformer")
GEMMAS = ("text_encoder_fp8", "text_encoder_fp4", "text_encoder_int8")
PROMPT = "A young woman speaks calmly to the camera."


def bundle_paths(models_dir: Path, preset: str) -> dict[str, Path]:
    """The bundle with its fp8, low-bit and split files, written once."""
    from bundle_files import LOW_BIT_FILE_NAMES, SPLIT_FILE_NAMES
    from make_tiny_bundle import FP8_FILE_NAMES, make_bundle, write_formats
    from tiny_run import bundle_paths as release_paths

    paths = release_paths(models_dir, preset)
    paths.update({part: models_dir / rel.format(preset=preset) for part, rel in FP8_FILE_NAMES.items()})
    if not paths["fp8_checkpoint"].is_file():
        print(f"bench: writing the {preset} bundle with its fp8 files to {models_dir} (once)", flush=True)
        make_bundle(models_dir, preset, seed=0, fp8=True)
    names = {**SPLIT_FILE_NAMES, **LOW_BIT_FILE_NAMES}
    formats = {part: models_dir / rel.format(preset=preset) for part, rel in names.items()}
    if not all(p.is_file() for p in formats.values()):
        print("bench: writing the low-bit and split files (once)", flush=True)
        formats = write_formats(models_dir, preset, paths, True, True)
    return {**paths, **formats}


def float32_reference(model):
    """The model's stored layers computing with their weights dequantized in float32 by comfy-kitchen, whole (a
    QuantizedTensor's dequantize; fp8: weight x scale), for the block; as built after it."""
    import contextlib

    import torch
    from comfy_kitchen.tensor import QuantizedTensor

    from ltx2_a2v.quant.as_stored import StoredLinear
    from ltx2_a2v.quant.formats import FORMATS, layout_params
    from ltx2_a2v.quant.fp8_scaled import Fp8ScaledLinear

    def whole(layer, x):
        if isinstance(layer, Fp8ScaledLinear):
            weight = layer.weight.float() * layer.weight_scale.float()
        else:
            fmt, scales = FORMATS[layer.stored_format], layer.scales()
            x = x * scales.pop("pre_quant_scale").float() if "pre_quant_scale" in scales else x
            shape = (layer.out_features, layer.in_features)
            params = layout_params(fmt, scales, layer.options or {}, shape, torch.float32)
            weight = QuantizedTensor(layer.weight, fmt.layout, params).dequantize()
        return torch.nn.functional.linear(x.float(), weight, None if layer.bias is None else layer.bias.float())

    @contextlib.contextmanager
    def swapped():
        layers = [m for m in model.modules() if isinstance(m, (StoredLinear, Fp8ScaledLinear))]
        for layer in layers:
            layer.forward = lambda x, layer=layer: whole(layer, x)
        try:
            yield
        finally:
            for layer in layers:
                del layer.forward

    return swapped()


def measure_files(paths: dict[str, Path], pairs: int = 3) -> list[dict]:
    """Per file: built as_stored, then dequantized at load (`none`), each build on the ledger from what was live
    before it; one forward of each against the float32 reference; then forwards timed in turns (as_stored, none,
    ...), so the machine's other load falls on both alike: the median of each."""
    import gc
    import statistics

    import torch
    from probe import ProbeShape, denoise_step, probe_inputs

    from ltx2_a2v.ltx2.components.build import build
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.memory.ledger import PhaseMeter
    from ltx2_a2v.quant import POLICIES

    device, rows = torch.device("cpu"), []
    split = {k: paths[k] for k in ("video_vae", "audio_vae", "text_projection")}
    inputs = probe_inputs(_config(paths), ProbeShape(17, 96, 128), dtype=torch.float32)  # stage 1's size here
    for name, part in [*(("transformer", p) for p in TRANSFORMERS), *(("text_encoder", p) for p in GEMMAS)]:
        if name == "transformer":
            bundle = Bundle(checkpoint=paths[part], **({} if part == "fp8_checkpoint" else split))
        else:
            bundle = Bundle(checkpoint=paths["checkpoint"], text_encoder=paths[part])
        gc.collect()
        built, found = {}, {}
        with torch.inference_mode():
            for policy in ("as_stored", "none"):
                plan = ComponentPlan.read(bundle, name)
                stored = sum(h.entries[k].nbytes for h in plan.headers.values() for k in plan.renames if k in h.entries)
                start = time.perf_counter()
                with PhaseMeter(device) as meter:
                    module, report = build(plan, POLICIES[policy], device, torch.float32)
                built[policy] = module
                found[policy] = {
                    "component": name,
                    "file": paths[part].name,
                    "policy": policy,
                    "load_seconds": round(time.perf_counter() - start, 2),
                    "peak_over_resident": round((meter.peak - meter.start) / report.resident_bytes, 3),
                    "resident_mib": round(report.resident_bytes / MIB, 2),
                    "resident_over_file": round(report.resident_bytes / stored, 3),
                    "report": report.summary(),
                }

            def forward(policy):
                if name == "transformer":
                    return torch.cat([t.flatten() for t in denoise_step(built[policy], *inputs)]).float()
                return torch.stack(built[policy].encode(PROMPT)[0]).float()

            with float32_reference(built["as_stored"]):
                reference = forward("as_stored")
            times = {policy: [] for policy in built}
            for _ in range(pairs):
                for policy in built:
                    start = time.perf_counter()
                    out = forward(policy)
                    times[policy].append(time.perf_counter() - start)
                    found[policy]["error_vs_float32_dequantized"] = float((out - reference).norm() / reference.norm())
        for policy, row in found.items():
            row["seconds_per_forward"] = round(statistics.median(times[policy]), 3)
            rows.append(row)
            print(
                f"{name:12s} {row['file']:58s} {policy:9s} load {row['load_seconds']:6.2f} s  peak/resident "
                f"{row['peak_over_resident']:5.3f}  resident {row['resident_mib']:8.1f} MiB  resident/file "
                f"{row['resident_over_file']:5.3f}  error {row['error_vs_float32_dequantized']:.2e}  forward "
                f"{row['seconds_per_forward']:.3f} s",
                flush=True,
            )
        built.clear()  # the next file's builds measured without these
    return rows


def _config(paths: dict[str, Path]) -> dict:
    from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config

    return read_checkpoint_config(paths["checkpoint"])


GRAPHS = {
    "as_stored": ("nvfp4_transformer", "text_encoder_fp4", True),  # (transformer, Gemma, split files)
    "fp8_scaled": ("checkpoint", "text_encoder", False),
}


def run_graph(policy: str, quarter: bool, models_dir: Path, preset: str) -> dict:
    """In a child process, `persistent`: the two-stage graph once (its seconds and ledger peak), then stage 1 again
    (warm: what streaming costs per step, without the loads)."""
    import torch

    from ltx2_a2v.ltx2.a2v import stages as a2v
    from ltx2_a2v.ltx2.a2v.decode import decode
    from ltx2_a2v.ltx2.components.bundle_parts import check_bundle
    from ltx2_a2v.ltx2.components.model_spec import ModelSpec
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.memory.budget import BUDGET
    from ltx2_a2v.quant import POLICIES

    paths = bundle_paths(models_dir, preset)
    transformer, gemma, split = GRAPHS[policy]
    parts = {k: paths[k] for k in ("video_vae", "audio_vae", "text_projection")} if split else {}
    bundle = Bundle(paths[transformer], paths[gemma], paths["spatial_upsampler"], paths["distilled_lora"], **parts)
    model = ModelSpec(bundle, check_bundle(bundle), policy, policy, residency="persistent")
    bf16 = sum(ComponentPlan.read(Bundle(paths["checkpoint"]), "transformer").sizes(POLICIES["none"]).values())
    BUDGET.budget_bytes = bf16 // 4 if quarter else None
    cpu = torch.device("cpu")
    inputs = bench_inputs(prompt=PROMPT, steps=3)

    def base():
        return a2v.sample_base(model, cpu, inputs, hand_over=True)

    BUDGET.begin_run(f"{policy}-graph", policy, "persistent")
    start = time.perf_counter()
    latent = a2v.sample_refine(model, cpu, a2v.upscale(model, cpu, base()), PROMPT, 42)
    decode(model, cpu, latent)
    seconds = time.perf_counter() - start
    graph = BUDGET.last_run.as_dict()
    BUDGET.begin_run(f"{policy}-stage-1", policy, "persistent")
    base()
    warm = next(s for s in BUDGET.last_run.as_dict()["phases"] if s["name"] == "stage 1 denoise")
    return {
        "policy": policy,
        "files": [paths[transformer].name, paths[gemma].name],
        "budget_mib": None if not quarter else round(BUDGET.budget_bytes / MIB),
        "bf16_transformer_mib": round(bf16 / MIB),
        "seconds": round(seconds, 2),
        "peak_mib": round(graph["peak_bytes"] / MIB),
        "stage_1_warm_seconds": warm["seconds"],
        "loads": graph["loads"],
    }


def measure_streaming(paths: dict[str, Path], pairs: int = 5) -> list[dict]:
    """Per policy: the transformer built whole and built streamed under a quarter of the bf16 transformer (the
    budget's own split: the units that fit stay, the rest stream one at a time on a CPU), forwards timed in turns
    (whole, streamed, whole, ...) so that the machine's other load falls on both alike; the median of each."""
    import statistics

    import torch
    from probe import ProbeShape, denoise_step, probe_inputs

    from ltx2_a2v.ltx2.components.model_spec import ModelSpec
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.memory.streaming import split_units, units_in_flight
    from ltx2_a2v.quant import POLICIES

    cpu, rows = torch.device("cpu"), []
    inputs = probe_inputs(_config(paths), ProbeShape(17, 96, 128), dtype=torch.float32)  # stage 1's size here
    quarter = sum(ComponentPlan.read(Bundle(paths["checkpoint"]), "transformer").sizes(POLICIES["none"]).values()) // 4
    for policy, part in (("fp8_scaled", "checkpoint"), ("as_stored", "nvfp4_transformer")):
        split = {k: paths[k] for k in ("video_vae", "audio_vae", "text_projection")} if part != "checkpoint" else {}
        bundle = Bundle(checkpoint=paths[part], **split)
        spec = ModelSpec(bundle, _config(paths), quantization=policy)
        plan = ComponentPlan.read(bundle, "transformer")
        unit_bytes, other = plan.unit_sizes(POLICIES[policy])
        _, streamed = split_units(plan.units(), unit_bytes, other, quarter, units_in_flight(cpu))
        whole, _, _ = spec.build_component("transformer", cpu)
        parted, _, streamer = spec.build_component("transformer", cpu, streamed=streamed)
        times = {"whole": [], "streamed": []}
        for _ in range(pairs):
            for name, model in (("whole", whole), ("streamed", parted)):
                start = time.perf_counter()
                denoise_step(model, *inputs)
                times[name].append(time.perf_counter() - start)
        row = {
            "policy": policy,
            "file": paths[part].name,
            "budget_mib": round(quarter / MIB),
            "streamed_units": f"{len(streamed)} of {len(plan.units())}",
            "streamed_mib": round(streamer.store.nbytes() / MIB),
            "whole_seconds": round(statistics.median(times["whole"]), 2),
            "streamed_seconds": round(statistics.median(times["streamed"]), 2),
        }
        row["ratio"] = round(row["streamed_seconds"] / row["whole_seconds"], 3)
        rows.append(row)
        print(
            f"streaming {policy:10s} {row['streamed_units']} units ({row['streamed_mib']} MiB) streamed: "
            f"{row['streamed_seconds']:.2f} s vs {row['whole_seconds']:.2f} s per forward = {row['ratio']:.2f}x",
            flush=True,
        )
        del whole, parted, streamer
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="wide", choices=["tiny", "wide"])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--part", default="all", choices=["all", "files", "graph", "streaming", "cards"])
    parser.add_argument("--graph", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from _pack import import_pack

    import_pack()
    if args.graph:
        print(json.dumps(run_graph(args.graph[0], args.graph[1] == "quarter", args.models_dir, args.preset)))
        return 0
    paths = bundle_paths(args.models_dir, args.preset)
    results = {"preset": args.preset}
    if args.part in ("all", "files"):
        results["files"] = measure_files(paths)
    if args.part in ("all", "graph"):
        results["graph"] = []
        for policy in GRAPHS:
            for budget in ("none", "quarter"):
                command = [sys.executable, __file__, "--preset", args.preset, "--models-dir", str(args.models_dir)]
                row = run_child([*command, "--graph", policy, budget])
                if row is None:
                    return 1
                results["graph"].append(row)
                print(
                    f"graph {policy:10s} budget {row['budget_mib'] or '-'} MiB: {row['seconds']:.1f} s, peak "
                    f"{row['peak_mib']} MiB; stage 1 again (warm) {row['stage_1_warm_seconds']:.1f} s",
                    flush=True,
                )
    if args.part in ("all", "streaming"):
        results["streaming"] = measure_streaming(paths)
    if args.part in ("all", "cards"):
        from format_cards import card_table

        results["cards"] = card_table(paths)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "formats.json"
    earlier = json.loads(out.read_text()) if out.is_file() and args.part != "all" else {}
    out.write_text(json.dumps({**earlier, **results}, indent=2) + "\n")  # a part run alone keeps the others
    return 0


if __name__ == "__main__":
    sys.exit(main())
