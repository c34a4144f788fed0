"""What LoadLTX2Quantized outputs: the chosen files and policies. Components are built only when a stage
needs them, so loading a model costs nothing until it is used."""

import contextlib
from dataclasses import dataclass

import torch

from .components import Bundle
from .precision import Precision, library_default


@dataclass(frozen=True)
class LTX2Model:
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

    def build(self, name: str, device: torch.device | str = "cpu", with_distilled_lora: bool = False, on_tensor=None,
              divert=None):
        """(component, load report). The stage-2 transformer is `with_distilled_lora=True`: fused, then quantized."""
        from ..quant.loading import build_quantized

        lora = None
        if with_distilled_lora:
            if self.bundle.distilled_lora is None:
                raise ValueError("distilled_lora: stage 2 needs the distilled LoRA; pick it in the loader node.")
            lora = (self.bundle.distilled_lora, self.distilled_lora_strength)
        return build_quantized(self.bundle, name, self.policy_for(name), device=device, lora=lora,
                               compute_dtype=self.precision_on(device).of(name), on_tensor=on_tensor, divert=divert)

    def stream_plan(self, room: int, sizes: dict[str, int] | None = None) -> tuple[list[str], list[str], int]:
        """(resident units, streamed units, bytes held resident) for a transformer that does not fit `room`,
        from its tensors' estimated sizes (`sizes`, else read from the file headers; see
        block_streaming.split_units)."""
        from ..quant.loading import estimate_tensor_bytes
        from . import block_streaming
        from .components import builder_for

        block_streaming.check_streamable(self.quantization)
        plain = builder_for(self.bundle, "transformer")
        units = block_streaming.streaming_units(plain.meta_model(plain.model_config(), ()))
        unit_bytes, other = dict.fromkeys(units, 0), 0
        if sizes is None:
            sizes = estimate_tensor_bytes(self.bundle, "transformer", self.quantization)
        for key, nbytes in sizes.items():
            unit = block_streaming.unit_of(key, units)
            if unit is None:
                other += nbytes
            else:
                unit_bytes[unit] += nbytes
        resident, streamed = block_streaming.split_units(units, unit_bytes, other, room)
        return resident, streamed, other + sum(unit_bytes[u] for u in resident)

    def build_streamed(self, device: torch.device, streamed: list[str], with_distilled_lora: bool = False,
                       on_tensor=None):
        """The transformer with the `streamed` units (blocks, big top-level layers) kept out of memory and brought
        in one at a time during the forward (see block_streaming.py); the other units stay resident."""
        from . import block_streaming

        store = block_streaming.make_store(device)

        def divert(key: str, tensor: torch.Tensor) -> bool:
            if block_streaming.unit_of(key, streamed) is None:
                return False
            store.put(key, tensor)
            return True

        module, report = self.build("transformer", device, with_distilled_lora=with_distilled_lora,
                                    on_tensor=on_tensor, divert=divert)
        block_streaming.attach(module, streamed, store, device)
        units = block_streaming.streaming_units(module)
        report.notes.append(f"streamed: {len(streamed)} of {len(units)} units, {store.nbytes() / 2**20:.0f} MiB kept "
                            "out of memory")
        return module, report

    def component_key(self, name: str, device: torch.device, with_distilled_lora: bool = False) -> tuple:
        """Everything the built weights depend on: files (with size and time, so a replaced file is not taken
        for the old one), policy, LoRA, device."""
        files = [self.bundle.checkpoint]
        if name in ("text_encoder", "embeddings_processor") and self.bundle.text_encoder is not None:
            files.append(self.bundle.text_encoder / "config.json")
        if name == "spatial_upsampler" and self.bundle.spatial_upsampler is not None:
            files = [self.bundle.spatial_upsampler]
        lora = None
        if with_distilled_lora and self.bundle.distilled_lora is not None:
            files.append(self.bundle.distilled_lora)
            lora = (str(self.bundle.distilled_lora), self.distilled_lora_strength)
        stamps = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists())
        return (name, self.policy_for(name), lora, str(device), self.precision_on(device).of(name), stamps)

    @contextlib.contextmanager
    def component(self, name: str, device: torch.device, with_distilled_lora: bool = False, on_tensor=None):
        """The component through the process's budget: reused if resident, else built after making room; in
        cold_start freed when the block ends."""
        from ..quant.loading import estimate_tensor_bytes
        from .budget import BUDGET

        device = torch.device(device)
        key = self.component_key(name, device, with_distilled_lora)
        label = f"{name} (stage 2)" if with_distilled_lora else name

        resident = BUDGET.entries.get(key) is not None or BUDGET.entries.get((*key, "streamed")) is not None
        # Headers and meta models are read only when the component has to be built, and once.
        sizes = {} if resident else estimate_tensor_bytes(self.bundle, name, self.policy_for(name))
        estimate = sum(sizes.values())
        # A transformer that cannot fit even once every idle component is evicted keeps the blocks that fit
        # resident and streams the others one at a time.
        streamed = (BUDGET.entries.get((*key, "streamed")) is not None if resident
                    else name == "transformer" and estimate > BUDGET.room_for(device))

        plan = None
        if streamed and not resident:
            plan = self.stream_plan(BUDGET.room_for(device), sizes)

        def build():
            if streamed:
                module, report = self.build_streamed(device, plan[1], with_distilled_lora, on_tensor)
            else:
                module, report = self.build(name, device, with_distilled_lora=with_distilled_lora, on_tensor=on_tensor)
            if BUDGET.last_run is not None:
                BUDGET.last_run.loads.append(report.summary())
            return module

        if streamed:
            # What stays resident is what the budget makes room for.
            key, label, estimate = (*key, "streamed"), f"{label}, streamed", plan[2] if plan else 0
        with BUDGET.use(key, label, self.policy_for(name), device, estimate, build) as module:
            yield module
