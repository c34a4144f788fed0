"""A LoRA file (ComfyUI's key names), checked against the weights it changes and fused into each one as that
weight streams by, with ltx-core's numerics: `(B * strength) @ A` in the factors' dtype, rounded to the weight's
dtype, then added to the weight in its dtype (ltx-core's `apply_loras`). The stage-2 transformer then equals what
ltx-pipelines builds, without the full bf16 model in memory that ltx-core's fusion needs."""

from pathlib import Path

import torch

from ..errors import LTX2InputError
from .safetensors_file import SafetensorsHeader, read_header, read_tensor, shown

PREFIX = "diffusion_model."


class LoraFactors:
    def __init__(self, path: str | Path, strength: float, input_name: str = "distilled_lora"):
        self.path = Path(path)
        self.input_name = input_name
        self.header: SafetensorsHeader = read_header(self.path, input_name)
        self.strength = strength
        self.targets: dict[str, tuple[str, str]] = {}  # model weight key -> (A key, B key)
        for key in self.header.entries:
            if key.endswith((".lora_A.weight", ".lora_B.weight")):
                module = key.removeprefix(PREFIX).rsplit(".lora_", 1)[0]
                a_key, b_key = f"{PREFIX}{module}.lora_A.weight", f"{PREFIX}{module}.lora_B.weight"
                missing = b_key if b_key not in self.header.entries else a_key if a_key not in self.header.entries else None
                if missing is not None:
                    raise self._bad(f"{shown(key)} has no partner {shown(missing)}")
                self.targets[module + ".weight"] = (a_key, b_key)
        if not self.targets:
            raise self._bad("it holds no lora_A / lora_B factors")

    def _bad(self, what: str, against: str = "") -> LTX2InputError:
        if against:  # it may be the other file that is wrong
            return LTX2InputError(
                f"{self.input_name}: {self.path.name} does not fit the transformer of {against}: {what}. They are "
                "of different model versions, or one of them is damaged: pick the LoRA released with this "
                "checkpoint, or download the damaged one again.")
        return LTX2InputError(
            f"{self.input_name}: {self.path.name} is not a usable LoRA for this checkpoint: {what}. Pick the LoRA "
            "released with this checkpoint, or download it again."
        )

    def check_against(self, shapes: dict[str, tuple[int, ...]], against: str = "") -> None:
        """Every target is a 2-D weight of the model, and A [rank, in] and B [out, rank] multiply to its shape
        exactly (no broadcasting): checked from the headers, before any weight is read. `against` names the
        checkpoint the shapes come from, when its header is all that was read (it may be the wrong one)."""
        unknown = sorted(set(self.targets) - set(shapes))
        if unknown:
            raise self._bad(f"{len(unknown)} of its layers are not there (e.g. {shown(unknown[0])})", against)
        for key, (a_key, b_key) in self.targets.items():
            a, b, weight = self.header.entries[a_key].shape, self.header.entries[b_key].shape, shapes[key]
            if len(a) != 2 or len(b) != 2 or len(weight) != 2 or a[0] != b[1] or (b[0], a[1]) != tuple(weight):
                raise self._bad(f"{shown(a_key)} {list(a)} and {shown(b_key)} {list(b)} do not make the shape of "
                                f"{shown(key)} {list(weight)}", against)
        floating = {e.dtype for k, e in self.header.entries.items() if k.endswith(".weight")}
        if not all(d.is_floating_point for d in floating):
            raise self._bad(f"its factors are stored as {', '.join(map(str, sorted(floating, key=str)))}, not floats")

    def check_against_checkpoint(self, checkpoint: SafetensorsHeader, prefix: str = "model.diffusion_model.") -> None:
        """check_against, from the checkpoint's header alone (its transformer keys carry `prefix`): what the
        loader node runs, so that a LoRA that does not fit is refused when it is picked, not at stage 2."""
        self.check_against({k.removeprefix(prefix): e.shape for k, e in checkpoint.entries.items()
                            if k.startswith(prefix)}, checkpoint.path.name)

    def fuse(self, key: str, weight: torch.Tensor) -> torch.Tensor:
        """The weight with this LoRA fused in (the weight itself when the LoRA does not change it)."""
        if key not in self.targets or self.strength == 0:
            return weight
        a_key, b_key = self.targets[key]
        a, b = read_tensor(self.header, a_key), read_tensor(self.header, b_key)
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise self._bad(f"{shown(a_key)} or {shown(b_key)} holds NaN or infinite values")
        delta = torch.matmul(b.to(weight.device) * self.strength, a.to(weight.device)).to(weight.dtype)
        return delta.add_(weight)
