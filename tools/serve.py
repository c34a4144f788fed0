"""Starts the ComfyUI host with this pack loaded and a models folder mapped; blocks until stopped.

    .venv/bin/python tools/serve.py --models-dir DIR --port N [further ComfyUI arguments]

Further arguments go to ComfyUI's main.py unchanged (e.g. --cpu, --input-directory, --output-directory).
The pack is linked into a private custom_nodes folder, so nothing beside this repository is loaded as a node.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The ComfyUI tree to run: `make setup` puts the registry's 0.3.75 in .comfyui/; LTX2_COMFYUI names another source
# tree (absolute, or relative to this repository), run with the Python of its lane (.venv-host).
HOST = (ROOT / os.environ.get("LTX2_COMFYUI", ".comfyui")).resolve()
PACK_NAME = "ltx2_a2v"
# The folders the pack's nodes list files from, under ComfyUI's names.
MODEL_FOLDERS = ("checkpoints", "loras", "latent_upscale_models", "text_encoders", "diffusion_models", "vae")


def write_host_config(run_dir: Path, models_dir: Path) -> Path:
    custom_nodes = run_dir / "custom_nodes"
    custom_nodes.mkdir()
    (custom_nodes / PACK_NAME).symlink_to(ROOT, target_is_directory=True)
    lines = [f"{PACK_NAME}:", f"  base_path: {models_dir}", "  is_default: true"]
    lines += [f"  {folder}: {folder}" for folder in MODEL_FOLDERS]
    lines.append(f"  custom_nodes: {custom_nodes}")
    config = run_dir / "extra_model_paths.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--models-dir", required=True, type=Path, help="folder holding checkpoints/, loras/, ...")
    parser.add_argument("--port", required=True, type=int)
    args, comfy_args = parser.parse_known_args()
    if not (HOST / "main.py").is_file():
        parser.error(f"no ComfyUI host in {HOST}; run `make setup` first")
    models_dir = args.models_dir.resolve()
    if not models_dir.is_dir():
        parser.error(f"--models-dir {models_dir} is not a folder")
    for folder in MODEL_FOLDERS:
        (models_dir / folder).mkdir(exist_ok=True)

    run_dir = Path(tempfile.mkdtemp(prefix="ltx2-serve-"))
    command = [
        sys.executable,
        str(HOST / "main.py"),
        "--port",
        str(args.port),
        "--extra-model-paths-config",
        str(write_host_config(run_dir, models_dir)),
        *comfy_args,
    ]
    host = subprocess.Popen(command, cwd=HOST)

    def stop(signum, _frame):
        host.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return host.wait()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
