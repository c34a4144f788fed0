"""bench/proving_ground.py on the CPU at tiny scale (its whole loop: a fresh process per cell, the pack's budget,
the table): rows with figures for what runs here, a row with the error for what does not, cold apart from warm."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import proving_ground  # noqa: E402  (bench/)


def test_without_a_gpu_it_stops_at_once_saying_so(tmp_path, capsys):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert proving_ground.main(["--models-dir", str(tmp_path)]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err


def test_bad_sizes_are_refused_with_what_to_give(tmp_path, capsys):
    with pytest.raises(SystemExit):
        proving_ground.parse_args(["--models-dir", str(tmp_path), "--size", "100x64x9"])
    assert "multiples of 64" in capsys.readouterr().err


def test_the_whole_loop_on_the_tiny_bundle(tmp_path):
    out = tmp_path / "results"
    argv = [
        "--models-dir",
        str(tmp_path / "models"),
        "--preset",
        "tiny",
        "--make-bundle",
        "--allow-cpu",
        "--size",
        "128x128x9",
        "--steps",
        "2",
        "--runs",
        "2",
        "--policies",
        "fp8_scaled,torchao_fp8_dynamic",
        "--modes",
        "cold_start,persistent,streamed",
        "--out",
        str(out),
    ]
    assert proving_ground.main(argv) == 0
    rows = {(r["policy"], r["mode"]): r for r in json.loads((out / "proving_ground.json").read_text())["rows"]}
    for mode in ("cold_start", "persistent", "streamed"):
        row = rows["fp8_scaled", mode]
        assert row["status"] == "ok" and len(row["runs"]) == 2, row.get("error")
        assert row["cold_seconds"] > 0 and row["warm_seconds"] > 0
        assert all(row["phases"][g][0] > 0 for g in ("text", "denoise", "decode"))
    assert rows["fp8_scaled", "persistent"]["idle_resident_bytes"] > 0
    assert rows["fp8_scaled", "cold_start"]["idle_resident_bytes"] == 0
    streamed = rows["fp8_scaled", "streamed"]
    assert any(c.endswith(", streamed") for c in streamed["runs"][0]["components"])
    assert streamed["budget_bytes"] >= streamed["must_hold_bytes"] > 0  # a budget that can hold what must stay
    failed = rows["torchao_fp8_dynamic", "cold_start"]
    assert failed["status"] == "error" and "compute capability 8.9" in failed["error"]
    table = (out / "proving_ground.md").read_text()
    assert "| fp8_scaled | persistent |" in table and "seed article" in table
    assert (out / "proving_ground.png").stat().st_size > 10_000
