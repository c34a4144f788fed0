"""The node layer's unit tests import the real ComfyUI tree of the lane (no server is started), with the arguments
the test host runs with (`--cpu`): .comfyui (the registry's 0.3.75), or the tree LTX2_COMFYUI names."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / os.environ.get("LTX2_COMFYUI", ".comfyui")))

import utils.extra_config  # noqa: E402,F401  ComfyUI's main.py imports its `utils` package first, as here
from comfy.cli_args import args  # noqa: E402

args.cpu = True  # before comfy.model_management reads it: this machine has no GPU
