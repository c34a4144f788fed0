"""One table of every LTX-2 component: which file it lives in, how its keys map, how it is built.

The same table builds the real LTX-2.3 release files and the test bundle's (tools/make_tiny_bundle.py writes
them from this table's inverse), so there is one loader path for both.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from ltx_core.loader import SDOps, SingleGPUModelBuilder
from ltx_core.model.audio_vae import (
    AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
    AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
    VOCODER_COMFY_KEYS_FILTER,
    AudioDecoderConfigurator,
    AudioEncoderConfigurator,
    VocoderConfigurator,
)
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.model.video_vae import (
    VAE_DECODER_COMFY_KEYS_FILTER,
    VAE_ENCODER_COMFY_KEYS_FILTER,
    VideoDecoderConfigurator,
    VideoEncoderConfigurator,
)
from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS, GEMMA_LLM_KEY_OPS, GEMMA_MODEL_OPS
from ltx_core.text_encoders.gemma.encoders.base_encoder import module_ops_from_gemma_root

from .errors import LTX2InputError, LTX2LoadError
from .safetensors_file import read_header
from .gemma import EmbeddingsProcessorConfigurator, GemmaRoot, GemmaTextEncoderConfigurator
from .streaming_loader import StreamingStateDictLoader, TensorTransform


@dataclass(frozen=True)
class Bundle:
    """The files one A2V run reads. Only `checkpoint` is required to build the checkpoint's components."""

    checkpoint: Path
    text_encoder: Path | None = None
    spatial_upsampler: Path | None = None
    distilled_lora: Path | None = None


@dataclass(frozen=True)
class Component:
    """How one component is found and built.

    `file` is the Bundle field holding it. `file_prefixes` maps each key prefix in the file to the module's
    prefix: it is what the component's sd_ops do, written out so the test bundle can be written by inverting it.
    """

    name: str
    file: str
    sd_ops: SDOps | None
    file_prefixes: tuple[tuple[str, str], ...]


