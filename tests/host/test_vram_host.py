"""The budget inside the real server: cold_start gives everything back, persistent keeps the transformers,
ComfyUI's own "free" evicts them, VRAMGuard frees and reports, GET /ltx2/vram tells the state."""

import numpy as np
from workflows import load_and_report, read_mp4, resident, saved_mp4, small_workflow, wait_until


def test_cold_start_run_leaves_nothing_resident_and_memory_returns(host):
    host.run(small_workflow(prefix="test/warmup"))  # imports and first-use allocations happen once
    before = host.rss()
    prompt = small_workflow(prefix="test/cold", seed=11)
    for sampler in ("4", "6"):  # a prompt of its own: encoded in this run, not kept from the warm-up
        prompt[sampler]["inputs"]["prompt"] = "A woman speaks, cold start test."
    result = host.run(prompt)
    assert result.status == "success"
    state = host.vram()
    assert resident(host) == [] and state["resident_bytes"] == 0 and state["mode"] == "cold_start"
    stages = [s["name"] for s in state["last_run"]["phases"]]
    assert {"text encode", "stage 1 denoise", "upscale", "stage 2 denoise", "decode"} <= set(stages)
    assert all(s["seconds"] > 0 and s["peak_bytes"] > 0 for s in state["last_run"]["phases"])
    assert host.rss() - before < 150 * 2**20, (before, host.rss())
    report = result.outputs("10")["text"][0]
    assert "stage 1 denoise" in report and "held by LTX-2" in report


def test_persistent_run_keeps_one_transformer_and_the_lora_until_comfyui_frees_them(host):
    prompt = small_workflow(prefix="test/persistent")
    prompt["3"]["inputs"]["residency"] = "persistent"
    assert host.run(prompt).status == "success"
    kept = resident(host)
    # Stage 2 runs on stage 1's transformer with the LoRA's factors beside it: one transformer, not two.
    assert "transformer" in kept and "distilled LoRA" in kept and "transformer (stage 2)" not in kept
    host.free(unload_models=True, free_memory=False)  # the page's "unload models"
    assert wait_until(lambda: resident(host) == []), resident(host)


def test_vram_guard_frees_what_the_pack_holds(host):
    prompt = small_workflow(prefix="test/persistent2", seed=3)
    prompt["3"]["inputs"]["residency"] = "persistent"
    assert host.run(prompt).status == "success"
    assert resident(host)
    result = host.run(
        load_and_report()
        | {
            "2": {
                "class_type": "VRAMGuard",
                "inputs": {"budget_gb": 0.0, "action": "free_ltx2", "passthrough": ["1", 0]},
            }
        }
    )
    assert result.status == "success"
    assert resident(host) == []
    assert "0.00 GiB held by LTX-2" in result.outputs("2")["text"][0]


def test_negative_budget_is_refused_at_queue_time(host):
    prompt = load_and_report()
    prompt["2"]["inputs"]["budget_gb"] = -2
    response = host.post_prompt(prompt)
    assert response.status_code == 400
    assert "budget_gb" in str(response.json()["node_errors"]["2"]["errors"])


def test_budget_below_the_transformer_streams_it_and_the_run_completes(host):
    prompt = small_workflow(prefix="test/streamed")
    # A VRAMGuard between the loader and the samplers sets the budget before they run: 0.1 MB.
    prompt["11"] = {
        "class_type": "VRAMGuard",
        "inputs": {"budget_gb": 0.0001, "action": "enforce", "passthrough": ["3", 0]},
    }
    for node in ("4", "5", "6", "7"):
        prompt[node]["inputs"]["model"] = ["11", 0]
    try:
        result = host.run(prompt)
        assert result.status == "success", result.messages[-1]
        used = host.vram()["last_run"]["components"]
        assert "transformer, streamed" in used and "distilled LoRA" in used and len(used) == len(set(used))
    finally:
        host.run(load_and_report())  # budget back to the default (budget_gb 0)
    assert host.vram()["budget_bytes"] > 2**30


def test_pipeline_alternates_with_a_comfyui_managed_model_under_one_budget(host):
    """Our stages, then ComfyUI's own pixel-space VAE (a ModelPatcher-managed model needing no file) encoding
    and decoding the frames, then video: in one prompt, persistent, under a budget smaller than our models."""
    prompt = small_workflow(prefix="test/alternate")
    prompt["3"]["inputs"]["residency"] = "persistent"
    budget_gb = 0.012
    prompt["11"] = {
        "class_type": "VRAMGuard",
        "inputs": {"budget_gb": budget_gb, "action": "enforce", "passthrough": ["3", 0]},
    }
    for node in ("4", "5", "6", "7"):
        prompt[node]["inputs"]["model"] = ["11", 0]
    prompt["20"] = {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}}
    prompt["21"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["20", 0]}}
    prompt["22"] = {"class_type": "VAEDecode", "inputs": {"samples": ["21", 0], "vae": ["20", 0]}}
    prompt["8"]["inputs"]["images"] = ["22", 0]
    try:
        result = host.run(prompt)
        assert result.status == "success", result.messages[-1]
        executed = {m["data"]["node"] for m in result.messages if m["type"] == "executing" and m["data"]["node"]}
        assert {"4", "6", "21", "22", "9"} <= executed
        state = host.vram()
        assert 0 < state["resident_bytes"] <= budget_gb * 2**30
    finally:
        host.run(
            load_and_report()
            | {
                "2": {
                    "class_type": "VRAMGuard",
                    "inputs": {"budget_gb": 0.0, "action": "free_ltx2", "passthrough": ["1", 0]},
                }
            }
        )


def test_policy_switch_on_a_persistent_model_uses_the_right_weights_each_time(host):
    """Kept components are found by a key that holds the policy: switching policy between runs never reuses the
    other policy's weights, and switching back reuses the kept ones (no rebuild, same frames)."""

    def run(policy: str, tag: str):
        prompt = small_workflow(policy, prefix=f"test/switch_{tag}", seed=44)
        prompt["3"]["inputs"]["residency"] = "persistent"
        result = host.run(prompt)
        assert result.status == "success", result.messages[-1]
        return read_mp4(saved_mp4(host, result))[0], host.vram()

    try:
        frames_none, _ = run("none", "a")
        frames_fp8, state = run("fp8_scaled", "b")
        assert any(line.startswith("transformer") and "fp8_scaled" in line for line in state["last_run"]["loads"])
        kept = {(c["name"], c["policy"]) for c in state["components"] if c["resident"]}
        assert {("transformer", "none"), ("transformer", "fp8_scaled")} <= kept
        frames_again, state = run("none", "c")
        assert not any(line.startswith("transformer") for line in state["last_run"]["loads"])  # reused, not rebuilt
    finally:
        host.free(unload_models=True, free_memory=False)
        assert wait_until(lambda: resident(host) == [])
    assert not np.array_equal(frames_none, frames_fp8)
    assert np.array_equal(frames_none, frames_again)
