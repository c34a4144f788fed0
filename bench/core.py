"""Side by side with ComfyUI's own LTX-2.3 template: the pack's graph and core's `video_ltx2_3_ia2v` on the same
bundle files, inputs, seed and size, back to back in one run.

    LTX2_COMFYUI=/path/to/ComfyUI make bench-core [ARGS="--preset wide"]
    LTX2_COMFYUI=/path/to/ComfyUI .venv/bin/python bench/core.py [--preset tiny|wide] [--size 256x192x25]
        [--steps 30] [--models-dir DIR] [--out bench/results]

LTX2_COMFYUI is the ComfyUI tree to compare with (0.16 or later: LTX-2.3 in core), LTX2_COMFYUI_PYTHON its Python
(default: this repository's .venv-host/bin/python, made by tools/setup_lane_host.sh). Rows, each a prompt queued on
a fresh server of that tree (`--cpu` without a GPU; the pack loaded beside core's nodes, and the Gemma shim):

- the pack's example graphs (example_workflows/api): the reference recipe with `none`; the fast recipe with `none`
  and with `fp8_scaled` (on the fp8 checkpoint, as core's fp8 row);
- core's template (bench/template_prompt.py) on the bf16 checkpoint and on the fp8 one;
- the fast recipe and core's template on the bf16 checkpoint again with the transformer and the text encoder in
  bf16 (`--bf16-unet --bf16-text-enc`), as both compute on a GPU; the VAEs stay float32 (core's audio VAE encode
  fails on a CPU with `--bf16-vae`);
- the pack's reference recipe again all in bf16 (`--bf16-*`), as ltx-pipelines computes: what the distance to
  ltx-pipelines' frames is worth when the others compute in float32.

On a CPU every other row runs with `--fp32-text-enc`: core keeps its text encoder in float16 there by default,
where the pack computes in float32, as core does the rest. Per row: seconds from queueing the prompt to its
`execution_success` on the websocket; peak memory: for every row the server process's resident-set peak during the
prompt (VmHWM, reset through /proc/<pid>/clear_refs just before it) less its resident set then, and for the pack
its ledger's peak (its run report); bytes read from the bundle: its files are dropped from the page cache before
the prompt, and what of them is in the cache after it was read (mincore; memory-mapped reads count, a page read
twice once), beside the process's read_bytes (/proc/<pid>/io: every file) and the pack's own count (its run
report: every read); the frames' mean absolute error (0-255) and PSNR against ltx-pipelines' A2VidPipelineTwoStage
on the same files and inputs (its reference recipe in bf16, run first in this process's lane as
tests/host/test_fidelity_host.py runs it); the precision each computed in (the pack's run report; core's log).

On a GPU the resident-set peak is still host memory; the pack's ledger is then CUDA's allocator, and core's
device peak is not taken (only ComfyUI's own code could).

Core builds Gemma-3-12B from code: its server gets bench/core_gemma_shim.py as a custom node, which gives that one
config class the bundle's Gemma sizes. Writes bench/results/core_<preset>.json and .png.
"""

import argparse
import ctypes
import json
import mmap
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import ROOT, run_child
from template_prompt import TEMPLATE_ID, TemplateError, find_template, ltx23_ia2v_prompt, set_inputs

PROMPT = "A woman speaks calmly to the camera."
SEED = 42
GIB = 2**30
PACK_API = ROOT / "example_workflows" / "api"
# ComfyUI's own flags: on a CPU core keeps its text encoder in float16 by default, the pack computes it in float32
# (as core does everything else there): float32 for both. The bf16 row runs as ltx-pipelines computes.
FLOAT32_ON_CPU = ("--fp32-text-enc",)
BF16 = ("--bf16-unet", "--bf16-vae", "--bf16-text-enc")
# Transformer and text encoder in bf16, the VAEs in float32: on a CPU core's audio VAE encode fails with
# `--bf16-vae` (its input stays float32, "Input type (float) and bias type (c10::BFloat16) should be the same").
BF16_MODELS = ("--bf16-unet", "--bf16-text-enc")


@dataclass(frozen=True)
class Row:
    name: str
    who: str  # "pack" or "core"
    what: str  # the pack's recipe, or the bundle file core's template loads as its checkpoint
    policy: str | None = None  # the pack's quantization
    flags: tuple[str, ...] | None = None  # the server's dtype flags; None: the default (float32 on a CPU)


