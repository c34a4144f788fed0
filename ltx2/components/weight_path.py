"""What happens to a layer's stored weights around its forward: one path per model, its steps in one declared
order, in this file.

A built component stores its weights as its policy keeps them (bf16, fp8 + scales, torchao's tensors), some of them
out of memory (block streaming), and a forward may need them otherwise: on the device, in the compute dtype, with
LoRA factor sets applied. ComfyUI does this work in one function (`cast_bias_weight`, then the weight functions);
ltx-core's and transformers' layers are many module types (linears, convolutions, norms, embeddings, scale-shift
tables) that no class swap reaches, so here each module that takes part gets one pre-hook and one always-called
hook of the model's path, which run these steps, in this order, whatever order anything was set up in:

    before a module's forward                           after it (also when the forward raised)
    1. the interrupt check (at most every 0.25 s)
    2. stream in: a streamed unit's tensors onto the    6. stream out: the unit's tensors back to the meta
       device (memory/streamer.py)                         device, the next unit copied meanwhile on a GPU
    3. LoRA fused into a plain weight, for each factor  5. the stored weights back, the copies freed; then the
       set beside the model (ltx-core's numerics)          low-rank path of each set added to the output of a
    4. upcast: a weight stored narrower than the           quantized weight (fusing would need its bf16 weight)
       compute dtype copied into the model's scratch

The root module also opens the model's scratch buffer for the forward and casts its floating inputs to the compute
dtype (ltx-core picks input dtypes from `next(model.parameters()).dtype`, the stored one). An fp8 layer dequantizes
its own weight inside its forward (quant/fp8_scaled.py: the scale is applied to the output), into the same scratch.

Only what a module needs is hooked: where the compute dtype is the stored one (bf16 on a GPU), nothing streams and
no LoRA or interrupt check is set, the model runs exactly as ltx-pipelines runs it. The path holds no module (the
model holds its path), so dropping the model frees it without the garbage collector.
"""

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F

from ...quant.scratch import Scratch, copied_out, enter, leave, room
from ..files.lora_file import delta_of
from ..files.safetensors_file import FP8_DTYPES

EVERY_SECONDS = 0.25  # interrupt checks at most this often
# The weights a LoRA is fused into (at each forward): what a load stores them as and the other float types.
PLAIN_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
Factors = tuple[torch.Tensor, torch.Tensor, float]  # (A, B, scale) of one layer in one LoRA


def upcasts(tensor: torch.Tensor | None, dtype: torch.dtype | None) -> bool:
    """Whether a stored tensor is copied for computing in `dtype`: plain floating tensors narrower than it. fp8
    weights are upcast (with their scales) by their own layers, torchao's tensor subclasses by their own matmul."""
    return (
        dtype is not None
        and tensor is not None
        and type(tensor) in (torch.Tensor, torch.nn.Parameter)
        and tensor.is_floating_point()
        and tensor.dtype not in FP8_DTYPES
        and tensor.dtype.itemsize < dtype.itemsize
    )


def plain(weight: torch.Tensor | None) -> bool:
    """Whether a LoRA is fused into this weight (a plain float tensor on a device) rather than run beside it."""
    return (
        weight is not None
        and type(weight) in (torch.Tensor, torch.nn.Parameter)
        and weight.dtype in PLAIN_DTYPES
        and weight.device.type != "meta"
    )


@dataclass
class _Frame:
    """What `before` did for one call of a module, for `after` to undo (a step that raised did nothing)."""

    mark: int | None = None  # the scratch's mark, when this module's copies were made there
    kept: dict = field(default_factory=dict)  # (table, name) -> the stored tensor, while a copy stands in
    beside: list[Factors] = field(default_factory=list)  # factor sets to add to the output
    unit: bool = False  # its unit was brought in
    scope: int | None = None  # the root: the scratch's mark for the whole forward


