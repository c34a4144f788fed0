"""A model and a run's inputs on a generated bundle, with defaults: what the tests and benchmarks share, so that
each states only what it changes.

    from tiny_run import model_of, run_inputs
    model = model_of(paths, quantization="fp8_scaled")
    frames, audio = two_stage(model, "cpu", run_inputs(num_frames=17))
"""

import math
from pathlib import Path

import torch
from _pack import import_pack

import_pack()
from ltx2_a2v.ltx2.a2v.run_inputs import RunInputs  # noqa: E402
from ltx2_a2v.ltx2.components.model_spec import ModelSpec  # noqa: E402
from ltx2_a2v.ltx2.components.table import Bundle  # noqa: E402
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config  # noqa: E402

# The parts of a Bundle, by the names make_tiny_bundle.file_names gives them.
PARTS = ("checkpoint", "text_encoder", "spatial_upsampler", "distilled_lora")


def bundle_paths(models_dir: Path, preset: str) -> dict[str, Path]:
    """Each file of the preset's bundle written in `models_dir` (make_tiny_bundle.make_bundle)."""
    from make_tiny_bundle import file_names

    return {part: models_dir / rel for part, rel in file_names(preset).items()}


def model_of(paths: dict[str, Path], parts: tuple[str, ...] = PARTS, **spec) -> ModelSpec:
    """The loader node's output for the bundle's files `parts` (others left out), with the spec's `spec` fields
    (quantization, residency, precision, ...)."""
    bundle = Bundle(**{part: paths[part] for part in parts})
    return ModelSpec(bundle, read_checkpoint_config(bundle.checkpoint), **spec)


def voice_clip(seconds: float = 1.0, rate: int = 16000) -> torch.Tensor:
    """A stereo clip [1, 2, samples]: two sines, the second an octave and a half above."""
    t = torch.arange(round(seconds * rate)) / rate
    return torch.stack([0.4 * torch.sin(2 * math.pi * 220 * t), 0.3 * torch.sin(2 * math.pi * 330 * t)]).unsqueeze(0)


def portrait(height: int = 96, width: int = 128, seed: int = 0) -> torch.Tensor:
    """A random image in ComfyUI's IMAGE layout [1, H, W, 3]."""
    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(seed))


def run_inputs(seconds: float = 1.0, rate: int = 16000, **fields) -> RunInputs:
    """A small run (64x64 at stage 1, 9 frames, 2 steps, seed 1) of a random portrait and a `seconds` clip; any
    RunInputs field overrides."""
    defaults = dict(
        prompt="A woman speaks.", negative_prompt="blurry", seed=1, width=64, height=64, num_frames=9, steps=2
    )
    image = fields.pop("image", None)
    waveform = fields.pop("waveform", None)
    return RunInputs(
        portrait() if image is None else image,
        voice_clip(seconds, rate) if waveform is None else waveform,
        rate,
        **{**defaults, **fields},
    )
