"""bench/gpu_a2v.py without a GPU: it refuses at once (no CUDA, missing files, bad arguments), and with
--allow-cpu its whole loop runs through a real ComfyUI host on the tiny bundle; its rows, table and chart."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_a2v.py"
sys.path.insert(0, str(ROOT / "bench"))

import gpu_a2v  # noqa: E402  (bench/)
from make_tiny_bundle import file_names  # noqa: E402  (tools/)


def tiny_files(models_dir: Path) -> list[str]:
    names = file_names("tiny")
    return [
        "--models-dir",
        str(models_dir),
        "--checkpoint",
        Path(names["checkpoint"]).name,
        "--lora",
        Path(names["distilled_lora"]).name,
        "--upscaler",
        Path(names["spatial_upsampler"]).name,
        "--text-encoder",
        Path(names["text_encoder"]).name,
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_a_gpu_it_exits_at_once_saying_so(models_dir):
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *tiny_files(models_dir)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "no CUDA GPU" in done.stderr and "--allow-cpu" in done.stderr
    assert time.monotonic() - start < 30  # no host was started


def test_missing_files_are_named_before_any_host_starts(models_dir, tmp_path, capsys):
    argv = [
        *tiny_files(models_dir),
        "--lora",
        "ltx-2.3-22b-distilled-lora-384-1.1.safetensors",
        "--allow-cpu",
        "--work-dir",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "out.json"),
    ]
    assert gpu_a2v.main(argv) == 1
    err = capsys.readouterr().err
    assert f"missing distilled_lora: {models_dir / 'loras' / 'ltx-2.3-22b-distilled-lora-384-1.1.safetensors'}" in err
    assert "checkpoint" not in err and "CUDA" not in err
    assert not (tmp_path / "work").exists() and not (tmp_path / "out.json").exists()


def test_without_models_dir_the_release_files_are_asked_for(capsys):
    assert gpu_a2v.main(["--allow-cpu"]) == 1
    assert "--models-dir not given" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--resolutions", "100x50"], "100x50: width and height must be multiples of 64"),
        (["--resolutions", "768x512,800"], "'800' is not WIDTHxHEIGHT"),
        (["--resolutions", "64x64"], "at least 128"),
        (["--policies", "none,fp9_magic"], "unknown policy fp9_magic; valid: none, as_stored, fp8_cast"),
        (["--modes", "warm"], "unknown mode warm; valid: cold_start, persistent, streamed"),
        (["--frames", "96"], "--frames 96: the model takes 8k+1 frames"),
        (["--runs", "0"], "--runs and --steps must be at least 1"),
        (["--stream-budget-gb", "0"], "--stream-budget-gb must be above 0"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_change(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_a2v.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_are_the_seed_articles_grid_on_the_release_files():
    args = gpu_a2v.parse_args(["--models-dir", "/models"])
    assert args.resolutions == [(768, 512), (1024, 768), (1280, 768)]
    assert (args.frames, args.seed, args.runs) == (97, 42, 3)
    assert args.policies == ["none", "fp8_cast", "fp8_scaled", "torchao_fp8_dynamic", "torchao_int8_weight_only"]
    assert args.checkpoint == "ltx-2.3-22b-dev.safetensors" and args.text_encoder.startswith("gemma-3-12b")
    cells, notes = gpu_a2v.grid(args)
    # streamed only for the policies that stream: 5 x 2 + 3 x 1 modes, 3 sizes each
    assert len(cells) == (5 * 2 + 3) * 3 and len(notes) == 2
    assert {c.policy for c in cells if c.mode == "streamed"} == {"none", "fp8_cast", "fp8_scaled"}


def test_the_fp8_release_files_alone_are_enough(tmp_path):
    """--fp8-release: the fp8 checkpoint and ComfyUI's fp8 Gemma file (kept in fp8), with the LoRA and the upscaler:
    what fits a 64 GiB disk; a single Gemma file is found where a folder was expected."""
    args = gpu_a2v.parse_args(["--models-dir", str(tmp_path), "--fp8-release"])
    assert (args.checkpoint, args.text_encoder) == (gpu_a2v.FP8_CHECKPOINT, gpu_a2v.FP8_TEXT_ENCODER)
    assert args.text_encoder_quantization == "fp8_scaled"
    for path in gpu_a2v.model_files(args).values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert gpu_a2v.missing(args, cuda=True) == []
    prompt = gpu_a2v.workflow(gpu_a2v.Cell("fp8_scaled", "cold_start", 768, 512), args, None, "x/y")
    loader = prompt["3"]["inputs"]
    assert loader["ckpt_name"] == gpu_a2v.FP8_CHECKPOINT and loader["text_encoder_quantization"] == "fp8_scaled"


def test_workflow_takes_the_cells_values_and_streams_under_a_guard():
    args = gpu_a2v.parse_args(["--models-dir", "/models", "--steps", "4", "--frames", "17"])
    prompt = gpu_a2v.workflow(gpu_a2v.Cell("fp8_cast", "streamed", 1024, 768), args, 1.5, "x/y")
    assert prompt["3"]["inputs"]["quantization"] == "fp8_cast" and prompt["3"]["inputs"]["residency"] == "cold_start"
    assert (
        prompt["3"]["inputs"]["ckpt_name"] == args.checkpoint
        and prompt["5"]["inputs"]["upscale_model"] == args.upscaler
    )
    for node in ("4", "6"):
        inputs = prompt[node]["inputs"]
        assert (inputs["width"], inputs["height"], inputs["num_frames"], inputs["seed"]) == (512, 384, 17, 42)
        assert inputs["model"] == ["11", 0]
    assert prompt["4"]["inputs"]["steps"] == 4
    assert prompt["11"]["inputs"] == {"budget_gb": 1.5, "action": "enforce", "passthrough": ["3", 0]}
    assert prompt["10"]["inputs"]["budget_gb"] == 0.0  # the device's budget again after the run
    persistent = gpu_a2v.workflow(gpu_a2v.Cell("none", "persistent", 768, 512), args, None, "x/y")
    assert persistent["3"]["inputs"]["residency"] == "persistent" and "11" not in persistent


def run(seconds, peak, reserved, idle, components=("transformer",), text=0):
    """One run as measure() gives it: the denoising phases peak at `peak` / `reserved`, the text encoder at `text`."""
    return {
        "seconds": seconds,
        "peak_bytes": max(peak, text),
        "peak_reserved_bytes": max(reserved, text),
        "phase_peaks": {"text": (text, text), "denoise": (peak, reserved), "decode": (peak // 4, reserved // 4)},
        "idle_resident_bytes": idle,
        "idle_reserved_bytes": idle + 2**30,
        "idle_pinned_bytes": 0,
        "components": list(components),
    }


def row(mode="persistent", runs=(), **extra):
    return {"policy": "fp8_cast", "mode": mode, "width": 768, "height": 512, "frames": 97, "runs": list(runs), **extra}


def test_rows_aggregate_their_runs_cold_apart_from_warm_and_by_phase():
    gib = 2**30
    summary = gpu_a2v.summarize(
        row(
            runs=[
                run(60.0, 50 * gib, 52 * gib, 40 * gib, text=70 * gib),
                run(39.0, 57 * gib, 58 * gib, 51 * gib),
                run(42.0, 56 * gib, 59 * gib, 51 * gib),
            ]
        )
    )
    assert summary["status"] == "ok"
    assert summary["cold_seconds"] == 60.0 and summary["warm_seconds"] == pytest.approx(40.5)  # the first apart
    # A bf16 text encoder's 70 GiB does not hide the transformers' figures: each phase group has its own.
    assert summary["phase_peaks"]["denoise"] == [57 * gib, 59 * gib] and summary["phase_peaks"]["text"][0] == 70 * gib
    assert summary["idle_resident_bytes"] == 51 * gib and summary["idle_reserved_bytes"] == 52 * gib  # the last run
    failed = gpu_a2v.summarize(row(error="A2VSampler: out of memory while running on cuda:0"))
    assert failed["status"] == "error" and "mean_seconds" not in failed
    unstreamed = gpu_a2v.summarize(row("streamed", [run(1.0, 1, 1, 0)]))
    assert unstreamed["status"] == "not streamed"
    streamed = gpu_a2v.summarize(row("streamed", [run(1.0, 1, 1, 0, ["transformer, streamed"])]))
    assert streamed["status"] == "ok"


def test_table_has_a_line_per_row_with_figures_or_the_error():
    gib = 2**30
    ok = gpu_a2v.summarize(
        row(
            runs=[
                run(88.8, int(23.9 * gib), int(25.0 * gib), 0),
                run(39.84, int(57.92 * gib), int(59.5 * gib), int(51.7 * gib)),
            ]
        )
    )
    failed = gpu_a2v.summarize(
        row(
            "cold_start",
            error="LoadLTX2Quantized: quantization: torchao_fp8_dynamic runs "
            "fp8 matmuls on compute capability 8.9+ " + "x" * 200 + "\nsecond line",
        )
    )
    lines = gpu_a2v.table([ok, failed]).splitlines()
    assert len(lines) == 4 and "denoise GiB" in lines[0] and "idle GiB" in lines[0]
    assert lines[2].split() == [
        "fp8_cast",
        "persistent",
        "768x512x97",
        "2",
        "88.80",
        "39.84",
        "0.0/",
        "0.0",
        "57.9/",
        "59.5",
        "14.5/",
        "14.9",
        "51.7/52.7/",
        "0.0",
        "ok",
    ]
    assert "error: LoadLTX2Quantized: quantization: torchao_fp8_dynamic" in lines[3] and lines[3].endswith("...")
    assert "second line" not in lines[3] and lines[3].split()[4:10] == ["-"] * 6


def test_whole_loop_on_the_cpu_through_a_real_host(models_dir, tmp_path, capsys):
    out = tmp_path / "results" / "gpu_a2v.json"
    argv = [
        *tiny_files(models_dir),
        "--allow-cpu",
        "--resolutions",
        "256x192",
        "--frames",
        "17",
        "--runs",
        "1",
        "--steps",
        "3",
        "--policies",
        "none,torchao_fp8_dynamic",
        "--modes",
        "cold_start,persistent,streamed",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
    ]
    assert gpu_a2v.main(argv) == 0
    printed = capsys.readouterr().out
    print(printed)  # the table, for whoever reads the test log
    result = json.loads(out.read_text())
    rows = {(r["policy"], r["mode"]): r for r in result["rows"]}
    # torchao_fp8_dynamic does not stream, so it has no streamed row
    assert list(rows) == [
        ("none", "cold_start"),
        ("none", "persistent"),
        ("none", "streamed"),
        ("torchao_fp8_dynamic", "cold_start"),
        ("torchao_fp8_dynamic", "persistent"),
    ]
    for mode in ("cold_start", "persistent", "streamed"):
        r = rows["none", mode]
        assert r["status"] == "ok" and len(r["runs"]) == 1 and (r["width"], r["height"], r["frames"]) == (256, 192, 17)
        assert r["cold_seconds"] > 0 and r["phase_peaks"]["denoise"][0] > 0 and r["phase_peaks"]["text"][0] > 0
        assert {"stage 1 denoise", "stage 2 denoise", "decode"} <= {s["name"] for s in r["runs"][0]["phases"]}
    assert rows["none", "persistent"]["idle_resident_bytes"] > 0
    assert rows["none", "cold_start"]["idle_resident_bytes"] == 0
    assert rows["none", "streamed"]["idle_resident_bytes"] == 0
    assert "transformer, streamed" in rows["none", "streamed"]["runs"][0]["components"]
    # the policy this device cannot run is a row with its message, and the loop went on
    for mode in ("cold_start", "persistent"):
        failed = rows["torchao_fp8_dynamic", mode]
        assert failed["status"] == "error" and failed["runs"] == [] and "torchao_fp8_dynamic" in failed["error"]
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "none                       streamed" in printed and "error: LoadLTX2Quantized" in printed
