"""Low-bit and split files through a real server: a transformer-only nvfp4 checkpoint from diffusion_models/ with
the split VAEs and text projection, and the fp4_mixed Gemma, kept as stored (`as_stored`); a transformer-only file
without its VAE is refused when queued, naming the input that gives it, and the server serves the next prompt."""

import json

from workflows import read_mp4, saved_mp4, small_workflow


def split_workflow(paths, prefix: str, **loader) -> dict:
    prompt = small_workflow(prefix=prefix, seed=5)
    prompt["3"]["inputs"].update(
        ckpt_name=paths["nvfp4_transformer"].name,
        video_vae=paths["video_vae"].name,
        audio_vae=paths["audio_vae"].name,
        text_projection=paths["text_projection"].name,
        text_encoder=paths["text_encoder_fp4"].name,
        quantization="as_stored",
        text_encoder_quantization="as_stored",
        **loader,
    )
    return prompt


def test_split_low_bit_files_run_as_stored_and_a_missing_vae_is_refused_at_the_queue(host, low_bit_paths):
    lacking = split_workflow(low_bit_paths, "test/split_lacking")
    del lacking["3"]["inputs"]["video_vae"]
    response = host.post_prompt(lacking)
    assert response.status_code == 400
    message = json.dumps(response.json()["node_errors"]["3"])
    assert (
        "video_vae: ltx-2.3-tiny-dev-nvfp4_transformer_only.safetensors is not an LTX-2 audio-video checkpoint "
        in (message)
        and "it lacks the video VAE" in message
    ), message

    result = host.run(split_workflow(low_bit_paths, "test/split_as_stored"))
    assert result.status == "success", json.dumps(result.messages[-1])[:3000]
    frames, _ = read_mp4(saved_mp4(host, result))
    assert frames.std() > 0
    loads = host.vram()["last_run"]["loads"]
    transformer = next(line for line in loads if line.startswith("transformer"))
    assert "from ltx-2.3-tiny-dev-nvfp4_transformer_only.safetensors" in transformer, transformer
    assert "kept as stored: 56 nvfp4 (" in transformer, transformer
    decoder = next(line for line in loads if line.startswith("video_decoder"))
    assert "from ltx-2.3-tiny_video_vae.safetensors" in decoder, decoder
    text = next(line for line in loads if line.startswith("text_encoder"))
    assert "kept as stored: " in text and " nvfp4 (" in text and " float8_e4m3fn (" in text, text
