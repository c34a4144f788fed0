"""A simulated CUDA card under the pack's budget and ComfyUI's real memory manager, for the README's recipes.

No GPU is needed, and none is pretended to the pack's code: the budget, the ComfyUI bridge (nodes/patcher.py)
and ComfyUI's `comfy.model_management` (the tree LTX2_COMFYUI names, else .comfyui) run as they are. What a card
would answer is answered by SimulatedCard: `torch.cuda.mem_get_info`, `memory_reserved` and `memory_stats` report
what the models on it hold, the pack's components (their resident bytes, by the budget's records) and ComfyUI's
other models (SimulatedModel: a ComfyUI ModelPatcher whose weights are a byte count on the card). ComfyUI runs as
on an NVIDIA GPU (NORMAL_VRAM: it sizes partial loads from free memory).

A recipe is the pipeline's order of components (ltx2/a2v/stages.py), each asked of the budget with the sizes of
LTX-2.3 22B (card_22b.py) and the stage's activation estimate (ltx2/components/activations.py); a component's weights
are uninitialised host tensors of its bytes (never touched, so they take no memory) and its streamed units a byte
count (SimulatedUnits, standing in for memory/streamer.py, which needs a GPU). At each stage the card's peak is
what the models on it hold plus what the stage needs beside them as the budget planned it (activations, upcast copy,
units in flight, the margin): the figure a real card would have to hold.
"""

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GIB, MIB = 2**30, 2**20
CARD = torch.device("cuda", 0)
# What a CUDA context and the driver take on a card before any tensor (about 300-500 MiB on recent cards and
# drivers; a desktop on the same card takes more): stated, not measured here.
CONTEXT = 500 * MIB


def load_comfyui() -> None:
    """ComfyUI's tree on the path and its arguments as the test host runs it (`--cpu`: no GPU here), as
    tests/unit/nodes/conftest.py does."""
    tree = str(ROOT / os.environ.get("LTX2_COMFYUI", ".comfyui"))
    if tree not in sys.path:
        sys.path.insert(0, tree)
    import utils.extra_config  # noqa: F401  ComfyUI's main.py imports its `utils` package first, as here
    from comfy.cli_args import args

    args.cpu = True


class SimulatedCard:
    """`total` bytes, of which CONTEXT is taken; the rest holds what the models on it hold."""

    def __init__(self, total: int):
        self.total = total
        self.others: list = []  # ComfyUI's other models on it (simulated_model)
        self.foreign = 0  # held by another process: neither free nor this process's
        self.transient = 0  # a stage's working memory, while it runs

    def used(self) -> int:
        from ltx2_a2v.memory.budget import BUDGET

        ours = sum(r.nbytes for r in BUDGET.records.values() if r.module is not None and r.device == CARD)
        return ours + sum(m.loaded for m in self.others) + self.transient

    @contextlib.contextmanager
    def answering(self):
        """torch's CUDA memory queries answered by this card, ComfyUI in NORMAL_VRAM."""
        import comfy.model_management as mm

        def mem_get_info(device=None):
            return self.total - CONTEXT - self.foreign - self.used(), self.total

        def memory_stats(device=None):
            return {"active_bytes.all.current": self.used(), "reserved_bytes.all.current": self.used()}

        saved = (torch.cuda.mem_get_info, torch.cuda.memory_reserved, torch.cuda.memory_stats, mm.vram_state)
        torch.cuda.mem_get_info, torch.cuda.memory_stats = mem_get_info, memory_stats
        torch.cuda.memory_reserved = lambda device=None: self.used()
        mm.vram_state = mm.VRAMState.NORMAL_VRAM
        try:
            yield self
        finally:
            torch.cuda.mem_get_info, torch.cuda.memory_reserved, torch.cuda.memory_stats, mm.vram_state = saved


def simulated_model(size: int, name: str = "co-resident model"):
    """One of ComfyUI's own models on the card (a TTS model, say), `size` bytes, loaded and unloaded by ComfyUI."""
    import comfy.model_patcher

    class SimulatedModel(comfy.model_patcher.ModelPatcher):
        def __init__(self):
            super().__init__(torch.nn.Module(), load_device=CARD, offload_device=torch.device("cpu"), size=size)
            self.name, self.loaded, self.unloads = name, 0, 0

        def model_size(self):
            return size

        def loaded_size(self):
            return self.loaded

        def current_loaded_device(self):
            return CARD

        def model_patches_to(self, device):
            return None

        def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
            more = int(min(size - self.loaded, extra_memory))
            self.loaded += more
            return more

        def partially_unload(self, device_to, memory_to_free=0, force_patch_weights=False):
            less = int(min(self.loaded, memory_to_free))
            self.loaded -= less
            return less

        def detach(self, unpatch_all=True):
            if unpatch_all:
                self.loaded, self.unloads = 0, self.unloads + 1
            return self.model

        def is_clone(self, other):
            return other is self

    return SimulatedModel()


