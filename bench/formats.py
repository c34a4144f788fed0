"""The files a ComfyUI user has, loaded by the pack: each format's load seconds, ledger peak, resident bytes, and
(for the text encoders) the error of its hidden states against the bf16 folder's, on the same prompt.

    .venv/bin/python bench/formats.py [--preset tiny|wide] [--models-dir DIR] [--out bench/results]

The transformer rows read `--preset`'s checkpoints (bf16 and Lightricks' fp8 release in each of ComfyUI's three
spellings); the Gemma rows the bundle's Gemma in each layout (every preset has the same small Gemma). Builds run
in this process one after another, each measured on the device-memory ledger from what was live before it
(memory/ledger.py). Writes formats.json.
"""

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT / "tools"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "wide"])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import torch
    from _pack import import_pack
    from make_tiny_bundle import FP8_FILE_NAMES, file_names, make_bundle, write_fp8_checkpoint

    import_pack()
    from ltx2_a2v.ltx2.components.build import build
    from ltx2_a2v.ltx2.components.plan import ComponentPlan
    from ltx2_a2v.ltx2.components.table import Bundle
    from ltx2_a2v.memory.ledger import StageMeter
    from ltx2_a2v.quant import POLICIES

    scratch = tempfile.TemporaryDirectory(prefix="ltx2-formats-")
    models = args.models_dir or Path(scratch.name)
    paths = {part: models / rel for part, rel in file_names(args.preset).items()}
    paths.update({part: models / rel.format(preset=args.preset) for part, rel in FP8_FILE_NAMES.items()})
    if not paths["fp8_checkpoint"].is_file() or not paths["text_encoder_fp4"].is_file():
        print(f"bench: writing the {args.preset} bundle with its fp8 files to {models}", flush=True)
        make_bundle(models, args.preset, seed=0, fp8=True)
    for spelling in ("comfy_quant", "scaled_fp8"):
        paths[f"fp8_{spelling}"] = models / f"fp8-{spelling}.safetensors"
        if not paths[f"fp8_{spelling}"].is_file():
            write_fp8_checkpoint(paths["checkpoint"], paths[f"fp8_{spelling}"], spelling)

    device = torch.device("cpu")
    prompt = "A young woman speaks calmly to the camera."
    rows, reference = [], None
    cases = [
        ("text_encoder", part, policy)
        for part, policy in (
            ("text_encoder", "none"),
            ("text_encoder_file", "none"),
            ("text_encoder_fp8", "none"),
            ("text_encoder_fp8", "fp8_scaled"),
            ("text_encoder_fp4", "none"),
            ("text_encoder_fp4", "fp8_scaled"),
        )
    ]
    cases += [
        ("transformer", part, policy)
        for part, policy in (
            ("checkpoint", "fp8_scaled"),
            ("fp8_checkpoint", "fp8_scaled"),
            ("fp8_comfy_quant", "fp8_scaled"),
            ("fp8_scaled_fp8", "fp8_scaled"),
            ("fp8_checkpoint", "none"),
        )
    ]
    for name, part, policy in cases:
        bundle = Bundle(
            checkpoint=paths[part] if name == "transformer" else paths["checkpoint"],
            text_encoder=paths[part] if name == "text_encoder" else paths["text_encoder"],
        )
        gc.collect()  # the previous row's module, freed now rather than during this row's build
        with torch.inference_mode():
            start = time.perf_counter()
            with StageMeter(device) as meter:
                module, report = build(ComponentPlan.read(bundle, name), POLICIES[policy], device, torch.float32)
            seconds = time.perf_counter() - start
            row = {
                "component": name,
                "file": paths[part].name,
                "policy": policy,
                "seconds": round(seconds, 3),
                "ledger_peak_mib": round((meter.peak - meter.start) / 2**20, 2),
                "resident_mib": round(report.resident_bytes / 2**20, 2),
                "report": report.summary(),
            }
            if name == "text_encoder":
                states = torch.stack(module.encode(prompt)[0]).float()
                reference = states if reference is None else reference
                row["error_vs_bf16_folder"] = round(float((states - reference).norm() / reference.norm()), 4)
        del module
        rows.append(row)
        error = f"{row['error_vs_bf16_folder']:.2%}" if "error_vs_bf16_folder" in row else "-"
        print(
            f"{name:13s} {row['file']:50s} {policy:11s} {row['seconds']:7.3f} s  peak {row['ledger_peak_mib']:8.2f} "
            f"MiB  resident {row['resident_mib']:8.2f} MiB  error {error}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "formats.json").write_text(json.dumps({"preset": args.preset, "rows": rows}, indent=2) + "\n")
    scratch.cleanup()


if __name__ == "__main__":
    main()
