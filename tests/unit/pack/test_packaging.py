"""The pack is installable the ways users install it: registry metadata, ComfyUI-Manager's requirements, and
`tools/serve.py` refusing a bad command line."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_pyproject_has_what_the_comfy_registry_reads():
    """The registry's specification (docs.comfy.org, "pyproject.toml"): the required fields, in its formats."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, comfy = data["project"], data["tool"]["comfy"]
    # The node id: under 100 characters, letters, digits and -_. without two in a row, a letter first; best
    # without "ComfyUI". The version: X.Y.Z.
    assert re.fullmatch(r"[A-Za-z](?:[-_.]?[A-Za-z0-9])*", project["name"]) and len(project["name"]) < 100
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["license"] == {"file": "LICENSE"}
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "END OF TERMS AND CONDITIONS" in license_text
    repository = project["urls"]["Repository"]  # required to publish
    owner_repo = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", repository)[1]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    # Icon: a URL, the repository's own web/icon.svg (square, at most 400 px).
    icon = re.fullmatch(rf"https://raw\.githubusercontent\.com/{owner_repo}/main/(.+)", comfy["Icon"])[1]
    svg = (ROOT / icon).read_text()
    size = re.search(r'<svg[^>]* width="(\d+)" height="(\d+)"', svg).groups()
    assert size[0] == size[1] and int(size[0]) <= 400
    # The ComfyUI releases the pack is tested with (README, "Supported versions") satisfy requires-comfyui.
    tested = SpecifierSet(comfy["requires-comfyui"])
    assert Version("0.3.75") in tested and Version("0.33.0") in tested and Version("0.3.60") not in tested
    assert {"Operating System :: POSIX :: Linux", "Environment :: GPU :: NVIDIA CUDA"} <= set(project["classifiers"])


def _requirements(path: Path) -> dict[str, str]:
    """name -> specifier of each requirement line (no -r lines, no comments)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[=<>~! ]", line)[0].lower()
            found[name] = line[len(name) :].strip()
    return found


def test_runtime_requirements_are_ranges_that_hold_both_lanes_pins():
    """requirements.txt has ranges, never an exact pin that would downgrade what ComfyUI installed; the pinned
    lane's versions and the newest lane's fall inside them."""
    from packaging.specifiers import SpecifierSet

    runtime = _requirements(ROOT / "requirements.txt")
    assert not any(spec.startswith("==") for spec in runtime.values()), runtime
    assert {"ltx-core", "ltx-pipelines", "transformers"} <= runtime.keys() and "torchao" not in runtime
    assert not {"torch", "tokenizers", "huggingface_hub", "huggingface-hub"} & runtime.keys()  # ComfyUI's own
    for constraints in ("constraints.txt", "constraints-newest.txt"):
        pins = {k.replace("_", "-"): v.removeprefix("==") for k, v in _requirements(ROOT / constraints).items()}
        for name, spec in runtime.items():
            if name in pins:
                assert pins[name] in SpecifierSet(spec), (constraints, name, pins[name], spec)
    declared = {
        re.split(r"[=<>~ ]", d)[0].lower()
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert declared == set(runtime)


def test_serve_refuses_a_models_dir_that_does_not_exist(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "serve.py"), "--models-dir", str(tmp_path / "nope"), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--models-dir" in result.stderr and "is not a folder" in result.stderr


def test_pack_imports_without_comfyui():
    # The folder is imported as a package outside ComfyUI (tests, tools): no nodes, no error.
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tools')!r}); "
        "from _pack import import_pack; p = import_pack(); print(p.WEB_DIRECTORY)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "./web"


def test_a_transformers_release_below_the_range_is_refused_and_one_past_it_noted():
    from ltx2_a2v.nodes.dependencies import untested_versions, version_problems

    assert version_problems({"transformers": "4.57.1"}) == version_problems({"transformers": "5.23.0"}) == []
    (problem,) = version_problems({"transformers": "4.46.3"})
    assert problem == "transformers 4.46.3 is installed: ltx-core 1.0.0 needs transformers 4.52 or newer"
    assert untested_versions({"transformers": "5.23.0"}) == []
    assert untested_versions({"transformers": "6.1.0"}) == [
        "transformers 6.1.0 is newer than the releases the LTX-2 pack was tested with"
    ]


def test_installing_the_pack_into_this_lanes_comfyui_changes_no_package(tmp_path):
    """What ComfyUI-Manager runs (pip install -r requirements.txt), dry, in this lane's environment, where
    ComfyUI's own requirements are installed (transformers 4.57 or 5.23, torch 2.9 or 2.11): pip would install,
    upgrade or downgrade nothing."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--disable-pip-version-check",
            "--report",
            str(report),
            "-r",
            str(ROOT / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    would = [f"{i['metadata']['name']} {i['metadata']['version']}" for i in json.loads(report.read_text())["install"]]
    assert would == []
