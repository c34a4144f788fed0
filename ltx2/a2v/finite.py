"""Each stage's output checked finite before it is passed on. A NaN or an infinity that appears in a stage (a scale
or weight that passed every check of the files, an overflow) turns everything after it into NaN, and the decoder's
conversion to 8-bit frames makes that a black video reported as a success. It is caught where it first appears
instead, and the error and the run report name the stage, the component that produced it and its files."""

import contextlib
import dataclasses
from pathlib import Path

import torch

from ...errors import LTX2NonFiniteError
from ...memory.budget import BUDGET
from ..components.model_spec import ModelSpec


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _tensors(getattr(value, item.name))


def check(model: ModelSpec, stage: str, component: str, output) -> None:
    """Raises LTX2NonFiniteError, naming the stage, the component and its files, when `output` (tensors, or
    lists, tuples and dataclasses of them) holds a NaN or an infinity."""
    for tensor in _tensors(output):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            files = ", ".join(dict.fromkeys(Path(f).name for f in model.files_of(component))) or "its files"
            if BUDGET.last_run is not None:
                BUDGET.last_run.notes.append(f"{stage}: the {component} produced NaN or infinite values")
            raise LTX2NonFiniteError(
                f"{stage}: the {component} produced NaN or infinite values ({bad} of {tensor.numel()}) from "
                f"{files}; a video made from them would be black. A weight or scale in those files is damaged or was "
                "converted wrongly: download them again or pick the release files (with another quantization policy "
                "if only one gives this)."
            )


@contextlib.contextmanager
def watched(module: torch.nn.Module, model: ModelSpec, stage: str, component: str):
    """`with watched(decoder, ...)`: each output of the module's forward checked while the block runs (a decoder's
    output goes into 8-bit frames inside ltx-core, where a NaN is no longer seen). Wraps the instance's forward,
    which ltx-core's tiled decode calls directly (hooks do not run there)."""
    forward, own = module.forward, module.__dict__.get("forward")

    def checked(*args, **kwargs):
        output = forward(*args, **kwargs)
        check(model, stage, component, output)
        return output

    module.forward = checked
    try:
        yield module
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own
