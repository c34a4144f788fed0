"""The pack inside a real ComfyUI server: its nodes are listed, a prompt round-trips, bad values are refused."""

import os
import re
from pathlib import Path

from workflows import PACK_NODES, load_and_report

ROOT = Path(__file__).resolve().parents[2]


def test_the_host_is_the_comfyui_of_this_lane(host):
    """The server runs the tree this lane names: .comfyui (the registry's 0.3.75) or LTX2_COMFYUI's, whatever
    release that is, as its own comfyui_version.py says."""
    tree = ROOT / os.environ.get("LTX2_COMFYUI", ".comfyui")
    version = re.search(r'__version__ = "([^"]+)"', (tree / "comfyui_version.py").read_text())[1]
    assert host.system_stats()["system"]["comfyui_version"] == version


def test_pack_nodes_are_listed_with_the_bundle_files(host):
    info = host.object_info()
    assert all(name in info for name in PACK_NODES)
    loader = info["LoadLTX2Quantized"]
    assert loader["category"] == "model/loaders"
    required = loader["input"]["required"]
    assert "ltx-2.3-tiny-dev.safetensors" in required["ckpt_name"][1]["options"]
    # The release folder and ComfyUI's single files (more where a test wrote the low-bit ones), never the folder's
    # own shards (ComfyUI lists files recursively: they would come as "gemma-3-tiny-it/model-...").
    options = required["text_encoder"][1]["options"]
    assert {
        "gemma-3-tiny-it",
        "gemma_3_tiny_it.safetensors",
        "gemma_3_tiny_it_fp4_mixed.safetensors",
        "gemma_3_tiny_it_fp8_scaled.safetensors",
    } <= set(options), options
    assert not [o for o in options if "/" in o or "\\" in o], options
    assert "ltx-2.3-tiny-distilled-lora-384.safetensors" in required["distilled_lora"][1]["options"]
    assert loader["output"] == ["LTX2_MODEL"]


def test_trivial_prompt_round_trips(host):
    result = host.run(load_and_report())
    assert result.status == "success", result.messages
    report = result.outputs("2")["text"][0]
    assert "held by LTX-2" in report and "action enforce" in report
    assert any(m["type"] == "executed" and m["data"]["node"] == "2" for m in result.messages)


def test_file_not_in_the_list_is_refused_at_queue_time(host):
    response = host.post_prompt(load_and_report(ckpt_name="../../etc/passwd"))
    assert response.status_code == 400
    errors = response.json()["node_errors"]["1"]["errors"]
    assert any("ckpt_name" in e["details"] for e in errors)
    # The server keeps serving.
    assert host.run(load_and_report()).status == "success"


def test_policy_this_machine_cannot_run_is_explained_and_the_server_serves_on(host):
    result = host.run(load_and_report(quantization="torchao_fp8_dynamic"))
    assert result.status == "error"
    error = result.error()
    assert error["node_type"] == "LoadLTX2Quantized"
    assert "compute capability 8.9" in error["exception_message"] and "Pick fp8_scaled" in error["exception_message"]
    assert host.run(load_and_report(quantization="fp8_scaled")).status == "success"
