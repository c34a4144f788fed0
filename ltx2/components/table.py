"""One table of every LTX-2 component: which files it reads (and which parts a split file may hold instead of the
checkpoint), how its keys map, what sizes it, which loader input chooses its policy and whether its blocks stream.

Everything that makes a component (plan.py, build.py, model_spec.py) asks this table; none of them names a
component. The same rows read the release's one-file checkpoint and the split files ComfyUI users download (a
transformer-only file in diffusion_models/, the video VAE and the audio VAE with its vocoder in vae/, the text
projection in text_encoders/), and the test bundle's files (tools/make_tiny_bundle.py writes them).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ltx_core.loader import SDOps
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
from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS, GEMMA_LLM_KEY_OPS

from ...errors import LTX2InputError
from ..files.gemma_single_file import open_text_encoder
from .gemma_model import EmbeddingsProcessorConfigurator, GemmaTextEncoderConfigurator, gemma_key_ops, gemma_module_ops


@dataclass(frozen=True)
class Bundle:
    """The files one A2V run reads. `checkpoint` is the release's one file, or a transformer-only one whose other
    parts come from `video_vae`, `audio_vae` and `text_projection` (given for a part the checkpoint also holds, a
    split file replaces it)."""

    checkpoint: Path
    text_encoder: Path | None = None
    spatial_upsampler: Path | None = None
    distilled_lora: Path | None = None
    video_vae: Path | None = None
    audio_vae: Path | None = None
    text_projection: Path | None = None


@dataclass(frozen=True)
class Part:
    """Tensors of a component that a split file may hold instead of the checkpoint: those whose checkpoint key
    starts with `prefix`, which the file named by the Bundle field `field` stores under `stored_as` (and the config
    `section` its `config` metadata carries)."""

    prefix: str
    field: str
    stored_as: str
    section: str | None = None


@dataclass(frozen=True)
class Reading:
    """What a component reads, as the table says for one bundle: its weight files (each with the map from its key
    names to the checkpoint's, None dropping a key), the config it is sized by, and ltx-core module ops."""

    paths: tuple[str, ...]
    renames: dict[str, Callable[[str], str | None] | None]
    config: dict | None  # None: the checkpoint's config, merged over the split files' (plan.py reads the headers)
    module_ops: tuple = ()
    where: str = ""


@dataclass(frozen=True)
class Component:
    """How one component is found and made. `needs` lists the checkpoint key prefixes it must find (in the
    checkpoint or in a split file); `configurator(bundle)` gives what sizes it (ltx-core's, or ours where ltx-core's
    hard-codes the 12B Gemma); `key_ops(meta)`, where given, the key and module ops that follow the built meta
    model (the transformers release that made the Gemma)."""

    name: str
    file: str  # the Bundle field of its main file
    sd_ops: SDOps | None
    configurator: Callable[[Bundle], object]
    needs: tuple[str, ...] = ()
    parts: tuple[Part, ...] = ()
    policy_input: str | None = None  # the loader's input choosing its policy; None: stored as is (bf16)
    text_encoder_policies: bool = False  # chosen among the policies that may quantize a text encoder
    # The module path of its list of blocks, which block streaming runs one at a time when it does not fit
    # (memory/streaming.py); "" for a component that is never streamed.
    blocks: str = ""
    sized_by: tuple[str, ...] = ()  # other Bundle fields whose files size it (identity: what its build depends on)
    gemma: bool = False  # read through the Gemma reader (a release folder or ComfyUI's single file)
    key_ops: Callable | None = field(default=None, repr=False)

    def read(self, bundle: Bundle) -> Reading:
        """Its files and how they are read, for `bundle`."""
        main = getattr(bundle, self.file)
        if main is None:
            raise LTX2InputError(f"{self.name}: no {self.file} file was given; pick one in the loader node.")
        if self.gemma:
            root = open_text_encoder(main)
            paths = root.weight_files()
            where = paths[0] if len(paths) == 1 else str(Path(paths[0]).parent)
            return Reading(paths, dict.fromkeys(paths, root.file_key), root.config(), root.tokenizer_ops(), where)
        split = [p for p in self.parts if getattr(bundle, p.field) is not None]
        replaced = tuple(p.prefix for p in split)
        renames = {str(main): _without(replaced) if replaced else None}
        for part in split:
            path = str(getattr(bundle, part.field))
            renames[path] = _chain(renames.get(path), part.stored_as, part.prefix)
        return Reading(tuple(renames), renames, None, where=str(main))

    def files(self, bundle: Bundle) -> list[Path]:
        """Every file its build depends on (what a kept component is keyed by, besides its policy)."""
        main = getattr(bundle, self.file)
        if main is None:
            return []
        if self.gemma and main.is_dir():
            # Every top-level file (shards, config, tokenizer, image processor); sub-folders are never read.
            files = sorted(p for p in main.iterdir() if not p.is_dir())
        else:
            files = [main, *(getattr(bundle, p.field) for p in self.parts if getattr(bundle, p.field) is not None)]
        for name in self.sized_by:
            sizer = getattr(bundle, name)
            if sizer is not None:  # a Gemma folder sizes it by its config.json, a single file by its own shapes
                files.append(sizer / "config.json" if sizer.is_dir() else sizer)
        return list(dict.fromkeys(files))


def _without(prefixes: tuple[str, ...]) -> Callable[[str], str | None]:
    """A checkpoint's keys, less the parts a split file replaces."""
    return lambda key: None if key.startswith(prefixes) else key


def _chain(before, stored_as: str, prefix: str) -> Callable[[str], str | None]:
    """A split file's keys in the checkpoint's names (one file may hold several parts: the audio VAE and vocoder)."""

    def rename(key: str) -> str | None:
        if key.startswith(stored_as):
            return prefix + key[len(stored_as) :]
        return before(key) if before is not None else None

    return rename


# ltx-core's configurators of the components sized by the checkpoint's own config.
CONFIGURATORS = {
    "transformer": LTXModelConfigurator,
    "video_encoder": VideoEncoderConfigurator,
    "video_decoder": VideoDecoderConfigurator,
    "audio_encoder": AudioEncoderConfigurator,
    "audio_decoder": AudioDecoderConfigurator,
    "vocoder": VocoderConfigurator,
    "spatial_upsampler": LatentUpsamplerConfigurator,
}


def _from_config(name: str) -> Callable[[Bundle], object]:
    return lambda bundle: CONFIGURATORS[name]  # looked up when read: tests may count what it makes


def _processor(bundle: Bundle) -> EmbeddingsProcessorConfigurator:
    if bundle.text_encoder is None:
        raise LTX2InputError("embeddings_processor: its size follows the text encoder; pick a text_encoder.")
    return EmbeddingsProcessorConfigurator(*open_text_encoder(bundle.text_encoder).text_dims())


def _gemma_key_ops(meta) -> tuple[SDOps, tuple]:
    return gemma_key_ops(meta), gemma_module_ops(meta)


_VIDEO_VAE = (Part("vae.", "video_vae", "", "vae"),)  # ComfyUI's VAELoader reads the VAE's keys unprefixed
_AUDIO_VAE = (Part("audio_vae.", "audio_vae", "audio_vae.", "audio_vae"),)  # its audio-VAE loader: prefixed
_VOCODER = (Part("vocoder.", "audio_vae", "vocoder.", "vocoder"),)  # in the audio VAE's file
_PROJECTION = (Part("text_embedding_projection.", "text_projection", "text_embedding_projection."),)
_STATS = "per_channel_statistics."

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "transformer",
            "checkpoint",
            LTXV_MODEL_COMFY_RENAMING_MAP,
            _from_config("transformer"),
            needs=("model.diffusion_model.transformer_blocks.",),
            policy_input="quantization",
            blocks="transformer_blocks",
        ),
        Component(
            "embeddings_processor",
            "checkpoint",
            EMBEDDINGS_PROCESSOR_KEY_OPS,
            _processor,
            # The connectors stay with the transformer in a split file (ComfyUI 0.33 loads them with the diffusion
            # model); the text projection has a file of its own.
            needs=("text_embedding_projection.", "model.diffusion_model.video_embeddings_connector."),
            parts=_PROJECTION,
            sized_by=("text_encoder",),
        ),
        Component(
            "video_encoder",
            "checkpoint",
            VAE_ENCODER_COMFY_KEYS_FILTER,
            _from_config("video_encoder"),
            needs=("vae.encoder.", "vae." + _STATS),
            parts=_VIDEO_VAE,
        ),
        Component(
            "video_decoder",
            "checkpoint",
            VAE_DECODER_COMFY_KEYS_FILTER,
            _from_config("video_decoder"),
            needs=("vae.decoder.", "vae." + _STATS),
            parts=_VIDEO_VAE,
        ),
        Component(
            "audio_encoder",
            "checkpoint",
            AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
            _from_config("audio_encoder"),
            needs=("audio_vae.encoder.", "audio_vae." + _STATS),
            parts=_AUDIO_VAE,
        ),
        Component(
            "audio_decoder",
            "checkpoint",
            AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
            _from_config("audio_decoder"),
            needs=("audio_vae.decoder.", "audio_vae." + _STATS),
            parts=_AUDIO_VAE,
        ),
        Component("vocoder", "checkpoint", VOCODER_COMFY_KEYS_FILTER, _from_config("vocoder"), ("vocoder.",), _VOCODER),
        Component("spatial_upsampler", "spatial_upsampler", None, _from_config("spatial_upsampler")),
        Component(
            "text_encoder",
            "text_encoder",
            GEMMA_LLM_KEY_OPS,
            lambda bundle: GemmaTextEncoderConfigurator,
            policy_input="text_encoder_quantization",
            text_encoder_policies=True,
            gemma=True,
            key_ops=_gemma_key_ops,
            blocks="model.model.language_model.layers",  # Gemma-3's decoder layers
        ),
    )
}

# The split files' fields, by the parts they hold (the loader's optional inputs).
SPLIT_FIELDS = tuple(dict.fromkeys(p.field for c in COMPONENTS.values() for p in c.parts))
