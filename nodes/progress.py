"""ComfyUI's progress bar and interrupt, as the two callbacks the pipeline takes."""

import time

import comfy.model_management
import comfy.utils

from .comfy_bridge import publish


def progress_callbacks(total: int):
    """(progress(done, total), on_tensor(key)). Both raise ComfyUI's interrupt exception when the user
    interrupts: between denoising steps and between tensors of a component being loaded. Each step also sends
    the budget's state to the page, so its memory bar moves during a stage (what is in use, the peak so far),
    as does loading a component (at most twice a second)."""
    bar = comfy.utils.ProgressBar(total)

    def progress(done: int, steps: int) -> None:
        bar.update_absolute(done, steps)
        publish()
        comfy.model_management.throw_exception_if_processing_interrupted()

    last_sent = [0.0]

    def on_tensor(_key: str) -> None:
        if time.monotonic() - last_sent[0] > 0.5:
            last_sent[0] = time.monotonic()
            publish()
        comfy.model_management.throw_exception_if_processing_interrupted()

    return progress, on_tensor