ROWS = (
    Row("pack reference, none", "pack", "reference", "none"),
    Row("pack fast, none", "pack", "fast", "none"),
    Row("core template, bf16 checkpoint", "core", "checkpoint"),
    Row("pack fast, fp8_scaled", "pack", "fast", "fp8_scaled"),
    Row("core template, fp8 checkpoint", "core", "fp8_checkpoint"),
    # The same recipe in bf16, as both compute on a GPU (and on a CPU with bf16 matmuls: AMX, AVX512-BF16).
    Row("pack fast, none, bf16", "pack", "fast", "none", flags=BF16_MODELS),
    Row("core template, bf16 checkpoint, bf16", "core", "checkpoint", flags=BF16_MODELS),
    # What the distance is worth: the pack's reference recipe in ltx-pipelines' own precision.
    Row("pack reference, none, bf16", "pack", "reference", "none", flags=BF16),
)


# --- the files and inputs ---------------------------------------------------------------------------------------------


def bundle_files(models_dir: Path, preset: str) -> dict[str, Path]:
    from make_tiny_bundle import FP8_FILE_NAMES, file_names, make_bundle

    paths = {part: models_dir / rel for part, rel in file_names(preset).items()}
    paths.update({part: models_dir / rel.format(preset=preset) for part, rel in FP8_FILE_NAMES.items()})
    if not all(p.exists() for p in paths.values()):
        print(f"bench: writing the {preset} bundle with its fp8 files to {models_dir} (once)", flush=True)
        make_bundle(models_dir, preset, seed=0, fp8=True)
    return paths


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """The sample portrait and a 2 s stereo voice clip (ltx-pipelines' audio VAE takes two channels)."""
    from comfy_host import MEDIA
    from make_sample_media import voice

    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "portrait.png"
    shutil.copy(MEDIA / "ltx2_a2v_portrait.png", image)
    mono = voice(2.0, 22050)
    audio = folder / "voice_stereo.wav"
    with wave.open(str(audio), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(22050)
        f.writeframes(np.stack([mono, (mono * 0.8).astype(np.int16)], axis=1).tobytes())
    return image, audio


# --- ltx-pipelines' frames --------------------------------------------------------------------------------------------


def reference_frames(files: dict, image: Path, audio: Path, size: tuple[int, int, int], steps: int, out: Path) -> dict:
    """In a child process of the pinned lane: ltx-pipelines' A2VidPipelineTwoStage as its command line runs it,
    patched only where it cannot run here (as the fidelity test patches it); the frames saved to `out` (.npy)."""
    import copy
    import types

    import torch
    from ltx_core.components.guiders import MultiModalGuiderParams
    from ltx_core.model.video_vae import TilingConfig
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator
    from ltx_pipelines import a2vid_two_stage
    from ltx_pipelines.utils.args import default_2_stage_arg_parser

    width, height, frames = size
    torch.cuda.synchronize = lambda *args, **kwargs: None
    gemma = json.loads((Path(files["text_encoder"]) / "config.json").read_text())
    encoder_configurator.GEMMA3_CONFIG_FOR_LTX = types.SimpleNamespace(
        to_dict=lambda: copy.deepcopy(gemma), text_config=types.SimpleNamespace(**gemma["text_config"])
    )
    args = default_2_stage_arg_parser().parse_args(
        [
            *("--checkpoint-path", str(files["checkpoint"]), "--gemma-root", str(files["text_encoder"])),
            *("--prompt", PROMPT, "--output-path", str(out.with_suffix(".mp4")), "--seed", str(SEED)),
            *("--height", str(height), "--width", str(width), "--num-frames", str(frames), "--frame-rate", "24"),
            *("--num-inference-steps", str(steps), "--video-cfg-guidance-scale", "3.0"),
            *("--distilled-lora", str(files["distilled_lora"]), "--spatial-upsampler-path"),
            *(str(files["spatial_upsampler"]), "--image", str(image), "0", "1.0"),
        ]
    )
    start = time.perf_counter()
    pipeline = a2vid_two_stage.A2VidPipelineTwoStage(
        checkpoint_path=args.checkpoint_path,
        distilled_lora=args.distilled_lora,
        spatial_upsampler_path=args.spatial_upsampler_path,
        gemma_root=args.gemma_root,
        loras=(),
        device=torch.device("cpu"),
    )
    with torch.inference_mode():
        video, _ = pipeline(
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            seed=args.seed,
            height=args.height,
            width=args.width,
            num_frames=args.num_frames,
            frame_rate=args.frame_rate,
            num_inference_steps=args.num_inference_steps,
            video_guider_params=MultiModalGuiderParams(
                cfg_scale=args.video_cfg_guidance_scale,
                stg_scale=args.video_stg_guidance_scale,
                rescale_scale=args.video_rescale_scale,
                modality_scale=args.a2v_guidance_scale,
                skip_step=args.video_skip_step,
                stg_blocks=args.video_stg_blocks,
            ),
            images=args.images,
            tiling_config=TilingConfig.default(),
            audio_path=str(audio),
            audio_max_duration=args.num_frames / args.frame_rate,
        )
        np.save(out, torch.cat(list(video)).numpy())
    return {"seconds": time.perf_counter() - start, "frames": str(out), "negative_prompt": args.negative_prompt}


def distance(ours: np.ndarray | None, reference: np.ndarray | None) -> dict:
    if ours is None or reference is None:
        return {"mae": None, "psnr": None, "note": "no frames" if ours is None else "no reference frames"}
    if ours.shape != reference.shape:
        return {
            "mae": None,
            "psnr": None,
            "note": f"shape {list(ours.shape)} vs the reference's {list(reference.shape)}",
        }
    diff = ours.astype(np.float64) - reference.astype(np.float64)
    mse = float((diff**2).mean())
    return {"mae": float(np.abs(diff).mean()), "psnr": 10 * np.log10(255**2 / mse) if mse else float("inf")}


# --- one row on a fresh server ----------------------------------------------------------------------------------------


def comfyui_process(host) -> int:
    import psutil

    return psutil.Process(host.process.pid).children()[0].pid


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def read_bytes(pid: int) -> int:
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["read_bytes"])


