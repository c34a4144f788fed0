"""A repeated prompt costs nothing, through the real server: the second cold_start run with the same prompts builds
no text encoder, says "prompt reused" and gives the same frames; a changed prompt, or ComfyUI's "unload models"
in between, encodes again.

ComfyUI's own cache would not run the sampler again for the very same inputs, so the repeat changes an input that
does not change the frames (the residency), as a service's next request changes its image or audio."""

import numpy as np
from workflows import read_mp4, saved_mp4, small_workflow


def run(host, prefix: str, prompt: str, negative: str, residency: str = "cold_start") -> tuple[np.ndarray, dict]:
    workflow = small_workflow(prefix=prefix, seed=21)
    workflow["3"]["inputs"]["residency"] = residency
    for node in ("4", "6"):
        workflow[node]["inputs"].update(prompt=prompt, negative_prompt=negative)
    result = host.run(workflow)
    assert result.status == "success", result.messages[-1]
    report = host.vram()["last_run"]
    report["built"] = [line.split(":")[0] for line in report["loads"]]
    return read_mp4(saved_mp4(host, result))[0], report


def test_a_repeated_prompt_builds_no_text_encoder_and_gives_the_same_frames(host):
    prompt, negative = "A man reads the news, kept prompts test.", "blurry, kept prompts test"
    first, report = run(host, "test/kept_first", prompt, negative)
    assert "text_encoder" in report["built"] and not any("prompt reused" in n for n in report["notes"])
    again, report = run(host, "test/kept_again", prompt, negative, residency="persistent")
    assert "text_encoder" not in report["built"] and "embeddings_processor" not in report["built"], report["built"]
    assert any(n.startswith("prompt reused: prompt and negative_prompt") for n in report["notes"]), report["notes"]
    assert "text encode" in [s["name"] for s in report["phases"]]
    assert np.array_equal(first, again)
    assert host.vram()["kept_prompts"]["entries"] >= 2

    _, report = run(host, "test/kept_changed", prompt + " Then he smiles.", negative)
    assert "text_encoder" in report["built"]  # the prompt changed: encoded, the negative reused
    assert any(n.startswith("prompt reused: negative_prompt") for n in report["notes"]), report["notes"]

    host.free(unload_models=True, free_memory=False)  # the page's "unload models" empties the kept prompts
    assert host.vram()["kept_prompts"]["entries"] == 0
    _, report = run(host, "test/kept_after_free", prompt, negative)
    assert "text_encoder" in report["built"]
