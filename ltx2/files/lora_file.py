"""A LoRA file, checked against the weights it changes and fused into each one as that weight streams by, with
ltx-core's numerics: `(B * scale) @ A` in the factors' dtype, rounded to the weight's dtype, then added to the
weight in its dtype (ltx-core's `apply_loras`). The stage-2 transformer then equals what ltx-pipelines builds,
without the full bf16 model in memory that ltx-core's fusion needs.

The key spellings ComfyUI reads: `<module>.lora_A.weight` / `.lora_B.weight` (PEFT) or `.lora_down.weight` /
`.lora_up.weight` (kohya), under `diffusion_model.`, `model.diffusion_model.` or no prefix, each module with its
own rank (the distilled LoRA 1.1 "dynamic" file's ranks differ per layer). An `<module>.alpha` is read as the
format defines it, scale = strength x alpha / rank (ComfyUI's reading); without one the scale is the strength
(ltx-core's, which never reads alpha: the release's distilled LoRA has none).
"""

import math
from collections.abc import Iterator
from pathlib import Path

import torch

from ...errors import LTX2InputError
from .safetensors_file import SafetensorsHeader, iter_tensors, read_header, read_tensor, shown

PREFIXES = ("model.diffusion_model.", "diffusion_model.")
FACTOR_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
# kohya's spelling, which ComfyUI also reads: the module path with its dots made underscores, under this prefix
# (`lora_unet_transformer_blocks_0_attn1_to_q.lora_down.weight`); resolved against the model's own names.
KOHYA_PREFIX = "lora_unet_"
SPELLINGS = ((".lora_A.weight", ".lora_B.weight"), (".lora_down.weight", ".lora_up.weight"))
# alpha / rank beyond this is no LoRA's: kohya's and PEFT's files keep alpha at or below a few times the rank.
MAX_ALPHA_RATIO = 64.0
# A fused change larger than this many times the weight it changes has taken the weight over (huge but finite
# factors): the video would be noise or black, so the file is refused instead.
MAX_CHANGE_RATIO = 100.0


def _module_of(key: str) -> tuple[str, int] | None:
    """(module name without prefix, which factor: 0 = A / down, 1 = B / up) of a factor key, else None."""
    for a_suffix, b_suffix in SPELLINGS:
        for which, suffix in enumerate((a_suffix, b_suffix)):
            if key.endswith(suffix):
                module = key[: -len(suffix)]
                for prefix in PREFIXES:
                    module = module.removeprefix(prefix)
                return module, which
    return None


