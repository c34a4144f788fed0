"""as_stored: every layer kept as its file stores it, never dequantized at load.

A low-bit file is chosen to fit a small card: dequantizing it at load makes a 4-bit Gemma bf16 (3x its file) or
fp8 (1.5x, rounded a second time). Here a packed weight (nvfp4, mxfp8, int8 with or without its rotation, ComfyUI's
W4A4 and W4A8: quant/formats.py) stays its file's bytes, an fp8 one stays fp8 in the pack's own fp8 layer
(fp8_scaled.py), a bf16 one bf16.

The forward computes through comfy-kitchen, ComfyUI's own kernels, as ComfyUI's mixed-precision layers do: on a GPU
where kitchen has a native kernel for the layout (nvfp4 and mxfp8 on Blackwell, int8 on Turing and later) the
layer multiplies the stored weight directly (quantizing its input first where the layout does); elsewhere (a CPU,
an older GPU) the weight is dequantized for the forward by kitchen into the model's scratch buffer
(quant/scratch.py), a slice of rows at a time: one compute-dtype copy of one layer at a time, never a second copy
of the model.

The layer holds the stored tensors as plain parameters and makes comfy-kitchen's QuantizedTensor from them in its
forward (a wrapper, no copy), instead of holding a QuantizedTensor parameter as ComfyUI does: block streaming moves a
block's parameters as bytes (memory/streaming.py), the ledger counts plain tensors, and a LoRA runs beside a layer
whose weight is not a plain float (ltx2/components/lora_layers.py) exactly as beside an fp8 one.
"""

import torch

from .formats import FORMATS, SCALE_SUFFIXES, dequantize, layout_class, layout_params
from .fp8_scaled import Fp8Scaled
from .policy import Backend, Policy
from .scratch import room


