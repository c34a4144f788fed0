"""The set-up builds what each command runs: `make demo` the pinned lane alone, `make test` every test lane (and the
lane for LTX2_COMFYUI's tree when given). Run on a copy of the scripts whose pinned lane is up to date, with the
other lanes' scripts replaced by ones that only say they ran: nothing is installed."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    (copy / "tools").mkdir(parents=True)
    for name in ("requirements-dev.txt", "constraints.txt", "tools/setup_env.sh", "tools/disk_room.sh"):
        shutil.copy(ROOT / name, copy / name)
    for lane in ("setup_lane_newest.sh", "setup_lane_host.sh", "setup_redis.sh"):
        (copy / "tools" / lane).write_text(f'echo "{lane} $*" >> "$(dirname "$0")/../ran"\n')
    stamp = hashlib.sha256(
        b"".join((copy / n).read_bytes() for n in ("requirements-dev.txt", "constraints.txt", "tools/setup_env.sh"))
    ).hexdigest()
    (copy / ".venv").mkdir()
    (copy / ".venv" / ".stamp").write_text(stamp + "\n")
    (copy / ".comfyui").mkdir()
    (copy / ".comfyui" / "main.py").write_text("")
    return copy


def _setup(copy: Path, what: str, **env) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != "LTX2_COMFYUI"} | env
    result = subprocess.run(
        ["bash", str(copy / "tools" / "setup_env.sh"), what], capture_output=True, text=True, timeout=60, env=environ
    )
    assert result.returncode == 0, result.stderr
    ran = (copy / "ran").read_text().splitlines() if (copy / "ran").exists() else []
    (copy / "ran").unlink(missing_ok=True)
    return ran


def test_demo_sets_up_the_pinned_lane_only_and_test_every_lane(tmp_path):
    copy = _copy(tmp_path)
    assert _setup(copy, "demo") == []
    assert _setup(copy, "demo", LTX2_COMFYUI="/some/ComfyUI") == []
    assert _setup(copy, "test") == ["setup_redis.sh ", "setup_lane_newest.sh "]
    assert _setup(copy, "test", LTX2_COMFYUI="/some/ComfyUI") == [
        "setup_redis.sh ",
        "setup_lane_newest.sh ",
        "setup_lane_host.sh /some/ComfyUI",
    ]


def test_a_comfyui_tree_that_is_not_one_is_refused_naming_the_variable(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "setup_lane_host.sh"), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"LTX2_COMFYUI={tmp_path} is not a ComfyUI source tree" in result.stderr
