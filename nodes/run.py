"""One run of one of the pack's nodes: the packages checked, the run report begun (or continued: one prompt is
one run), ComfyUI's progress bar and interrupt wired into the pipeline's two callbacks, and the budget's state
sent to the page at the end, whatever happens."""

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import comfy.model_management
import comfy.utils
import torch
from server import PromptServer

from .dependencies import require_packages
from .prompt_budget import apply_prompt_budget
from .routes import publish


@dataclass(frozen=True)
class NodeRun:
    device: torch.device
    progress: Callable[[int, int], None]  # after each unit of work (a denoising step); raises on interrupt
    on_tensor: Callable[[str], None]  # for each tensor read while a component loads; raises on interrupt
    say: Callable[[str], None]  # a line of text on the running node in the page (e.g. which window runs)


def _callbacks(total: int) -> tuple[Callable, Callable]:
    """Both raise ComfyUI's interrupt exception when the user interrupts: between denoising steps and between
    tensors of a component being loaded. Each step also sends the budget's state to the page, so its memory bar
    moves during a phase (what is in use, the peak so far), as does loading a component (at most twice a
    second)."""
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


@contextlib.contextmanager
def node_run(model, steps: int = 1, node: type | None = None):
    """`with node_run(model, steps, cls) as run:` around a node's call into the pipeline (`model`: a ModelSpec; the
    node's class, whose schema asks for its id, for run.say)."""
    require_packages()
    from ..memory.budget import BUDGET

    apply_prompt_budget()
    precision = model.precision.describe() if model.precision is not None else ""
    BUDGET.begin_run(str(PromptServer.instance.last_prompt_id), model.quantization, model.residency, precision)
    progress, on_tensor = _callbacks(steps)
    try:
        yield NodeRun(comfy.model_management.get_torch_device(), progress, on_tensor, lambda text: say(node, text))
    except BaseException:
        BUDGET.release_handed_over()  # the stage it was kept for will not run in this prompt
        raise
    finally:
        publish()


def say(node: type, text: str) -> None:
    """Shows `text` on the running node in the page (ComfyUI's progress text), for what a node chose itself. The
    node's schema asks for its id (io.Hidden.unique_id)."""
    node_id = getattr(getattr(node, "hidden", None), "unique_id", None)
    if node_id is not None:
        PromptServer.instance.send_progress_text(text, str(node_id))
