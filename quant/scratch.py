"""Where a model's per-forward compute-dtype copies of its stored weights are made on a CPU: one buffer per
forward, used as a stack, instead of a new tensor per weight.

Computing in a wider dtype than a weight is stored in (bf16 or fp8 weights computing in float32 on a CPU) copies
each weight for its layer's forward: ltx2/components/precision.py's upcast of a bf16 weight, quant/fp8_scaled.py's of an
fp8 one. A new tensor per copy is what ComfyUI's manual cast makes too; on a CPU each large one is a fresh mapping
from the C allocator (glibc maps any block past 32 MiB anew and unmaps it when freed), whose pages fault in as the
copy writes them: six times the cost of the conversion itself (a 64 MiB bf16 weight to float32: 19 ms into a new
tensor, 3 ms into a reused one, on a 2-core Xeon). The copies nest (a module's live until its forward ends, its
children's end first), so one buffer serves a whole forward. It is sized by the deepest stack of the forward
before, and let go when the model's forward ends: no copy outlives a forward, and the buffer is the largest set
of copies live at once, the figure the budget keeps room for (ltx2/components/activations.py's upcast_bytes).

A copy that does not fit (the first forward, a larger input), of a weight not dense in memory, or not on the
CPU (a GPU's caching allocator reuses its blocks already), is a new tensor, as before.
"""

import contextlib
from collections.abc import Iterator

import torch

# The scratch of each model whose forward is running, innermost last (one thread runs a prompt).
_ACTIVE: list["Scratch"] = []


class Scratch:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.buffer: torch.Tensor | None = None
        self.top = 0  # elements taken by the copies of the forwards now open (in the buffer or not)
        self.depth = 0  # forwards now open
        self.wanted = 0  # the deepest stack seen: the next buffer's size

    def open(self) -> int:
        """A forward begins; returns the mark to give `close` when it ends."""
        self.depth += 1
        return self.top

    def close(self, mark: int) -> None:
        """A forward ends: its copies are free again; the last open one lets the buffer go."""
        self.depth -= 1
        self.top = mark
        if self.depth == 0:
            self.buffer, self.top = None, 0

    def take(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Uninitialised room for a copy, held until the forward that took it closes. Each copy has its place
        in the stack whether the buffer holds it or not, so the next forward's buffer holds them all where a
        forward has the same copies in the same order (each denoising step)."""
        if device.type != "cpu" or dtype != self.dtype or self.depth == 0:
            return torch.empty(shape, dtype=dtype, device=device)
        start = self.top
        self.top += shape.numel()
        self.wanted = max(self.wanted, self.top)
        if self.buffer is None:
            self.buffer = torch.empty(self.wanted, dtype=self.dtype)
        if self.top > self.buffer.numel():
            return torch.empty(shape, dtype=dtype)
        return self.buffer[start : self.top].view(shape)

    def copy(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor.to(self.dtype)`, made in the buffer."""
        if not tensor.is_contiguous():
            return tensor.to(self.dtype)
        return self.take(tensor.shape, self.dtype, tensor.device).copy_(tensor)

    def holds(self, value) -> bool:
        """Whether a forward's output is (a view of) a copy: the next forward's copies would overwrite it."""
        if isinstance(value, torch.Tensor):
            return (
                self.buffer is not None
                and value.device.type == "cpu"
                and value.untyped_storage().data_ptr() == self.buffer.untyped_storage().data_ptr()
            )
        if isinstance(value, (tuple, list)):
            return any(self.holds(v) for v in value)
        return False


def copied_out(value):
    """`value` with its tensors copied out of any scratch buffer."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(copied_out(v) for v in value)
    return value


def enter(scratch: Scratch) -> int:
    """A model's forward begins (its first pre-hook): layers that copy weights without hooks of their own (fp8
    ones) find its scratch until `leave`. Returns the mark for `leave`."""
    _ACTIVE.append(scratch)
    return scratch.open()


def leave(scratch: Scratch, mark: int) -> None:
    """The model's forward ends (its last hook, also after an exception)."""
    scratch.close(mark)
    if _ACTIVE and _ACTIVE[-1] is scratch:
        _ACTIVE.pop()


@contextlib.contextmanager
def room(shape: torch.Size, dtype: torch.dtype, device: torch.device) -> Iterator[torch.Tensor]:
    """Room for one copy inside a layer's forward, from the running model's scratch when there is one; free
    again when the block ends."""
    scratch = _ACTIVE[-1] if _ACTIVE else None
    if scratch is None:
        yield torch.empty(shape, dtype=dtype, device=device)
        return
    mark = scratch.open()
    try:
        yield scratch.take(shape, dtype, device)
    finally:
        scratch.close(mark)
