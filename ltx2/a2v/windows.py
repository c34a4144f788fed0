"""A video longer than one window, planned as consecutive windows in latent frames: plain arithmetic, so the node
checks its inputs at queue time without torch.

The video VAE makes latent frame 0 of one pixel frame and every later latent frame of eight (`VAE_TIME`). A video
of N = 8K + 1 frames has K + 1 latent frames; a window of `window_frames` = 8a + 1 has a + 1; an overlap of
`overlap_frames` = 8b has b. Window k starts at latent frame s_k (s_0 = 0, s_k+1 = s_k + window - overlap) and is
generated as a video of its own whose first `overlap` latent frames are the previous window's last ones (ltx-core's
latent-index conditioning, at strength 1: kept as they are). Its pixel frame j is the video's frame 8 s_k + j: its
first latent frame stands for the last pixel frame of the latent frame it copies, so its own time, its audio
section and its keyframes are counted from frame 8 s_k. The last window is shorter when the video ends before it
(it still holds at least one latent frame past the overlap).
"""

from dataclasses import dataclass

from .limits import VAE_TIME


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # its first latent frame in the video
    latent_frames: int
    overlap: int  # latent frames conditioned on the previous window (0 for the first)

    @property
    def frames(self) -> int:
        """Its pixel frames, as a video of its own (8k + 1)."""
        return (self.latent_frames - 1) * VAE_TIME + 1

    @property
    def first_frame(self) -> int:
        """The video's pixel frame its own frame 0 stands for."""
        return self.start * VAE_TIME

    def owns(self, frame: int) -> bool:
        """Whether a pixel frame of the video is made by this window, not copied into its overlap from the window
        before (each frame is owned by exactly one window)."""
        local = frame - self.first_frame
        if not 0 <= local < self.frames:
            return False
        # Pixel 0 is latent frame 0; pixel p > 0 is in latent frame (p - 1) // 8 + 1.
        return self.index == 0 or (local > 0 and (local - 1) // VAE_TIME + 1 >= self.overlap)


def latent_frames(frames: int) -> int:
    return (frames - 1) // VAE_TIME + 1


def plan_windows(num_frames: int, window_frames: int, overlap_frames: int) -> list[Window]:
    """The windows of a video of `num_frames` (all 8k + 1, overlap a multiple of 8, checked by check_windows):
    one window, the whole video, when it fits one."""
    total, window, overlap = latent_frames(num_frames), latent_frames(window_frames), overlap_frames // VAE_TIME
    if total <= window:
        return [Window(0, 0, total, 0)]
    windows, start = [Window(0, 0, window, 0)], window - overlap
    while start + overlap < total:
        length = min(window, total - start)
        windows.append(Window(len(windows), start, length, overlap))
        start += window - overlap
    return windows


def check_windows(window_frames: int, overlap_frames: int) -> str | None:
    """A message naming the input when the window and its overlap cannot make windows, or None."""
    t = VAE_TIME
    if window_frames < 1 or (window_frames - 1) % t:
        low = max(1, (window_frames - 1) // t * t + 1)
        return f"window_frames must be {t}k+1, like num_frames; got {window_frames}. Try {low} or {low + t}."
    if overlap_frames < t or overlap_frames % t:
        near = max(t, round(overlap_frames / t) * t)
        return (
            f"overlap_frames: {overlap_frames} is off the VAE's time grid; the overlap is a whole number of latent "
            f"frames, a multiple of {t} (at least {t}). Try {near}."
        )
    if window_frames < 2 * overlap_frames + 1:
        return (
            f"window_frames: a window of {window_frames} frames is shorter than twice the overlap "
            f"({overlap_frames} frames): each window would make almost nothing new. Give at least "
            f"{2 * overlap_frames + 1} frames, or a smaller overlap_frames."
        )
    return None


def default_window_frames(frame_rate: float, seconds: float = 20.0) -> int:
    """The longest 8k + 1 frames within `seconds` at `frame_rate`: the default window (about 20 s, what LTX-2.3
    makes in one pass)."""
    return max(1 + VAE_TIME, int(seconds * frame_rate - 1) // VAE_TIME * VAE_TIME + 1)


def default_overlap_frames(frame_rate: float, seconds: float = 1.0) -> int:
    """About `seconds` of frames on the VAE's time grid (8 at the least)."""
    return max(VAE_TIME, round(seconds * frame_rate / VAE_TIME) * VAE_TIME)