class StoredLinear(torch.nn.Linear):
    """A Linear whose weight is stored in a comfy-kitchen layout, with its scales beside it as parameters."""

    stored_format = ""  # a quant/formats.py row
    options: dict | None = None  # the layer's `.comfy_quant` config
    native = False  # set by AsStored.prepare() where kitchen multiplies this layout on the device

    def scales(self) -> dict[str, torch.Tensor]:
        return {
            s.name: self._parameters[s.name]
            for s in FORMATS[self.stored_format].scales
            if self._parameters.get(s.name) is not None
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmt = FORMATS[self.stored_format]
        scales = self.scales()
        smoothing = scales.pop("pre_quant_scale", None)
        if smoothing is not None:  # ModelOpt's AWQ smoothing: ComfyUI computes W (s * x)
            x = x * smoothing.to(x.dtype)
        shape = torch.Size((self.out_features, self.in_features))
        if self.native:
            return self._native(fmt, x, scales, shape)
        with room(shape, x.dtype, x.device) as weight:
            dequantize(fmt, self.weight, scales, self.options or {}, shape, x.dtype, out=weight)
            return torch.nn.functional.linear(x, weight, self.bias)

    def _native(self, fmt, x: torch.Tensor, scales: dict, shape: tuple[int, int]) -> torch.Tensor:
        """kitchen's kernel on the stored weight: ComfyUI's inference path (comfy/ops.py, MixedPrecisionOps)."""
        from comfy_kitchen.tensor import QuantizedTensor

        input_scale = scales.pop("input_scale", None)
        weight = QuantizedTensor(
            self.weight, fmt.layout, layout_params(fmt, scales, self.options or {}, shape, x.dtype)
        )
        rows = x.reshape(-1, x.shape[-1])
        if fmt.quantize_input:
            kwargs = {} if input_scale is None else {"scale": input_scale.float()}
            rows = QuantizedTensor.from_float(rows, fmt.layout, **kwargs)
        out = torch.nn.functional.linear(rows, weight, self.bias)
        return out.reshape(*x.shape[:-1], self.out_features)


def _stored_linears(model: torch.nn.Module, stored: dict[str, dict]) -> torch.nn.Module:
    """Each Linear named in `stored` ({layer: {"format", "options", "tensors": {name: (shape, dtype)}}}) becomes a
    StoredLinear whose parameters have the stored shapes and dtypes (on the meta device: the file's tensors are
    assigned to them as they load)."""
    for name, module in model.named_modules():
        spec = stored.get(name)
        if spec is None or type(module) is not torch.nn.Linear:
            continue
        module.__class__ = StoredLinear  # same instance, new class, as fp8_scaled.py's layers
        module.stored_format, module.options = spec["format"], spec["options"]
        for tensor, (shape, dtype) in spec["tensors"].items():
            module.register_parameter(
                tensor, torch.nn.Parameter(torch.empty(shape, dtype=dtype, device="meta"), requires_grad=False)
            )
    return model


def native_kernel(fmt, device: torch.device, compute_dtype: torch.dtype) -> str | None:
    """Why comfy-kitchen has no native kernel for `fmt` here (None: it has)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"device '{device}' has no {fmt.name} kernel"
    if compute_dtype not in (torch.bfloat16, torch.float16):
        return "the model computes in float32 (kitchen's kernels write bf16 or fp16)"
    if not layout_class(fmt).supports_fast_matmul():
        return f"{torch.cuda.get_device_name(device)} has no {fmt.name} tensor cores"
    import comfy_kitchen

    if not comfy_kitchen.list_backends().get("cuda", {}).get("available"):
        return "comfy-kitchen's CUDA backend is not available (it needs torch built for CUDA 13)"
    return None


class AsStored(Backend):
    """Keeps what the file stores: packed layouts in StoredLinear, fp8 in fp8_scaled's layer, bf16 as bf16."""

    fp8 = Fp8Scaled()

    def quantize(
        self, policy: Policy, key: str, weight: torch.Tensor, compute_dtype: torch.dtype
    ) -> list[tuple[str, torch.Tensor]]:
        """An fp8 layer a LoRA was fused into: quantized again as fp8_scaled does (the only weights this policy
        quantizes)."""
        return self.fp8.quantize(policy, key, weight, compute_dtype)

    def stored_fp8(
        self, policy: Policy, key: str, tensor: torch.Tensor, scales: dict[str, torch.Tensor]
    ) -> list[tuple[str, torch.Tensor]] | None:
        """The fp8 layers' tensors as fp8_scaled keeps them; a packed layer's are left for the build to keep."""
        weight = next((key.removesuffix(s) + ".weight" for s in SCALE_SUFFIXES if key.endswith(s)), key)
        if weight not in scales:
            return None
        return self.fp8.stored_fp8(policy, key, tensor, scales)

    def module_ops(self, policy: Policy, weight_keys: set[str]) -> tuple:
        return self.fp8.module_ops(policy, weight_keys) if weight_keys else ()

    def stored_ops(self, policy: Policy, stored: dict[str, dict]) -> tuple:
        from ltx_core.loader.module_ops import ModuleOps

        if not stored:
            return ()
        return (ModuleOps("StoredLinear", matcher=lambda model: True, mutator=lambda m: _stored_linears(m, stored)),)

    def prepare(
        self, policy: Policy, model: torch.nn.Module, device: torch.device, compute_dtype: torch.dtype
    ) -> list[str]:
        notes = self.fp8.prepare(policy, model, device, compute_dtype)
        layers = [m for m in model.modules() if isinstance(m, StoredLinear)]
        why: dict[str, list[str]] = {}
        for layer in layers:
            reason = native_kernel(FORMATS[layer.stored_format], device, compute_dtype)
            layer.native = reason is None
            why.setdefault(reason or "", []).append(layer.stored_format)
        for reason, formats in why.items():
            names = ", ".join(sorted(set(formats)))
            notes.append(
                f"{len(formats)} {names} linears multiply natively (comfy-kitchen)"
                if not reason
                else f"{len(formats)} {names} linears dequantized per forward by comfy-kitchen: {reason}"
            )
        return notes

    def multiplies_fp8(self, device: torch.device, compute_dtype: torch.dtype) -> bool:
        return self.fp8.multiplies_fp8(device, compute_dtype)


def requantized_scales(fmt_name: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The scales a layer keeps once a LoRA is fused into it and kitchen quantizes it again: the ones kitchen's
    layout makes (a static input scale or an AWQ smoothing the file had are folded away: formats.py dequantizes
    with the smoothing applied)."""
    return tuple(s.name for s in FORMATS[fmt_name].scales if s.field is not None and s.name in names)


def requantize(
    fmt_name: str, weight: torch.Tensor, options: dict, shapes: dict[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """A weight (a LoRA fused into it) quantized again into its file's layout by comfy-kitchen, as {"weight": ...,
    <scale name>: ...} for the scales the file stores it with (`shapes`), with the options the layer was stored
    with (its rotation, group size)."""
    fmt = FORMATS[fmt_name]
    cls = layout_class(fmt)
    kwargs = {name: kind(fmt.option(options, name)) for name, (kind, _) in fmt.options.items()}
    kwargs.pop("linear_dtype", None)  # how kitchen multiplies it, not how it quantizes
    if not fmt.rotated(options):
        kwargs.pop("convrot_groupsize", None)
    kwargs.update(fmt.quantize_kwargs(kwargs, shapes))
    qdata, params = cls.quantize(weight.to(torch.bfloat16), **kwargs)
    made = {f"weight{suffix}": t for suffix, t in cls.state_dict_tensors(qdata, params).items() if t is not None}
    return {"weight": made["weight"], **{n: made[n].reshape(shape) for n, shape in shapes.items()}}
