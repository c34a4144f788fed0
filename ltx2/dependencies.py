"""Checks that the packages the pack runs on are importable, with one message saying what to install.

The nodes register even when these are missing (so a workflow still opens), and say this when they run.
"""

import importlib.util

# import name -> what to install (requirements.txt pins the versions that work together). torchao is not here:
# only the torchao_* policies need it, and their check says so (quant/torchao_configs.py), so the other
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


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise ImportError(
            f"The LTX-2 pack needs {', '.join(missing)}, which ComfyUI's Python cannot import. Install them with "
            "`python -m pip install -r requirements.txt` from the pack's folder, using the Python that runs "
            "ComfyUI, then restart ComfyUI."
        )
