"""Long videos in windows: flat memory, linear time, and what the seams look like.

    .venv/bin/python bench/windows.py [--preset tiny|wide] [--windows 1 2 4] [--out bench/results]
    .venv/bin/python bench/windows.py --example 60

Rows: the whole two-stage graph (fast recipe, cold_start, stage 1 at 128x96, windows of 33 frames with 8 of
overlap, decoded to an mp4 as it decodes, in temporal tiles of 16 frames: a window spans several), with 1, 2 and 4
windows, each in a fresh process. Per row: each stage's peak on the device-memory ledger (memory/ledger.py) and
seconds, from the run report, and each window's seconds. Then, on the 4-window row's video: at each seam, the mean
absolute difference (0-255) between the last frame the previous window made and the first one the next window
made, beside the same figure between consecutive frames inside windows; and the overlap frames decoded from each
window's own latent against the previous window's (the latents are the same there: what differs comes from the
decoder seeing other frames around them). Writes windows_<preset>.json.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, bench_inputs, bench_model, ensure_bundle, run_child

WINDOW, OVERLAP = 33, 8
MIB = 2**20


def tiling():
    """The decoder's tiles: the reference's spatial ones, and temporal tiles of 16 frames (8 shared), shorter than a
    window as the default 64 are shorter than a real (20 s) window: the decode's peak is then a tile's, whatever the
    video's length."""
    from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

    return TilingConfig(spatial_config=SpatialTilingConfig(512, 64), temporal_config=TemporalTilingConfig(16, 8))


def frames_for(windows: int) -> int:
    """The video's frames that make `windows` windows of WINDOW frames with OVERLAP (5 latent frames, 1 shared)."""
    latent, overlap = (WINDOW - 1) // 8 + 1, OVERLAP // 8
    return 8 * (latent + (windows - 1) * (latent - overlap) - 1) + 1


def run_row(windows: int, models_dir: Path, preset: str, seams: bool) -> dict:
    """In the child process: one run of the graph; the run report's figures, and the seams when asked."""
    import torch
    from _pack import import_pack

    import_pack()
    from ltx2_a2v.ltx2.a2v.decode import decode, decode_to_mp4
    from ltx2_a2v.ltx2.a2v.graph import two_stage_latent
    from ltx2_a2v.memory.budget import BUDGET

    model = bench_model(models_dir, preset, quantization="none", residency="cold_start")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    frames = frames_for(windows)
    inputs = bench_inputs(
        frames / 24 + 0.1, num_frames=frames, window_frames=WINDOW, overlap_frames=OVERLAP, recipe="fast", cfg=1.0
    )
    BUDGET.begin_run(f"windows-{windows}", "none", "cold_start")
    start = time.perf_counter()
    latent = two_stage_latent(model, device, inputs)
    with tempfile.TemporaryDirectory() as folder:
        decode_to_mp4(model, device, latent, Path(folder) / "long.mp4", tiling=tiling())
    seconds = time.perf_counter() - start
    report = BUDGET.last_run.as_dict()
    row = {
        "windows": windows,
        "frames": frames,
        "seconds": seconds,
        "peak_bytes": report["peak_bytes"],
        "phases": {
            s["name"]: {"seconds": s["seconds"], "peak_above_start": s["peak_bytes"] - s["start_bytes"]}
            for s in report["phases"]
        },
        "device": str(device),
        # Each window's seconds, from the run report's notes ("stage 1: window 2 of 4, latent frames 4 to 8, 3.1 s").
        "window_seconds": [
            (n.split(":")[0], float(n.rsplit(", ", 1)[1].removesuffix(" s")))
            for n in report["notes"]
            if ": window " in n
        ],
    }
    if seams:
        video, _ = decode(model, device, latent, tiling=tiling())
        row["seams"] = seam_figures(model, device, latent, (video * 255).round())
    return row


def seam_figures(model, device, latent, video) -> dict:
    """The seam figures of a decoded windowed video (see the module's docstring)."""
    import dataclasses

    import torch

    from ltx2_a2v.ltx2.a2v.decode import decode

    windows = latent.windows
    steps = (video[1:] - video[:-1]).abs().mean(dim=(1, 2, 3))  # frame t+1 against frame t
    joins = [w.first_frame + 8 * (w.overlap - 1) + 1 for w in windows[1:]]  # the first frame each window makes
    inside = [float(d) for t, d in enumerate(steps, 1) if t not in joins]
    own = []
    for before, after in zip(windows, windows[1:]):
        parts = []
        for w in (before, after):
            piece = latent.video[:, :, w.start : w.start + w.latent_frames]
            part = dataclasses.replace(latent, video=piece, num_frames=w.frames, windows=())
            parts.append((decode(model, device, part, tiling=tiling())[0] * 255).round())
        shared = 8 * (after.overlap - 1) + 1  # the overlap's frames, at the end of one and the start of the other
        own.append(float((parts[0][-shared:] - parts[1][:shared]).abs().mean()))
    return {
        "seam_steps": [float(steps[t - 1]) for t in joins],
        "inside_step_mean": sum(inside) / len(inside),
        "overlap_decoded_apart": own,
        "consecutive": float(torch.tensor(inside).mean()),
    }