def drop_from_page_cache(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def pack_prompt(recipe: str, policy: str, files: dict, size: tuple[int, int, int], steps: int, negative: str) -> dict:
    """The pack's example graph of `recipe` with the bundle's files; stage 1 at half the output's size."""
    width, height, frames = size
    prompt = json.loads(
        (PACK_API / ("ltx2_a2v_22b.json" if recipe == "reference" else "ltx2_a2v_22b_fast.json")).read_text()
    )
    checkpoint = files["fp8_checkpoint" if policy == "fp8_scaled" else "checkpoint"]
    prompt["3"]["inputs"].update(
        ckpt_name=checkpoint.name,
        text_encoder=files["text_encoder_file"].name,
        quantization=policy,
        text_encoder_quantization="none",
        residency="cold_start",
        distilled_lora=files["distilled_lora"].name,
        # ltx-pipelines' strength for the reference; the template's for the fast recipe, as core runs it
        distilled_lora_strength=1.0 if recipe == "reference" else 0.5,
    )
    prompt["5"]["inputs"]["upscale_model"] = files["spatial_upsampler"].name
    for node in ("4", "6"):
        prompt[node]["inputs"].update(
            prompt=PROMPT,
            negative_prompt=negative,
            seed=SEED,
            width=width // 2,
            height=height // 2,
            num_frames=frames,
            frame_rate=24.0,
        )
    if recipe == "reference":
        prompt["4"]["inputs"].update(steps=steps, cfg=3.0)
    prompt["1"]["inputs"]["image"], prompt["2"]["inputs"]["audio"] = "portrait.png", "voice_stereo.wav"
    prompt["9"]["inputs"]["filename_prefix"] = "bench/video"
    prompt["20"] = {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "bench/frame"}}
    return prompt


def core_prompt(template: dict, object_info: dict, checkpoint: str, files: dict, size: tuple[int, int, int]) -> dict:
    width, height, frames = size
    prompt = ltx23_ia2v_prompt(
        template,
        object_info,
        checkpoint=files[checkpoint].name,
        distilled_lora=files["distilled_lora"].name,
        text_encoder=files["text_encoder_file"].name,
        upscale_model=files["spatial_upsampler"].name,
        image="portrait.png",
        audio="voice_stereo.wav",
        prompt=PROMPT,
        seed=SEED,
        width=width,
        height=height,
        frames=frames,
        fps=24,
    )
    set_inputs(prompt, "SaveVideo", filename_prefix="bench/video")
    decode = set_inputs(prompt, "VAEDecodeTiled")[0]
    prompt["frames"] = {"class_type": "SaveImage", "inputs": {"images": [decode, 0], "filename_prefix": "bench/frame"}}
    return prompt


