"""Socket types the pack's nodes pass between each other."""

from comfy_api.latest import io

LTX2ModelType = io.Custom("LTX2_MODEL")
LTX2LatentType = io.Custom("LTX2_LATENT")
