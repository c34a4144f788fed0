"""What LoadLTX2Quantized outputs (the LTX2_MODEL socket): the chosen files, policies, residency and compute
dtypes. Components are built only when a stage needs them, through the process's budget, so choosing a model
costs nothing until it is used."""

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import LTX2InputError
from ...memory.budget import BUDGET
from ...memory.records import Built, ComponentRequest, Need
from ...memory.streamer import Streamer
from ...quant import POLICIES, Policy, check_policy, get_policy, policy_names
from ..files.file_identity import file_key, file_keys, identities
from ..files.lora_file import LoraFactors, transformer_shapes
from ..files.safetensors_file import read_header
from . import activations as activation_estimates
from .build import LoadReport, build
from .lora_layers import LoraLayers
from .plan import ComponentPlan
from .precision import Precision, library_default
from .table import COMPONENTS, Bundle
from .user_loras import UserLora
from .weight_path import stream


def input_for(name: str) -> str:
    """The loader node's input that chooses the component's policy."""
    return COMPONENTS[name].policy_input or "quantization"


@dataclass(frozen=True)
class ModelSpec:
    bundle: Bundle
    config: dict
    quantization: str = "none"
    text_encoder_quantization: str = "none"
    residency: str = "cold_start"
    distilled_lora_strength: float = 1.0
    # Compute dtypes (the node passes ComfyUI's choice); None: the library's default for the device.
    precision: Precision | None = None
    # The user's own LoRAs (LTX-2 LoRA nodes), in the order they were chained: beside the transformer in both
    # stages (user_loras.py), so they are in no component's key.
    loras: tuple[UserLora, ...] = ()
    # The two policies, resolved from their names once, here (an unknown name is refused naming its input).
    policies: dict[str, Policy] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(
            self,
            "policies",
            {
                c.name: get_policy(getattr(self, c.policy_input), c.policy_input, c.text_encoder_policies)
                for c in COMPONENTS.values()
                if c.policy_input is not None
            },
        )

    def checked_on(self, device: torch.device | str) -> "ModelSpec":
        """This spec, once both policies are known to run on `device` in their components' compute dtypes
        (PolicyUnavailable otherwise, naming the input, what is missing and what to pick): the one check, before any
        weight is read."""
        for name, policy in self.policies.items():
            check_policy(policy, device, input_for(name), self.precision_on(device).of(name))
        return self

    def precision_on(self, device: torch.device | str) -> Precision:
        return self.precision or library_default(device)

    def policy_for(self, name: str) -> Policy:
        return self.policies.get(name, POLICIES["none"])

    def _lora(self, with_distilled_lora: bool) -> tuple[Path, float] | None:
        if not with_distilled_lora:
            return None
        if self.bundle.distilled_lora is None:
            raise LTX2InputError("distilled_lora: stage 2 needs the distilled LoRA; pick it in the loader node.")
        return self.bundle.distilled_lora, self.distilled_lora_strength

    def build_component(
        self,
        name: str,
        device: torch.device | str = "cpu",
        with_distilled_lora: bool = False,
        on_tensor=None,
        streamed: list[str] = (),
        plan: ComponentPlan | None = None,
    ) -> tuple[torch.nn.Module, LoadReport, Streamer | None]:
        """(component, load report, its Streamer), outside the budget. The stage-2 transformer is
        `with_distilled_lora=True`: fused, then quantized. A transformer under a streamable policy gets a Streamer
        (memory/streaming.py): its `streamed` units are kept out of memory from the start and brought in one at a
        time during each forward, and any unit can be moved out or back later."""
        device = torch.device(device)
        policy = self.policy_for(name)
        plan = plan or ComponentPlan.read(self.bundle, name, on_tensor)
        units = plan.units() if policy.streamable else []
        streamer = Streamer(device, units, streamed) if units else None
        module, report = build(
            plan,
            policy,
            device,
            self.precision_on(device).of(name),
            lora=self._lora(with_distilled_lora),
            keep_out=streamer.keep_out if streamer and streamed else None,
            on_tensor=on_tensor,
        )
        if streamer is not None:
            stream(module, streamer)
        if streamed:
            report.notes.append(
                f"streamed: {len(streamed)} of {len(units)} units, "
                f"{streamer.store.nbytes() / 2**20:.0f} MiB kept out of memory"
            )
        return module, report, streamer

    def estimate_bytes(self, name: str) -> int:
        """What the component will hold once built, from its files' headers (see ComponentPlan.sizes)."""
        return sum(ComponentPlan.read(self.bundle, name).sizes(self.policy_for(name)).values())

    def files_of(self, name: str, with_distilled_lora: bool = False) -> list[Path]:
        """Every file the component is built from (the component table says which)."""
        files = COMPONENTS[name].files(self.bundle)
        if with_distilled_lora and self.bundle.distilled_lora is not None:
            files.append(self.bundle.distilled_lora)
        return files

    def component_key(self, name: str, device: torch.device, with_distilled_lora: bool = False) -> tuple:
        """Everything the built weights depend on: the files (as they are on disk now: a replaced file is not taken
        for the old one; by identity, not name: links and names of one file share one component,
        files/file_identity.py), policy, LoRA strength, device, compute dtype."""
        lora = self.distilled_lora_strength if with_distilled_lora else None
        return (
            name,
            self.policy_for(name).name,
            lora,
            str(device),
            self.precision_on(device).of(name),
            file_keys(self.files_of(name, with_distilled_lora)),
        )

    def component(
        self,
        name: str,
        device: torch.device,
        with_distilled_lora: bool = False,
        on_tensor=None,
        activations: int = 0,
        hand_over: bool = False,
    ):
        """`with model.component(...) as module:` the component through the process's budget: reused if
        resident, else built after making room for it and the stage's `activations` (bytes,
        ltx2/components/activations.py); in cold_start freed when the block ends, or with `hand_over` kept for the
        next stage that asks for it. The files are read (once) only when it has to be built.

        The budget's own context manager is returned, not wrapped in another generator: a wrapper's frame would
        still hold the component while the budget frees it."""
        request = ComponentLoad(self, name, torch.device(device), with_distilled_lora, on_tensor, activations)
        request.hand_over = hand_over
        return BUDGET.use(request)

    @contextlib.contextmanager
    def user_loras(self, device: torch.device):
        """`with model.user_loras(device) as loras:` the user's LoRAs as factor sets at their strengths, in the order
        they were chained, each read once through the budget and kept as the transformer is kept (a change of
        strength reads nothing again); the LoRAs at strength 0 on every layer are not read."""
        device = torch.device(device)
        with contextlib.ExitStack() as held:
            sets = []
            try:
                for lora in self.loras:
                    if not any((lora.strength, lora.video_strength, lora.audio_strength)):
                        continue
                    layers = held.enter_context(BUDGET.use(UserLoraLoad(self, lora.path, device)))
                    sets.append(layers.at_strengths(lora.strength_of))
                    del layers
                yield sets
            finally:
                sets.clear()  # before the budget lets them go: this frame must not hold them

    def distilled_lora(self, device: torch.device):
        """`with model.distilled_lora(device) as lora:` the distilled LoRA's factors through the budget
        (lora_layers.LoraLayers), to apply to a built transformer: kept as the transformer is kept."""
        return BUDGET.use(LoraLoad(self, torch.device(device)))


