"""A2VSampler, SpatialUpscale, LTX2Decode: the stages of the two-stage audio-to-video graph."""

from comfy_api.latest import io

from ..ltx2.a2v_checks import LIMITS
from ..ltx2.dependencies import require_packages
from .comfy_bridge import begin_run, publish
from .progress import progress_callbacks
from .types import LTX2LatentType, LTX2ModelType

STAGES = ("base", "refine")
UNCONNECTED = object()
# ltx-core's stage-2 (distilled LoRA) schedule has 3 steps, whatever `steps` says.
REFINE_STEPS = 3


def _limits(name: str) -> dict:
    low, high, _ = LIMITS[name]
    return {"min": low, "max": high}


class A2VSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="A2VSampler",
            display_name="LTX-2 A2V Sampler",
            category="LTX-2",
            description="base: stage 1, video from an image and an audio clip at width x height (half the final "
                        "size in the two-stage flow). refine: stage 2 with the distilled LoRA on an upscaled latent.",
            inputs=[
                LTX2ModelType.Input("model"),
                io.Image.Input("image", tooltip="The first frame; any size, it is resized and center-cropped"),
                io.Audio.Input("audio", tooltip="Any sample rate, mono or stereo; padded or cut to the video"),
                io.String.Input("prompt", multiline=True, default="A person speaks to the camera."),
                io.String.Input("negative_prompt", multiline=True,
                                default="blurry, low quality, still frame, distorted face"),
                io.Int.Input("seed", default=42, min=0, max=2**63 - 1, control_after_generate=True),
                io.Int.Input("width", default=384, **_limits("width"), step=32,
                             tooltip="Stage-1 width (base); refine takes its size from the latent"),
                io.Int.Input("height", default=256, **_limits("height"), step=32),
                io.Int.Input("num_frames", default=97, **_limits("num_frames"), step=8, tooltip="8k+1: 9, 17, ..., 97, 121"),
                io.Float.Input("frame_rate", default=24.0, **_limits("frame_rate"), step=1.0),
                io.Int.Input("steps", default=30, **_limits("steps"), tooltip=f"base only; refine runs the distilled "
                                                                           f"{REFINE_STEPS}-step schedule"),
                io.Float.Input("cfg", default=3.0, min=1.0, max=20.0, step=0.1, tooltip="base only"),
                io.Combo.Input("stage", options=list(STAGES), default="base"),
                LTX2LatentType.Input("latent", optional=True, tooltip="Required for refine: the upscaled latent"),
            ],
            outputs=[LTX2LatentType.Output(display_name="latent")],
        )

    @classmethod
    def validate_inputs(cls, width, height, num_frames, steps, stage, frame_rate, latent=UNCONNECTED) -> bool | str:
        from ..ltx2.a2v_checks import check_limits, check_size

        problem = check_limits(width=width, height=height, num_frames=num_frames, frame_rate=frame_rate,
                               steps=steps) or check_size(width, height, num_frames)
        if problem:
            return problem
        if stage not in STAGES:
            return f"stage: '{stage}' is not one of {', '.join(STAGES)}."
        # At queue time a connected input arrives as None (its value does not exist yet) and an unconnected one
        # not at all, which leaves the default.
        if stage == "refine" and latent is UNCONNECTED:
            return "latent: the refine stage needs a latent. Connect SpatialUpscale's output to this sampler's latent input."
        return True

    @classmethod
    def execute(cls, model, image, audio, prompt, negative_prompt, seed, width, height, num_frames, frame_rate,
                steps, cfg, stage, latent=None) -> io.NodeOutput:
        require_packages()
        from ..ltx2 import a2v

        begin_run(model)
        try:
            if stage == "refine":
                if latent is None:
                    raise ValueError("latent: the refine stage needs a latent. Connect SpatialUpscale's output to it.")
                progress, on_tensor = progress_callbacks(REFINE_STEPS)
                return io.NodeOutput(a2v.sample_refine(model, latent, prompt, seed, progress, on_tensor))
            progress, on_tensor = progress_callbacks(steps)
            return io.NodeOutput(a2v.sample_base(model, image, audio, prompt, negative_prompt, seed, width, height,
                                                 num_frames, frame_rate, steps, cfg, progress, on_tensor))
        finally:
            publish()


class SpatialUpscale(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from . import model_files

        return io.Schema(
            node_id="SpatialUpscale",
            display_name="LTX-2 Spatial Upscale (2x latent)",
            category="LTX-2",
            inputs=[
                LTX2ModelType.Input("model"),
                LTX2LatentType.Input("latent"),
                io.Combo.Input("upscale_model", options=model_files.file_names("latent_upscale_models"),
                               tooltip="e.g. ltx-2.3-spatial-upscaler-x2-1.1.safetensors"),
            ],
            outputs=[LTX2LatentType.Output(display_name="latent")],
        )

    @classmethod
    def validate_inputs(cls, upscale_model) -> bool | str:
        from . import model_files

        options = model_files.file_names("latent_upscale_models")
        if upscale_model not in options:
            return f"upscale_model: '{upscale_model}' is not in models/latent_upscale_models/ ({', '.join(options) or 'none found'})."
        return True

    @classmethod
    def execute(cls, model, latent, upscale_model) -> io.NodeOutput:
        require_packages()
        import dataclasses

        from ..ltx2 import a2v
        from . import model_files

        path = model_files.resolve_file("upscale_model", upscale_model, ("latent_upscale_models",))
        model = dataclasses.replace(model, bundle=dataclasses.replace(model.bundle, spatial_upsampler=path))
        begin_run(model)
        progress, on_tensor = progress_callbacks(1)
        try:
            return io.NodeOutput(a2v.upscale(model, latent, progress, on_tensor))
        finally:
            publish()


class LTX2Decode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX2Decode",
            display_name="LTX-2 Decode (frames + audio)",
            category="LTX-2",
            inputs=[LTX2ModelType.Input("model"), LTX2LatentType.Input("latent")],
            outputs=[io.Image.Output(display_name="frames"), io.Audio.Output(display_name="audio"),
                     io.Float.Output(display_name="frame_rate")],
        )

    @classmethod
    def execute(cls, model, latent) -> io.NodeOutput:
        require_packages()
        from ..ltx2 import a2v

        begin_run(model)
        progress, on_tensor = progress_callbacks(1)
        try:
            frames, audio = a2v.decode(model, latent, progress, on_tensor)
        finally:
            publish()
        comfy_audio = {"waveform": audio.waveform.unsqueeze(0).float(), "sample_rate": audio.sampling_rate}
        return io.NodeOutput(frames, comfy_audio, float(latent.frame_rate))
