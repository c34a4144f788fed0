"""Telling an LTX-2 checkpoint from any other safetensors file, from its header alone."""

from pathlib import Path

from ..errors import LTX2InputError
from .safetensors_file import read_header

# Key prefixes every LTX-2 audio-video checkpoint holds (transformer, video VAE, audio VAE, vocoder).
REQUIRED_PREFIXES = ("model.diffusion_model.", "vae.", "audio_vae.", "vocoder.")


def read_checkpoint_config(path: str | Path, input_name: str = "ckpt_name") -> dict:
    """The checkpoint's JSON config, after checking that the file is a complete LTX-2 audio-video checkpoint
    (every tensor's bytes present). Nothing beyond the header is read."""
    path = Path(path)
    if not path.is_file():
        raise LTX2InputError(f"{input_name}: {path} does not exist (deleted or moved?). Refresh the list and pick again.")
    try:
        header = read_header(path)
    except LTX2InputError as exc:
        raise LTX2InputError(f"{input_name}: {exc}") from exc
    missing = [p for p in REQUIRED_PREFIXES if not any(k.startswith(p) for k in header.entries)]
    if missing or "config" not in header.metadata:
        raise LTX2InputError(
            f"{input_name}: {path.name} is not an LTX-2 audio-video checkpoint (no {', '.join(missing) or 'config'} "
            "entries). Pick an LTX-2 / LTX-2.3 release checkpoint."
        )
    return header.config()
