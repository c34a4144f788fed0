"""The sizes a model config may give, bounded by what the LTX-2 and Gemma-3 releases use.

A config is only a claim: one saying a Gemma hidden size of 2^20 would be built (or estimated) as such, and the
job would be refused as too large for the device, blaming the video's size. Sizes far beyond every release are
refused here instead, when the file is read, naming the file and the key. Only upper bounds: the test bundle's
models are tiny, and a smaller model than the release is no danger.

Release values (Gemma-3 270M to 27B; LTX-2 19B and LTX-2.3 22B) are in the comments; each bound is several times
the largest, so a future release of the same family still passes."""

from pathlib import Path

from ...errors import LTX2InputError

# key: (upper bound, the largest release value)
GEMMA_TEXT = {
    "hidden_size": (16_384, 5376),  # 27B
    "num_hidden_layers": (256, 62),
    "intermediate_size": (131_072, 21_504),
    "num_attention_heads": (256, 32),
    "num_key_value_heads": (256, 16),
    "head_dim": (1024, 256),
    "vocab_size": (1_048_576, 262_208),
    "max_position_embeddings": (1_048_576, 131_072),
    "sliding_window": (1_048_576, 4096),
}
GEMMA_VISION = {
    "hidden_size": (16_384, 1152),  # SigLIP-400M
    "num_hidden_layers": (256, 27),
    "intermediate_size": (131_072, 4304),
    "num_attention_heads": (256, 16),
    "image_size": (4096, 896),
    "patch_size": (1024, 14),
}
GEMMA_TOP = {"mm_tokens_per_image": (16_384, 256)}
LTX_TRANSFORMER = {
    "num_layers": (256, 48),
    "num_attention_heads": (256, 32),
    "attention_head_dim": (1024, 128),
    "cross_attention_dim": (65_536, 4096),
    "audio_num_attention_heads": (256, 32),
    "audio_attention_head_dim": (1024, 64),
    "audio_cross_attention_dim": (65_536, 2048),
    "connector_num_attention_heads": (256, 32),
    "connector_attention_head_dim": (1024, 128),
    "audio_connector_num_attention_heads": (256, 32),
    "audio_connector_attention_head_dim": (1024, 64),
    "connector_num_layers": (256, 8),
    "in_channels": (16_384, 128),
    "out_channels": (16_384, 128),
    "audio_in_channels": (16_384, 128),
    "audio_out_channels": (16_384, 128),
    "caption_channels": (65_536, 3840),
}
LTX_VAE = {"latent_channels": (16_384, 128), "decoder_base_channels": (16_384, 128), "patch_size": (64, 4)}


def _check(section, bounds: dict, where: str, what: str, fix: str) -> None:
    if not isinstance(section, dict):
        return  # a missing or odd section is the caller's to refuse
    for key, (high, release) in bounds.items():
        value = section.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # A size of the wrong JSON type (a string, a list) fails deep inside a configurator, naming nothing.
            raise LTX2InputError(
                f"{where}: {what} {key} as {type(value).__name__} {shown_value(value)}, not a number. {fix}"
            )
        if not 0 < value <= high:
            shown = f"{value:.3g}" if abs(value) >= 1e9 else value
            raise LTX2InputError(
                f"{where}: {what} {key} = {shown}, outside what any release uses (1..{high:,}; the largest "
                f"release has {release:,}). {fix}"
            )


def check_gemma_config(config: dict, root: Path, source: str = "") -> None:
    """For a Gemma folder's config.json, or (`source`: "its tensors") the sizes a single file's shapes give."""
    where = f"text_encoder: '{root}'"
    if source:
        fix = "The file is damaged or of another model; download the Gemma-3 file again."
        for section, bounds in ((config, GEMMA_TOP), (config.get("text_config"), GEMMA_TEXT)):
            _check(section, bounds, where, f"{source} give", fix)
        _check(config.get("vision_config"), GEMMA_VISION, where, f"{source} (vision tower) give", fix)
        return
    fix = "The config is damaged or of another model; copy the Gemma-3 release's."
    _check(config, GEMMA_TOP, where, "its config.json gives", fix)
    _check(config.get("text_config"), GEMMA_TEXT, where, "its config.json's text_config gives", fix)
    _check(config.get("vision_config"), GEMMA_VISION, where, "its config.json's vision_config gives", fix)


# The sections of a checkpoint's config the pack's components read; each is a JSON object.
LTX_SECTIONS = ("transformer", "vae", "audio_vae", "vocoder")


def check_ltx_config(config: dict, path: Path) -> None:
    """For a checkpoint's `config` metadata (its transformer and video VAE sections)."""
    fix = "The file's config is damaged or of another model; download the release checkpoint again."
    odd = next((s for s in LTX_SECTIONS if s in config and not isinstance(config[s], dict)), None)
    if odd is not None:
        raise LTX2InputError(
            f"{path.name}: its 'config' metadata's {odd} section is a {type(config[odd]).__name__}, not a JSON object. "
            f"{fix}"
        )
    _check(
        config.get("transformer"), LTX_TRANSFORMER, path.name, "its 'config' metadata's transformer section gives", fix
    )
    _check(config.get("vae"), LTX_VAE, path.name, "its 'config' metadata's vae section gives", fix)


def shown_value(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
