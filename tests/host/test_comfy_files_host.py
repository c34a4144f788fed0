"""The files a ComfyUI user already has, through a real server: ComfyUI's single-file Gemma (bf16, fp8, nvfp4
"fp4_mixed"), Lightricks' fp8 checkpoint with ComfyUI's quantization metadata, the distilled LoRA with a rank per
layer and alpha keys. Each is read by the pack's own streaming path, and the run report says what was found."""

import numpy as np
from workflows import read_mp4, saved_mp4, small_workflow


def with_files(prefix: str, **loader) -> dict:
    prompt = small_workflow(prefix=prefix, seed=5)
    prompt["3"]["inputs"].update(loader)
    return prompt


def run(host, prompt) -> tuple[np.ndarray, list[str]]:
    result = host.run(prompt)
    assert result.status == "success", result.messages[-1]
    return read_mp4(saved_mp4(host, result))[0], host.vram()["last_run"]["loads"]


def test_the_single_file_gemma_gives_the_folders_video(host, tiny_paths):
    """The same weights in ComfyUI's layout (keys renamed, tokenizer inside): the same frames, byte for byte."""
    folder, _ = run(host, with_files("test/gemma_folder", text_encoder=tiny_paths["text_encoder"].name))
    single, loads = run(host, with_files("test/gemma_file", text_encoder=tiny_paths["text_encoder_file"].name))
    assert np.array_equal(folder, single)
    assert any(line.startswith("text_encoder: none") for line in loads), loads


def test_the_files_of_comfyuis_own_template_run(host, tiny_paths):
    """What a user of ComfyUI's LTX-2.3 image+audio template has: the fp8 checkpoint, the fp4_mixed Gemma and the
    dynamic distilled LoRA, with the fp8 policies."""
    frames, loads = run(
        host,
        with_files(
            "test/comfy_template_files",
            ckpt_name=tiny_paths["fp8_checkpoint"].name,
            text_encoder=tiny_paths["text_encoder_fp4"].name,
            text_encoder_quantization="fp8_scaled",
            distilled_lora=tiny_paths["distilled_lora_dynamic"].name,
        ),
    )
    assert frames.std() > 0
    text = next(line for line in loads if line.startswith("text_encoder"))
    assert "nvfp4 weights dequantized to bf16 with comfy-kitchen before fp8_scaled" in text, text
    assert f"{tiny_paths['text_encoder_fp4'].name} is already fp8: fp8_scaled keeps its fp8 weights" in text, text
    stage_2 = [line for line in loads if line.startswith("distilled LoRA")]
    assert stage_2 and "ranks 1 to 8, alpha read: scale = strength x alpha / rank (1)" in stage_2[0], loads


def test_the_fp8_gemma_file_is_dequantized_under_none(host, tiny_paths):
    _, loads = run(host, with_files("test/gemma_fp8_none", text_encoder=tiny_paths["text_encoder_fp8"].name))
    text = next(line for line in loads if line.startswith("text_encoder"))
    assert f"{tiny_paths['text_encoder_fp8'].name} is fp8: weights dequantized to bf16 before none" in text, text
