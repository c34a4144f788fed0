"""What a phase needs on the device besides the weights, estimated from the shapes before it runs, so the budget
can keep room for it (memory/budget.py) and ask ComfyUI for weights and activations together.

Two parts. Upcasts: a layer whose weight is stored narrower than it computes (bf16 weights computing in float32
on a CPU; fp8 weights without fp8 matmuls) holds a compute-dtype copy of that weight during its forward: the
largest such weight is live at once (ltx2/precision.py, quant/). Then the tensors that grow with the input,
per token, pixel or frame. The per-unit factors were measured with the device-memory ledger (memory/ledger.py)
on the `wide` preset (the 22B transformer's widths) at several sizes, float32 on a CPU, as the peak above what
was live when the phase began, less the upcast: tests/unit/ltx2/test_activations.py checks them against the
ledger again (within 20 %).
"""

import math

import torch

from ..quant.policy import Policy
from .plan import SCALE_SUFFIXES, ComponentPlan
from .safetensors_file import FP8_DTYPES

# Measured on `wide`, float32 (see above), as multiples of (count x width x bytes per element):
TOKEN_FACTOR = 12  # a transformer block's working tensors per token: 12 x width (stage 1: 0.197, stage 2: 0.190 MiB
#                    per video token at width 4096; guidance passes run one after another, not batched)
PROMPT_TOKENS = 1024  # ltx-core pads every prompt to this many tokens
DECODE_FACTOR = 1.1  # decoder activations per decoded pixel-frame, per decoder base channel (72 B in float32 with 16)
ENCODE_FACTOR = 69  # video-encoder activations per pixel of the conditioning image (277 B in float32)
AUDIO_FACTOR = 64  # audio-encoder activations per audio sample


def upcast_bytes(plan: ComponentPlan, policy: Policy, compute_dtype: torch.dtype, fp8_matmul: bool = False) -> int:
    """The largest compute-dtype copy of one weight the component makes during a forward: every quantized weight
    is dequantized to multiply (but for fp8 matmuls), and a bf16 weight is upcast when computing in float32."""
    selected, _ = plan.selected(policy)
    keeps_fp8 = policy.on_fp8_release is not None
    itemsize = torch.empty((), dtype=compute_dtype).element_size()
    largest = 0
    for header in plan.headers.values():
        for key, entry in header.entries.items():
            mapped = plan.renames.get(key)
            if mapped is None or key.endswith(SCALE_SUFFIXES) or not entry.dtype.is_floating_point:
                continue
            quantized = mapped in selected or (entry.dtype in FP8_DTYPES and keeps_fp8)
            if (quantized and not fp8_matmul) or (not quantized and itemsize > 2):
                largest = max(largest, entry.nbytes // entry.dtype.itemsize * itemsize)
    return largest


def transformer_tokens(config: dict, width: int, height: int, num_frames: int, frame_rate: float) -> tuple[int, int]:
    """(video tokens, audio tokens) of one denoising pass: the latent is 32x smaller in space, 8x in time (+1)."""
    video = (num_frames - 1) // 8 * (1 if num_frames > 1 else 0) + 1
    video *= (height // 32) * (width // 32)
    audio = math.ceil(num_frames / frame_rate * 25)  # the audio latent's 25 frames per second
    return video, audio


def denoise(config: dict, width: int, height: int, num_frames: int, frame_rate: float, compute_dtype: torch.dtype) -> int:
    transformer = config.get("transformer", {})
    video_width = transformer.get("num_attention_heads", 32) * transformer.get("attention_head_dim", 128)
    audio_width = transformer.get("audio_num_attention_heads", 32) * transformer.get("audio_attention_head_dim", 64)
    video, audio = transformer_tokens(config, width, height, num_frames, frame_rate)
    itemsize = torch.empty((), dtype=compute_dtype).element_size()
    return TOKEN_FACTOR * itemsize * (video * video_width + audio * audio_width)


def text(gemma_config: dict, config: dict, compute_dtype: torch.dtype) -> int:
    """Gemma's hidden states of every layer (kept for the embeddings processor), plus the larger of Gemma's own
    working tensors and the processor's (its feature extractor concatenates and normalizes every layer's states,
    then one connector block runs at the transformer's width)."""
    text_config = gemma_config.get("text_config", {})
    hidden, layers = text_config.get("hidden_size", 3840), text_config.get("num_hidden_layers", 48) + 1
    intermediate = text_config.get("intermediate_size", 15360)
    transformer = config.get("transformer", {})
    width = transformer.get("num_attention_heads", 32) * transformer.get("attention_head_dim", 128)
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
    channels = config.get("vae", {}).get("decoder_base_channels", 128)
    itemsize = torch.empty((), dtype=compute_dtype).element_size()
    return int(DECODE_FACTOR * channels * width * height * num_frames * itemsize)


def largest_base_phase(width: int, height: int, num_frames: int, frame_rate: float, precision) -> tuple[str, int]:
    """(phase, bytes): the base stage's largest activation estimate at this size, for LTX-2.3 22B's widths (the
    defaults above). At queue time the model is not known yet, only the sizes; the real model's config is used
    once the sampler runs (through the budget)."""
    phases = {
        "text encode": text({}, {}, precision.text_encoder),
        "image encode": image_encode(width, height, precision.vae),
        "stage 1 denoise": denoise({}, width, height, num_frames, frame_rate, precision.transformer),
    }
    name = max(phases, key=phases.get)
    return name, phases[name]
