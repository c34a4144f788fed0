"""Decoded frames written to an H.264 + AAC mp4 as they come, a chunk at a time, so that a long video never has
all its frames in memory: ComfyUI's IMAGE is float32 (a 2-minute 768x512 video at 24 fps is 2,881 frames, 13 GiB),
its CreateVideo takes an IMAGE whole. The file is written as ComfyUI's own VideoFromComponents writes one (h264 at
its default quality, yuv420p, the audio as one AAC stream after the frames), so SaveVideo copies its streams
(VideoFromFile) instead of encoding them again."""

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from ltx_core.types import Audio


class Mp4Writer:
    """`with Mp4Writer(path, frame_rate, audio) as out: out.write(chunk)` for each uint8 chunk [F, H, W, 3]."""

    def __init__(self, path: str | Path, frame_rate: float, audio: Audio | None = None):
        self.path, self.audio = Path(path), audio
        self.rate = Fraction(round(frame_rate * 1000), 1000)
        self.frames = 0
        self._container = None
        self._video = None
        self._audio = None

    def __enter__(self) -> "Mp4Writer":
        self._container = av.open(str(self.path), mode="w", options={"movflags": "use_metadata_tags"})
        return self

    def write(self, chunk: torch.Tensor) -> None:
        chunk = chunk.cpu().numpy()
        if self._video is None:
            self._video = self._container.add_stream("h264", rate=self.rate)
            self._video.height, self._video.width = chunk.shape[1], chunk.shape[2]
            self._video.pix_fmt = "yuv420p"
            # Every stream before the first packet: the container's header is written then.
            if self.audio is not None:
                self._audio = self._container.add_stream("aac", rate=int(self.audio.sampling_rate))
        for image in chunk:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuv420p")
            self._container.mux(self._video.encode(frame))
            self.frames += 1

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            self._container.close()
        if kind is not None:
            self.path.unlink(missing_ok=True)  # a file cut short is no video

    def _finish(self) -> None:
        self._container.mux(self._video.encode(None))
        if self._audio is None:
            return
        rate = int(self.audio.sampling_rate)
        waveform = self.audio.waveform.float()[:, : math.ceil(rate / float(self.rate) * self.frames)]
        layout = "mono" if waveform.shape[0] == 1 else "stereo"
        samples = waveform.T.reshape(1, -1).contiguous().numpy()
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        self._container.mux(self._audio.encode(frame))
        self._container.mux(self._audio.encode(None))
