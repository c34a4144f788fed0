#!/usr/bin/env bash
# A lane for any ComfyUI source tree (LTX2_COMFYUI=/path make test): its Python is .venv-host, which sees the
# newest lane's packages through a .pth file (torch and the rest are shared, never a second torch) and has in
# itself only what the tree's requirements.txt asks for beyond them, installed with --no-deps (its frontend,
# comfy-kitchen, comfy-aimdo, ...): installing a ComfyUI's requirements plainly pulls another CUDA torch and 5 GB
# of NVIDIA's wheels. A requirement that pins another release than the newest lane has (the frontend, say) is
# installed into .venv-host, which comes first on the path. The sub-packages of comfyui-workflow-templates (core's
# template browser's media, hundreds of MB) are left out: ComfyUI logs that it misses them and serves on; their JSON
# and manifest (23 MB) are installed: `make bench-core` reads core's LTX-2.3 template from them.
# Idempotent (a stamp of the tree's requirements.txt, the tree's path and the newest lane); called by
# tools/setup_env.sh after the newest lane.
set -euo pipefail
cd "$(dirname "$0")/.."

TREE=${1:?usage: tools/setup_lane_host.sh COMFYUI_TREE}
VENV=.venv-host
if [ ! -f "$TREE/main.py" ] || [ ! -f "$TREE/requirements.txt" ] || [ ! -f "$TREE/comfyui_version.py" ]; then
  echo "setup: LTX2_COMFYUI=$TREE is not a ComfyUI source tree (main.py, requirements.txt and" \
    "comfyui_version.py expected there, relative paths from $(pwd)). Point it at the folder you cloned" \
    "ComfyUI into, or unset it." >&2
  exit 1
fi
tree=$(cd "$TREE" && pwd)
stamp_src=$( (echo "$tree"; cat "$tree/requirements.txt" tools/setup_lane_host.sh .venv-newest/.stamp) | sha256sum |
  cut -d' ' -f1)
if [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$stamp_src" ]; then
  exit 0
fi

start=$(date +%s)
rm -rf "$VENV"
PY=$(.venv-newest/bin/python -c "import sys; print(sys._base_executable)")
"$PY" -m venv "$VENV"
base_site=$(.venv-newest/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
own_site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$base_site" > "$own_site/_ltx2_base_env.pth"
mkdir -p .cache
grep -vE '^(torch|torchvision|torchaudio)([<>=!~ ;[]|$)' "$tree/requirements.txt" > .cache/host-lane-requirements.txt
"$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-deps -r .cache/host-lane-requirements.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
templates=$("$VENV/bin/python" - <<'PYEOF'
import importlib.metadata as metadata
try:
    wanted = metadata.requires("comfyui-workflow-templates") or []
except metadata.PackageNotFoundError:
    wanted = []
names = ("comfyui-workflow-templates-core", "comfyui-workflow-templates-json")
print(" ".join(r for r in wanted if ";" not in r and r.split("=")[0].strip() in names))
PYEOF
)
if [ -n "$templates" ]; then
  # shellcheck disable=SC2086  # one requirement per word
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-deps $templates \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
echo "$stamp_src" > "$VENV/.stamp"
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$tree/comfyui_version.py")
echo "setup: lane for ComfyUI $version ($tree) ready in $(( $(date +%s) - start )) s"
