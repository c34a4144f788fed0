"""The two-stage A2V example workflow through the real server: an mp4 with the right frames, size and audio,
for each CPU policy; the same seed gives the same frames; the UI file is the same graph; bad values are
refused at /prompt."""

import json
import time

import numpy as np
import pytest
from workflows import API, FPS, FRAMES, HEIGHT, UI, WIDTH, read_mp4, saved_mp4, small_workflow

# Input kinds the page shows as widgets (0.16+ adds the dynamic combo, SaveVideo's codec).
WIDGETS = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "COMFY_DYNAMICCOMBO_V3")
MISSING = object()


@pytest.mark.parametrize("policy", ["none", "fp8_cast", "fp8_scaled", "torchao_int8_weight_only"])
def test_workflow_writes_an_mp4_with_video_and_audio(host, policy):
    result = host.run(small_workflow(policy, prefix=f"test/{policy}"))
    assert result.status == "success", result.messages[-1]
    frames, info = read_mp4(saved_mp4(host, result))
    assert frames.shape == (FRAMES, 2 * HEIGHT, 2 * WIDTH, 3)
    assert info["fps"] == FPS
    assert abs(info["audio_seconds"] - FRAMES / FPS) < 0.05  # aac frames round up a little
    # Progress reached the page for each stage-1 step.
    progress = [m["data"] for m in result.messages if m["type"] == "progress" and m["data"]["node"] == "4"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 3


def test_same_seed_gives_identical_frames(host):
    first = host.run(small_workflow(prefix="test/seed_a"))
    host.free()  # drop ComfyUI's output cache, so the second run really runs again
    time.sleep(1.0)
    second = host.run(small_workflow(prefix="test/seed_b"))
    assert any(m["type"] == "executing" and m["data"]["node"] == "4" for m in second.messages), "stage 1 did not rerun"
    a, _ = read_mp4(saved_mp4(host, first))
    b, _ = read_mp4(saved_mp4(host, second))
    assert np.array_equal(a, b)
    host.free()
    time.sleep(1.0)
    other = host.run(small_workflow(prefix="test/seed_c", seed=7))
    assert not np.array_equal(a, read_mp4(saved_mp4(host, other))[0])


@pytest.mark.parametrize(
    "name",
    [
        "ltx2_a2v_two_stage",
        "ltx2_a2v_22b",
        "ltx2_a2v_22b_fast",
        "ltx2_a2v_first_last_frame",
        "ltx2_a2v_user_lora",
        "ltx2_a2v_long_voice",
    ],
)
def test_ui_workflow_is_the_same_graph_as_the_api_one(host, name):
    """Turn the UI file into API format the way the page does (widgets in the node's input order) and compare."""
    ui = json.loads((UI.parent / f"{name}.json").read_text())
    api = json.loads((API.parent / f"{name}.json").read_text())
    info = host.object_info()
    links = {link[0]: link for link in ui["links"]}
    converted = {}
    for node in ui["nodes"]:
        if node["type"] == "Note":
            continue
        spec = info[node["type"]]
        linked = {i["name"]: [str(links[i["link"]][1]), links[i["link"]][2]] for i in node["inputs"] if i["link"]}
        values = iter(node["widgets_values"])
        inputs = {}
        declared = spec["input"].get("required", {}) | spec["input"].get("optional", {})
        required = spec["input_order"].get("required", [])
        for name in required + spec["input_order"].get("optional", []):
            kind, options = declared[name][0], (declared[name][1] if len(declared[name]) > 1 else {})
            if name in linked:
                inputs[name] = linked[name]
            elif kind in WIDGETS or isinstance(kind, list):
                value = next(values, MISSING)
                # An optional widget a newer ComfyUI added (0.33's CreateVideo bit_depth) has no value in a file
                # saved before it: the page leaves it at its default, and the API file does not name it either.
                assert value is not MISSING or name not in required, (node["type"], name)
                if value is not MISSING:
                    inputs[name] = value
                if options.get("control_after_generate"):
                    next(values)
        converted[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    expected = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}
    assert converted == expected


def test_release_workflow_names_the_release_files_and_is_refused_where_they_are_missing(host):
    prompt = json.loads((API.parent / "ltx2_a2v_22b.json").read_text())
    assert prompt["3"]["inputs"]["ckpt_name"] == "ltx-2.3-22b-dev-fp8.safetensors"
    assert (prompt["4"]["inputs"]["width"], prompt["4"]["inputs"]["num_frames"]) == (384, 97)
    response = host.post_prompt(prompt)  # this host has only the tiny bundle
    assert response.status_code == 400
    details = " ".join(e["details"] for e in response.json()["node_errors"]["3"]["errors"])
    assert "ckpt_name: 'ltx-2.3-22b-dev-fp8.safetensors' is not one of the available choices" in details


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"width": 100}, "width", "multiples of 32"),
        ({"num_frames": 20}, "num_frames", "8k+1"),
        ({"steps": 0}, "steps", "Value 0 smaller than min of 1"),  # ComfyUI's own check, from the schema
        ({"frame_rate": 0.0}, "frame_rate", "frame_rate: 0.0 is outside 1.0..120.0"),
        ({"width": 8192}, "width", "width: 8192 is outside 64..4096"),
    ],
)
def test_bad_sampler_values_are_refused_at_queue_time(host, change, field, words):
    prompt = small_workflow()
    prompt["4"]["inputs"].update(change)
    response = host.post_prompt(prompt)
    assert response.status_code == 400
    details = " ".join(f"{e['message']}: {e['details']}" for e in response.json()["node_errors"]["4"]["errors"])
    assert words in details and field in details
    assert host.run(small_workflow(prefix="test/after_bad_value")).status == "success"


