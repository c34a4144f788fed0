#!/usr/bin/env bash
# Debian's redis-server for the cluster's tests (tests/cluster/ start their own on 127.0.0.1, on a free port, with
# the append-only file on, a password and TLS; nothing is started here), and openssl, which makes that Redis's
# certificate (tools/local_redis.py). Installed only when missing; called by tools/setup_env.sh.
set -euo pipefail

missing=()
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  echo "setup: installing Debian's ${missing[*]} for the cluster tests"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
