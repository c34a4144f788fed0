#!/usr/bin/env bash
# The newest lane: the newest torch, transformers and torchao the package registry serves that work together
# (constraints-newest.txt), with the rest of requirements-dev.txt at its newest, in its own .venv-newest, running
# the pinned lane's ComfyUI 0.3.75 (.comfyui, the registry's). A lane for another ComfyUI tree sees these packages
# (tools/setup_lane_host.sh). Idempotent (a stamp); called by tools/setup_env.sh, which turns pip's download cache
# off.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-newest
HOST=.comfyui
stamp_src=$(cat constraints-newest.txt requirements.txt requirements-dev.txt tools/setup_lane_newest.sh "$HOST/requirements.txt" | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$stamp_src" ]; then
  exit 0
fi

start=$(date +%s)
rm -rf "$VENV"
source tools/disk_room.sh
need_room 8 "the newest lane (.venv-newest: torch 2.11's CUDA build and the rest)"
PY=$(.venv/bin/python -c "import sys; print(sys._base_executable)")
"$PY" -m venv "$VENV"
grep -vE '^(torch|torchvision|torchaudio)$' "$HOST/requirements.txt" > .cache/host-newest-requirements.txt
"$VENV/bin/python" -m pip --disable-pip-version-check -q install -c constraints-newest.txt -r requirements-dev.txt \
  -r .cache/host-newest-requirements.txt 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "$stamp_src" > "$VENV/.stamp"
echo "setup: newest lane ready in $(( $(date +%s) - start )) s ($("$VENV/bin/python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"), ComfyUI in $HOST)"