def example(models_dir: Path, seconds: float, width: int, height: int) -> dict:
    """The long-voice example workflow (example_workflows/api/ltx2_a2v_long_voice.json) on the tiny bundle through a
    real ComfyUI server: a voice track of `seconds`, stage 1 at width x height. Frames, seconds, the run report's
    peak and the saved mp4's video and audio durations."""
    import shutil
    import wave

    from comfy_host import MEDIA, ComfyHost
    from make_sample_media import voice
    from make_tiny_bundle import file_names

    sys.path.insert(0, str(ROOT / "tests"))
    from workflows import read_mp4, saved_mp4

    names = {k: Path(v).name for k, v in file_names("tiny").items()}
    prompt = json.loads((ROOT / "example_workflows" / "api" / "ltx2_a2v_long_voice.json").read_text())
    prompt["2"]["inputs"]["audio"] = "long_voice.wav"
    prompt["3"]["inputs"].update(
        ckpt_name=names["checkpoint"],
        text_encoder=Path(file_names("tiny")["text_encoder"]).name,
        text_encoder_quantization="none",
        distilled_lora=names["distilled_lora"],
    )
    prompt["4"]["inputs"].update(width=width, height=height)
    prompt["5"]["inputs"]["upscale_model"] = names["spatial_upsampler"]
    with tempfile.TemporaryDirectory() as work:
        host = ComfyHost(models_dir, Path(work))
        try:
            shutil.copy(MEDIA / "ltx2_a2v_portrait.png", host.input_dir)
            with wave.open(str(host.input_dir / "long_voice.wav"), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(22050)
                out.writeframes(voice(seconds).astype("<i2").tobytes())
            host.wait_ready()
            start = time.perf_counter()
            result = host.run(prompt, timeout=7200)
            elapsed = time.perf_counter() - start
            if result.status != "success":
                raise RuntimeError(f"the example failed: {result.messages[-1]}")
            frames, info = read_mp4(saved_mp4(host, result))
            report = host.vram()["last_run"]
        finally:
            host.stop()
    return {
        "voice_seconds": seconds,
        "stage_1_size": f"{width}x{height}",
        "frames": int(frames.shape[0]),
        "frame_size": list(frames.shape[1:3]),
        "seconds": elapsed,
        "peak_bytes": report["peak_bytes"],
        "video_seconds": frames.shape[0] / info["fps"],
        "audio_seconds": info["audio_seconds"],
        "windows": [n for n in report["notes"] if n.startswith("stage 1: window")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "wide"])
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--example",
        type=float,
        metavar="SECONDS",
        help="instead: the long-voice example workflow on the tiny bundle with a voice track of SECONDS (60)",
    )
    args = parser.parse_args()
    if args.example:
        ensure_bundle(args.models_dir, "tiny")
        row = example(args.models_dir, args.example, 64, 64)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "windows_example.json").write_text(json.dumps(row, indent=2))
        print(
            f"{row['voice_seconds']:g} s voice, stage 1 {row['stage_1_size']}: {row['frames']} frames of "
            f"{row['frame_size'][1]}x{row['frame_size'][0]} in {row['seconds']:.0f} s, peak "
            f"{row['peak_bytes'] / MIB:.0f} MiB; mp4 video {row['video_seconds']:.2f} s, audio "
            f"{row['audio_seconds']:.2f} s; {len(row['windows'])} windows"
        )
        return 0
    last = max(args.windows)
    if args.one:
        print(json.dumps(run_row(args.one, args.models_dir, args.preset, seams=args.one == last and args.one > 1)))
        return 0
    ensure_bundle(args.models_dir, args.preset)
    rows = []
    for windows in args.windows:
        command = [sys.executable, __file__, "--one", str(windows), "--preset", args.preset]
        command += ["--models-dir", str(args.models_dir), "--windows", *map(str, args.windows)]
        row = run_child(command)
        if row is None:
            return 1
        rows.append(row)
        print(f"bench: {windows} window(s) done", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"windows_{args.preset}.json").write_text(json.dumps({"preset": args.preset, "rows": rows}, indent=2))

    one = rows[0]
    names = list(one["phases"])
    print(f"\n{args.preset} preset, {one['device']}; stage 1 at 128x96, windows of {WINDOW} frames, {OVERLAP} shared")
    print("| windows | frames | " + " | ".join(f"{n} peak MiB / s" for n in names) + " | run s |")
    print("|---" * (len(names) + 3) + "|")
    for r in rows:
        cells = [f"{r['stages'][n]['peak_above_start'] / MIB:.1f} / {r['stages'][n]['seconds']:.2f}" for n in names]
        print(f"| {r['windows']} | {r['frames']} | " + " | ".join(cells) + f" | {r['seconds']:.1f} |")
    for r in rows[1:]:
        ratios = [r["phases"][n]["peak_above_start"] / max(one["phases"][n]["peak_above_start"], 1) for n in names]
        print(
            f"{r['windows']} windows: each stage's peak / one window's: max {max(ratios):.2f}; time "
            f"{r['seconds'] / one['seconds']:.2f}x one window's (linear would be {r['windows']}x)"
        )
    for r in rows[1:]:
        for stage in ("stage 1", "stage 2"):
            times = [t for name, t in r["window_seconds"] if name == stage]
            print(f"{r['windows']} windows, {stage}: each window's seconds " + ", ".join(f"{t:.1f}" for t in times))
    seams = rows[-1].get("seams")
    if seams:
        print(
            f"seams ({rows[-1]['windows']} windows): step at each join "
            + ", ".join(f"{s:.2f}" for s in seams["seam_steps"])
            + f" vs {seams['inside_step_mean']:.2f} between consecutive frames inside windows; overlap frames decoded "
            "from each window apart: " + ", ".join(f"{s:.2f}" for s in seams["overlap_decoded_apart"])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