class ComponentLoad(ComponentRequest):
    """One component of a spec asked of the budget: sized from its files' headers, built by `ModelSpec.build_component`
    (streamed in part when the budget says so), alive while its files are unchanged."""

    def __init__(
        self, spec: ModelSpec, name: str, device: torch.device, with_distilled_lora: bool, on_tensor, activations: int
    ):
        self.spec, self.component, self.with_distilled_lora, self.on_tensor = spec, name, with_distilled_lora, on_tensor
        self.policy = spec.policy_for(name)
        self.compute = spec.precision_on(device).of(name)
        self.plan: ComponentPlan | None = None
        files = spec.files_of(name, with_distilled_lora)
        super().__init__(
            key=spec.component_key(name, device, with_distilled_lora),
            label=f"{name} (stage 2)" if with_distilled_lora else name,
            policy_name=self.policy.name,
            device=device,
            activations=activations,
            group=file_key(spec.bundle.checkpoint),
            alive=functools.partial(files_unchanged, files, identities(files)),
        )

    def need(self) -> Need:
        self.plan = ComponentPlan.read(self.spec.bundle, self.component, self.on_tensor)
        policy, name = self.policy, input_for(self.component)
        unit_bytes, other = self.plan.unit_sizes(policy)
        upcast = activation_estimates.upcast_bytes(
            self.plan, policy, self.compute, policy.backend.multiplies_fp8(self.device, self.compute)
        )
        # The policies of this input that make the component fit where this one does not: those that stream it (a
        # block at a time) or, already streaming, that keep fewer bytes per weight.
        choices = [POLICIES[p] for p in policy_names(text_encoder=COMPONENTS[self.component].text_encoder_policies)]
        streamable = [p.name for p in choices if p.streamable]
        smaller = [p.name for p in choices if p.streamable and p.weight_bytes < policy.weight_bytes]
        if unit_bytes and not policy.streamable:
            return Need(
                other + sum(unit_bytes.values()),
                upcast_bytes=upcast,
                cannot_stream=(
                    f"{name}: the {self.component} does not fit the budget, and block streaming (which would run "
                    f"it a block at a time) supports {', '.join(streamable)}, not {policy.name}. Pick "
                    f"{streamable[-1]}, or raise budget_gb in VRAMGuard."
                ),
                cannot_fit=f"Pick {name} {streamable[-1]}: it streams the {self.component} a block at a time.",
            )
        fit = f"Pick {name} {smaller[-1]}: fewer bytes per weight. " if unit_bytes and smaller else ""
        return Need(other, unit_bytes, upcast_bytes=upcast, cannot_fit=fit)

    def build(self, streamed: list[str]) -> Built:
        # The plan is let go here: nothing of this request may hold the component once the budget drops it.
        plan, self.plan = self.plan, None
        module, report, streamer = self.spec.build_component(
            self.component, self.device, self.with_distilled_lora, self.on_tensor, streamed, plan=plan
        )
        return Built(module, streamer, report.summary())


