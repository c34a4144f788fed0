"""Building a component from its plan under a policy, one tensor at a time: an fp8 release's weights taken as
stored where the policy keeps them, else dequantized; LoRA fused; then quantized by the policy's backend; then
kept (or kept out of memory, for block streaming).

The order per tensor is what makes a stage-2 transformer quantize the *fused* weights, and what keeps the load's
peak at the quantized model plus one bf16 tensor. The policy rules it follows are the policies' data and their
backends' (quant/); nothing here names a policy.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import LTX2InputError, LTX2LoadError
from ...memory.accounting import module_bytes
from ...quant import POLICIES, Policy
from ...quant.as_stored import requantize, requantized_scales
from ...quant.formats import FORMATS
from ..files.lora_file import LoraFactors
from ..files.safetensors_file import FP8_DTYPES
from .plan import SCALE_SUFFIXES, ComponentPlan
from .precision import NAMES, compute_in
from .state_dict_loader import StreamingStateDictLoader

# Where a floating tensor no policy quantizes is stored: bf16, as the release and ltx-pipelines store it.
STORAGE_DTYPE = torch.bfloat16


@dataclass
class LoadReport:
    component: str
    policy: str
    quantized: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    resident_bytes: int = 0
    compute_dtype: torch.dtype = STORAGE_DTYPE
    files: list[str] = field(default_factory=list)  # the files it was built from, by name
    stored: dict[str, tuple[int, int]] = field(default_factory=dict)  # kept as stored: {format: (layers, bytes)}

    def summary(self) -> str:
        text = (
            f"{self.component}: {self.policy}, {self.quantized} linears quantized, {len(self.skipped)} kept, "
            f"computes in {NAMES.get(self.compute_dtype, self.compute_dtype)}"
        )
        if self.files:
            text += f", from {' + '.join(self.files)}"
        if self.stored:
            text += "; kept as stored: " + ", ".join(
                f"{count} {fmt} ({nbytes / 2**20:.1f} MiB)" for fmt, (count, nbytes) in sorted(self.stored.items())
            )
        return text + "".join(f"; {n}" for n in self.notes)


def build(
    plan: ComponentPlan,
    policy: Policy = POLICIES["none"],
    device: torch.device | str = "cpu",
    compute_dtype: torch.dtype = STORAGE_DTYPE,
    lora: tuple[Path, float] | None = None,
    keep_out: Callable[[str, torch.Tensor], bool] | None = None,
    on_tensor: Callable[[str], None] | None = None,
) -> tuple[torch.nn.Module, LoadReport]:
    """Builds the plan's component under `policy` (checked for this device by whoever chose it: the loader node's
    spec, before any file is read), with `lora` = (path, strength) fused first, computing in `compute_dtype`.
    Completely, or raises: never a half-loaded model.

    `keep_out(key, tensor) -> bool` may take final tensors elsewhere (block streaming keeps them out of memory);
    the parameters it takes stay on the meta device, for it to bring in when they are needed."""
    device = torch.device(device)
    input_name = plan.policy_input
    report = LoadReport(plan.name, policy.name, compute_dtype=compute_dtype)
    report.files = plan.file_names()
    if plan.defaults:
        report.notes.append(
            f"{Path(plan.where).name} lacks {', '.join(plan.defaults)}: ltx-core's defaults taken "
            "(release files have them; other readers may take other defaults)"
        )
    selected, report.skipped = plan.selected(policy)

    scales = plan.fp8_scales()
    if scales and policy.on_fp8_release is not None:
        # Quantizing fp8 weights again (LTX-2 issue 193: fp8_cast on an fp8 file gives garbage) is never done: the
        # policy that takes the stored fp8 weights and scales as they are builds them.
        report.notes.append(f"{Path(plan.where).name} is already fp8: {policy.name} keeps its fp8 weights as stored")
        policy = POLICIES[policy.on_fp8_release]
        selected |= set(scales)  # every stored fp8 linear is read by the policy's fp8 layers
    elif scales:
        report.notes.append(f"{Path(plan.where).name} is fp8: weights dequantized to bf16 before {policy.name}")
    elif policy.needs_fp8_release:
        raise LTX2InputError(
            f"{input_name}: {policy.name} uses the scales stored in an fp8 release checkpoint, and "
            f"{plan.bundle.checkpoint.name} is not one. Pick torchao_fp8_dynamic, or the fp8 checkpoint."
        )
    backend = policy.backend

    fuser = None
    if lora is not None and lora[1] != 0:
        if not policy.fuses_lora:
            raise LTX2InputError(
                f"{input_name}: {policy.name} reads the checkpoint's own fp8 weights and scales, so no LoRA can be "
                "fused into them here. Use it for stage 1 only, or pick torchao_fp8_dynamic."
            )
        fuser = LoraFactors(*lora)
        fuser.check_against(plan.shapes)
        report.notes.append(f"LoRA {Path(lora[0]).name} x{lora[1]} ({fuser.describe()}) fused before quantizing")

    # Packed weights (nvfp4, int8 ...: quant/formats.py) the policy keeps as stored, by model key, and their scales.
    kept = plan.packed_weights() if policy.keeps_stored else {}
    if fuser is not None:  # a LoRA fused into a packed layer: quantized again by kitchen, which makes its own scales
        kept = {k: (f, o, requantized_scales(f, n) if k in fuser.targets else n) for k, (f, o, n) in kept.items()}
    kept_scales = {f"{k.removesuffix('.weight')}.{name}": k for k, (_, _, names) in kept.items() for name in names}
    specs = _stored_specs(plan, kept)
    packed = {f: n for f, n in plan.stored_formats.items() if not FORMATS[f].fp8}
    if packed and not kept:
        report.notes.append(
            ", ".join(f"{n} {f} weights" for f, n in packed.items()) + " dequantized to bf16 with "
            f"comfy-kitchen before {policy.name}"
        )
    if policy.keeps_stored:
        report.stored = plan.stored_bytes()

    keeps_release = bool(scales) and policy.on_fp8_release == policy.name

    def transform(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        plan.check_streamed(key, value)  # a block scale's values, as it streams in
        fused = fuser is not None and (key in fuser.targets or kept_scales.get(key, "") in fuser.targets)
        if keeps_release and not fused:
            stored = backend.stored_fp8(policy, key, value, scales)
            if stored is not None:
                return stored
        if key in kept_scales:  # a packed weight's scale: kept beside it, or made again with a fused LoRA
            return [] if fused else [(key, _as_kept(value))]
        if key in kept:
            fmt, options, _ = kept[key]
            if not fused:
                return [(key, value.view(FORMATS[fmt].storage[0]))]
            layer = key.removesuffix(".weight")
            shapes = {n: shape for n, (shape, _) in specs[layer]["tensors"].items() if n != "weight"}
            tensors = requantize(fmt, fuser.fuse(key, plan.unpack(key, value)), options, shapes)
            return [(key, tensors.pop("weight")), *((f"{layer}.{n}", _as_kept(t)) for n, t in tensors.items())]
        if key.endswith(SCALE_SUFFIXES):
            return []  # a stored scale: folded into its weight below
        if device.type != "cpu":
            # Dequantized and fused on the device: a GPU host's CPU would take minutes over a 22B's packed or fp8
            # weights and the LoRA's products (rank 384 on every block linear: ~14 TFLOP in bf16).
            value = value.to(device)
        value = plan.unpack(key, value)  # nvfp4, mxfp8, int8 as ComfyUI packs them: bf16
        if value.dtype in FP8_DTYPES:
            value = value.float() * scales.get(key, torch.tensor(1.0))
        if value.is_floating_point():
            value = value.to(STORAGE_DTYPE)
        if fuser is not None:
            value = fuser.fuse(key, value)
        if key in selected:
            return backend.quantize(policy, key, value.to(device), compute_dtype)
        return [(key, value)]

    final = transform
    if keep_out is not None:

        def final(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
            return [(k, v) for k, v in transform(key, value) if not keep_out(k, v)]

    module_ops = (*backend.module_ops(policy, selected), *backend.stored_ops(policy, specs))
    model = _load(plan, final, module_ops, device, on_tensor, keep_out is not None)
    for note in backend.prepare(policy, model, device, compute_dtype):
        report.notes.append(note)
    compute_in(model, compute_dtype)
    report.quantized = len(selected)
    report.resident_bytes = module_bytes(model)
    return model, report


def _as_kept(tensor: torch.Tensor) -> torch.Tensor:
    """A scale as a packed layer keeps it: byte-sized floats (fp8 and e8m0 block scales) as their bytes, which no
    compute-dtype cast touches (the layer views them back: quant/formats.py); a scalar as one element (block
    streaming stores a tensor's bytes, which a 0-d tensor cannot be viewed as)."""
    tensor = tensor.reshape(1) if tensor.dim() == 0 else tensor
    return tensor.view(torch.uint8) if tensor.is_floating_point() and tensor.dtype.itemsize == 1 else tensor


def _stored_specs(plan: ComponentPlan, kept: dict) -> dict[str, dict]:
    """{layer: its format, options and tensors' (shape, dtype)} of the packed layers kept as stored."""
    specs = {}
    for key, (fmt, options, names) in kept.items():
        layout, file_key = plan.stored(key)
        layer, file_layer = key.removesuffix(".weight"), file_key.removesuffix(".weight")
        entries = layout.header.entries
        tensors = {"weight": (entries[file_key].shape, FORMATS[fmt].storage[0])}
        for name in names:
            entry = entries[f"{file_layer}.{name}"]
            dtype = torch.uint8 if entry.dtype.is_floating_point and entry.dtype.itemsize == 1 else entry.dtype
            tensors[name] = (entry.shape or (1,), dtype)
        specs[layer] = {"format": fmt, "options": options, "tensors": tensors}
    return specs


def _load(
    plan: ComponentPlan, transform, module_ops: tuple, device: torch.device, on_tensor, keeping_out: bool
) -> torch.nn.Module:
    """The plan's meta model, with the policy's module ops, loaded through the streaming loader.

    ltx-core's builder.build() is not used: it only warns when tensors are missing (returning a half-loaded
    model) and ends with `model.to(device)`, which torchao's int8 tensors cannot go through. Its parts are: meta
    model + module ops, the loader (ours moves each tensor to `device` already), load_state_dict."""
    base = plan.builder.model_loader
    loader = StreamingStateDictLoader(
        base.headers, base.metadata(""), transform, on_tensor, only_keys=set(plan.renames)
    )
    model, plan.meta = plan.meta, None  # the plan's meta model becomes the component: a plan builds once
    if model is None:
        raise RuntimeError(f"{plan.name}: this plan has built its component already; read a new one")
    for op in module_ops:
        if op.matcher(model):
            model = op.mutator(model)
    try:
        # Under inference_mode, as ComfyUI runs nodes: tensors made here are then usable there (torchao's are not
        # otherwise).
        with torch.inference_mode():
            state = loader.load(
                plan.paths if len(plan.paths) > 1 else plan.paths[0], sd_ops=plan.builder.model_sd_ops, device=device
            )
            model.load_state_dict(state.sd, strict=False, assign=True)
            del state
    except RuntimeError as exc:  # load_state_dict's size mismatch for tensors the plan's check cannot see
        raise LTX2LoadError(
            f"{plan.name}: could not load its weights from {plan.where}: {exc}. The file does not match the model its "
            "config describes; download it again, or pick the release file."
        ) from exc
    leftovers = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.device.type == "meta"]
    if leftovers and not keeping_out:  # block streaming keeps some tensors out, on purpose
        raise LTX2LoadError(
            f"{plan.name}: {len(leftovers)} tensor(s) were not loaded, e.g. {', '.join(leftovers[:3])}."
        )
    # Inference only: without this, a forward outside inference_mode/no_grad would try to track gradients
    # through tensors made under inference_mode, and fail.
    return model.eval().requires_grad_(False)
