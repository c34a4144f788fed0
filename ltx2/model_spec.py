"""What LoadLTX2Quantized outputs (the LTX2_MODEL socket): the chosen files, policies, residency and compute
dtypes. Components are built only when a phase needs them, through the process's budget, so choosing a model
costs nothing until it is used."""

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import LTX2InputError
from ..memory.budget import BUDGET
from ..memory.records import Need
from ..memory.streaming import Streamer
from ..quant import POLICIES, check_policy, get_policy
from . import activations as activation_estimates
from .build import LoadReport, build
from .components import Bundle
from .file_identity import file_key, file_keys, identities
from .plan import ComponentPlan
from .precision import Precision, library_default


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

    def precision_on(self, device: torch.device | str) -> Precision:
        return self.precision or library_default(device)

    def policy_for(self, name: str) -> str:
        if name == "transformer":
            return self.quantization
        return self.text_encoder_quantization if name == "text_encoder" else "none"

    def check_policy(self, name: str, device: torch.device) -> None:
        """Raises PolicyUnavailable when this device or these packages cannot run the component's policy."""
        input_name = "text_encoder_quantization" if name == "text_encoder" else "quantization"
        check_policy(get_policy(self.policy_for(name), input_name, text_encoder=name == "text_encoder"), device,
                     input_name)

    def _lora(self, with_distilled_lora: bool) -> tuple[Path, float] | None:
        if not with_distilled_lora:
            return None
        if self.bundle.distilled_lora is None:
            raise LTX2InputError("distilled_lora: stage 2 needs the distilled LoRA; pick it in the loader node.")
        return self.bundle.distilled_lora, self.distilled_lora_strength

    def build(self, name: str, device: torch.device | str = "cpu", with_distilled_lora: bool = False,
              on_tensor=None, streamed: list[str] = (), plan: ComponentPlan | None = None,
              ) -> tuple[torch.nn.Module, LoadReport, Streamer | None]:
        """(component, load report, its Streamer), outside the budget. The stage-2 transformer is
        `with_distilled_lora=True`: fused, then quantized. A transformer under a streamable policy gets a Streamer
        (memory/streaming.py): its `streamed` units are kept out of memory from the start and brought in one at a
        time during each forward, and any unit can be moved out or back later."""
        device = torch.device(device)
        self.check_policy(name, device)  # before any file is opened
        plan = plan or ComponentPlan.read(self.bundle, name, on_tensor)
        units = plan.units() if POLICIES[self.policy_for(name)].streamable else []
        streamer = Streamer(device, units, streamed) if units else None
        module, report = build(plan, self.policy_for(name), device, self.precision_on(device).of(name),
                               lora=self._lora(with_distilled_lora),
                               keep_out=streamer.keep_out if streamer and streamed else None, on_tensor=on_tensor)
        if streamer is not None:
            streamer.attach(module)
        if streamed:
            report.notes.append(f"streamed: {len(streamed)} of {len(units)} units, "
                                f"{streamer.store.nbytes() / 2**20:.0f} MiB kept out of memory")
        return module, report, streamer

    def estimate_bytes(self, name: str) -> int:
        """What the component will hold once built, from its files' headers (see ComponentPlan.sizes)."""
        return sum(ComponentPlan.read(self.bundle, name).sizes(POLICIES[self.policy_for(name)]).values())

    def files_of(self, name: str, with_distilled_lora: bool = False) -> list[Path]:
        """Every file the component is built from."""
        bundle = self.bundle
        if name == "spatial_upsampler":
            files = [bundle.spatial_upsampler]
        elif name == "text_encoder":
            # Every top-level file (shards, config, tokenizer, image processor); sub-folders are never read.
            files = sorted(p for p in bundle.text_encoder.iterdir() if not p.is_dir()) if bundle.text_encoder else []
        elif name == "embeddings_processor" and bundle.text_encoder is not None:
            files = [bundle.checkpoint, bundle.text_encoder / "config.json"]  # sized by Gemma's config
        else:
            files = [bundle.checkpoint]
        if with_distilled_lora and bundle.distilled_lora is not None:
            files.append(bundle.distilled_lora)
        return [f for f in files if f is not None]

    def component_key(self, name: str, device: torch.device, with_distilled_lora: bool = False) -> tuple:
        """Everything the built weights depend on: the files (as they are on disk now: a replaced file is not taken
        for the old one; by identity, not name: links and names of one file share one component,
        file_identity.py), policy, LoRA strength, device, compute dtype."""
        lora = self.distilled_lora_strength if with_distilled_lora else None
        return (name, self.policy_for(name), lora, str(device), self.precision_on(device).of(name),
                file_keys(self.files_of(name, with_distilled_lora)))

    def component(self, name: str, device: torch.device, with_distilled_lora: bool = False, on_tensor=None,
                  activations: int = 0):
        """`with model.component(...) as module:` the component through the process's budget: reused if
        resident, else built after making room for it and the phase's `activations` (bytes, ltx2/activations.py);
        in cold_start freed when the block ends. The files are read (once) only when it has to be built.

        The budget's own context manager is returned, not wrapped in another generator: a wrapper's frame would
        still hold the component while the budget frees it."""
        device = torch.device(device)
        self.check_policy(name, device)
        policy = POLICIES[self.policy_for(name)]
        compute = self.precision_on(device).of(name)
        plans: list[ComponentPlan] = []

        def need() -> Need:
            plans.append(ComponentPlan.read(self.bundle, name, on_tensor))
            unit_bytes, other = plans[0].unit_sizes(policy)
            upcast = activation_estimates.upcast_bytes(plans[0], policy, compute, fp8_matmul(policy, device, compute))
            if unit_bytes and not policy.streamable:
                return Need(other + sum(unit_bytes.values()), upcast_bytes=upcast, cannot_stream=(
                    f"quantization: the {name} does not fit the budget, and block streaming (which would run it a "
                    f"block at a time) supports {', '.join(p for p, v in POLICIES.items() if v.streamable)}, not "
                    f"{policy.name}. Pick fp8_scaled, or raise budget_gb in VRAMGuard."))
            return Need(other, unit_bytes, upcast_bytes=upcast)

        def make(streamed: list[str]):
            # The plan is let go here: nothing of this call may hold the component once the budget drops it.
            module, report, streamer = self.build(name, device, with_distilled_lora, on_tensor, streamed,
                                                  plan=plans.pop())
            return module, streamer, report.summary()

        label = f"{name} (stage 2)" if with_distilled_lora else name
        files = self.files_of(name, with_distilled_lora)
        built_from = identities(files)

        def alive() -> bool:  # the same files, unchanged (a stat each)
            return identities(files) == built_from

        return BUDGET.use(self.component_key(name, device, with_distilled_lora), label, policy.name, device, need,
                          make, activations, alive, group=file_key(self.bundle.checkpoint))


def fp8_matmul(policy, device: torch.device, compute_dtype: torch.dtype) -> bool:
    """Whether the policy's layers will multiply in fp8 here (then no weight is upcast)."""
    if policy.name != "fp8_scaled":
        return False
    from ..quant.fp8_scaled import fp8_matmul_available

    return fp8_matmul_available(device, compute_dtype) is None