def saved_frames(host, result, node: str) -> np.ndarray | None:
    from PIL import Image

    files = sorted(result.outputs(node).get("images", []), key=lambda f: f["filename"])
    if not files:
        return None
    return np.stack([np.array(Image.open(host.output_dir / f["subfolder"] / f["filename"])) for f in files])


# Core's log lines saying which dtype each model is loaded and computes in.
CORE_DTYPE_LINES = re.compile(r"(model weight dtype .*|VAE load device: .*|CLIP/text encoder model load device: .*)")


def core_precision(log: str) -> list[str]:
    lines = []
    for match in CORE_DTYPE_LINES.finditer(re.sub(r"\x1b\[[0-9;]*m", "", log)):
        if match.group(1).strip() not in lines:
            lines.append(match.group(1).strip())
    return lines


def bundle_bytes_in_page_cache(folder: Path) -> int:
    """Bytes of the files under `folder` that are in the page cache (mincore over a mapping of each file)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte))
    page, total = os.sysconf("SC_PAGE_SIZE"), 0
    for path in folder.rglob("*"):
        size = path.stat().st_size if path.is_file() else 0
        if size == 0:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
            try:
                vector = (ctypes.c_ubyte * ((size + page - 1) // page))()
                if libc.mincore(address, size, vector) != 0:
                    raise OSError(ctypes.get_errno(), f"mincore of {path} failed")
                total += min(sum(v & 1 for v in vector) * page, size)
            finally:
                libc.munmap(address, size)
        finally:
            os.close(fd)
    return total


def run_row(row: Row, build_prompt, host_args: dict, work: Path, models_dir: Path, reference) -> dict:
    from comfy_host import ComfyHost, node_timings

    name, who, policy = row.name, row.who, row.policy
    flags = row.flags if row.flags is not None else (FLOAT32_ON_CPU if host_args["cpu"] else ())
    host = ComfyHost(models_dir, work, **{**host_args, "extra_args": (*host_args["extra_args"], *flags)})
    try:
        host.wait_ready(300)
        prompt = build_prompt(host)
        for media in (work.parent / "inputs").iterdir():
            shutil.copy(media, host.input_dir / media.name)
        pid = comfyui_process(host)
        drop_from_page_cache(models_dir)
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        rss_before, read_before = proc_status(pid, "VmRSS"), read_bytes(pid)
        start = time.monotonic()
        result = host.wait(host.queue(prompt), timeout=7200)
        seconds = next((m["received"] for m in result.messages if m["type"] == "execution_success"), time.monotonic())
        seconds -= start
        row_out = {
            "name": name,
            "who": who,
            "policy": policy,
            "status": result.status,
            "seconds": round(seconds, 2),
            "peak_rss_bytes": proc_status(pid, "VmHWM"),
            "rss_before_bytes": rss_before,
            "read_bytes": read_bytes(pid) - read_before,
            "bundle_bytes_in_cache_after": bundle_bytes_in_page_cache(models_dir),
            "server_flags": list(flags),
        }
        row_out["peak_rss_above_start_bytes"] = row_out["peak_rss_bytes"] - rss_before
        if result.status != "success":
            row_out["error"] = result.error() if result.status == "error" else result.status
            print(f"bench: {name} failed: {json.dumps(row_out['error'])[:1500]}", file=sys.stderr)
            return row_out
        frames = saved_frames(host, result, "20" if who == "pack" else "frames")
        row_out["frames_shape"] = None if frames is None else list(frames.shape)
        row_out.update(distance(frames, reference))
        timings = sorted(((k, v) for k, v in node_timings(result).items() if k in prompt), key=lambda kv: -kv[1])
        row_out["slowest_nodes"] = {f"{k} {prompt[k]['class_type']}": round(v, 2) for k, v in timings[:6]}
        if who == "pack":
            report = host.vram()["last_run"]
            row_out.update(
                ledger_peak_bytes=report["peak_bytes"],
                pack_bytes_read=report["bytes_read"],
                pack_reads={
                    f"{stage['name']}: {c.get('name', '?')}": c.get("bytes_read", 0)
                    for stage in report["phases"]
                    for c in stage["components"]
                    if c.get("bytes_read")
                },
                precision=report["precision"],
                report_seconds=report["elapsed_seconds"],
                stage_seconds={stage["name"]: stage["seconds"] for stage in report["phases"]},
            )
        else:
            row_out["precision"] = "; ".join(core_precision(host.log_path.read_text()))
        return row_out
    finally:
        host.stop()


# --- the table and the chart ------------------------------------------------------------------------------------------


def unit(result: dict) -> tuple[str, int]:
    """GiB for the wide preset's figures, MiB for the tiny one's."""
    largest = max((r.get("read_bytes", 0) for r in result["rows"]), default=0)
    return ("GiB", GIB) if largest > GIB else ("MiB", 2**20)


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, size = unit(result)
    rows = [r for r in result["rows"] if r["status"] == "success"]
    labels = [r["name"].replace(", ", "\n") for r in rows]
    colors = ["tab:blue" if r["who"] == "pack" else "tab:orange" for r in rows]
    x = np.arange(len(rows))
    fig, (time_ax, mem_ax, read_ax) = plt.subplots(1, 3, figsize=(19, 5.5))
    time_ax.bar(x, [r["seconds"] for r in rows], color=colors)
    time_ax.set_title("seconds, queue to success")
    mem_ax.bar(x - 0.2, [r["peak_rss_above_start_bytes"] / size for r in rows], 0.4, color=colors, label="RSS peak")
    mem_ax.bar(
        x + 0.2,
        [r.get("ledger_peak_bytes", 0) / size for r in rows],
        0.4,
        color=colors,
        hatch="//",
        alpha=0.5,
        label="the pack's ledger peak",
    )
    mem_ax.set_title(f"peak {name}: resident set above the idle server's (the pack: also its ledger)")
    mem_ax.legend(fontsize=8)
    read_ax.bar(x, [r["read_bytes"] / size for r in rows], color=colors)
    read_ax.set_title(f"{name} read from disk (the bundle dropped from the page cache first)")
    for ax in (time_ax, mem_ax, read_ax):
        ax.set_xticks(x, labels, fontsize=7)
        ax.title.set_fontsize(9)
    fig.suptitle(
        f"the pack (blue) and ComfyUI {result['comfyui_version']}'s {result['template']} (orange): "
        f"{result['preset']} preset, {result['size']}, {result['cpu']}, one run each",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_table(result: dict) -> None:
    name, size = unit(result)
    print(
        f"\n{'row':38s} {'seconds':>8s} {'ledger ' + name:>10s} {'RSS ' + name:>9s} {'read ' + name:>9s} "
        f"{'cached ' + name:>10s} {'pack ' + name:>9s} {'MAE':>6s} {'PSNR':>6s}"
    )

    def figure(r, key, width):
        return f"{r[key] / size:{width}.2f}" if r.get(key) is not None else f"{'':>{width}s}"

    for r in result["rows"]:
        if r["status"] != "success":
            print(f"{r['name']:38s} {r['status']}: {json.dumps(r.get('error'))[:200]}")
            continue
        mae = f"{r['mae']:6.2f}" if r.get("mae") is not None else f"{'-':>6s}"
        psnr = f"{r['psnr']:6.1f}" if r.get("psnr") is not None else f"{'-':>6s}"
        print(
            f"{r['name']:38s} {r['seconds']:8.1f} {figure(r, 'ledger_peak_bytes', 10)} "
            f"{figure(r, 'peak_rss_above_start_bytes', 9)} {figure(r, 'read_bytes', 9)} "
            f"{figure(r, 'bundle_bytes_in_cache_after', 10)} {figure(r, 'pack_bytes_read', 9)} {mae} {psnr}"
        )
        print(f"{'':38s} {r['precision']}")


# --- main -------------------------------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int, int]:
    try:
        width, height, frames = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: WIDTHxHEIGHTxFRAMES, e.g. 256x192x25") from None
    if width % 64 or height % 64 or (frames - 1) % 8:
        raise argparse.ArgumentTypeError(
            f"{text}: the output's width and height must be multiples of 64 (ltx-pipelines' two-stage pipeline) "
            "and frames 8k+1"
        )
    return width, height, frames


def comfyui_tree() -> tuple[Path, str]:
    tree = os.environ.get("LTX2_COMFYUI")
    if not tree:
        raise SystemExit("bench-core: set LTX2_COMFYUI to the ComfyUI tree to compare with (0.16 or later)")
    tree = (ROOT / tree).resolve()
    python = os.environ.get("LTX2_COMFYUI_PYTHON", str(ROOT / ".venv-host" / "bin" / "python"))
    if not (tree / "main.py").is_file():
        raise SystemExit(f"bench-core: LTX2_COMFYUI={tree} is not a ComfyUI tree (no main.py there)")
    if not any("LTXAVTextEncoderLoader" in p.read_text() for p in (tree / "comfy_extras").glob("nodes_lt*.py")):
        raise SystemExit(
            f"bench-core: the ComfyUI in {tree} has no LTX-2.3 nodes (LTXAVTextEncoderLoader in comfy_extras/: "
            "ComfyUI 0.16 and later); point LTX2_COMFYUI at a newer tree"
        )
    if not Path(python).is_file():
        raise SystemExit(
            f"bench-core: no Python at {python}: run `bash tools/setup_lane_host.sh {tree}` (it makes .venv-host), "
            "or set LTX2_COMFYUI_PYTHON to the Python that runs that tree"
        )
    return tree, python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="wide", choices=["tiny", "wide"])
    parser.add_argument("--size", type=parse_size, default=(256, 192, 25), help="the output's WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--steps", type=int, default=30, help="stage 1 steps of the reference recipe")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--reference-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_child:
        spec = json.loads(args.reference_child)
        files = {k: Path(v) for k, v in spec["files"].items()}
        out = reference_frames(
            files, Path(spec["image"]), Path(spec["audio"]), args.size, args.steps, Path(spec["out"])
        )
        print(json.dumps(out))
        return 0

    tree, python = comfyui_tree()
    try:
        template = json.loads(find_template(python).read_text())
    except TemplateError as e:
        raise SystemExit(f"bench-core: {e}") from None
    files = bundle_files(args.models_dir, args.preset)
    work = Path(tempfile.mkdtemp(prefix="bench-core-"))
    image, audio = write_inputs(work / "inputs")

    print("bench: ltx-pipelines' reference frames (bf16, in this lane)", flush=True)
    spec = {
        "files": {k: str(v) for k, v in files.items()},
        "image": str(image),
        "audio": str(audio),
        "out": str(work / "reference.npy"),
    }
    size_arg = "x".join(map(str, args.size))
    reference_run = run_child(
        [
            sys.executable,
            __file__,
            "--reference-child",
            json.dumps(spec),
            "--size",
            size_arg,
            "--steps",
            str(args.steps),
        ]
    )
    reference = np.load(reference_run.pop("frames")) if reference_run else None
    negative = reference_run["negative_prompt"] if reference_run else "blurry, low quality"

    # The shim, in a custom-node folder of its own, for every server of the run (it changes core's Gemma only).
    shim = work / "custom_nodes" / "ltx2_bench_core_gemma_shape"
    shim.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("core_gemma_shim.py"), shim / "__init__.py")
    shutil.copy(files["text_encoder"] / "config.json", shim / "gemma_config.json")
    (work / "shim.yaml").write_text(f"ltx2_bench_shim:\n  custom_nodes: {shim.parent}\n")
    host_args = {
        "python": python,
        "comfyui": str(tree),
        "cpu": not _has_cuda(python),
        "extra_args": ("--extra-model-paths-config", str(work / "shim.yaml")),
    }
    object_info = {}

    def build(row):
        def build_prompt(host):
            if not object_info:
                object_info.update(host.object_info())
            if row.who == "pack":
                return pack_prompt(row.what, row.policy, files, args.size, args.steps, negative)
            return core_prompt(template, object_info, row.what, files, args.size)

        return build_prompt

    rows = []
    for i, row in enumerate(ROWS):
        print(f"bench: {row.name}", flush=True)
        rows.append(run_row(row, build(row), host_args, work / f"row{i}", args.models_dir, reference))
        print(f"bench: {row.name}: {rows[-1]['status']}, {rows[-1]['seconds']:.1f} s", flush=True)

    result = {
        "preset": args.preset,
        "size": size_arg,
        "steps": args.steps,
        "seed": SEED,
        "prompt": PROMPT,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "comfyui": str(tree),
        "comfyui_version": _comfyui_version(tree),
        "template": TEMPLATE_ID,
        "python": platform.python_version(),
        "reference": reference_run,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"core_{args.preset}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    chart(result, stem.with_suffix(".png"))
    print_table(result)
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["status"] == "success" for r in rows) else 1


def _has_cuda(python: str) -> bool:
    done = subprocess.run([python, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True)
    return done.stdout.strip() == b"True"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _comfyui_version(tree: Path) -> str:
    for line in (tree / "comfyui_version.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
