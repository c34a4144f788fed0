"""The pack is installable the ways users install it: registry metadata, ComfyUI-Manager's requirements, and
`tools/serve.py` refusing a bad command line."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_pyproject_has_what_the_comfy_registry_reads():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["name"] and data["project"]["version"]
    comfy = data["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert (ROOT / comfy["Icon"]).is_file()


def test_runtime_requirements_pin_what_the_test_environment_runs():
    runtime, dev = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    shared = runtime.keys() & dev.keys()
    assert {"ltx-core", "torchao", "transformers"} <= shared
    assert {k: runtime[k] for k in shared} == {k: dev[k] for k in shared}
    declared = {re.split(r"[=<>~ ]", d)[0].lower() for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert declared == {re.split(r"[=<>~ ]", l.strip())[0].lower() for l in (ROOT / "requirements.txt").read_text().splitlines() if l.strip() and not l.startswith("#")}


def test_serve_refuses_a_models_dir_that_does_not_exist(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "serve.py"), "--models-dir", str(tmp_path / "nope"), "--port", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--models-dir" in result.stderr and "is not a folder" in result.stderr


def test_pack_imports_without_comfyui():
    # The folder is imported as a package outside ComfyUI (tests, tools): no nodes, no error.
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'tools')!r}); from _pack import import_pack; p = import_pack(); print(p.WEB_DIRECTORY)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "./web"


def test_a_transformers_release_known_to_break_gemma_loading_is_named():
    from ltx2_a2v.nodes.dependencies import version_problems

    assert version_problems({"transformers": "4.57.1"}) == []
    (problem,) = version_problems({"transformers": "5.0.0"})
    assert problem.startswith("transformers 5.0.0 is installed: ltx-core 1.0.0 loads Gemma-3")
