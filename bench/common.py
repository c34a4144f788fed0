"""What the benchmarks share: the bundle they run on, and running one measurement in a fresh process."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def ensure_bundle(models_dir: Path, preset: str) -> None:
    from make_tiny_bundle import file_names, make_bundle

    if not (models_dir / file_names(preset)["checkpoint"]).is_file():
        print(f"bench: writing the {preset} bundle to {models_dir} (once)", flush=True)
        make_bundle(models_dir, preset, seed=0)


def run_child(command: list[str]) -> dict | None:
    """Runs a measurement in its own process (so its memory figures are its own); its last stdout line is JSON."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])