class LoraFactors:
    def __init__(self, path: str | Path, strength: float, input_name: str = "distilled_lora"):
        self.path = Path(path)
        self.input_name = input_name
        self.header: SafetensorsHeader = read_header(self.path, input_name)
        self.strength = strength
        self.targets: dict[str, tuple[str, str]] = {}  # model weight key -> (A key, B key)
        self.scales: dict[str, float] = {}  # model weight key -> alpha / rank, where the file gives an alpha
        self.unmatched = 0  # layers of the file the model does not have (fit_to)
        factors: dict[str, list[str | None]] = {}
        for key in self.header.entries:
            found = _module_of(key)
            if found is not None:
                module, which = found
                pair = factors.setdefault(module, [None, None])
                if pair[which] is not None:
                    raise self._bad(
                        f"{shown(module)} has two {('A', 'B')[which]} factors ({shown(pair[which])} and {shown(key)})"
                    )
                pair[which] = key
        for module, (a_key, b_key) in factors.items():
            if a_key is None or b_key is None:
                have, lacks = (a_key, "B (up)") if b_key is None else (b_key, "A (down)")
                partner = (
                    a_key.replace("lora_A", "lora_B").replace("lora_down", "lora_up")
                    if b_key is None
                    else b_key.replace("lora_B", "lora_A").replace("lora_up", "lora_down")
                )
                raise self._bad(f"{shown(have)} has no partner {shown(partner)} (its {lacks} factor)")
            self.targets[module + ".weight"] = (a_key, b_key)
            alpha_key = a_key.rsplit(".lora_", 1)[0] + ".alpha"
            if alpha_key in self.header.entries:
                self.scales[module + ".weight"] = self._alpha_ratio(alpha_key, a_key)
        if not self.targets:
            raise self._bad("it holds no lora_A / lora_B (or lora_down / lora_up) factors")

    def _alpha_ratio(self, alpha_key: str, a_key: str) -> float:
        entry, rank = self.header.entries[alpha_key], self.header.entries[a_key].shape[0]
        if entry.shape not in ((), (1,)):
            raise self._bad(f"{shown(alpha_key)} is not one number")
        alpha = float(read_tensor(self.header, alpha_key).reshape(()).double())
        if not math.isfinite(alpha) or rank == 0 or not 0 <= alpha / rank <= MAX_ALPHA_RATIO:
            raise self._bad(
                f"{shown(alpha_key)} is {alpha:g} for rank {rank}: a scale of alpha / rank outside 0 to "
                f"{MAX_ALPHA_RATIO:g}, which no trained LoRA has"
            )
        return alpha / rank

    def _bad(self, what: str, against: str = "") -> LTX2InputError:
        if against:  # it may be the other file that is wrong
            return LTX2InputError(
                f"{self.input_name}: {self.path.name} does not fit the transformer of {against}: {what}. They are "
                "of different model versions, or one of them is damaged: pick the LoRA released with this "
                "checkpoint, or download the damaged one again."
            )
        return LTX2InputError(
            f"{self.input_name}: {self.path.name} is not a usable LoRA for this checkpoint: {what}. Pick the LoRA "
            "released with this checkpoint, or download it again."
        )

    def describe(self) -> str:
        """For the load report: how many layers, their ranks, and how alpha was read."""
        ranks = sorted({self.header.entries[a].shape[0] for a, _ in self.targets.values()})
        rank = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {ranks[0]} to {ranks[-1]}"
        if not self.scales:
            alpha = "no alpha (scale = strength)"
        else:
            ratios = sorted(set(self.scales.values()))
            alpha = f"alpha read: scale = strength x alpha / rank ({ratios[0]:g}" + (
                f" to {ratios[-1]:g})" if len(ratios) > 1 else ")"
            )
        return f"{len(self.targets)} layers, {rank}, {alpha}"

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
                raise self._bad(
                    f"{shown(a_key)} {list(a)} and {shown(b_key)} {list(b)} do not make the shape of "
                    f"{shown(key)} {list(weight)}",
                    against,
                )
        floating = {self.header.entries[k].dtype for pair in self.targets.values() for k in pair}
        if not all(d.is_floating_point for d in floating):
            raise self._bad(f"its factors are stored as {', '.join(map(str, sorted(floating, key=str)))}, not floats")
        for a_key, b_key in self.targets.values():
            # B @ A is taken in the factors' dtype (ltx-core's numerics): two dtypes, or fp8, fail only at the stage
            # that applies the LoRA, after the stages before it ran.
            a, b = self.header.entries[a_key].dtype, self.header.entries[b_key].dtype
            if a != b or a not in FACTOR_DTYPES:
                stored = f"{a}" if a == b else f"{a} and {shown(b_key)} as {b}"
                raise self._bad(
                    f"{shown(a_key)} is stored as {stored}; a LoRA's two factors are bf16, fp16 or float32, both "
                    "alike. Save the LoRA again in one of them (e.g. bf16)"
                )

    def fit_to(self, shapes: dict[str, tuple[int, ...]], against: str = "") -> int:
        """For a user's LoRA, which may change only part of the model or name layers in kohya's spelling: its
        targets resolved against the model's weight keys and kept only where the model has them (checked as
        check_against checks them); returns how many layers it changes. A LoRA that changes none of them is
        refused, naming three of its keys: it is for another model."""
        kohya = {KOHYA_PREFIX + k.removesuffix(".weight").replace(".", "_"): k for k in shapes}
        resolved = {}
        for key, pair in self.targets.items():
            module = key.removesuffix(".weight")
            resolved[kohya.get(module, key)] = pair
        self.scales = {kohya.get(k.removesuffix(".weight"), k): v for k, v in self.scales.items()}
        kept = {k: v for k, v in resolved.items() if k in shapes}
        if not kept:
            keys = [pair[0] for pair in list(resolved.values())[:3]]
            raise self._bad(
                f"none of its {len(resolved)} layers is a layer of this transformer (its keys: "
                f"{', '.join(shown(k) for k in keys)})",
                against,
            )
        self.targets, self.unmatched = kept, len(resolved) - len(kept)
        self.check_against(shapes, against)
        return len(kept)

    def check_against_checkpoint(self, checkpoint: SafetensorsHeader, prefix: str = "model.diffusion_model.") -> None:
        """check_against, from the checkpoint's header alone (its transformer keys carry `prefix`): what the
        loader node runs, so that a LoRA that does not fit is refused when it is picked, not at stage 2. A weight
        the file stores packed (nvfp4 ...: stored_formats.py) has the shape the LoRA makes if it packs to it."""
        from .stored_formats import read_layout

        layout = read_layout(checkpoint)
        shapes = transformer_shapes(checkpoint, prefix)
        for key, pair in self.targets.items():
            fmt = layout.packed(prefix + key)
            if fmt is not None and key in shapes:
                made = (self.header.entries[pair[1]].shape[0], self.header.entries[pair[0]].shape[-1])
                if fmt.stored_shape(made) == shapes[key]:
                    shapes[key] = made
        self.check_against(shapes, checkpoint.path.name)

    def scale_of(self, key: str) -> float:
        """The factor B is multiplied by: the strength, times alpha / rank where the file gives an alpha. Without
        one the factor is the strength itself, as ltx-core multiplies it (the same bits)."""
        return self.strength * self.scales[key] if key in self.scales else self.strength

    def fuse(self, key: str, weight: torch.Tensor) -> torch.Tensor:
        """The weight with this LoRA fused in (the weight itself when the LoRA does not change it)."""
        if key not in self.targets or self.strength == 0:
            return weight
        a_key, b_key = self.targets[key]
        a, b = read_tensor(self.header, a_key), read_tensor(self.header, b_key)
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise self._bad(f"{shown(a_key)} or {shown(b_key)} holds NaN or infinite values")
        delta = delta_of(weight, a, b, self.scale_of(key))
        # Each factor finite is not enough: huge ones (1e38, or bf16's 3e19) multiply to infinities, or to a change
        # that drowns the weight.
        if not torch.isfinite(delta).all():
            raise self.overflows(key, weight.dtype)
        # Norms in the tensors' own dtype (accumulated in float32): no float32 copy of a 22B weight is made.
        self.check_change(key, float(torch.linalg.vector_norm(delta)), float(torch.linalg.vector_norm(weight)))
        return delta.add_(weight)

    def overflows(self, key: str, dtype: torch.dtype) -> LTX2InputError:
        a_key, b_key = self.targets[key]
        return self._bad(
            f"{shown(a_key)} times {shown(b_key)} overflows {dtype} (its factors are far larger than any trained "
            "LoRA's)"
        )

    def check_change(self, key: str, change: float, size: float) -> None:
        """Refuses a change (the norm of scale x B @ A) that drowns the weight it changes (of norm `size`)."""
        if not change <= MAX_CHANGE_RATIO * max(size, 1e-3):
            a_key, b_key = self.targets[key]
            raise self._bad(
                f"{shown(a_key)} times {shown(b_key)} changes {shown(key)} by {change / max(size, 1e-12):.3g} "
                "times its own size, which no trained LoRA does"
            )

    def read_all(self, device: torch.device | str = "cpu") -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """(weight key, A, B) of every layer the LoRA changes, on `device`, in one pass over the file, a pair at a
        time (a file's A and B of one layer lie side by side: host memory holds one pair, not the file), each pair
        checked finite (for the factors kept resident beside a built transformer: components/lora_layers.py)."""
        wanted = {k for pair in self.targets.values() for k in pair}
        layer_of = {k: (weight, which) for weight, pair in self.targets.items() for which, k in enumerate(pair)}
        waiting: dict[str, list[torch.Tensor | None]] = {}
        for key, tensor in iter_tensors(self.header, wanted):
            weight, which = layer_of[key]
            pair = waiting.setdefault(weight, [None, None])
            pair[which] = tensor.to(device)
            del tensor
            if pair[0] is None or pair[1] is None:
                continue
            a, b = waiting.pop(weight)
            if not bool(torch.isfinite(a).all() & torch.isfinite(b).all()):
                a_key, b_key = self.targets[weight]
                raise self._bad(f"{shown(a_key)} or {shown(b_key)} holds NaN or infinite values")
            yield weight, a, b


def transformer_shapes(checkpoint: SafetensorsHeader, prefix: str = "model.diffusion_model.") -> dict:
    """The shapes of a checkpoint's transformer weights by model key (its file keys carry `prefix`), from its
    header alone."""
    return {k.removeprefix(prefix): e.shape for k, e in checkpoint.entries.items() if k.startswith(prefix)}


def delta_of(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """A LoRA's change to `weight`, as ltx-core's `apply_loras` computes it: `(B * scale) @ A` in the factors' dtype,
    rounded to the weight's dtype (added to the weight in its dtype by the caller). The one place these numerics
    are written: the fusion while loading and the fusion at each forward (components/lora_layers.py) give the same
    bits."""
    return torch.matmul(b.to(weight.device) * scale, a.to(weight.device)).to(weight.dtype)
