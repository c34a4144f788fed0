"""What a publish to the Comfy registry would upload, and that it is enough to run.

`comfy node publish` zips the git-tracked files (`git ls-files`) less those matching .comfyignore's patterns (read
as gitignore patterns, comment lines dropped), plus the folders [tool.comfy] `includes` names (comfy-cli,
comfy_cli/file_utils.py `zip_files`). The list is built here with git's own matcher of the same syntax, copied to a
folder, and ComfyUI is started on that copy alone (with the copy's tools/serve.py, as the cluster's workers start
it) to run the two-stage workflow on the tiny bundle.
"""

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import comfy_host  # tools/
import pytest
from workflows import PACK_NODES, read_mp4, saved_mp4, small_workflow

ROOT = Path(__file__).resolve().parents[3]
# The lane's ComfyUI tree, absolute: the copy has no .comfyui beside it.
TREE = (ROOT / os.environ.get("LTX2_COMFYUI", ".comfyui")).resolve()
RELEASE_WORKFLOWS = (
    "ltx2_a2v_22b",
    "ltx2_a2v_22b_fast",
    "ltx2_a2v_first_last_frame",
    "ltx2_a2v_user_lora",
    "ltx2_a2v_long_voice",
)


def _git_files(*args: str) -> set[str]:
    done = subprocess.run(["git", "-C", str(ROOT), "ls-files", *args], capture_output=True, text=True, check=True)
    return set(done.stdout.splitlines())


def published_files() -> list[str]:
    includes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["includes"]
    # comfy-cli walks each `includes` folder (untracked files too); none is named, so the tracked files are all.
    assert includes == [], "includes: extend published_files() with comfy-cli's walk of these folders"
    ignored = _git_files("--cached", "--ignored", "--exclude-from", str(ROOT / ".comfyignore"))
    return sorted(_git_files() - ignored)


def test_comfyignore_reads_the_same_to_comfy_cli_and_git():
    # comfy-cli strips each line; git keeps leading blanks as part of the pattern. Neither is there.
    for line in (ROOT / ".comfyignore").read_text().splitlines():
        assert line == line.strip(), repr(line)


def test_the_upload_leaves_out_what_a_user_does_not_need():
    files = published_files()
    tops = {f.split("/")[0] for f in files}
    assert tops == {
        ".comfyignore",
        ".gitignore",
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        "__init__.py",
        "cluster",
        "docs",
        "errors.py",
        "example_workflows",
        "ltx2",
        "memory",
        "nodes",
        "pyproject.toml",
        "quant",
        "requirements.txt",
        "tools",
        "web",
    }, tops
    assert [f for f in files if f.startswith("tools/")] == ["tools/serve.py"]  # cluster/worker.py starts it
    assert not [f for f in files if f.endswith(".png") and not f.startswith("example_workflows/media/")]
    assert all(f.endswith(".md") for f in files if f.startswith("docs/"))  # the pages the README links, no pictures
    workflows = {Path(f).stem for f in files if f.startswith("example_workflows/") and f.endswith(".json")}
    assert workflows == set(RELEASE_WORKFLOWS), workflows  # the tiny bundle's are the tests' and the demo's
    comfy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]
    icon_path = comfy["Icon"].split("/main/", 1)[1]
    assert icon_path in files


@pytest.fixture(scope="module")
def published_host(models_dir, tmp_path_factory):
    """ComfyUI with the pack as the upload would install it: a folder holding the published files only."""
    copy = tmp_path_factory.mktemp("published") / "ltx2-a2v"
    for name in published_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    # ComfyHost starts <ROOT>/tools/serve.py, which links its own folder into ComfyUI's custom_nodes: the copy's.
    saved, comfy_host.ROOT = comfy_host.ROOT, copy
    try:
        server = comfy_host.ComfyHost(models_dir, tmp_path_factory.mktemp("published_host"), comfyui=str(TREE))
    finally:
        comfy_host.ROOT = saved
    server.pack_root = copy
    for media in comfy_host.MEDIA.iterdir():
        shutil.copy(media, server.input_dir / media.name)
    server.wait_ready()
    yield server
    server.stop()


def test_the_published_files_alone_run_the_workflow(published_host):
    host = published_host
    assert host.process.args[1] == str(host.pack_root / "tools" / "serve.py")  # the copy's, linking the copy
    info = host.object_info()
    assert all(name in info for name in PACK_NODES), [n for n in PACK_NODES if n not in info]
    templates = json.loads(comfy_host.requests.get(f"{host.url}/api/workflow_templates", timeout=30).text)
    assert sorted(templates["ltx2_a2v"]) == sorted(RELEASE_WORKFLOWS)
    extensions = comfy_host.requests.get(f"{host.url}/extensions", timeout=30).json()
    assert "/extensions/ltx2_a2v/js/ltx2_page.js" in extensions
    result = host.run(small_workflow(prefix="test/published"))
    assert result.status == "success", result.messages[-1]
    frames, _ = read_mp4(saved_mp4(host, result))
    assert frames.shape[0] == 17
