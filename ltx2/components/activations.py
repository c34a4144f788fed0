"""What a stage needs on the device besides the weights, estimated from the shapes before it runs, so the budget
can keep room for it (memory/budget.py) and ask ComfyUI for weights and activations together.

Two parts. Upcasts: a layer whose weight is stored narrower than it computes (bf16 weights computing in float32
on a CPU; fp8 weights without fp8 matmuls) holds a compute-dtype copy of that weight during its forward: the
largest such weight is live at once (ltx2/components/precision.py, quant/). Then the tensors that grow with the input,
per token, pixel or frame. The per-unit factors were measured with the device-memory ledger (memory/ledger.py) on the
`wide` preset (the 22B transformer's widths) at several sizes, float32 on a CPU, as the peak above what was live
when the stage began, less the upcast: tests/unit/ltx2/test_activations.py checks them against the ledger again
(within 20 %). Since then a CPU makes its copies in a buffer the size of the largest that lives for the whole
forward (quant/scratch.py): there the ledger's peaks are 1.12-1.19x these estimates (the same test).
"""

import torch
from ltx_core.types import VIDEO_SCALE_FACTORS, AudioLatentShape, VideoLatentShape, VideoPixelShape

from ...quant.policy import Policy
from ..files.safetensors_file import FP8_DTYPES
from .plan import SCALE_SUFFIXES, ComponentPlan

# Measured on `wide`, float32 (see above), as multiples of (count x width x bytes per element):
TOKEN_FACTOR = 12  # a transformer block's working tensors per token: 12 x width (stage 1: 0.197, stage 2: 0.190 MiB
#                    per video token at width 4096; guidance passes run one after another, not batched)
PROMPT_TOKENS = 1024  # ltx-core pads every prompt to this many tokens
DECODE_FACTOR = 1.1  # decoder activations per decoded pixel-frame, per decoder base channel (72 B in float32 with 16)
ENCODE_FACTOR = 69  # video-encoder activations per pixel of the conditioning image (277 B in float32)
AUDIO_FACTOR = 64  # audio-encoder activations per audio sample

# LTX-2.3 22B's widths, where a config does not give them (at queue time no model is known yet; ltx-core's
# configurators fall back to the same full-size values when a key is missing).
DEFAULTS_22B = {
    "transformer": {
        "num_attention_heads": 32,
        "attention_head_dim": 128,
        "audio_num_attention_heads": 32,
        "audio_attention_head_dim": 64,
    },
    "vae": {"decoder_base_channels": 128},
    "gemma": {"hidden_size": 3840, "num_hidden_layers": 48, "intermediate_size": 15360},  # Gemma-3-12B's text_config
}


def _sizes(section: dict, table: str) -> dict:
    """A config section's sizes, the 22B's where it gives none."""
    return {**DEFAULTS_22B[table], **section}


def _widths(config: dict) -> tuple[int, int]:
    """(video, audio) widths of the transformer's streams."""
    t = _sizes(config.get("transformer", {}), "transformer")
    video = t["num_attention_heads"] * t["attention_head_dim"]
    return video, t["audio_num_attention_heads"] * t["audio_attention_head_dim"]


def upcast_bytes(plan: ComponentPlan, policy: Policy, compute_dtype: torch.dtype, fp8_matmul: bool = False) -> int:
    """The largest compute-dtype copy of one weight the component makes during a forward: every quantized weight
    is dequantized to multiply (but for fp8 matmuls), and a bf16 weight is upcast when computing in float32."""
    selected, _ = plan.selected(policy)
    keeps_fp8 = policy.on_fp8_release is not None
    itemsize = torch.empty((), dtype=compute_dtype).element_size()
    largest = 0
    for path, header in plan.headers.items():
        layout = plan.layouts[path]
        for key, entry in header.entries.items():
            mapped = plan.renames.get(key)
            kept_packed = policy.keeps_stored and layout.packed(key) is not None  # dequantized per forward
            if mapped is None or key.endswith(SCALE_SUFFIXES) or not (entry.dtype.is_floating_point or kept_packed):
                continue
            quantized = kept_packed or mapped in selected or (entry.dtype in FP8_DTYPES and keeps_fp8)
            if kept_packed or (quantized and not fp8_matmul) or (not quantized and itemsize > 2):
                largest = max(largest, layout.elements(key, entry) * itemsize)
    return largest


