"""SpatialUpscale: the 2x latent upsample between the two stages."""

import dataclasses

from comfy_api.latest import io

from . import model_files
from .run import node_run
from .search_aliases import search_aliases
from .types import LTX2LatentType, LTX2ModelType, check_links, expect


class SpatialUpscale(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SpatialUpscale",
            display_name="LTX-2 Spatial Upscale (2x latent)",
            category="model/latent/ltxv",
            description="Doubles the width and height of an LTX-2 latent with the spatial upscaler, between stage 1 "
            "and stage 2.",
            **search_aliases("upscale", "latent upscale", "spatial upscaler", "upsampler", "hires"),
            inputs=[
                LTX2ModelType.Input("model"),
                LTX2LatentType.Input("latent"),
                io.Combo.Input(
                    "upscale_model",
                    options=model_files.file_names("latent_upscale_models"),
                    tooltip="e.g. ltx-2.3-spatial-upscaler-x2-1.1.safetensors",
                ),
            ],
            outputs=[LTX2LatentType.Output(display_name="latent")],
        )

    @classmethod
    def validate_inputs(cls, upscale_model, model=None, latent=None) -> bool | str:
        problem = check_links(model=model, latent=latent)
        if problem:
            return problem
        options = model_files.file_names("latent_upscale_models")
        if upscale_model not in options:
            found = ", ".join(options) or "none found"
            return f"upscale_model: '{upscale_model}' is not in models/latent_upscale_models/ ({found})."
        return True

    @classmethod
    def execute(cls, model, latent, upscale_model) -> io.NodeOutput:
        from ..ltx2.a2v import stages as a2v
        from ..ltx2.a2v.latent import A2VLatent
        from ..ltx2.components.model_spec import ModelSpec

        expect(model, ModelSpec, "model")
        expect(latent, A2VLatent, "latent")
        path = model_files.resolve_file("upscale_model", upscale_model, ("latent_upscale_models",))
        model = dataclasses.replace(model, bundle=dataclasses.replace(model.bundle, spatial_upsampler=path))
        with node_run(model) as run:
            return io.NodeOutput(a2v.upscale(model, run.device, latent, run.progress, run.on_tensor))
