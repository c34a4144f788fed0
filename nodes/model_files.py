"""File lists for the loader's dropdowns, from ComfyUI's own model folders (folder_paths)."""

import os
from pathlib import Path

import folder_paths

from ..ltx2.errors import LTX2InputError

CHECKPOINT_FOLDERS = ("checkpoints", "diffusion_models")
NONE = "none"


def checkpoint_names() -> list[str]:
    names: list[str] = []
    for folder in CHECKPOINT_FOLDERS:
        names += [n for n in folder_paths.get_filename_list(folder) if n.endswith(".safetensors") and n not in names]
    return names


def text_encoder_names() -> list[str]:
    """Folders under text_encoders/ that hold a model config: a Gemma-3 root is a folder, not one file."""
    names = set()
    for base in folder_paths.get_folder_paths("text_encoders"):
        if os.path.isdir(base):
            names |= {e.name for e in os.scandir(base) if e.is_dir() and (Path(e.path) / "config.json").is_file()}
    return sorted(names)


def file_names(folder: str, with_none: bool = False) -> list[str]:
    names = [n for n in folder_paths.get_filename_list(folder) if n.endswith(".safetensors")]
    return [NONE, *names] if with_none else names


def resolve_file(input_name: str, name: str, folders: tuple[str, ...]) -> Path:
    for folder in folders:
        path = folder_paths.get_full_path(folder, name)
        if path is not None:
            return Path(path)
    where = " or ".join(f"models/{f}/" for f in folders)
    raise LTX2InputError(f"{input_name}: '{name}' is not in {where} (deleted or moved?). Refresh the page and pick again.")


def resolve_text_encoder(name: str) -> Path:
    if name in text_encoder_names():
        for base in folder_paths.get_folder_paths("text_encoders"):
            path = Path(base) / name
            if path.is_dir():
                return path
    raise LTX2InputError(
        f"text_encoder: folder '{name}' is not in models/text_encoders/ (or has no config.json). Copy the whole "
        "Gemma-3 folder there and refresh the page."
    )