class SimulatedUnits:
    """Stands in for memory/streamer.Streamer on the simulated card (its copies need a GPU): units as byte counts,
    moved between the card and (pinned) host memory by replacing their tensor."""

    def __init__(self, module: torch.nn.Module, unit_bytes: dict[str, int], streamed):
        self.module, self.units, self._bytes = module, list(unit_bytes), unit_bytes
        self.streamed = set(streamed)

    def unit_bytes(self, unit: str) -> int:
        return self._bytes[unit]

    def largest_unit(self) -> int:
        return max(self._bytes.values())

    def stream_out(self, unit: str) -> int:
        if unit in self.streamed:
            return 0
        self.module.hold(unit, 0)
        self.streamed.add(unit)
        return self._bytes[unit]

    def bring_back(self, unit: str) -> int:
        if unit not in self.streamed:
            return 0
        self.module.hold(unit, self._bytes[unit])
        self.streamed.discard(unit)
        return self._bytes[unit]

    def pinned_bytes(self) -> int:
        return sum(self._bytes[u] for u in self.streamed)

    def settle(self) -> None:
        pass


class Held(torch.nn.Module):
    """A component's weights as uninitialised host tensors of its bytes: counted by the budget like any weights,
    never written, so they take no memory."""

    def __init__(self, parts: dict[str, int]):
        super().__init__()
        self.names = {part: f"p{i}" for i, part in enumerate(parts)}
        for part, nbytes in parts.items():
            self.hold(part, nbytes)

    def hold(self, part: str, nbytes: int) -> None:
        self.register_parameter(
            self.names[part], torch.nn.Parameter(torch.empty(nbytes, dtype=torch.uint8), requires_grad=False)
        )


@dataclass
class Step:
    """One component a stage asks for, with the sizes it is built with."""

    name: str
    unit_bytes: dict[str, int] = field(default_factory=dict)
    other_bytes: int = 0
    upcast: int = 0
    cannot_stream: str = ""
    cannot_fit: str = ""


def request(step: Step, activations: int = 0, hand_over: bool = False):
    from ltx2_a2v.memory.records import Built, ComponentRequest, Need

    class SizedRequest(ComponentRequest):
        def need(self) -> Need:
            return Need(step.other_bytes, dict(step.unit_bytes), step.cannot_stream, step.upcast, step.cannot_fit)

        def build(self, streamed: list[str]) -> Built:
            parts = {"other": step.other_bytes} | {u: 0 if u in streamed else b for u, b in step.unit_bytes.items()}
            module = Held(parts)
            units = SimulatedUnits(module, step.unit_bytes, streamed) if step.unit_bytes else None
            return Built(module, units, f"{step.name}: {len(streamed)} of {len(step.unit_bytes)} units streamed")

    made = SizedRequest(
        (step.name, "simulated"), step.name, "simulated", CARD, activations, group="22B", hand_over=hand_over
    )
    return made


# The README's cards: (name, bytes as the driver reports them, an example).
CARDS = {
    "8 GB": (8188 * MIB, "RTX 4060"),
    "12 GB": (12282 * MIB, "RTX 4070"),
    "16 GB": (16376 * MIB, "RTX 4080"),
    "24 GB": (24564 * MIB, "RTX 4090"),
}


@dataclass(frozen=True)
class Recipe:
    """The two-stage A2V at `size` (the output; stage 1 at half), as the loader node and VRAMGuard set it."""

    quantization: str = "fp8_scaled"
    text_encoder_quantization: str = "fp8_scaled"
    budget_gb: float = 0.0  # VRAMGuard's; 0: what the card can give
    recipe: str = "reference"  # "fast": the distilled LoRA fused into both stages' transformer while loading
    fp8_matmul: bool = True  # compute capability 8.9+: fp8 weights are never upcast
    size: tuple[int, int, int] = (768, 512, 97)
    frame_rate: float = 24.0


@dataclass(frozen=True)
class InUse:
    name: str
    resident: int  # bytes on the card
    streamed: int  # units kept in host memory
    units: int
    unloaded: bool  # ComfyUI asked to unload it while it was in use


@dataclass
class Row:
    stage: str
    components: list[InUse]
    peak: int  # what the card holds at the stage's height: every model's weights and the stage's working memory
    working: int  # of which the stage's working memory (activations, upcast copy, units in flight, margin)
    others: int  # ComfyUI's other models on the card meanwhile
    prompts: int  # encoded prompts kept


