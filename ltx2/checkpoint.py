"""Telling an LTX-2 checkpoint from any other safetensors file, from its header alone."""

import json
from pathlib import Path

import safetensors

from .errors import LTX2InputError

# Key prefixes every LTX-2 audio-video checkpoint holds (transformer, video VAE, audio VAE, vocoder).
REQUIRED_PREFIXES = ("model.diffusion_model.", "vae.", "audio_vae.", "vocoder.")


def read_checkpoint_config(path: str | Path, input_name: str = "ckpt_name") -> dict:
    """The checkpoint's JSON config, after checking that the file is an LTX-2 audio-video checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise LTX2InputError(f"{input_name}: {path} does not exist (deleted or moved?). Refresh the list and pick again.")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            keys = list(f.keys())
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise LTX2InputError(
            f"{input_name}: {path.name} is not a readable .safetensors file ({exc}). It may be incomplete: "
            "download it again."
        ) from exc
    missing = [p for p in REQUIRED_PREFIXES if not any(k.startswith(p) for k in keys)]
    if missing or "config" not in metadata:
        raise LTX2InputError(
            f"{input_name}: {path.name} is not an LTX-2 audio-video checkpoint (no {', '.join(missing) or 'config'} "
            "entries). Pick an LTX-2 / LTX-2.3 release checkpoint."
        )
    try:
        return json.loads(metadata["config"])
    except json.JSONDecodeError as exc:
        raise LTX2InputError(f"{input_name}: {path.name} has a damaged config entry ({exc}).") from exc
