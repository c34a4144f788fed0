"""A2VSampler: stage 1 (base) or stage 2 (refine) of the two-stage audio-to-video graph."""

from comfy_api.latest import io

from ..ltx2.a2v.limits import LIMITS, check_numbers, check_prompt, check_size
from ..ltx2.a2v.windows import check_windows
from .adapters import audio_in, image_in
from .keyframes import refused
from .prompt_budget import refine_follows
from .run import node_run, say
from .search_aliases import search_aliases
from .types import UNCONNECTED, LTX2KeyframesType, LTX2LatentType, LTX2ModelType, check_links, expect

STAGES = ("base", "refine")
# audio_start's widget limit: a day of audio; the clip's own length is checked when it runs.
MAX_AUDIO_START = 86_400.0
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
            category="model/sampling",
            description="Makes a video of the image speaking the audio: base = stage 1 at half the final size, "
            "refine = stage 2 with the distilled LoRA on the upscaled latent.",
            **search_aliases("sampler", "voice", "speech", "image to video"),
            inputs=[
                LTX2ModelType.Input("model"),
                io.Image.Input("image", tooltip="The first frame; any size, it is resized and center-cropped"),
                io.Audio.Input(
                    "audio", tooltip="Any sample rate, mono or stereo; from audio_start, padded or cut to the video"
                ),
                io.String.Input("prompt", multiline=True, default="A person speaks to the camera."),
                io.String.Input(
                    "negative_prompt", multiline=True, default="blurry, low quality, still frame, distorted face"
                ),
                io.Int.Input("seed", default=42, min=0, max=2**63 - 1, control_after_generate=True),
                io.Int.Input(
                    "width",
                    default=384,
                    **_limits("width"),
                    step=32,
                    tooltip="Stage-1 width (base); refine takes its size from the latent",
                ),
                io.Int.Input("height", default=256, **_limits("height"), step=32),
                io.Int.Input(
                    "num_frames", default=97, **_limits("num_frames"), step=8, tooltip="8k+1: 9, 17, ..., 97, 121"
                ),
                io.Float.Input("frame_rate", default=24.0, **_limits("frame_rate"), step=1.0),
                io.Int.Input(
                    "steps",
                    default=30,
                    **_limits("steps"),
                    tooltip=f"base only; refine runs the distilled {REFINE_STEPS}-step schedule",
                ),
                io.Float.Input("cfg", default=3.0, **_limits("cfg"), step=0.1, tooltip="base only"),
                io.Combo.Input("stage", options=list(STAGES), default="base"),
                LTX2LatentType.Input("latent", optional=True, tooltip="Required for refine: the upscaled latent"),
                io.Int.Input(
                    "image_crf",
                    default=33,
                    **_limits("image_crf"),
                    optional=True,
                    tooltip="The image goes through an H.264 round trip at this crf before it is encoded, "
                    "as the model's training frames did (ltx-pipelines' default 33); 0 = none",
                ),
                io.Combo.Input(
                    "recipe",
                    options=["reference", "fast"],
                    default="reference",
                    optional=True,
                    tooltip="base only (refine follows it): reference = ltx-pipelines' (steps, cfg); "
                    "fast = ComfyUI template's distilled schedule (8 + 3 steps, CFG 1)",
                ),
                LTX2KeyframesType.Input(
                    "keyframes",
                    optional=True,
                    tooltip="base only: images at frames (LTX-2 Keyframe), used in both stages; refine takes stage "
                    "1's from the latent",
                ),
                io.Float.Input(
                    "audio_start",
                    default=0.0,
                    min=0.0,
                    max=MAX_AUDIO_START,
                    step=0.01,
                    optional=True,
                    tooltip="base only: seconds into the audio where the video's soundtrack begins",
                ),
                io.Int.Input(
                    "window_frames",
                    default=0,
                    **_limits("window_frames"),
                    step=8,
                    optional=True,
                    tooltip="base only: a longer video is made in consecutive windows of this many frames (8k+1), "
                    "each continuing the last; 0 = about 20 s at frame_rate",
                ),
                io.Int.Input(
                    "overlap_frames",
                    default=0,
                    **_limits("overlap_frames"),
                    step=8,
                    optional=True,
                    tooltip="base only: frames each window takes over from the one before (a multiple of 8); 0 = about "
                    "1 s at frame_rate",
                ),
                io.Boolean.Input(
                    "frames_from_audio",
                    default=False,
                    optional=True,
                    tooltip="base only: num_frames becomes the longest 8k+1 that the audio from audio_start covers "
                    "at frame_rate (the node shows what it chose)",
                ),
            ],
            outputs=[LTX2LatentType.Output(display_name="latent")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(
        cls,
        width,
        height,
        num_frames,
        frame_rate,
        cfg,
        stage,
        prompt=None,
        negative_prompt=None,
        model=None,
        image=None,
        audio=None,
        latent=UNCONNECTED,
        image_crf=33,
        keyframes=UNCONNECTED,
        audio_start=0.0,
        window_frames=0,
        overlap_frames=0,
    ) -> bool | str:
        # Taken here: values given where a link belongs, the floats' finiteness, the prompts' length and the size
        # rules (multiples of 32, 8k+1 frames), which ComfyUI does not check; ComfyUI then skips its own min/max
        # for what is taken here, so check_numbers checks them.
        problem = (
            refused(keyframes)
            or check_links(model=model, image=image, audio=audio, latent=latent, keyframes=keyframes)
            or check_numbers(
                LIMITS,
                width=width,
                height=height,
                num_frames=num_frames,
                frame_rate=frame_rate,
                cfg=cfg,
                image_crf=image_crf,
            )
            or check_numbers({"audio_start": (0.0, MAX_AUDIO_START, "0.0")}, audio_start=audio_start)
            or check_numbers(LIMITS, window_frames=window_frames, overlap_frames=overlap_frames)
            or check_prompt("prompt", prompt)
            or check_prompt("negative_prompt", negative_prompt)
        )
        if problem:
            return problem
        if stage not in STAGES:
            return f"stage: '{stage}' is not one of {', '.join(STAGES)}."
        # At queue time a connected input arrives as None (its value does not exist yet) and an unconnected one
        # not at all, which leaves the default.
        if stage == "refine" and latent is UNCONNECTED:
            return (
                "latent: the refine stage needs a latent. Connect SpatialUpscale's output to this sampler's latent "
                "input."
            )
        if stage == "base" and latent is not UNCONNECTED:
            # The base stage makes its latent from the image and audio: a latent given to it would be ignored.
            return (
                "latent: the base stage starts from noise and does not read a latent. Disconnect it, or set "
                "stage to refine to refine that latent."
            )
        if None not in (width, height, num_frames, frame_rate):
            problem = check_size(width, height, num_frames)
            if problem is None and stage == "base" and None not in (window_frames, overlap_frames):
                window, overlap = window_sizes(window_frames, overlap_frames, frame_rate)
                problem = check_windows(window, overlap) or _fits(width, height, num_frames, frame_rate, window)
            return problem or True
        return True

    @classmethod
    def execute(
        cls,
        model,
        image,
        audio,
        prompt,
        negative_prompt,
        seed,
        width,
        height,
        num_frames,
        frame_rate,
        steps,
        cfg,
        stage,
        latent=None,
        image_crf=33,
        recipe="reference",
        keyframes=None,
        audio_start=0.0,
        window_frames=0,
        overlap_frames=0,
        frames_from_audio=False,
    ) -> io.NodeOutput:
        from ..ltx2.a2v import stages as a2v
        from ..ltx2.a2v.latent import A2VLatent
        from ..ltx2.a2v.run_inputs import RunInputs
        from ..ltx2.components.model_spec import ModelSpec

        expect(model, ModelSpec, "model")
        if stage == "refine":
            if latent is None:
                raise ValueError("latent: the refine stage needs a latent. Connect SpatialUpscale's output to it.")
            expect(latent, A2VLatent, "latent")
            with node_run(model, REFINE_STEPS, cls) as run:
                return io.NodeOutput(
                    a2v.sample_refine(
                        model, run.device, latent, prompt, seed, run.progress, run.on_tensor, image_crf, run.say
                    )
                )
        if latent is not None:  # a prompt that skipped validation (ComfyUI validates before queueing)
            raise ValueError(
                "latent: the base stage starts from noise and does not read a latent. Disconnect it, "
                "or set stage to refine."
            )
        if keyframes is not None and not isinstance(keyframes, tuple):
            expect(keyframes, tuple, "keyframes")
        waveform, rate = audio_in(audio)
        inputs = RunInputs(
            image=image_in(image),
            waveform=waveform,
            sample_rate=rate,
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            width=width,
            height=height,
            num_frames=num_frames,
            frame_rate=frame_rate,
            steps=steps,
            cfg=cfg,
            image_crf=image_crf,
            recipe=recipe,
            keyframes=keyframes or (),
            audio_start=audio_start,
            frames_from_audio=frames_from_audio,
            window_frames=window_frames,
            overlap_frames=overlap_frames,
        )
        if frames_from_audio:
            inputs = a2v.with_frames_from_audio(inputs)
            say(cls, f"num_frames {inputs.num_frames}: {inputs.seconds:.2f} s of audio from {audio_start:g} s")
        with node_run(model, steps, cls) as run:
            hand_over = refine_follows()
            return io.NodeOutput(
                a2v.sample_base(model, run.device, inputs, run.progress, run.on_tensor, hand_over, run.say)
            )


def window_sizes(window_frames: int, overlap_frames: int, frame_rate: float) -> tuple[int, int]:
    """The window and overlap a run uses: as given, or the defaults for the frame rate where 0."""
    from ..ltx2.a2v.windows import default_overlap_frames, default_window_frames

    return (
        window_frames or default_window_frames(frame_rate),
        overlap_frames or default_overlap_frames(frame_rate),
    )


def _fits(width: int, height: int, num_frames: int, frame_rate: float, window_frames: int) -> str | None:
    """Refuses, at queue time, a base stage whose largest part cannot fit the device even with every weight
    streamed: its activations alone, estimated for LTX-2.3 22B (ltx2/components/activations.py), exceed what the device
    can give. Such a job would run out of memory, or on a CPU swap inside one operation no interrupt can reach."""
    from .dependencies import missing_packages

    if missing_packages():  # the node says so when it runs
        return None
    import comfy.model_management

    from ..ltx2.components.activations import largest_base_stage
    from ..memory.accounting import GIB
    from ..memory.budget import BUDGET
    from .precision import comfy_precision

    device = comfy.model_management.get_torch_device()
    # A longer video runs a window at a time: a window's activations are what must fit.
    frames = min(num_frames, window_frames)
    stage, needed = largest_base_stage(width, height, frames, frame_rate, comfy_precision(device))
    capacity = BUDGET.capacity(device)
    if needed <= capacity:
        return None
    return (
        f"width x height x num_frames: {width}x{height}x{num_frames} needs about {needed / GIB:.0f} GiB in "
        f"{stage} beside the weights (estimate), more than this device can give ({capacity / GIB:.1f} GiB). "
        "Lower num_frames or the size (e.g. 384x256x97 for a 768x512 video)."
    )
