"""Fixtures shared by the suite: the pack imported as a package, a tiny bundle, a real ComfyUI host."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))

from _pack import import_pack  # noqa: E402

import_pack()

from comfy_host import MEDIA, ComfyHost  # noqa: E402  (tools/)
from make_tiny_bundle import make_bundle, write_formats  # noqa: E402


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A ComfyUI models folder holding the tiny bundle (seed 0)."""
    root = tmp_path_factory.mktemp("models")
    make_bundle(root, "tiny", seed=0, fp8=True)
    return root


@pytest.fixture(scope="session")
def wide_paths(tmp_path_factory) -> dict[str, Path]:
    """The `wide` bundle (the 22B transformer's widths, 2 blocks; 3.1 GB), for the long tests."""
    return make_bundle(tmp_path_factory.mktemp("wide"), "wide", seed=0)


@pytest.fixture(scope="session")
def tiny_paths(models_dir) -> dict[str, Path]:
    from make_tiny_bundle import FP8_FILE_NAMES, file_names

    paths = {part: models_dir / rel for part, rel in file_names("tiny").items()}
    paths.update({part: models_dir / rel.format(preset="tiny") for part, rel in FP8_FILE_NAMES.items()})
    return paths


@pytest.fixture(scope="session")
def low_bit_paths(models_dir, tiny_paths) -> dict[str, Path]:
    """The tiny bundle's split files and low-bit transformers and Gemma (tools/bundle_files.py), written into the same
    models folder once per session, when a test first asks (a host already serving lists them then)."""
    return {**tiny_paths, **write_formats(models_dir, "tiny", tiny_paths, low_bit=True, split=True)}


@pytest.fixture()
def budget():
    """The process's one budget (memory/budget.py's BUDGET), as a test finds it, given back as it was: its size,
    mode, host bridge and last run restored, and whatever the test left in it freed."""
    from ltx2_a2v.memory.budget import BUDGET

    saved = BUDGET.budget_bytes, BUDGET.mode, BUDGET.bridge, BUDGET.last_run
    yield BUDGET
    BUDGET.free_all()
    BUDGET.budget_bytes, BUDGET.mode, BUDGET.bridge, BUDGET.last_run = saved


@pytest.fixture(scope="session")
def host(models_dir, tmp_path_factory):
    """One ComfyUI server with the pack loaded and the sample media in its input folder, for the whole session."""
    server = ComfyHost(models_dir, tmp_path_factory.mktemp("host"))
    for media in MEDIA.iterdir():
        shutil.copy(media, server.input_dir / media.name)
    server.wait_ready()
    yield server
    server.stop()
