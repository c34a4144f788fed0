"""Queue-time checks of the sampler's numbers: plain Python, so the nodes can run them without torch."""


def check_size(width: int, height: int, num_frames: int) -> str | None:
    """A message saying what to change, or None when the size is valid.

    Sizes are multiples of 32 (the video VAE compresses 32x); a stage-1 size that is then upscaled 2x therefore
    gives a final size that is a multiple of 64. Frames are 8k+1 (the VAE compresses time 8x, plus the first)."""
    if width % 32 or height % 32 or width < 32 or height < 32:
        fix_w, fix_h = max(32, round(width / 32) * 32), max(32, round(height / 32) * 32)
        return f"width and height must be multiples of 32; got {width}x{height}. Try {fix_w}x{fix_h}."
    if num_frames < 1 or (num_frames - 1) % 8:
        low = max(1, (num_frames - 1) // 8 * 8 + 1)
        return f"num_frames must be 8k+1 (1, 9, 17, 25, ...); got {num_frames}. Try {low} or {low + 8}."
    return None
