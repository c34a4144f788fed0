"""What a repeated prompt and a kept component cost: bytes read from model files and seconds, per run.

    .venv/bin/python bench/repeat_prompt.py [--preset wide] [--models-dir DIR] [--policy none]

In one process, three runs of the two-stage pipeline with the same prompts (stage 1 at 128x96, 17 frames, 4
steps): `cold_start` with no prompt kept (as every run was before prompts were kept), `cold_start` again (the
prompt kept: no text encoder built), then `persistent` twice (the second reads nothing). Prints each run's
seconds, text-encode seconds and bytes read, and the ratios to the first run.
"""

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, ensure_bundle

MIB = 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="wide", choices=["tiny", "wide"])
    parser.add_argument("--policy", default="none")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    args = parser.parse_args()
    ensure_bundle(args.models_dir, args.preset)

    import torch
    from _pack import import_pack
    from make_sample_media import voice
    from make_tiny_bundle import file_names

    import_pack()
    from ltx2_a2v.ltx2.a2v import stages as a2v
    from ltx2_a2v.ltx2.checkpoint import read_checkpoint_config
    from ltx2_a2v.ltx2.components import Bundle
    from ltx2_a2v.ltx2.model_spec import ModelSpec
    from ltx2_a2v.memory.budget import BUDGET

    names = file_names(args.preset)
    bundle = Bundle(
        *(args.models_dir / names[k] for k in ("checkpoint", "text_encoder", "spatial_upsampler", "distilled_lora"))
    )
    config = read_checkpoint_config(bundle.checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    image = torch.rand(1, 240, 320, 3, generator=torch.Generator().manual_seed(0))
    waveform = torch.from_numpy(voice(2.0).astype("float32") / 32768).view(1, 1, -1)

    rows = []
    for label, residency in [
        ("cold_start, new prompt", "cold_start"),
        ("cold_start, repeated prompt", "cold_start"),
        ("persistent, first", "persistent"),
        ("persistent, second", "persistent"),
    ]:
        model = ModelSpec(bundle, config, quantization=args.policy, residency=residency)
        BUDGET.begin_run(label, args.policy, residency)
        start = time.perf_counter()
        latent = a2v.sample_base(
            model, device, image, waveform, 22050, "A woman speaks.", "blurry", 42, 128, 96, 17, 24.0, 4, 3.0
        )
        latent = a2v.sample_refine(model, device, a2v.upscale(model, device, latent), "A woman speaks.", 42)
        a2v.decode(model, device, latent)
        report = BUDGET.last_run.as_dict()
        text = sum(s["seconds"] for s in report["stages"] if s["name"] == "text encode")
        rows.append((label, time.perf_counter() - start, text, report["bytes_read"]))
    BUDGET.free_all()

    first = rows[0]
    print(f"{args.preset} bundle, policy {args.policy}, {device}")
    print("| run | seconds | text encode s | bytes read | read / first run |")
    print("|---|---|---|---|---|")
    for label, seconds, text, read in rows:
        print(f"| {label} | {seconds:.1f} | {text:.2f} | {read / MIB:,.1f} MiB | {read / first[3]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
