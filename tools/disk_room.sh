# Sourced by the set-up scripts. need_room GIB WHAT: stops the set-up before pip starts when the disk that holds
# the project has less than GIB GiB free, saying what needs the room; pip itself would stop half-way with
# "[Errno 28] No space left on device" and a half-built environment. The figures the scripts pass are each lane's
# peak, measured on a fresh clone (docs/benchmarks.md): its packages installed plus its wheels, which pip
# keeps in the temp folder until the install ends.
need_room() {
  local gib=$1 what=$2 free
  free=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
  if [ "$free" -lt "$gib" ]; then
    echo "setup: $what needs about $gib GiB free on the disk that holds $(pwd), and $free GiB are." \
      "Free some space (or move the clone) and run make setup again." >&2
    exit 1
  fi
}
