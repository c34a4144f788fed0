"""Out of memory, injected by a test-only custom node that wraps the pack's budget (custom_nodes/ltx2_oom_switch:
this machine has no GPU to run out of): during a load and during sampling, the pack frees everything it holds,
the error says what to change, and the next run succeeds."""

from pathlib import Path

import pytest
from comfy_host import MEDIA, ComfyHost
from workflows import small_workflow

SWITCH_NODES = Path(__file__).resolve().parent / "custom_nodes"


@pytest.fixture(scope="module")
def oom_host(models_dir, tmp_path_factory):
    import shutil

    work = tmp_path_factory.mktemp("host-oom")
    switch = work / "inject-oom"
    paths = work / "oom_switch_paths.yaml"  # a second custom_nodes folder: the switch, loaded after the pack
    paths.write_text(f"oom_switch:\n  custom_nodes: {SWITCH_NODES}\n")
    server = ComfyHost(
        models_dir,
        work,
        extra_env={"LTX2_INJECT_OOM_FILE": str(switch)},
        extra_args=("--extra-model-paths-config", str(paths)),
    )
    for media in MEDIA.iterdir():
        shutil.copy(media, server.input_dir / media.name)
    server.wait_ready()
    yield server, switch
    server.stop()


@pytest.mark.parametrize("point, node, phase", [("load:transformer", "4", "loading"), ("sampling", "4", "running")])
def test_injected_oom_frees_ours_explains_and_the_next_run_succeeds(oom_host, point, node, phase):
    host, switch = oom_host
    prompt = small_workflow(prefix=f"test/oom-{phase}")
    prompt["3"]["inputs"]["residency"] = "persistent"  # so there is something of ours to free
    switch.write_text(point)
    try:
        result = host.run(prompt)
    finally:
        switch.unlink()
    assert result.status == "error"
    error = result.error()
    assert error["node_id"] == node and "OutOfMemoryError" in error["exception_type"]
    message = error["exception_message"]
    assert f"out of memory while {phase}" in message
    assert "fp8_scaled" in message and "budget_gb" in message and "cold_start" in message
    assert host.vram()["resident_bytes"] == 0
    assert host.run(small_workflow(prefix=f"test/after-oom-{phase}", seed=4)).status == "success"
