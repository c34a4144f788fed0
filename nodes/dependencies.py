"""Checks that the packages the pack runs on are importable, with one message saying what to install.

The nodes register even when these are missing (so a workflow still opens), and say this when they run.
"""

import importlib.metadata
import importlib.util
import logging

# import name -> what to install (requirements.txt has the ranges that work together). torchao is not here:
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


# The ranges the pack runs on (requirements.txt), by package: (lowest, first version past the tested ones). pip
# keeps whatever another node pack pulled in, so this is checked when a node runs. Below the lowest: refused
# (ltx-core 1.0.0 needs transformers 4.52). Past the tested ones: run, with a warning in ComfyUI's log.
SUPPORTED = {
    "transformers": ((4, 52), (6, 0), "ltx-core 1.0.0 needs transformers 4.52 or newer"),
}


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def version_problems(installed: dict[str, str]) -> list[str]:
    """One line per installed package older than the pack can run on."""
    problems = []
    for package, (lowest, _past, why) in SUPPORTED.items():
        version = installed.get(package)
        if version and _version(version) < lowest:
            problems.append(f"{package} {version} is installed: {why}")
    return problems


def untested_versions(installed: dict[str, str]) -> list[str]:
    """One line per installed package newer than the releases the pack was tested with."""
    return [
        f"{package} {installed[package]} is newer than the releases the LTX-2 pack was tested with"
        for package, (_lowest, past, _why) in SUPPORTED.items()
        if installed.get(package) and _version(installed[package]) >= past
    ]


def _installed_versions() -> dict[str, str]:
    versions = {}
    for package in SUPPORTED:
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
    installed = _installed_versions()
    problems = version_problems(installed)
    if problems:
        raise ImportError(
            "; ".join(problems) + ". Update with `python -m pip install -r requirements.txt` from the pack's folder, "
            "using the Python that runs ComfyUI, then restart ComfyUI."
        )
    for note in untested_versions(installed):
        if note not in _WARNED:
            _WARNED.add(note)
            logging.warning("LTX-2: %s; if a node fails, report it with the versions.", note)


_WARNED: set[str] = set()
