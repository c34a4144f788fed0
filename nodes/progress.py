"""ComfyUI's progress bar and interrupt, as the two callbacks the pipeline takes."""

import comfy.model_management
import comfy.utils


def progress_callbacks(total: int):
    """(progress(done, total), on_tensor(key)). Both raise ComfyUI's interrupt exception when the user
    interrupts: between denoising steps and between tensors of a component being loaded."""
    bar = comfy.utils.ProgressBar(total)

    def progress(done: int, steps: int) -> None:
        bar.update_absolute(done, steps)
        comfy.model_management.throw_exception_if_processing_interrupted()

    def on_tensor(_key: str) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()

    return progress, on_tensor