_VAE_STATS = ("per_channel_statistics.", "per_channel_statistics.")

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "transformer", "checkpoint", LTXV_MODEL_COMFY_RENAMING_MAP, (("model.diffusion_model.", ""),)
        ),
        Component(
            "embeddings_processor",
            "checkpoint",
            EMBEDDINGS_PROCESSOR_KEY_OPS,
            (
                ("text_embedding_projection.video_aggregate_embed.", "feature_extractor.video_aggregate_embed."),
                ("text_embedding_projection.audio_aggregate_embed.", "feature_extractor.audio_aggregate_embed."),
                ("text_embedding_projection.aggregate_embed.", "feature_extractor.aggregate_embed."),
                ("model.diffusion_model.video_embeddings_connector.", "video_connector."),
                ("model.diffusion_model.audio_embeddings_connector.", "audio_connector."),
            ),
        ),
        Component(
            "video_encoder",
            "checkpoint",
            VAE_ENCODER_COMFY_KEYS_FILTER,
            (("vae.encoder.", ""), ("vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component(
            "video_decoder",
            "checkpoint",
            VAE_DECODER_COMFY_KEYS_FILTER,
            (("vae.decoder.", ""), ("vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component(
            "audio_encoder",
            "checkpoint",
            AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
            (("audio_vae.encoder.", ""), ("audio_vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component(
            "audio_decoder",
            "checkpoint",
            AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
            (("audio_vae.decoder.", ""), ("audio_vae." + _VAE_STATS[0], _VAE_STATS[1])),
        ),
        Component("vocoder", "checkpoint", VOCODER_COMFY_KEYS_FILTER, (("vocoder.", ""),)),
        Component("spatial_upsampler", "spatial_upsampler", None, (("", ""),)),
        Component(
            "text_encoder",
            "text_encoder",
            GEMMA_LLM_KEY_OPS,
            (
                ("language_model.model.", "model.model.language_model."),
                ("vision_tower.", "model.model.vision_tower."),
                ("multi_modal_projector.", "model.model.multi_modal_projector."),
            ),
        ),
    )
}

_CONFIGURATORS = {
    "transformer": LTXModelConfigurator,
    "video_encoder": VideoEncoderConfigurator,
    "video_decoder": VideoDecoderConfigurator,
    "audio_encoder": AudioEncoderConfigurator,
    "audio_decoder": AudioDecoderConfigurator,
    "vocoder": VocoderConfigurator,
    "spatial_upsampler": LatentUpsamplerConfigurator,
}


def builder_for(bundle: Bundle, name: str, transform: TensorTransform | None = None,
                on_tensor=None) -> SingleGPUModelBuilder:
    """ltx-core's builder for one component of `bundle`, with the pack's configurators where ltx-core's are wrong
    and the pack's streaming loader, which applies `transform` to each tensor as it is read."""
    if name not in COMPONENTS:
        raise LTX2InputError(f"Unknown LTX-2 component '{name}'. Known: {', '.join(COMPONENTS)}.")
    component = COMPONENTS[name]
    path = getattr(bundle, component.file)
    if path is None:
        raise LTX2InputError(f"{name}: no {component.file} file was given; pick one in the loader node.")

    if name == "text_encoder":
        root = GemmaRoot.open(path)
        return SingleGPUModelBuilder(
            model_class_configurator=GemmaTextEncoderConfigurator,
            model_path=root.weight_files(),
            model_sd_ops=component.sd_ops,
            module_ops=(GEMMA_MODEL_OPS, *module_ops_from_gemma_root(str(root.path))),
            model_loader=StreamingStateDictLoader(transform, config=root.config(), on_tensor=on_tensor),
        )
    if name == "embeddings_processor":
        if bundle.text_encoder is None:
            raise LTX2InputError("embeddings_processor: its size follows the text encoder; pick a text_encoder.")
        hidden, states = GemmaRoot.open(bundle.text_encoder).text_dims()
        configurator = EmbeddingsProcessorConfigurator(hidden, states)
    else:
        configurator = _CONFIGURATORS[name]
    return SingleGPUModelBuilder(
        model_class_configurator=configurator,
        model_path=str(path),
        model_sd_ops=component.sd_ops,
        model_loader=StreamingStateDictLoader(transform, on_tensor=on_tensor),
    )


def file_layout(paths: str | tuple[str, ...]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key -> (shape, dtype) of every tensor in the files, read from the headers alone (no tensor data)."""
    layout = {}
    for path in (paths,) if isinstance(paths, str) else paths:
        layout.update({k: (e.shape, e.dtype) for k, e in read_header(path).entries.items()})
    return layout


def check_files_match(builder: SingleGPUModelBuilder, name: str) -> set[str]:
    """Compare the files' keys and shapes with the model the config describes, before any weight is read, and
    return the file keys the model needs (a checkpoint holds several components: only this one's are read).

    ltx-core only warns when a parameter is missing and returns a half-built model; a file with a missing or
    mis-shaped tensor is refused here instead, naming the key.
    """
    config = builder.model_config()
    expected = {k: tuple(v.shape) for k, v in builder.meta_model(config, ()).state_dict().items()}
    # Module ops may add tensors the file holds (stored fp8 scales): read those too.
    needed = set(expected) | set(builder.meta_model(config, builder.module_ops).state_dict())
    found, reads = {}, set()
    for key, (shape, dtype) in file_layout(builder.model_path).items():
        sd_ops = builder.model_sd_ops
        mapped = key if sd_ops is None else sd_ops.apply_to_key(key)
        if mapped is None:
            continue
        # Key-value ops may rename or duplicate a tensor; run them on a meta stand-in of its shape.
        placeholder = torch.empty(shape, dtype=dtype, device="meta")
        results = [(mapped, placeholder)] if sd_ops is None else sd_ops.apply_to_key_value(mapped, placeholder)
        for new_key, value in results:
            found[new_key] = (key, tuple(value.shape))
            if new_key in needed:
                reads.add(key)
    missing = [k for k in expected if k not in found]
    wrong = [(found[k][0], found[k][1], shape) for k, shape in expected.items() if k in found and found[k][1] != shape]
    where = builder.model_path if isinstance(builder.model_path, str) else Path(builder.model_path[0]).parent
    if missing:
        raise LTX2LoadError(
            f"{name}: {where} lacks {len(missing)} tensor(s) the config asks for, e.g. {', '.join(missing[:3])}. "
            "The file is incomplete or of another model version; download it again."
        )
    if wrong:
        key, got, want = wrong[0]
        raise LTX2LoadError(
            f"{name}: tensor '{key}' in {where} has shape {list(got)}, the config asks for {list(want)} "
            f"({len(wrong)} mis-shaped in all). The file does not match its own config; download it again."
        )
    return reads


# Tensors a component has that its files do not hold: Gemma's lm_head is tied to the token embedding, and
# ltx-core's key ops copy it. (The bundle generator leaves them out, as the release does.)
DERIVED_KEYS = {"text_encoder": {"model.lm_head.weight"}}


def cast_floats(dtype: torch.dtype | None) -> TensorTransform:
    """The transform of an unquantized load: floating tensors to `dtype`, others as stored."""

    def transform(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        if dtype is not None and value.is_floating_point() and value.dtype != dtype:
            value = value.to(dtype)
        return [(key, value)]

    return transform


def build_component(
    bundle: Bundle,
    name: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = torch.bfloat16,
    builder: SingleGPUModelBuilder | None = None,
    meta_allowed: bool = False,
) -> torch.nn.Module:
    """Build one component completely, or raise: never a half-loaded model.

    `builder` lets a caller pass `builder_for(...)` with its own tensor transform and module ops (quantization,
    LoRA fusion); by default floating tensors are cast to `dtype`. The builder's `loras` are not used: LoRAs are
    fused by the transform, before quantization.
    """
    builder = builder or builder_for(bundle, name, cast_floats(dtype))
    reads = check_files_match(builder, name)
    builder = dataclasses.replace(builder, model_loader=builder.model_loader.restricted_to(reads))
    # ltx-core's builder.build() is not used: it only warns when tensors are missing (returning a half-loaded
    # model) and ends with `model.to(device)`, which torchao's int8 tensors cannot go through. Its parts are:
    # meta model + module ops, the loader (ours moves each tensor to `device` already), load_state_dict.
    paths = list(builder.model_path) if isinstance(builder.model_path, tuple) else [builder.model_path]
    try:
        # Under inference_mode, as ComfyUI runs nodes: tensors made here are then usable there (torchao's are not
        # otherwise).
        with torch.inference_mode():
            model = builder.meta_model(builder.model_config(), builder.module_ops)
            state = builder.load_sd(paths, registry=builder.registry, device=torch.device(device),
                                    sd_ops=builder.model_sd_ops)
            model.load_state_dict(state.sd, strict=False, assign=True)
            del state
    except RuntimeError as exc:  # load_state_dict's size mismatch for tensors our check cannot see (quantized)
        raise LTX2LoadError(f"{name}: could not load its weights: {exc}") from exc
    leftovers = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.device.type == "meta"]
    if leftovers and not meta_allowed:  # meta_allowed: block streaming keeps some tensors out, on purpose
        raise LTX2LoadError(f"{name}: {len(leftovers)} tensor(s) were not loaded, e.g. {', '.join(leftovers[:3])}.")
    # Inference only: without this, a forward outside inference_mode/no_grad would try to track gradients
    # through tensors made under inference_mode, and fail.
    return model.eval().requires_grad_(False)
