"""Checks that the packages the pack runs on are importable, with one message saying what to install.

The nodes register even when these are missing (so a workflow still opens), and say this when they run.
"""

import importlib.metadata
import importlib.util

# import name -> what to install (requirements.txt pins the versions that work together). torchao is not here:
# only the torchao_* policies need it, and their check says so (quant/torchao_policies.py), so the other
# policies keep working where torchao is missing or fails to import.
REQUIRED = {
    "torch": "torch",
    "safetensors": "safetensors",
    "ltx_core": "ltx-core",
    "transformers": "transformers",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a broken install can fail already while being looked up
        return False


def missing_packages() -> list[str]:
    return [pip_name for module, pip_name in REQUIRED.items() if not _importable(module)]


# Releases known to break the pack, by package: (first bad major version, why). pip keeps whatever another node
# pack pulled in, so this is checked when a node runs rather than trusted from requirements.txt.
BREAKING_MAJOR = {
    "transformers": (5, "ltx-core 1.0.0 loads Gemma-3 by the parameter names of transformers 4.x (tested 4.57.1); "
                       "5.x renamed the vision tower, and the text encoder would be left half-loaded"),
}


def version_problems(installed: dict[str, str]) -> list[str]:
    """One line per installed package whose major version is known to break the pack."""
    problems = []
    for package, (bad_major, why) in BREAKING_MAJOR.items():
        version = installed.get(package)
        major = version.split(".")[0] if version else ""
        if major.isdigit() and int(major) >= bad_major:
            problems.append(f"{package} {version} is installed: {why}")
    return problems


def _installed_versions() -> dict[str, str]:
    versions = {}
    for package in BREAKING_MAJOR:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise ImportError(
            f"The LTX-2 pack needs {', '.join(missing)}, which ComfyUI's Python cannot import. Install them with "
            "`python -m pip install -r requirements.txt` from the pack's folder, using the Python that runs "
            "ComfyUI, then restart ComfyUI."
        )
    problems = version_problems(_installed_versions())
    if problems:
        raise ImportError(
            "; ".join(problems) + ". Install the tested versions with `python -m pip install -r requirements.txt` "
            "from the pack's folder, using the Python that runs ComfyUI, then restart ComfyUI."
        )
