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


def bench_model(models_dir: Path, preset: str, **spec):
    """The loader node's output for the preset's bundle in `models_dir`, with `spec` (quantization, residency...)."""
    from tiny_run import bundle_paths, model_of

    return model_of(bundle_paths(models_dir, preset), **spec)


def bench_inputs(voice_seconds: float = 2.0, **fields):
    """The benchmarks' run: a 320x240 portrait, `voice_seconds` of the sample voice (22.05 kHz, mono), stage 1 at
    128x96, 17 frames, 4 steps, seed 42; any RunInputs field overrides."""
    import torch
    from make_sample_media import voice
    from tiny_run import portrait, run_inputs

    waveform = torch.from_numpy(voice(voice_seconds).astype("float32") / 32768).view(1, 1, -1)
    defaults = dict(image=portrait(240, 320), waveform=waveform, seed=42, width=128, height=96, num_frames=17, steps=4)
    return run_inputs(rate=22050, **{**defaults, **fields})


def must_hold(model, device, width: int, height: int, frames: int, floor: int = 0) -> int:
    """Bytes the two-stage run of `model` (a ModelSpec) at the output size must hold on `device` while its
    transformer streams, however tight the budget, in the budget's own terms (memory/budget.py): stage 2's LoRA
    factors beside the transformer's layers outside its units, two units in flight and the stage's working memory
    (stage 1 holds less). `floor`: what the host keeps free beside any model (ComfyUI: 0.8 GiB), where the budget
    of this process does not know the host. (The decode's tiles are the decode's own: no budget streams them.)"""
    from ltx2_a2v.ltx2.components import activations
    from ltx2_a2v.ltx2.components.model_spec import ComponentLoad, LoraLoad
    from ltx2_a2v.memory.budget import BUDGET
    from ltx2_a2v.memory.streaming import units_in_flight

    transformer = ComponentLoad(model, "transformer", device, False, None, 0).need()
    dtype = model.precision_on(device).transformer
    stage_2 = activations.denoise(model.config, width, height, frames, 24.0, dtype) + transformer.upcast_bytes
    flight = units_in_flight(device) * max(transformer.unit_bytes.values(), default=0)
    working = max(BUDGET.phase_working(device, stage_2), floor)
    return LoraLoad(model, device).need().total + transformer.other_bytes + flight + working
