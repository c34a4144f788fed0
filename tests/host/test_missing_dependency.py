"""With a package missing from ComfyUI's Python, the server still starts, the nodes still register, and running
one says what to install (ltx-core: every node; torchao: only the torchao policies, the others still run)."""

import textwrap

import pytest
import torch
from comfy_host import ComfyHost
from workflows import PACK_NODES, load_and_report, small_workflow

from ltx2_a2v.quant.torchao_policies import TORCHAO_FOR_TORCH


def hiding(*modules: str) -> str:
    """A sitecustomize.py that makes `modules` look uninstalled in the server process: None in sys.modules makes
    `import` raise ModuleNotFoundError and importlib.util.find_spec return None, as for a missing package."""
    return textwrap.dedent(
        f"""
        import sys

        for name in {list(modules)!r}:
            sys.modules[name] = None
        """
    )


def host_hiding(models_dir, tmp_path_factory, *modules: str) -> ComfyHost:
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(hiding(*modules))
    work = tmp_path_factory.mktemp("host-without-" + "-".join(modules))
    return ComfyHost(models_dir, work, extra_env={"PYTHONPATH": str(site)})


@pytest.fixture(scope="module")
def hosts_without(models_dir, tmp_path_factory):
    """Two servers, one without ltx-core and one without torchao, started side by side."""
    from comfy_host import MEDIA

    servers = {name: host_hiding(models_dir, tmp_path_factory, name) for name in ("ltx_core", "torchao")}
    for media in MEDIA.iterdir():
        (servers["torchao"].input_dir / media.name).write_bytes(media.read_bytes())
    yield {name: server.wait_ready() for name, server in servers.items()}
    for server in servers.values():
        server.stop()


def test_without_ltx_core_nodes_register_and_explain_what_to_install(hosts_without):
    host = hosts_without["ltx_core"]
    info = host.object_info()
    assert all(name in info for name in PACK_NODES)
    result = host.run(load_and_report())
    assert result.status == "error"
    error = result.error()
    assert error["node_type"] == "LoadLTX2Quantized"
    assert "ltx-core" in error["exception_message"] and "requirements.txt" in error["exception_message"]


def test_without_torchao_its_policies_explain_and_the_others_run(hosts_without):
    host = hosts_without["torchao"]
    assert all(name in host.object_info() for name in PACK_NODES)
    for field in ("quantization", "text_encoder_quantization"):
        result = host.run(load_and_report(**{field: "torchao_int8_weight_only"}))
        assert result.status == "error"
        message = result.error()["exception_message"]
        assert message.startswith(f"{field}: torchao cannot be imported")
        # The release built for the torch this lane runs (0.15.0 for torch 2.9, 0.17.0 for torch 2.11).
        release = TORCHAO_FOR_TORCH[tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])]
        assert "torchao cannot be imported" in message and f"pip install torchao=={release}" in message
        assert "pick fp8_scaled" in message
    # The whole A2V workflow still runs with a policy that needs no torchao.
    assert host.run(small_workflow("fp8_scaled", prefix="test/no_torchao")).status == "success"
