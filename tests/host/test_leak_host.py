"""Fifty short runs in a row through the server: its memory and the number of live tensors stay flat."""

import pytest
from workflows import small_workflow

RUNS, WARMUP = 50, 10


@pytest.mark.long
def test_fifty_runs_keep_memory_and_live_tensors_flat(host):
    samples = []
    for run in range(RUNS):
        assert host.run(small_workflow(prefix="test/leak", seed=1000 + run)).status == "success"
        if run + 1 in (WARMUP, RUNS):
            samples.append((host.rss(), host.vram(diagnostics=True)["live_tensors"]))
    (rss_warm, tensors_warm), (rss_end, tensors_end) = samples
    print(
        f"after {WARMUP} runs: RSS {rss_warm / 2**20:.0f} MiB, {tensors_warm} tensors; "
        f"after {RUNS}: RSS {rss_end / 2**20:.0f} MiB, {tensors_end} tensors"
    )
    assert rss_end - rss_warm < 64 * 2**20
    assert tensors_end - tensors_warm <= 10
