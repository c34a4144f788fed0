"""The release workflows name their files the way ComfyUI's templates do, and those files are the README's table:
each loader's file inputs have a `models` entry (name, url, directory) in the UI form's node properties (what the
page's missing-models dialog reads) and in the API form's `_meta`; every entry is a row of the table and every row
is named. Where ComfyUI's own LTX-2.3 template is installed, its loaders pick the same files, at the same
addresses and folders."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / "example_workflows"
RELEASE = (
    "ltx2_a2v_22b",
    "ltx2_a2v_22b_fast",
    "ltx2_a2v_first_last_frame",
    "ltx2_a2v_user_lora",
    "ltx2_a2v_long_voice",
)
# The pack's inputs that name a model file.
FILE_INPUTS = {
    "LoadLTX2Quantized": ("ckpt_name", "text_encoder", "distilled_lora"),
    "SpatialUpscale": ("upscale_model",),
}
# The README's table of the files to download, found by its header.
HEADER = "| file | folder | download | size |"
ROW = re.compile(r"\| `([^`]+)` \| `models/(\w+)/` \| <(https://[^>]+)> \| ([\d,]+) bytes \(([\d.]+) GiB\) \|")


def files_table() -> dict[str, dict]:
    """The README's rows: name -> {directory, url, size}."""
    readme = (ROOT / "README.md").read_text().splitlines()
    assert readme.count(HEADER) == 1, f"README.md: one table headed {HEADER}"
    body = readme[readme.index(HEADER) + 2 :]
    lines = body[: next((i for i, line in enumerate(body) if not line.startswith("|")), len(body))]
    rows = [ROW.fullmatch(line) for line in lines]
    assert rows and all(rows), [line for line, row in zip(lines, rows) if not row]
    table = {}
    for row in rows:
        size = int(row[4].replace(",", ""))
        assert f"{size / 2**30:.1f}" == row[5], row[0]  # the GiB shown are the bytes'
        table[row[1]] = {"directory": row[2], "url": row[3], "size": size}
    return table


def api_entries(name: str) -> list[tuple[dict, dict]]:
    """(models entry, the node's inputs) of each API-form loader."""
    prompt = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    return [(m, n["inputs"]) for n in prompt.values() for m in n.get("_meta", {}).get("models", [])]


@pytest.mark.parametrize("name", RELEASE)
def test_each_named_file_has_its_row_and_each_row_is_named(name):
    table = files_table()
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    prompt = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    for form, nodes in (("ui", ui["nodes"]), ("api", prompt.values())):
        named = []
        for node in nodes:
            cls = node.get("type") or node["class_type"]
            entries = node.get("properties", {}).get("models") or node.get("_meta", {}).get("models") or []
            values = node["widgets_values"] if form == "ui" else [node["inputs"][i] for i in FILE_INPUTS.get(cls, ())]
            # The page selects a node's entries by its widget values: each entry is one of them ...
            assert all(e["name"] in values for e in entries), (form, cls, entries)
            # ... and each file input has its entry.
            if form == "api":
                assert sorted(values) == sorted(e["name"] for e in entries), (form, cls)
            for entry in entries:
                assert set(entry) == {"name", "url", "directory"}, entry
                row = table.get(entry["name"])
                assert row is not None, f"{form}: {entry['name']} is not in the README's table"
                assert (entry["url"], entry["directory"]) == (row["url"], row["directory"]), entry
                named.append(entry["name"])
        assert sorted(named) == sorted(table), (form, named)


def test_the_tiny_bundles_workflow_names_no_download():
    ui = json.loads((WORKFLOWS / "ltx2_a2v_two_stage.json").read_text())
    assert not [n for n in ui["nodes"] if n.get("properties", {}).get("models")]
    assert api_entries("ltx2_a2v_two_stage") == []


def _template() -> dict:
    """ComfyUI's own LTX-2.3 image+audio template, from the templates package this lane's Python or the ComfyUI
    0.33 lane's (.venv-host) imports; skipped where neither has it (the registry's 0.3.75 predates LTX-2.3)."""
    sys.path.insert(0, str(ROOT))
    try:
        from bench.template_prompt import TemplateError, find_template
    finally:
        sys.path.remove(str(ROOT))
    for python in (sys.executable, str(ROOT / ".venv-host" / "bin" / "python")):
        try:
            return json.loads(find_template(python).read_text())
        except (TemplateError, FileNotFoundError, subprocess.SubprocessError):
            continue
    pytest.skip("ComfyUI's LTX-2.3 template (comfyui-workflow-templates-json) is not installed in this lane")


def test_the_files_are_comfyuis_own_templates():
    template = _template()
    nodes = [n for s in template.get("definitions", {}).get("subgraphs", []) for n in s["nodes"]]
    nodes += template["nodes"]
    picked = {n["type"]: n["widgets_values"][0] for n in nodes if n.get("mode", 0) == 0 and n.get("widgets_values")}
    declared = {m["name"]: m for n in nodes for m in n.get("properties", {}).get("models", [])}
    table = files_table()
    # The template's checkpoint, Gemma file, distilled LoRA and upscaler are the table's four files.
    loaders = ("CheckpointLoaderSimple", "LTXAVTextEncoderLoader", "LoraLoaderModelOnly", "LatentUpscaleModelLoader")
    assert sorted(picked[cls] for cls in loaders) == sorted(table)
    for name, row in table.items():
        assert (declared[name]["url"], declared[name]["directory"]) == (row["url"], row["directory"]), name
