"""Building a component under a policy, one tensor at a time: LoRA fused first, then quantized, then kept.

The order per tensor is what makes a stage-2 transformer quantize the *fused* weights, and what keeps the
load's peak at the quantized model plus one bf16 tensor.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..ltx2.components import COMPONENTS, Bundle, build_component, builder_for, check_files_match, file_layout
from ..ltx2.errors import LTX2InputError
from ..ltx2.precision import NAMES, compute_in
from ..ltx2.safetensors_file import read_header, read_tensor
from ..ltx2.streaming_loader import LoraFactors, tensors_bytes
from .layers import select_layers
from .registry import POLICIES, backend_for, check_policy, get_policy

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
# Components a transformer policy applies to; the text encoder has its own policy; the rest stay bf16.
QUANTIZABLE = ("transformer", "text_encoder")


@dataclass
class LoadReport:
    component: str
    policy: str
    quantized: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    resident_bytes: int = 0
    compute_dtype: torch.dtype = torch.bfloat16

    def summary(self) -> str:
        text = (f"{self.component}: {self.policy}, {self.quantized} linears quantized, {len(self.skipped)} kept, "
                f"computes in {NAMES.get(self.compute_dtype, self.compute_dtype)}")
        return text + "".join(f"; {n}" for n in self.notes)


def module_bytes(model: torch.nn.Module) -> int:
    return tensors_bytes((*model.parameters(), *model.buffers()))


def _fp8_scales(bundle: Bundle, name: str) -> dict[str, torch.Tensor]:
    """Module weight key -> stored scale, for a checkpoint whose linears are already fp8 (a release fp8 file)."""
    builder = builder_for(bundle, name)
    if not isinstance(builder.model_path, str):
        return {}
    header = read_header(builder.model_path)
    sd_ops = builder.model_sd_ops
    scales = {}
    for key, entry in header.entries.items():
        if key.endswith(".weight_scale"):
            module_key = key if sd_ops is None else sd_ops.apply_to_key(key)
            if module_key is not None:
                scales[module_key.removesuffix("_scale")] = read_tensor(header, key).float()
    return scales


def build_quantized(
    bundle: Bundle,
    name: str,
    policy_name: str = "none",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    lora: tuple[str, float] | None = None,
    keep_edge_blocks: bool = False,
    on_tensor=None,
    divert=None,
    compute_dtype: torch.dtype | None = None,
) -> tuple[torch.nn.Module, LoadReport]:
    """Builds component `name` under `policy_name`, with `lora` = (path, strength) fused first. Floating tensors
    the policy does not quantize are stored in `dtype`; the model computes in `compute_dtype` (default: `dtype`).

    `divert(key, tensor) -> bool` may take final tensors elsewhere (block streaming keeps them out of memory);
    the parameters it takes stay on the meta device, for it to bring in when they are needed."""
    device = torch.device(device)
    compute_dtype = compute_dtype or dtype
    input_name = "text_encoder_quantization" if name == "text_encoder" else "quantization"
    policy = get_policy(policy_name, input_name, text_encoder=name == "text_encoder")
    check_policy(policy, device, input_name)  # before a single weight is read

    report = LoadReport(name, policy.name)
    plain = builder_for(bundle, name)
    meta = plain.meta_model(plain.model_config(), ())
    selection = select_layers(meta, name, fp8=policy.fp8,
                              keep_edge_blocks=keep_edge_blocks)
    if name not in QUANTIZABLE or policy.name == "none":
        selection.quantize = []
    selected = selection.weight_keys()

    scales = _fp8_scales(bundle, name) if name in QUANTIZABLE else {}
    if scales:
        if policy.fp8 and policy.name != "fp8_scaled_mm":
            # Quantizing fp8 weights again (LTX-2 issue 193: fp8_cast on an fp8 file gives garbage) is never done:
            # the stored fp8 weights and scales are used as they are.
            report.notes.append(f"{bundle.checkpoint.name} is already fp8: {policy.name} keeps its fp8 weights as stored")
            policy = POLICIES["fp8_scaled"]
        elif policy.name != "fp8_scaled_mm":
            report.notes.append(f"{bundle.checkpoint.name} is fp8: weights dequantized to bf16 before {policy.name}")
        if policy.fp8:
            selected = set(scales)  # every stored fp8 linear is read by an fp8 layer
    elif policy.name == "fp8_scaled_mm":
        raise LTX2InputError(
            "quantization: fp8_scaled_mm uses the scales stored in an fp8 release checkpoint, and "
            f"{bundle.checkpoint.name} is not one. Pick torchao_fp8_dynamic, or the fp8 checkpoint."
        )
    backend = backend_for(policy)
    fuser = LoraFactors(*lora) if lora is not None and lora[1] != 0 else None
    if fuser is not None:
        unknown = set(fuser.targets) - set(meta.state_dict())
        if unknown:
            raise LTX2InputError(
                f"distilled_lora: {len(unknown)} of its layers are not in this transformer (e.g. {sorted(unknown)[0]}). "
                "It belongs to another model version; pick the LoRA released with this checkpoint."
            )
        report.notes.append(f"LoRA {Path(lora[0]).name} x{lora[1]} fused before quantizing")
    if policy.name == "fp8_scaled_mm" and fuser is not None:
        raise LTX2InputError(
            "quantization: fp8_scaled_mm reads the checkpoint's own fp8 weights and scales, so no LoRA can be fused "
            "into them here. Use it for stage 1 only, or pick torchao_fp8_dynamic."
        )

    def transform(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        if policy.name == "fp8_scaled_mm":  # ltx-core's own layout change of the stored fp8 weights and scales
            return backend.quantize(policy, key, value.to(device))
        if key.endswith((".weight_scale", ".input_scale")):
            return []  # stored fp8 scales: folded in below
        stored_fp8 = value.dtype in FP8_DTYPES
        if stored_fp8 and key in scales and policy.name == "fp8_scaled" and (fuser is None or key not in fuser.targets):
            return [(key, value), (key.removesuffix(".weight") + ".weight_scale", scales[key].expand(value.shape[0], 1).clone())]
        if stored_fp8:
            value = value.float() * scales.get(key, torch.tensor(1.0))
        if value.is_floating_point():
            value = value.to(dtype)
        if fuser is not None:
            value = fuser.fuse(key, value)
        if key in selected:
            return backend.quantize(policy, key, value.to(device), compute_dtype)
        return [(key, value)]

    final = transform
    if divert is not None:
        def final(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
            return [(k, v) for k, v in transform(key, value) if not divert(k, v)]

    builder = builder_for(bundle, name, final, on_tensor=on_tensor)
    builder = dataclasses.replace(builder, module_ops=(*builder.module_ops, *backend.module_ops(policy, selected)))
    model = build_component(bundle, name, device=device, builder=builder, meta_allowed=divert is not None)
    for note in backend.prepare(policy, model, device, compute_dtype):
        report.notes.append(note)
    compute_in(model, compute_dtype)
    report.compute_dtype = compute_dtype
    report.quantized = len(selected)
    report.skipped = {k: v for k, v in selection.skipped.items()}
    report.resident_bytes = module_bytes(model)
    return model, report


# Bytes per stored element of a quantized linear weight, relative to bf16's 2.
_QUANTIZED_FRACTION = {"torchao_int4_weight_only": 0.25}


def estimate_tensor_bytes(bundle: Bundle, name: str, policy_name: str) -> dict[str, int]:
    """What each of the component's tensors (by model key) will hold once built, from the file headers alone.
    Quantized linears count half (a quarter for int4); scales are small and left out."""
    policy = POLICIES.get(policy_name, POLICIES["none"])
    builder = builder_for(bundle, name)
    reads = check_files_match(builder, name)
    selection = set()
    if name in QUANTIZABLE and policy.name != "none":
        selection = select_layers(builder.meta_model(builder.model_config(), ()), name, fp8=policy.fp8).weight_keys()
    quantized_bytes = 2 * _QUANTIZED_FRACTION.get(policy.name, 0.5)  # per element
    sizes = {}
    for path in [builder.model_path] if isinstance(builder.model_path, str) else builder.model_path:
        for key, entry in read_header(path).entries.items():
            if key not in reads:
                continue
            mapped = builder.model_sd_ops.apply_to_key(key) if builder.model_sd_ops is not None else key
            elements = math.prod(entry.shape)
            if mapped in selection or (entry.dtype in FP8_DTYPES and policy.fp8):
                sizes[mapped] = int(elements * quantized_bytes)  # an fp8 release file's weights stay fp8
            elif entry.dtype.is_floating_point:
                sizes[mapped] = elements * 2  # built in bf16, whatever the file stores (fp8 is dequantized)
            else:
                sizes[mapped] = entry.nbytes
    return sizes


def estimate_bytes(bundle: Bundle, name: str, policy_name: str) -> int:
    """What the component will hold once built (see estimate_tensor_bytes): the budget makes room before
    building."""
    return sum(estimate_tensor_bytes(bundle, name, policy_name).values())
