"""Peak memory over a phase of a run."""

import threading

import torch

from .accounting import process_rss


class PeakMeter:
    """Peak memory over a block: CUDA's own counters on a GPU (allocated, and reserved by the caching
    allocator), a sampling thread on the resident set on a CPU (the kernel's ru_maxrss cannot be reset between
    phases; a CPU has no separate reserved figure, so both peaks are the resident set's)."""

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device, self.interval, self.peak, self.peak_reserved = device, interval, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMeter":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak = process_rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, process_rss())

    def so_far(self) -> int:
        """The peak up to now, while the block runs."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        return self.peak

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.peak_reserved = torch.cuda.max_memory_reserved(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = self.peak_reserved = max(self.peak, process_rss())