def transformer_tokens(width: int, height: int, num_frames: int, frame_rate: float) -> tuple[int, int]:
    """(video tokens, audio tokens) of one denoising pass, from ltx-core's latent shapes (the video VAE's
    VIDEO_SCALE_FACTORS; the audio latent's frames per second of audio)."""
    pixels = VideoPixelShape(batch=1, frames=num_frames, height=height, width=width, fps=frame_rate)
    video = VideoLatentShape.from_pixel_shape(pixels, scale_factors=VIDEO_SCALE_FACTORS).token_count()
    audio = AudioLatentShape.from_duration(batch=1, duration=num_frames / frame_rate).token_count()
    return video, audio


def denoise(
    config: dict, width: int, height: int, num_frames: int, frame_rate: float, compute_dtype: torch.dtype
) -> int:
    video_width, audio_width = _widths(config)
    video, audio = transformer_tokens(width, height, num_frames, frame_rate)
    itemsize = torch.empty((), dtype=compute_dtype).element_size()
    return TOKEN_FACTOR * itemsize * (video * video_width + audio * audio_width)


def text(gemma_config: dict, config: dict, compute_dtype: torch.dtype) -> int:
    """Gemma's hidden states of every layer (kept for the embeddings processor), plus the larger of Gemma's own
    working tensors and the processor's (its feature extractor concatenates and normalizes every layer's states,
    then one connector block runs at the transformer's width)."""
    gemma_sizes = _sizes(gemma_config.get("text_config", {}), "gemma")
    hidden, layers = gemma_sizes["hidden_size"], gemma_sizes["num_hidden_layers"] + 1
    intermediate = gemma_sizes["intermediate_size"]
    width, _ = _widths(config)
    itemsize = torch.empty((), dtype=compute_dtype).element_size()
    states = layers * PROMPT_TOKENS * hidden * itemsize
    gemma = 3 * PROMPT_TOKENS * intermediate * itemsize
    processor = 2 * states + TOKEN_FACTOR * PROMPT_TOKENS * width * itemsize
    return states + max(gemma, processor)


def image_encode(width: int, height: int, compute_dtype: torch.dtype) -> int:
    return ENCODE_FACTOR * width * height * torch.empty((), dtype=compute_dtype).element_size()


def audio_encode(seconds: float, sample_rate: int) -> int:
    return int(AUDIO_FACTOR * seconds * sample_rate)


def decode(config: dict, width: int, height: int, num_frames: int, tiling, compute_dtype: torch.dtype) -> int:
    """The largest tile's decoder activations (the whole video when not tiled)."""
    spatial, temporal = (tiling.spatial_config, tiling.temporal_config) if tiling is not None else (None, None)
    if spatial is not None:
        width, height = min(width, spatial.tile_size_in_pixels), min(height, spatial.tile_size_in_pixels)
    if temporal is not None:
        num_frames = min(num_frames, temporal.tile_size_in_frames + 1)
    channels = _sizes(config.get("vae", {}), "vae")["decoder_base_channels"]
    itemsize = torch.empty((), dtype=compute_dtype).element_size()
    return int(DECODE_FACTOR * channels * width * height * num_frames * itemsize)


def largest_base_stage(width: int, height: int, num_frames: int, frame_rate: float, precision) -> tuple[str, int]:
    """(stage, bytes): the base stage's largest activation estimate at this size, for LTX-2.3 22B's widths
    (DEFAULTS_22B). At queue time the model is not known yet, only the sizes; the real model's config is used
    once the sampler runs (through the budget)."""
    stages = {
        "text encode": text({}, {}, precision.text_encoder),
        "image encode": image_encode(width, height, precision.vae),
        "stage 1 denoise": denoise({}, width, height, num_frames, frame_rate, precision.transformer),
    }
    name = max(stages, key=stages.get)
    return name, stages[name]