def files_unchanged(files: list[Path], built_from: tuple) -> bool:
    """Whether `files` are still the ones a component was built from (a stat each)."""
    return identities(files) == built_from


class UserLoraLoad(ComponentRequest):
    """A user's LoRA asked of the budget: its factors for the layers of this transformer, read once at strength 1
    (the strengths are applied at each forward), alive while its file is unchanged."""

    def __init__(self, spec: ModelSpec, path: Path, device: torch.device):
        self.spec, self.path = spec, path
        self.compute = spec.precision_on(device).transformer
        files = [path]
        super().__init__(
            key=("lora", str(device), file_keys(files), file_keys([spec.bundle.checkpoint])),
            label=f"LoRA {path.name}",
            policy_name="as stored",
            device=device,
            group=file_key(spec.bundle.checkpoint),
            alive=functools.partial(files_unchanged, files, identities(files)),
        )

    def _factors(self) -> tuple[LoraFactors, int]:
        factors = LoraFactors(self.path, 1.0, "lora_name")
        shapes = transformer_shapes(read_header(self.spec.bundle.checkpoint, "ckpt_name"))
        return factors, factors.fit_to(shapes, self.spec.bundle.checkpoint.name)

    def need(self) -> Need:
        factors, _ = self._factors()
        return Need(
            sum(factors.header.entries[k].nbytes for pair in factors.targets.values() for k in pair),
            cannot_fit=f"lora_name: {self.path.name} cannot sit beside the transformer on this device. Leave this "
            "LoRA out, or raise budget_gb in VRAMGuard.",
        )

    def build(self, streamed: list[str]) -> Built:
        factors, touched = self._factors()
        layers = LoraLayers(factors, self.device, self.compute)
        skipped = f", {factors.unmatched} of its layers not in this transformer" if factors.unmatched else ""
        return Built(
            layers, None, f"LoRA {self.path.name}: {touched} layers ({factors.describe()}){skipped}, kept beside"
        )


# What makes the reference recipe's stage 2 fit where the LoRA's factors cannot sit beside the transformer.
LORA_TOO_BIG = (
    "Pick A2VSampler's recipe fast: the LoRA is fused into the transformer while it loads, no factors kept beside it."
)


class LoraLoad(ComponentRequest):
    """The distilled LoRA's factors asked of the budget: sized from the file's header, read in one pass."""

    def __init__(self, spec: ModelSpec, device: torch.device):
        self.path, self.strength = spec._lora(True)
        self.compute = spec.precision_on(device).transformer
        files = [self.path]
        super().__init__(
            key=("distilled_lora", self.strength, str(device), file_keys(files)),
            label="distilled LoRA",
            policy_name="as stored",
            device=device,
            group=file_key(spec.bundle.checkpoint),
            alive=functools.partial(files_unchanged, files, identities(files)),
        )

    def need(self) -> Need:
        factors = LoraFactors(self.path, self.strength)
        keys = {k for pair in factors.targets.values() for k in pair}
        return Need(
            sum(factors.header.entries[k].nbytes for k in keys) if self.strength else 0, cannot_fit=LORA_TOO_BIG
        )

    def build(self, streamed: list[str]) -> Built:
        layers = LoraLayers(LoraFactors(self.path, self.strength), self.device, self.compute)
        return Built(layers, None, f"distilled LoRA: {layers.describe()} the transformer")
