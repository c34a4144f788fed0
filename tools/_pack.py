"""Imports this repository as the package `ltx2_a2v`, the way ComfyUI imports a custom-node folder.

The pack uses relative imports only (ComfyUI has a top-level module called `nodes`), so scripts and tests
load the folder as a package under one fixed name, whatever the clone is called.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ltx2_a2v"


def import_pack():
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return sys.modules[PACKAGE]