def steps_22b(recipe: Recipe) -> dict[str, Step]:
    import card_22b

    from ltx2_a2v.ltx2.components.model_spec import LORA_TOO_BIG
    from ltx2_a2v.quant import POLICIES

    transformer = card_22b.transformer(POLICIES[recipe.quantization])
    gemma = card_22b.text_encoder(POLICIES[recipe.text_encoder_quantization])
    processor = card_22b.embeddings_processor()

    def step(sized, policy) -> Step:
        upcast = 0 if recipe.fp8_matmul or not POLICIES[policy].fp8 else 2 * sized.largest_weight
        return Step(sized.name, sized.unit_bytes, sized.other_bytes, upcast)

    steps = {
        "text_encoder": step(gemma, recipe.text_encoder_quantization),
        "embeddings_processor": Step("embeddings_processor", other_bytes=processor.total),
        "transformer": step(transformer, recipe.quantization),
        "distilled LoRA": Step("distilled LoRA", other_bytes=card_22b.lora_bytes(), cannot_fit=LORA_TOO_BIG),
    }
    for name in ("audio_encoder", "video_encoder", "spatial_upsampler", "video_decoder"):
        steps[name] = Step(name, other_bytes=card_22b.VAE_ALLOWANCE)
    return steps


def run_recipe(recipe: Recipe, total: int, co_resident: int = 0) -> tuple[list[Row], object]:
    """The recipe on a simulated card of `total` bytes, beside one of ComfyUI's models of `co_resident` bytes
    loaded before it (0: none); the rows per stage, and that model (its `unloads`, `loaded`)."""
    import comfy.model_management as mm
    from ltx_core.model.video_vae import TilingConfig

    from ltx2_a2v.ltx2.components import activations
    from ltx2_a2v.memory.budget import BUDGET
    from ltx2_a2v.memory.kept_outputs import ENCODED_PROMPTS
    from ltx2_a2v.nodes.kept_prompts import register
    from ltx2_a2v.nodes.patcher import ComfyBridge

    steps, bf16 = steps_22b(recipe), torch.bfloat16
    width, height, frames = recipe.size
    fps, config = recipe.frame_rate, {"vae": {"decoder_base_channels": 128}}
    card, rows = SimulatedCard(total), []
    saved = (BUDGET.bridge, BUDGET.mode, BUDGET.budget_bytes, ENCODED_PROMPTS.on_keep)
    other = None

    def stage(name: str, *uses) -> None:
        with contextlib.ExitStack() as stack:
            for step, working, hand_over in uses:
                stack.enter_context(BUDGET.use(request(steps[step], working, hand_over)))
            planned = BUDGET.working_in_use(CARD)
            components = [
                InUse(r.name, r.nbytes, len(r.streamer.streamed) if r.streamer else 0,
                      len(r.streamer.units) if r.streamer else 0, r.unloaded)
                for r in BUDGET.records.values() if r.in_use
            ]  # fmt: skip
            others = other.loaded if other else 0
            rows.append(Row(name, components, card.used() + planned, planned, others, len(ENCODED_PROMPTS)))

    with card.answering():
        try:
            BUDGET.bridge, BUDGET.mode = ComfyBridge(), "cold_start"
            BUDGET.set_budget_gb(recipe.budget_gb)
            ENCODED_PROMPTS.clear()
            ENCODED_PROMPTS.on_keep = register
            if co_resident:
                other = simulated_model(co_resident)
                card.others.append(other)
                mm.load_models_gpu([other])
            text = activations.text({}, {}, bf16)
            stage("text encode (Gemma)", ("text_encoder", text, False))
            stage("text encode (processor)", ("embeddings_processor", text, False))
            ENCODED_PROMPTS.put(("simulated prompt",), "encoded", (torch.zeros(4),), str(CARD))
            stage("audio encode", ("audio_encoder", activations.audio_encode(frames / fps, 16000), False))
            stage(
                "image encode (stage 1)",
                ("video_encoder", activations.image_encode(width // 2, height // 2, bf16), False),
            )
            lora = recipe.recipe == "reference"  # the fast recipe's transformer has the LoRA fused while loading
            stage1 = activations.denoise({}, width // 2, height // 2, frames, fps, bf16)
            stage("stage 1 denoise", ("transformer", stage1, True))
            stage("upscale", ("video_encoder", 0, True), ("spatial_upsampler", 0, False))
            stage("image encode (stage 2)", ("video_encoder", activations.image_encode(width, height, bf16), False))
            stage2 = activations.denoise({}, width, height, frames, fps, bf16)
            stage("stage 2 denoise", *([("distilled LoRA", 0, False)] if lora else []), ("transformer", stage2, False))
            BUDGET.release_handed_over()
            decode = activations.decode(config, width, height, frames, TilingConfig.default(), bf16)
            stage("decode (tiled)", ("video_decoder", decode, False))
            return rows, other
        finally:
            BUDGET.free_all()
            mm.current_loaded_models[:] = [m for m in mm.current_loaded_models if m.device != CARD or m.model is None]
            ENCODED_PROMPTS.clear()
            BUDGET.bridge, BUDGET.mode, BUDGET.budget_bytes, ENCODED_PROMPTS.on_keep = saved
