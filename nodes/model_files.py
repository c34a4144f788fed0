"""File lists for the loader's dropdowns, from ComfyUI's own model folders (folder_paths)."""

import os
from pathlib import Path

import folder_paths

from ..errors import LTX2InputError

CHECKPOINT_FOLDERS = ("checkpoints", "diffusion_models")
NONE = "none"
# Where each split file is listed from: the video VAE from vae/ (ComfyUI's VAELoader), the audio VAE from vae/ and
# checkpoints/ (ComfyUI's audio-VAE loader lists checkpoints/; split releases put it in vae/), the text projection
# from text_encoders/ (beside the Gemma file, as ComfyUI's LTX-2 text-encoder loader reads it).
SPLIT_FOLDERS = {
    "video_vae": ("vae",),
    "audio_vae": ("vae", "checkpoints"),
    "text_projection": ("text_encoders",),
}


def checkpoint_names() -> list[str]:
    names: list[str] = []
    for folder in CHECKPOINT_FOLDERS:
        names += [n for n in folder_paths.get_filename_list(folder) if n.endswith(".safetensors") and n not in names]
    return names


def text_encoder_names() -> list[str]:
    """What `text_encoder` offers: Gemma-3 release folders under text_encoders/ (a folder holding a config.json)
    and single .safetensors files there (ComfyUI's own layout: gemma_3_12B_it*.safetensors), but not the shards
    inside such a folder (ComfyUI lists files recursively)."""
    folders = set()
    for base in folder_paths.get_folder_paths("text_encoders"):
        if os.path.isdir(base):
            folders |= {e.name for e in os.scandir(base) if e.is_dir() and (Path(e.path) / "config.json").is_file()}
    files = {
        n
        for n in folder_paths.get_filename_list("text_encoders")
        if n.endswith(".safetensors") and Path(n).parts[0] not in folders
    }
    return sorted(folders | files)


def file_names(folder: str, with_none: bool = False) -> list[str]:
    names = [n for n in folder_paths.get_filename_list(folder) if n.endswith(".safetensors")]
    return [NONE, *names] if with_none else names


def split_names(field: str) -> list[str]:
    """What a split-file input offers: "none" (the checkpoint holds that part), then the .safetensors files of its
    folders (for text_encoders/, not the shards inside a Gemma folder)."""
    names: list[str] = []
    for folder in SPLIT_FOLDERS[field]:
        found = text_encoder_names() if folder == "text_encoders" else file_names(folder)
        names += [n for n in found if n.endswith(".safetensors") and n not in names]
    return [NONE, *names]


def resolve_split(field: str, name: str) -> Path | None:
    return None if name == NONE else resolve_file(field, name, SPLIT_FOLDERS[field])


def resolve_file(input_name: str, name: str, folders: tuple[str, ...]) -> Path:
    for folder in folders:
        path = folder_paths.get_full_path(folder, name)
        if path is not None:
            return Path(path)
    # ComfyUI lists every name with the extension but resolves only regular files: a FIFO, a link to a device or a
    # broken link is listed, then "not there". Say what it is instead (open_regular does, without blocking).
    from ..ltx2.files.safetensors_file import open_regular

    for folder in folders:
        for base in folder_paths.get_folder_paths(folder):
            candidate = os.path.join(base, name)
            if os.path.commonpath([os.path.abspath(base), os.path.abspath(candidate)]) == os.path.abspath(
                base
            ) and os.path.lexists(candidate):
                fd, _ = open_regular(candidate, input_name)  # raises, naming what it is
                os.close(fd)
                return Path(candidate)
    where = " or ".join(f"models/{f}/" for f in folders)
    raise LTX2InputError(
        f"{input_name}: '{name}' is not in {where} (deleted or moved?). Refresh the page and pick again."
    )


def resolve_text_encoder(name: str) -> Path:
    if name.endswith(".safetensors") and not any(
        (Path(b) / name).is_dir() for b in folder_paths.get_folder_paths("text_encoders")
    ):
        return resolve_file("text_encoder", name, ("text_encoders",))
    if name in text_encoder_names():
        for base in folder_paths.get_folder_paths("text_encoders"):
            path = Path(base) / name
            if path.is_dir():
                return path
    raise LTX2InputError(
        f"text_encoder: '{name}' is not in models/text_encoders/ (a Gemma-3 folder with its config.json, or a single "
        "gemma_3_12B_it*.safetensors file). Put it there and refresh the page."
    )


def identities(ckpt_name: str, text_encoder: str, distilled_lora: str, split: dict[str, str] | None = None) -> tuple:
    """What the loader's choices are on disk now (see ltx2/files/file_identity.py); names that do not resolve count as
    themselves (the node then says what is missing when it runs). `split`: {split-file input: its choice}."""
    from ..ltx2.files.file_identity import identity

    found = []
    chosen = [(CHECKPOINT_FOLDERS, ckpt_name), (("loras",), distilled_lora)]
    chosen += [(SPLIT_FOLDERS[field], name) for field, name in (split or {}).items() if name != NONE]
    for folders, name in chosen:
        path = next((folder_paths.get_full_path(f, name) for f in folders if folder_paths.get_full_path(f, name)), None)
        found.append(identity(path) if path else (name, None))
    for base in folder_paths.get_folder_paths("text_encoders"):
        root = Path(base) / text_encoder
        if root.is_dir():
            found += [identity(p) for p in sorted(root.iterdir())]
        elif root.is_file():
            found.append(identity(root))
    return tuple(found)
