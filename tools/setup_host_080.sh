#!/usr/bin/env bash
# The second host lane: ComfyUI 0.8.0, the first release with native LTX-2, from the source tree beside the project
# (../shared/hosts/comfyui-0.8.0.tar.gz, or LTX2_HOST_080_TARBALL), when it is there. Its tree goes to
# build/comfyui-080/; its Python is .venv-080, which sees .venv's packages through a .pth file (torch and the rest are
# shared, not downloaded twice) and has what 0.8.0 asks for beyond them installed in itself (its frontend,
# comfy-kitchen, ...), so .venv's own ComfyUI 0.3.75 lane is left as it is. Idempotent (a stamp); called by
# tools/setup_env.sh, then the newest lane's set-up. Without the tarball this lane is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

TARBALL=${LTX2_HOST_080_TARBALL:-../shared/hosts/comfyui-0.8.0.tar.gz}
HOST=build/comfyui-080
VENV=.venv-080
[ -f "$TARBALL" ] || exec bash tools/setup_lane_newest.sh
stamp_src=$( (sha256sum "$TARBALL"; cat tools/setup_host_080.sh .venv/.stamp) | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$stamp_src" ] && [ -f "$HOST/main.py" ]; then
  exec bash tools/setup_lane_newest.sh
fi

start=$(date +%s)
rm -rf "$HOST" "$VENV"
mkdir -p "$HOST"
tar -xzf "$TARBALL" -C "$HOST" --strip-components=1
PY=$(.venv/bin/python -c "import sys; print(sys._base_executable)")
"$PY" -m venv "$VENV"
base_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
own_site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$base_site" > "$own_site/_ltx2_base_env.pth"
grep -vE '^(torch|torchvision|torchaudio)$' "$HOST/requirements.txt" > .cache/host-080-requirements.txt
"$VENV/bin/python" -m pip --disable-pip-version-check -q install -r .cache/host-080-requirements.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "$stamp_src" > "$VENV/.stamp"
echo "setup: ComfyUI 0.8.0 lane ready in $(( $(date +%s) - start )) s"
exec bash tools/setup_lane_newest.sh
