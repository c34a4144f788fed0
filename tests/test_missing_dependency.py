"""With ltx-core missing from ComfyUI's Python, the server still starts, the nodes still register, and running
one says what to install."""

import textwrap

import pytest
from comfy_host import ComfyHost
from test_host import PACK_NODES, load_and_report

# Hides ltx_core from every import in the server process, as if it were not installed.
BLOCKER = textwrap.dedent(
    """
    import sys

    class _Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "ltx_core" or name.startswith("ltx_core."):
                raise ModuleNotFoundError(f"No module named '{name}'", name=name)
            return None

    sys.meta_path.insert(0, _Hide())
    """
)


@pytest.fixture(scope="module")
def host_without_ltx_core(models_dir, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    server = ComfyHost(models_dir, tmp_path_factory.mktemp("host-no-ltx"), extra_env={"PYTHONPATH": str(site)})
    yield server.wait_ready()
    server.stop()


def test_nodes_register_and_explain_what_to_install(host_without_ltx_core):
    info = host_without_ltx_core.object_info()
    assert all(name in info for name in PACK_NODES)
    result = host_without_ltx_core.run(load_and_report())
    assert result.status == "error"
    error = result.error()
    assert error["node_type"] == "LoadLTX2Quantized"
    assert "ltx-core" in error["exception_message"] and "requirements.txt" in error["exception_message"]
