#!/usr/bin/env bash
# Debian's redis-server for the cluster's tests (tests/cluster/ start their own on 127.0.0.1, on a free port, with
# the append-only file on; nothing is started here). Installed only when missing; called by tools/setup_env.sh.
set -euo pipefail

if [ ! -x /usr/bin/redis-server ]; then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  echo "setup: installing Debian's redis-server for the cluster tests"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
