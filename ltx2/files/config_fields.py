"""The config fields every LTX-2.3 release file carries, per component: where a file lacks one, ltx-core's
configurators take their own default without a word, and ComfyUI's loaders take another or fail (its VAE needs
`dims`; its defaults for the norm and the log-variance differ from ltx-core's). The load report names each field
taken by default, so a file that two readers read differently does not pass unnoticed."""

# component -> (path of its section in the checkpoint's config, the fields the release writes there)
_VIDEO_VAE = (
    ("vae",),
    (
        "dims",
        "in_channels",
        "out_channels",
        "latent_channels",
        "patch_size",
        "norm_layer",
        "latent_log_var",
        "causal_decoder",
        "spatial_padding_mode",
        "timestep_conditioning",
        "encoder_blocks",
        "decoder_blocks",
        "decoder_base_channels",
    ),
)
_AUDIO_VAE = (
    ("audio_vae", "model", "params", "ddconfig"),
    (
        "ch",
        "out_ch",
        "in_channels",
        "resolution",
        "ch_mult",
        "num_res_blocks",
        "attn_resolutions",
        "z_channels",
        "double_z",
        "norm_type",
        "causality_axis",
        "mid_block_add_attention",
    ),
)
RELEASE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "video_encoder": _VIDEO_VAE,
    "video_decoder": _VIDEO_VAE,
    "audio_encoder": _AUDIO_VAE,
    "audio_decoder": _AUDIO_VAE,
    "transformer": (
        ("transformer",),
        (
            "num_layers",
            "num_attention_heads",
            "attention_head_dim",
            "audio_num_attention_heads",
            "audio_attention_head_dim",
            "cross_attention_dim",
            "audio_cross_attention_dim",
        ),
    ),
}


def defaults_taken(name: str, config: dict) -> list[str]:
    """The release fields of component `name` its file's config lacks ('vae.dims', ...)."""
    if name not in RELEASE_FIELDS:
        return []
    path, fields = RELEASE_FIELDS[name]
    section = config
    for part in path:
        section = section.get(part) if isinstance(section, dict) else None
    section = section if isinstance(section, dict) else {}
    return [f"{'.'.join(path)}.{field}" for field in fields if field not in section]
