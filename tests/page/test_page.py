"""The page in a real browser (Debian's Chromium through Playwright): the example workflow is listed in the
template browser with the project's thumbnail, loads by drag and drop with no node type missing, shows the
pack's widgets, shows a value refused at the queue under its input, runs from the Run button, and the VRAMGuard
widget shows the run's figures as they happen; the node search finds the pack's nodes by their aliases (where the
server gives them), and the release workflow's missing files are listed with their download addresses. It runs on
each lane's frontend: 1.32 (ComfyUI 0.3.75) and, with LTX2_COMFYUI, that tree's (1.48 in ComfyUI 0.33: its
template browser, its errors panel instead of the error dialog).

The screenshot is saved under the test's tmp folder. The README's picture is this test's screenshot on ComfyUI
0.33's frontend:

    LTX2_PAGE_SCREENSHOT=docs/page.png LTX2_COMFYUI=/path/to/ComfyUI-0.33 .venv-host/bin/python -m pytest \
        tests/page/test_page.py
"""

import io
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import page_browser as pb  # tools/
import pytest
import requests
from PIL import Image
from workflows import PACK_NODES

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "example_workflows" / "ltx2_a2v_two_stage.json"
RELEASE = ROOT / "example_workflows" / "ltx2_a2v_22b.json"
# Small enough for the CPU, as in test_a2v_workflow.py; a seed no other test uses, so nothing comes from
# ComfyUI's cache of earlier prompts.
SMALL = {"width": 128, "height": 96, "num_frames": 17, "steps": 3, "seed": 20261122}


@pytest.mark.parametrize("workflow", sorted((ROOT / "example_workflows").glob("*.json")), ids=lambda p: p.stem)
def test_the_template_thumbnail_is_what_the_tool_draws(workflow):
    from make_thumbnail import thumbnail_of  # tools/

    drawn = np.asarray(Image.open(io.BytesIO(thumbnail_of(workflow))).convert("RGB"), dtype=float)
    committed = np.asarray(Image.open(workflow.with_suffix(".jpg")).convert("RGB"), dtype=float)
    assert drawn.shape == committed.shape == (640, 640, 3)
    # The same pixels, give or take another JPEG library's rounding; if not, run tools/make_thumbnail.py.
    assert np.abs(drawn - committed).max() <= 16