class WeightPath:
    """One model's path. Fixed when the model is built (`compose`, `stream`): the compute dtype, which modules own
    tensors to upcast (and tensors on the meta device: a streamed unit's, upcast when they arrive), the streamed
    units. Set for a block by whoever runs the model (`beside`, `checking`): the LoRA factor sets and the interrupt
    check."""

    def __init__(self, dtype: torch.dtype | None = None):
        self.dtype = dtype
        self.scratch = Scratch(dtype) if dtype is not None else None
        self.owned: dict[str, list[tuple[str, str]]] = {}  # module name -> its (table, name) to upcast
        self.casts_inputs = False
        self.scoped = False  # the root opens the scratch for the whole forward
        self.streamer = None
        self.units: set[str] = set()
        self.sets: list = []  # factor sets beside the model, in the order they were set
        self.factors: dict[str, list[Factors]] = {}  # module name -> each set's factors for it
        self.check: Callable[[str], None] | None = None
        self._last_check = 0.0
        self._hooks: dict[str, tuple] = {}  # module name -> its two hook handles

    # --- what runs around a forward ---
    def _before(self, name: str, frames: list[_Frame], module: torch.nn.Module, args, kwargs):
        frame = _Frame()
        frames.append(frame)
        if self.check is not None and time.monotonic() - self._last_check >= EVERY_SECONDS:  # 1
            self._last_check = time.monotonic()
            self.check("")
        if name == "" and self.scoped:
            frame.scope = enter(self.scratch)
        if name in self.units:  # 2
            self.streamer.bring_in(name, module)
            frame.unit = True
        owned, factors = self.owned.get(name, ()), self.factors.get(name, ())
        if owned:
            frame.mark = self.scratch.open()
        weight = module._parameters.get("weight")
        if factors and plain(weight):  # 3
            deltas = [delta_of(weight, a, b, scale) for a, b, scale in factors]
            delta = deltas[0] if len(deltas) == 1 else torch.stack(deltas).sum(dim=0)  # ltx-core's sum of sets
            del deltas
            frame.kept[("_parameters", "weight")] = weight
            module._parameters["weight"] = delta.add_(weight)
        elif factors:
            frame.beside = list(factors)
        for table, key in owned:  # 4
            tensor = getattr(module, table)[key]
            if tensor is not None and tensor.device.type != "meta" and upcasts(tensor, self.dtype):
                frame.kept.setdefault((table, key), tensor)
                getattr(module, table)[key] = self.scratch.copy(tensor)
        if name == "" and self.casts_inputs:
            return tuple(self._cast(a) for a in args), {k: self._cast(v) for k, v in kwargs.items()}
        return None

    def _after(self, name: str, frames: list[_Frame], module: torch.nn.Module, args, output):
        if not frames:
            return None
        frame = frames.pop()
        for (table, key), tensor in frame.kept.items():  # 5
            getattr(module, table)[key] = tensor
        if frame.mark is not None:
            # Before the buffer is reused: an output that is a copy (a forward returning its own weight) is cloned.
            if self.scratch.holds(output):
                output = copied_out(output)
            self.scratch.close(frame.mark)
        if frame.beside and output is not None and args:
            output = _add_beside(output, args[0], frame.beside)
        if frame.unit:  # 6
            self.streamer.send_back(name, module)
            output = self.streamer.outliving_the_buffer(output)
        if frame.scope is not None:
            leave(self.scratch, frame.scope)
        return output

    def _cast(self, value):
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype not in FP8_DTYPES:
            return value.to(self.dtype)
        return value

    # --- which modules are hooked ---
    def _needs(self, name: str) -> bool:
        return (
            self.check is not None
            or name in self.owned
            or name in self.units
            or name in self.factors
            or (name == "" and (self.casts_inputs or self.scoped))
        )

    def sync(self, model: torch.nn.Module) -> None:
        """Each module that has a step to run gets the path's two hooks; one that has none keeps none."""
        for name, module in model.named_modules():
            needed, hooked = self._needs(name), name in self._hooks
            if needed and not hooked:
                frames: list[_Frame] = []
                self._hooks[name] = (
                    module.register_forward_pre_hook(partial(self._before, name, frames), with_kwargs=True),
                    module.register_forward_hook(partial(self._after, name, frames), always_call=True),
                    frames,
                )
            elif hooked and not needed and not self._hooks[name][2]:  # not while its forward runs
                for handle in self._hooks.pop(name)[:2]:
                    handle.remove()

    def _set_factors(self) -> None:
        self.factors = {}
        for factor_set in self.sets:
            for name, a, b, scale in factor_set.targets():
                self.factors.setdefault(name, []).append((a, b, scale))


