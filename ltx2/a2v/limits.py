"""The sampler's numeric limits and size rules: plain Python, so the nodes can check them at queue time without
torch."""

import math

# The video VAE's compression, ltx-core's VIDEO_SCALE_FACTORS (space 32x, time 8x plus the first frame), as plain
# numbers so that the nodes check sizes without importing torch (a test checks them against ltx-core's).
VAE_SPACE, VAE_TIME = 32, 8
# The sampler's numeric inputs: (min, max, what to suggest). The node's schema declares the same limits.
LIMITS = {
    "width": (64, 4096, "384 for stage 1 of a 768-wide video"),
    "height": (64, 4096, "256 for stage 1 of a 512-high video"),
    # Past one window (window_frames) a video is made in windows, at a window's memory: 10 minutes at 24 fps.
    "num_frames": (1, 14401, "97 (4 s at 24 fps)"),
    # One pass of the model: 1025 frames is about 42 s at 24 fps, past what any card holds at 768x512.
    "window_frames": (0, 1025, "0 (about 20 s at the frame rate)"),
    "overlap_frames": (0, 256, "0 (about 1 s at the frame rate)"),
    "frame_rate": (1.0, 120.0, "24 or 25 for video with speech"),
    "steps": (1, 200, "30 for the base stage"),
    "cfg": (1.0, 20.0, "3.0"),
    "image_crf": (0, 51, "33, as ltx-pipelines (0: no compression)"),
}

# LTX2Decode's tiles, as ltx-core's TilingConfig takes them: (min, max, what to suggest); 0 = not tiled.
TILE_LIMITS = {
    "spatial_tile": (0, 4096, "512 (ltx-pipelines' default)"),
    "spatial_overlap": (0, 4064, "64"),
    "temporal_tile": (0, 1025, "64"),
    "temporal_overlap": (0, 1024, "24"),
}


def check_tiles(spatial_tile: int, spatial_overlap: int, temporal_tile: int, temporal_overlap: int) -> str | None:
    """ltx-core's rules for tile sizes (its TilingConfig raises on a bad one, at decode time; here they are said
    at queue time): spatial tiles of 64+ px, multiples of 32; temporal tiles of 16+ frames, multiples of 8; an
    overlap smaller than its tile, in the same multiples. 0 turns that tiling off."""
    if spatial_tile and (
        spatial_tile < 2 * VAE_SPACE
        or spatial_tile % VAE_SPACE
        or spatial_overlap % VAE_SPACE
        or spatial_overlap >= spatial_tile
    ):
        return (
            f"spatial_tile / spatial_overlap: {spatial_tile} / {spatial_overlap} px; tiles are {2 * VAE_SPACE} px "
            f"or more and overlaps smaller than the tile, both multiples of {VAE_SPACE}. Try 512 / 64, or 0 for no "
            "spatial tiling."
        )
    if temporal_tile and (
        temporal_tile < 2 * VAE_TIME
        or temporal_tile % VAE_TIME
        or temporal_overlap % VAE_TIME
        or temporal_overlap >= temporal_tile
    ):
        return (
            f"temporal_tile / temporal_overlap: {temporal_tile} / {temporal_overlap} frames; tiles are "
            f"{2 * VAE_TIME} frames or more and overlaps smaller than the tile, both multiples of {VAE_TIME}. Try "
            "64 / 24, or 0 for no temporal tiling."
        )
    return None


def check_numbers(limits: dict[str, tuple], **values) -> str | None:
    """A message naming the first value that is not a finite number within its (min, max, hint) limits, or None.

    ComfyUI checks a widget's min and max itself, except for the inputs a node's validate_inputs takes, and it
    never checks that a float is finite: JSON's NaN passes every comparison. A value of None is a link, whose
    value does not exist yet at queue time."""
    for name, value in values.items():
        if value is None:
            continue
        low, high, hint = limits[name]
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name}: {value} is not a number. Give a value in {low}..{high}, e.g. {hint}."
        if not low <= value <= high:
            shown = f"{value:.3g}" if abs(value) >= 1e9 else value  # 1e30 given for an INT arrives as 31 digits
            return f"{name}: {shown} is outside {low}..{high}; try {hint}."
    return None


# Prompts are cut to the text encoder's 1024 tokens (gemma.MAX_TOKENS): about 4,000 characters of English, 1,000
# of Chinese. A longer text only costs its tokenization (which cannot be interrupted), so it is refused before.
MAX_PROMPT_CHARS = 16_384


def check_prompt(name: str, text) -> str | None:
    """A message when `text` is not a prompt the text encoder can take, or None."""
    if text is None:
        return None
    if not isinstance(text, str):
        return f"{name}: expected text, got {type(text).__name__}."
    if len(text) > MAX_PROMPT_CHARS:
        return (
            f"{name}: {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,} (the text encoder reads at most "
            "1024 tokens, about 4,000 characters of English). Shorten it."
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # JSON's \ud800 escapes arrive as lone surrogates, which are not text: the tokenizer fails on them.
        return (
            f"{name}: character {exc.start + 1} (U+{ord(text[exc.start]):04X}, half of a surrogate pair) is not "
            "valid Unicode text. Remove it, or send the whole character (both halves of the pair, or the "
            "character itself)."
        )
    return None


def check_size(width: int, height: int, num_frames: int) -> str | None:
    """A message saying what to change, or None when the size is valid.

    Sizes are multiples of 32 (the video VAE compresses 32x); a stage-1 size that is then upscaled 2x therefore
    gives a final size that is a multiple of 64. Frames are 8k+1 (the VAE compresses time 8x, plus the first)."""
    s, t = VAE_SPACE, VAE_TIME
    if width % s or height % s or width < s or height < s:
        fix_w, fix_h = max(s, round(width / s) * s), max(s, round(height / s) * s)
        return f"width and height must be multiples of {s}; got {width}x{height}. Try {fix_w}x{fix_h}."
    if num_frames < 1 or (num_frames - 1) % t:
        low = max(1, (num_frames - 1) // t * t + 1)
        return (
            f"num_frames must be {t}k+1 ({', '.join(str(t * k + 1) for k in range(4))}, ...); got {num_frames}. "
            f"Try {low} or {low + t}."
        )
    return None
