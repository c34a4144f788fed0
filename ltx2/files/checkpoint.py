"""Telling an LTX-2 checkpoint from any other safetensors file, from its header alone; and the loader's checks of
the files it is given."""

from pathlib import Path

from ...errors import LTX2InputError
from .gemma_single_file import open_text_encoder
from .lora_file import LoraFactors
from .safetensors_file import SafetensorsHeader, read_header

# Key prefixes every LTX-2 audio-video checkpoint holds (transformer, video VAE, audio VAE, vocoder).
REQUIRED_PREFIXES = ("model.diffusion_model.", "vae.", "audio_vae.", "vocoder.")


def read_checkpoint_config(path: str | Path, input_name: str = "ckpt_name") -> dict:
    """The checkpoint's JSON config, after checking that the file is a complete LTX-2 audio-video checkpoint
    (every tensor's bytes present). Nothing beyond the header is read."""
    path = Path(path)
    if not path.exists():
        raise LTX2InputError(
            f"{input_name}: {path} does not exist (deleted or moved?). Refresh the list and pick again."
        )
    header = read_header(path, input_name)
    missing = [p for p in REQUIRED_PREFIXES if not any(k.startswith(p) for k in header.entries)]
    if missing or "config" not in header.metadata:
        raise LTX2InputError(
            f"{input_name}: {path.name} is not an LTX-2 audio-video checkpoint (no {', '.join(missing) or 'config'} "
            "entries). Pick an LTX-2 / LTX-2.3 release checkpoint."
        )
    return header.config()


def check_text_encoder(path: Path | None) -> None:
    """The Gemma folder or file is usable (gemma_folder.py, gemma_single_file.py)."""
    if path is not None:
        open_text_encoder(path)


def check_lora(path: Path | None, checkpoint: SafetensorsHeader) -> None:
    """The LoRA's factors are complete and fit the checkpoint's transformer (lora_file.py), from the headers: a LoRA
    that does not fit is refused when it is picked, not at stage 2."""
    if path is not None:
        LoraFactors(path, 1.0).check_against_checkpoint(checkpoint)