def _add_beside(output: torch.Tensor, x: torch.Tensor, factors: list[Factors]) -> torch.Tensor:
    """`output` + each set's x A^T (s B)^T, in the compute dtype, in place (the output is this forward's own)."""
    for a, b, scale in factors:
        with contextlib.ExitStack() as copies:
            # Factors kept in bf16 and computing in float32 (a CPU): their copies in the model's scratch, where the
            # layer's own weight copy was a moment ago, not beside it.
            a, b = (
                f if f.dtype == x.dtype else copies.enter_context(room(f.shape, x.dtype, x.device)).copy_(f)
                for f in (a, b)
            )
            low = F.linear(F.linear(x, a) * scale, b)
        output = output.add_(low.to(output.dtype))
    return output


def path_of(model: torch.nn.Module) -> WeightPath:
    """The model's path, made bare (no compute dtype, nothing streamed) for a model built elsewhere."""
    path = model.__dict__.get("_weight_path")
    if path is None:
        path = model.__dict__["_weight_path"] = WeightPath()
    return path


def compose(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Make `model` compute in `dtype` without changing what it stores; returns how many modules upcast.

    A module takes part when it owns a tensor to upcast, or a tensor on the meta device: a streamed unit's tensors
    arrive at each forward, in their stored dtype, which is checked then."""
    path = model.__dict__["_weight_path"] = WeightPath(dtype)
    for name, module in model.named_modules():
        owned = [
            (table, key)
            for table in ("_parameters", "_buffers")
            for key, t in getattr(module, table).items()
            if t is not None and t.is_floating_point() and (t.device.type == "meta" or upcasts(t, dtype))
        ]
        if owned:
            path.owned[name] = owned
    path.casts_inputs = bool(path.owned)
    path.scoped = bool(path.owned) or dtype.itemsize > 2  # fp8 layers copy their weights too, without the path
    path.sync(model)
    return len(path.owned)


def stream(model: torch.nn.Module, streamer) -> None:
    """The model's units are brought in and sent back around their forwards by `streamer` (memory/streamer.py)."""
    path = path_of(model)
    streamer.attach(model)
    path.streamer, path.units = streamer, set(streamer.units)
    path.sync(model)


@contextlib.contextmanager
def beside(model: torch.nn.Module, sets: Iterable) -> Iterator[None]:
    """`with beside(model, [lora, ...]):` the model computes with each factor set (`targets()` -> (module name, A,
    B, scale)), in the order given; as built outside the block."""
    path, added = path_of(model), list(sets)
    path.sets += added
    try:
        path._set_factors()
        path.sync(model)
        yield
    finally:
        path.sets = [s for s in path.sets if not any(s is a for a in added)]
        path._set_factors()
        path.sync(model)


@contextlib.contextmanager
def checking(model: torch.nn.Module, check: Callable[[str], None] | None) -> Iterator[None]:
    """`with checking(model, check):` `check` is called before the model's modules run, at most every 0.25 s."""
    if check is None:
        yield
        return
    path = path_of(model)
    previous, path.check, path._last_check = path.check, check, time.monotonic()
    try:
        path.sync(model)
        yield
    finally:
        path.check = previous
        path.sync(model)
