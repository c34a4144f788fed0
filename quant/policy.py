"""What a quantization policy is: data (a name, where it runs, its rules, the backend that does its work), and the
base class of those backends, whose defaults are "nothing to do". The registry (registry.py) holds the policies."""

from dataclasses import dataclass

import torch

from ..errors import LTX2InputError


class PolicyUnavailable(LTX2InputError):
    """The policy cannot run on this device or with the installed packages (raised before any weight is read)."""


class ComputeDtypeUnavailable(PolicyUnavailable):
    """The device runs the policy, but not in the compute dtype the host chose (known at queue time)."""


class Backend:
    """How one family of policies does its work. Every method has a default (bf16 kept as stored, nothing to
    check, no layer classes, nothing to ready): a backend overrides only what its policies change."""

    def check(self, policy: "Policy", device: torch.device) -> None:
        """Raise PolicyUnavailable if this device or these packages cannot run the policy."""

    def check_compute(self, policy: "Policy", compute_dtype: torch.dtype) -> None:
        """Raise ComputeDtypeUnavailable if the policy's kernels cannot compute in `compute_dtype`."""

    def quantize(
        self, policy: "Policy", key: str, weight: torch.Tensor, compute_dtype: torch.dtype
    ) -> list[tuple[str, torch.Tensor]]:
        """The tensors to keep for one selected linear weight (bf16, LoRA already fused), for a model that
        computes in `compute_dtype`."""
        return [(key, weight)]

    def stored_fp8(
        self, policy: "Policy", key: str, tensor: torch.Tensor, scales: dict[str, torch.Tensor]
    ) -> list[tuple[str, torch.Tensor]] | None:
        """For a policy named by some policy's `on_fp8_release`: the tensors to keep for one tensor of an fp8
        release file (`scales`: weight key -> its stored scale), or None to dequantize it and go the usual way."""
        return None

    def module_ops(self, policy: "Policy", weight_keys: set[str]) -> tuple:
        """ltx-core ModuleOps applied to the meta model before loading (layer classes that read the new tensors)."""
        return ()

    def stored_ops(self, policy: "Policy", stored: dict[str, dict]) -> tuple:
        """For a policy that `keeps_stored`: ModuleOps giving each layer its file stores packed (`stored`: {layer:
        {"format", "options", "tensors": {name: (shape, dtype)}}}) a layer class that computes from those tensors."""
        return ()

    def prepare(
        self, policy: "Policy", model: torch.nn.Module, device: torch.device, compute_dtype: torch.dtype
    ) -> list[str]:
        """Readies the built model for `device` (e.g. picks the fp8 matmul where the GPU has one); notes for the
        load report."""
        return []

    def multiplies_fp8(self, device: torch.device, compute_dtype: torch.dtype) -> bool:
        """Whether the policy's layers multiply in fp8 on `device` (then no weight is upcast in a forward)."""
        return False


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    backend: Backend  # does the work (quant/ltx_core_policies.py, fp8_scaled.py, torchao_policies.py)
    runs_on: str  # for people: where it runs
    weight_bytes: float = 1.0  # bytes per element of a quantized linear weight (bf16: 2; scales are not counted)
    fp8: bool = False  # stores fp8 weights: fp8 kernels need both dims multiples of 16
    text_encoder: bool = False  # may also be used for the Gemma text encoder
    streamable: bool = False  # plain tensors, which block streaming can keep out of memory as bytes
    # On a checkpoint already stored in fp8 (a release's fp8 file): the policy whose backend takes the stored fp8
    # weights and scales as they are (never quantizing fp8 a second time: LTX-2 issue 193); None: they are
    # dequantized to bf16 first, then this policy applies.
    on_fp8_release: str | None = None
    needs_fp8_release: bool = False  # works only from a release's own fp8 weights and scales
    fuses_lora: bool = True  # a LoRA can be fused into the weights before this policy quantizes them
    # Keeps every weight in the layout its file stores it in (nvfp4, int8, ... : quant/formats.py), never dequantized
    # at load; its backend's stored_ops give those layers their classes.
    keeps_stored: bool = False

    @property
    def quantizes(self) -> bool:
        return self.weight_bytes < 2
