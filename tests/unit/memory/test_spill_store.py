"""The CPU's spill store: units come back bit for bit in their dtype and shape, and the file they live in has no
name, so a process killed while it streams (SIGKILL: no Python clean-up runs) leaves nothing in the temp folder."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from ltx2_a2v.memory.streaming import SpillStore

CPU = torch.device("cpu")
TOOLS = Path(__file__).resolve().parents[3] / "tools"


def test_units_come_back_exactly_and_nothing_is_named_in_the_folder(tmp_path):
    store = SpillStore(folder=str(tmp_path))
    units = {
        "a": torch.randn(3, 5),
        "b": torch.randn(7, dtype=torch.float64).to(torch.bfloat16),
        "c": torch.arange(12, dtype=torch.int8).reshape(3, 4),
        "empty": torch.empty(0, 4),
    }
    for key, tensor in units.items():
        store.put(key, tensor)
    assert list(tmp_path.iterdir()) == []
    for key, tensor in units.items():
        back = store.get(key, CPU)
        assert back.dtype == tensor.dtype and back.shape == tensor.shape and torch.equal(back, tensor)
    assert store.nbytes() == sum(t.nbytes for t in units.values())
    store.pop("a")
    assert store.keys() == ["b", "c", "empty"]
    store.close()


def test_a_process_killed_while_its_units_are_spilled_leaves_nothing_behind(tmp_path):
    child = textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {str(TOOLS)!r})
        from _pack import import_pack
        import_pack()
        from ltx2_a2v.memory.streaming import SpillStore
        store = SpillStore(folder={str(tmp_path)!r})
        store.put("block", torch.zeros(4 << 20, dtype=torch.uint8))
        print(store.nbytes(), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == str(4 << 20)  # the unit is written when the child says so
        assert list(tmp_path.iterdir()) == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_gives_a_clear_error_and_leaves_nothing(tmp_path):
    """The disk fills while units are spilled: the file may grow to 1 MiB (RLIMIT_FSIZE in a child, as a full
    disk; where the tests run as root a 1 MiB tmpfs gives the same ENOSPC path). The error names the folder and
    what to do, the file is closed (its room given back), and nothing is named in the folder."""
    child = textwrap.dedent(f"""
        import resource, signal, sys, torch
        sys.path.insert(0, {str(TOOLS)!r})
        from _pack import import_pack
        import_pack()
        from ltx2_a2v.memory.streaming import SpillFull, SpillStore
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        store = SpillStore(folder={str(tmp_path)!r})
        store.put("first", torch.zeros(600 << 10, dtype=torch.uint8))
        try:
            store.put("second", torch.zeros(600 << 10, dtype=torch.uint8))
        except SpillFull as exc:
            print(store._file.closed, exc, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(
        f"True block streaming: the spill file in {tmp_path} could not take 1 MiB more after 1 MiB"
    ), out.stdout
    assert "Free disk room there" in out.stdout and "raise budget_gb" in out.stdout
    assert list(tmp_path.iterdir()) == []