def test_refine_without_a_latent_is_refused_at_queue_time(host):
    prompt = small_workflow()
    del prompt["6"]["inputs"]["latent"]
    response = host.post_prompt(prompt)
    assert response.status_code == 400
    details = " ".join(e["details"] for e in response.json()["node_errors"]["6"]["errors"])
    assert "refine stage needs a latent" in details


def test_interrupt_stops_stage_1_within_a_step_and_the_next_run_succeeds(host):
    seen = []

    def interrupt_after_two_steps(message):
        if message["type"] == "progress" and message["data"]["node"] == "4":
            seen.append(message["data"]["value"])
            if message["data"]["value"] == 2:
                host.interrupt()

    prompt_id = host.queue(small_workflow(prefix="test/interrupted", steps=200))
    result = host.wait(prompt_id, on_message=interrupt_after_two_steps)
    assert result.status == "interrupted"
    assert max(seen) <= 3  # stopped at the next step boundary, not after 200
    assert not any(m["type"] == "executed" and m["data"]["node"] == "9" for m in result.messages)
    assert host.run(small_workflow(prefix="test/after_interrupt", seed=5)).status == "success"


def test_a_cold_start_run_reads_the_transformer_once_each_node_beginning_the_run_again(host):
    """Stage 2 runs on the transformer stage 1 kept, and stage 2's image on the upscale's video encoder, though each
    node begins the run again (the budget frees then what an earlier run kept, not what this run handed over)."""
    result = host.run(small_workflow(prefix="test/read_once", seed=23))
    assert result.status == "success", result.messages[-1]
    state = host.vram()
    stages = [(s["name"], {c["name"]: c["bytes_read"] for c in s["components"]}) for s in state["last_run"]["phases"]]
    stage_1 = next(reads for name, reads in stages if name == "stage 1 denoise")
    stage_2 = next(reads for name, reads in stages if name == "stage 2 denoise")
    assert stage_1["transformer"] > 0 and stage_2["transformer"] == 0 and stage_2["distilled LoRA"] > 0, stages
    assert [reads for name, reads in stages if name == "image encode"][-1] == {"video_encoder": 0}, stages
    assert state["resident_bytes"] == 0


def test_interrupt_in_stage_2_leaves_nothing_half_built(host):
    def interrupt_when_stage_2_starts(message):
        if message["type"] == "executing" and message["data"].get("node") == "6":
            host.interrupt()

    prompt_id = host.queue(small_workflow(prefix="test/interrupted-2", seed=21))
    result = host.wait(prompt_id, on_message=interrupt_when_stage_2_starts)
    assert result.status == "interrupted"
    assert not any(m["type"] == "executed" and m["data"]["node"] == "6" for m in result.messages)
    # Interrupted inside stage 2, the pack frees at once what stage 1 and the upscale kept for it; interrupted
    # before stage 2's node runs (ComfyUI checks between nodes), what they kept is whole, idle, and one of
    # ComfyUI's loaded models: "unload models" frees it, as does the next prompt's first LTX-2 node.
    held = [c for c in host.vram()["components"] if c["resident"]]
    assert all(c["handed_over"] and not c["in_use"] and c["streamed_bytes"] == 0 for c in held), held
    host.free()
    assert host.vram()["resident_bytes"] == 0
    assert host.run(small_workflow(prefix="test/after_interrupt_2", seed=22)).status == "success"
    assert host.vram()["resident_bytes"] == 0


def test_back_to_back_prompts_with_different_policies_use_their_own_weights(host):
    first = host.queue(small_workflow("none", prefix="test/policy_none", seed=31))
    second = host.queue(small_workflow("fp8_cast", prefix="test/policy_fp8", seed=31))
    a, b = host.wait(first), host.wait(second)
    assert a.status == b.status == "success"
    assert host.vram()["last_run"]["policy"] == "fp8_cast"
    frames_none, frames_fp8 = read_mp4(saved_mp4(host, a))[0], read_mp4(saved_mp4(host, b))[0]
    assert not np.array_equal(frames_none, frames_fp8)  # same seed, other weights


def test_refine_reuses_stage_1_prompt_encoding_unless_its_prompt_differs(host):
    """The 12B text encoder is built once per run when both stages have the same prompt (as in the example)."""

    def text_encodes(prompt: dict) -> int:
        result = host.run(prompt)
        assert result.status == "success", result.messages[-1]
        return [s["name"] for s in host.vram()["last_run"]["phases"]].count("text encode")

    assert text_encodes(small_workflow(prefix="test/one_encode", seed=51)) == 1
    other = small_workflow(prefix="test/two_encodes", seed=52)  # another seed: stage 1 is not taken from the cache
    other["6"]["inputs"]["prompt"] = "A man whispers."
    assert text_encodes(other) == 2


def test_the_fast_recipe_runs_8_and_3_steps_with_the_lora_transformer_in_both_stages(host):
    prompt = small_workflow(prefix="test/fast_recipe", seed=31, recipe="fast", cfg=1.0)
    result = host.run(prompt)
    assert result.status == "success", result.messages[-1]
    frames, _ = read_mp4(saved_mp4(host, result))
    assert frames.std() > 0
    steps = {m["data"]["node"]: m["data"]["max"] for m in result.messages if m["type"] == "progress"}
    assert steps["4"] == 8 and steps["6"] == 3, steps  # the template's sigmas, whatever `steps` says
    stages = {s["name"]: s for s in host.vram()["last_run"]["phases"]}
    for name in ("stage 1 denoise", "stage 2 denoise"):
        assert [c["name"] for c in stages[name]["components"]] == ["transformer (stage 2)"], stages[name]
