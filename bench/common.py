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


def must_hold(model, device, width: int, height: int, frames: int, floor: int = 0) -> int:
    """Bytes the two-stage run of `model` (a ModelSpec) at the output size must hold on `device` while its
    transformer streams, however tight the budget, in the budget's own terms (memory/budget.py): stage 2's LoRA
    factors beside the transformer's layers outside its units, two units in flight and the stage's working memory
    (stage 1 holds less). `floor`: what the host keeps free beside any model (ComfyUI: 0.8 GiB), where the budget
    of this process does not know the host. (The decode's tiles are the decode's own: no budget streams them.)"""
    from ltx2_a2v.ltx2 import activations
    from ltx2_a2v.ltx2.model_spec import ComponentLoad, LoraLoad
    from ltx2_a2v.memory.budget import BUDGET
    from ltx2_a2v.memory.streaming import units_in_flight

    transformer = ComponentLoad(model, "transformer", device, False, None, 0).need()
    dtype = model.precision_on(device).transformer
    stage_2 = activations.denoise(model.config, width, height, frames, 24.0, dtype) + transformer.upcast_bytes
    flight = units_in_flight(device) * max(transformer.unit_bytes.values(), default=0)
    working = max(BUDGET.stage_working(device, stage_2), floor)
    return LoraLoad(model, device).need().total + transformer.other_bytes + flight + working