def test_the_page_shows_memory_and_progress_of_a_run(host, tmp_path):
    templates = requests.get(f"{host.url}/api/workflow_templates", timeout=30).json()
    assert "ltx2_a2v_two_stage" in templates["ltx2_a2v"]
    # Where the page looks for a custom node's template thumbnail: <name>.jpg beside <name>.json.
    served = requests.get(f"{host.url}/api/workflow_templates/ltx2_a2v/ltx2_a2v_two_stage.jpg", timeout=30)
    assert served.ok and served.content == UI.with_suffix(".jpg").read_bytes()
    host.free()  # nothing left from earlier tests' prompts
    with pb.open_page(host.url) as page:
        # The template browser lists the workflow with the thumbnail drawn by tools/make_thumbnail.py.
        thumbnail = pb.template_thumbnail(page, "ltx2_a2v", "ltx2_a2v_two_stage")
        assert (thumbnail["width"], thumbnail["height"]) == (640, 640)

        pb.drop_workflow(page, UI)
        assert pb.missing_node_types(page) == []
        assert page.locator(pb.DIALOG).count() == 0  # no missing-nodes dialog, no error
        shown = pb.panels(page)
        assert {kind: len(nodes) for kind, nodes in shown.items()} == {
            "LoadLTX2Quantized": 1,
            "A2VSampler": 2,
            "VRAMGuard": 1,
        }
        assert all(node["visible"] for nodes in shown.values() for node in nodes)
        policy = next(r for r in shown["LoadLTX2Quantized"][0]["rows"] if r["role"] == "policy")
        assert "fp8_scaled" in policy["text"] and "cold_start" in policy["text"]
        # What the choices will hold, from the files' headers (GET /ltx2/estimate), before anything is loaded.
        estimate = ""
        for _ in range(60):
            estimate = next(r for r in pb.panels(page)["LoadLTX2Quantized"][0]["rows"] if r["role"] == "estimate")
            if "transformer" in estimate["text"]:
                break
            page.wait_for_timeout(500)
        shown_bytes = r"[\d.]+ (?:KiB|MiB|GiB) \(file [\d.]+ (?:KiB|MiB|GiB)\)"
        assert re.search(f"transformer {shown_bytes}", estimate["text"]), estimate
        assert re.search(f"text encoder {shown_bytes}", estimate["text"]), estimate

        # A value refused at the queue is shown under the input its message is about, not under each input
        # ComfyUI hands the node's check (web/js/ltx2_page.js, keepNamedInputs).
        samplers = [
            str(i) for i in page.evaluate("() => app.graph.nodes.filter(n => n.type === 'A2VSampler').map(n => n.id)")
        ]
        negative = pb.widget_values(page, "A2VSampler", "negative_prompt")
        pb.set_widgets(page, "A2VSampler", negative_prompt="blurry " * 3000)
        errors, listed = pb.queue_errors(page)
        assert sorted(errors) == sorted(samplers), errors
        for node in samplers:
            assert errors[node] == [
                (
                    "negative_prompt",
                    "negative_prompt - negative_prompt: 21,000 characters; the "
                    "limit is 16,384 (the text encoder reads at most 1024 tokens, about 4,000 "
                    "characters of English). Shorten it.",
                )
            ], errors[node]
        # The page lists it once per node (ComfyUI's own list: once per input the check takes, a dozen), with
        # the message.
        assert len(listed) == len(samplers), listed
        assert all("negative_prompt" in e and "21,000 characters" in e for e in listed), listed
        pb.set_widgets(page, "A2VSampler", negative_prompt=negative[0])

        pb.set_widgets(page, "A2VSampler", **SMALL)
        pb.record_guard_panel(page)
        pb.queue(page)
        video = pb.wait_for_video(page)
        assert video.startswith(f"{host.url}/api/view?filename=") and "type=output" in video

        state = host.vram()
        run = state["last_run"]
        shown = pb.panels(page)
        guard = {r["role"]: r for r in shown["VRAMGuard"][0]["rows"] if r["role"] != "phase"}
        assert (
            guard["precision"]["text"]
            == run["precision"]
            == ("compute transformer float32, text encoder float32, VAE float32")
        )
        phases = [r for r in shown["VRAMGuard"][0]["rows"] if r["role"] == "phase"]
        # The report is the run's: same run, phases, seconds and peaks as GET /ltx2/vram.
        assert guard["summary"]["runId"] == run["run_id"]
        assert [(s["name"], float(s["seconds"]), int(s["peakBytes"])) for s in phases] == [
            (s["name"], s["seconds"], s["peak_bytes"]) for s in run["phases"]
        ]
        assert {"stage 1 denoise", "stage 2 denoise", "decode"} <= {s["name"] for s in phases}
        # ... and the figures a user reads are those numbers, formatted.
        summary = re.match(
            r"last run: ([\d.]+) s, peak (.+?), read (.+?) \(cold_start, fp8_scaled\)$", guard["summary"]["text"]
        )
        assert summary, guard["summary"]["text"]
        assert math.isclose(float(summary[1]), run["elapsed_seconds"], abs_tol=0.006)
        assert pb.shows_bytes(summary[2], run["peak_bytes"])
        assert pb.shows_bytes(summary[3], run["bytes_read"]) and run["bytes_read"] > 0  # cold_start: all read
        assert int(guard["peak"]["bytes"]) == run["peak_bytes"] > 0
        assert pb.shows_bytes(guard["peak"]["text"].removeprefix("peak "), run["peak_bytes"])
        assert int(guard["budget"]["bytes"]) == state["budget_bytes"] > 0
        assert int(guard["used"]["bytes"]) == state["resident_bytes"] == 0  # cold_start: nothing held after
        for row in phases:
            name, seconds, peak, read = row["cells"]
            assert name == row["name"]
            assert math.isclose(float(seconds), float(row["seconds"]), abs_tol=0.006)
            assert pb.shows_bytes(peak, int(row["peakBytes"]))
            assert pb.shows_bytes(read, int(row["bytesRead"]))
        assert sum(int(r["bytesRead"]) for r in phases) == run["bytes_read"]

        # It moved during the run: a phase shown running, with the transformer in use.
        seen = page.evaluate("window.ltx2Seen")
        assert any((s["status"] or "").startswith("running: stage 1 denoise") for s in seen), seen[-5:]
        assert any(s["used"] > 0 for s in seen)

        # The samplers show their stage and last step.
        samplers = {r["stage"]: r for node in shown["A2VSampler"] for r in node["rows"] if r["role"] == "step"}
        assert samplers["base"]["status"] == samplers["refine"]["status"] == "done"
        assert samplers["base"]["text"].startswith("base: done, step 3/3")
        assert samplers["refine"]["text"].startswith("refine: done, step 3/3")

        picture = pb.screenshot(page, tmp_path / "page.png")
        assert picture.stat().st_size > 50_000

        # The node search finds all the pack's nodes by what a user types, where the server gives the nodes' search
        # aliases (ComfyUI 0.33; 0.3.75's schema has none).
        info = host.object_info()
        if info["A2VSampler"].get("search_aliases"):
            names = {info[n]["display_name"] for n in PACK_NODES}
            for query in ("lip sync", "audio to video"):
                assert names <= set(pb.search_nodes(page, query)), query
            assert info["LoadLTX2Quantized"]["display_name"] in pb.search_nodes(page, "fp8")

        # The release workflow names files this server lacks: the page lists each with its folder and the address
        # to download it from (its loaders' properties.models, as in ComfyUI's own templates).
        pb.drop_workflow(page, RELEASE)
        declared = [m for n in json.loads(RELEASE.read_text())["nodes"] for m in n["properties"].get("models", [])]
        listed = pb.missing_models(page)
        for entry in listed:  # 1.48's "Copy URL" gives the file's Hugging Face page (/blob/), not its download
            entry["url"] = re.sub(r"^(https://huggingface\.co/[^/]+/[^/]+)/blob/", r"\1/resolve/", entry["url"])
        assert sorted(listed, key=str) == sorted(declared, key=str) and len(declared) == 4
        assert pb.pack_errors(page) == []
    if os.environ.get("LTX2_PAGE_SCREENSHOT"):
        shutil.copy(picture, ROOT / os.environ["LTX2_PAGE_SCREENSHOT"])
