"""The two-stage audio-to-video pipeline, stage by stage, on any device.

It is ltx-pipelines' A2VidPipelineTwoStage (text encode -> audio encode -> image conditioning -> stage 1 at half
size with the audio latent frozen -> 2x latent upsample -> stage 2 with the distilled LoRA -> tiled decode), cut
into the graph's nodes and giving its frames for the same inputs and seed. ltx-pipelines' helpers are used
wherever they run without a GPU (its pipeline and `encode_prompts` call `torch.cuda.synchronize()`
unconditionally). Each stage builds the components it needs, runs, and lets them go: a name bound to a component
is deleted inside the block that holds it, so nothing keeps it alive once the budget lets it go.

What is the reference's is kept so, on purpose:
- one random generator for the whole run: stage 2's noise continues stage 1's stream, and the decoder's continues
  stage 2's (the latent carries the generator's state from node to node; a refine stage given another seed than
  the base stage's starts a new stream);
- the conditioning images (the frame-0 image and the keyframes: conditioning.py) go through an H.264 round trip at
  crf 33 (`image_crf`) before they are encoded, in both stages, as the model's training frames did;
- the audio section is the samples `decode_audio_from_file(path, device, audio_start, num_frames / frame_rate)`
  reads (inputs.conditioning_audio);
- the decode is tiled as the reference's command line tiles it (ltx-core's `TilingConfig.default()`).
Where the pack differs, on purpose: a mono clip is duplicated to stereo (the reference passes it on as mono), a
clip shorter than the video is padded with silence (the reference's is only cut), and STG is dropped on a model
without the blocks it perturbs (the reference's extra pass perturbs nothing there: the same frames).
"""

import contextlib
from collections.abc import Callable
from dataclasses import replace

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.model.transformer import X0Model
from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.constants import DEFAULT_IMAGE_CRF, LTX_2_3_PARAMS
from ltx_pipelines.utils.helpers import (
    denoise_video_only,
    multi_modal_guider_denoising_func,
    simple_denoising_func,
)
from ltx_pipelines.utils.samplers import euler_denoising_loop
from ltx_pipelines.utils.types import PipelineComponents

from ...errors import LTX2InputError
from ...memory.budget import BUDGET
from ..components import activations
from ..components.lora_layers import applied
from ..components.model_spec import ModelSpec
from . import finite
from .conditioning import conditioning_images, conditioning_items, encode_images
from .inputs import clip_samples, conditioning_audio
from .interrupts import interruptible
from .latent import A2VLatent
from .limits import LIMITS
from .prompts import OnTensor, encode_prompts, encoding_on, prompt_key
from .recipes import get_recipe
from .run_inputs import RunInputs, frames_covered, resolved_keyframes
from .windowed import Say, denoise_windows, joined, latent_windows, upscale_windows, window_audio
from .windows import Window, check_windows, default_overlap_frames, default_window_frames, plan_windows

# Called as progress(done, total) after each unit of work; may raise to interrupt (ComfyUI's ProgressBar does).
Progress = Callable[[int, int], None]


def generator_for(device: torch.device, seed: int, latent: A2VLatent | None = None) -> torch.Generator:
    """The run's one generator: continuing the stream the latent's last stage left, when this stage has the seed
    that stage had; else seeded anew."""
    generator = torch.Generator(device=device)
    if latent is not None and latent.noise_state is not None and latent.seed == seed:
        generator.set_state(latent.noise_state)
        return generator
    return generator.manual_seed(seed)


def _denoise(
    shape: VideoPixelShape,
    conditionings,
    generator: torch.Generator,
    sigmas: torch.Tensor,
    denoise_fn,
    progress: Progress | None,
    device: torch.device,
    dtype: torch.dtype,
    **initial,
):
    """ltx-pipelines' video-only denoising (audio latent frozen) with its Euler loop.

    The loop has no callback, so the denoise function reports each finished step."""
    total, done = len(sigmas) - 1, 0

    def step(*args):
        nonlocal done
        result = denoise_fn(*args)
        done += 1
        if progress is not None:
            progress(done, total)
        return result

    return denoise_video_only(
        output_shape=shape,
        conditionings=conditionings,
        noiser=GaussianNoiser(generator=generator),
        sigmas=sigmas,
        stepper=EulerDiffusionStep(),
        denoising_loop_fn=lambda s, v, a, stepper: euler_denoising_loop(s, v, a, stepper, step),
        components=PipelineComponents(dtype=dtype, device=device),
        dtype=dtype,
        device=device,
        **initial,
    )


def with_frames_from_audio(inputs: RunInputs) -> RunInputs:
    """`inputs` with num_frames the longest 8k+1 its audio section covers at its frame rate, when it asks for that
    (frames_from_audio); as it is otherwise."""
    if not inputs.frames_from_audio:
        return inputs
    clip = clip_samples(inputs.waveform, inputs.sample_rate)
    section = clip.shape[-1] / inputs.sample_rate - inputs.audio_start
    if section <= 0:  # refused by conditioning_audio, naming the clip's length
        conditioning_audio(clip, inputs.sample_rate, 0.0, inputs.audio_start)
    return replace(inputs, num_frames=frames_covered(section, inputs.frame_rate))


def sample_base(
    model: ModelSpec,
    device: torch.device,
    inputs: RunInputs,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    hand_over: bool = False,
    say: Say = None,
) -> A2VLatent:
    """Stage 1 at inputs.width x inputs.height (in the two-stage flow, half the final size), conditioned on the
    image as first frame (any size), the keyframes, and the audio section, whose latent stays frozen; a video
    longer than one window in consecutive windows (windows.py). `inputs.recipe` (recipes.py): `reference` (the
    default) or `fast`. `hand_over`: a stage 2 follows, which runs on this stage's transformer (kept for it in
    cold_start)."""
    plan = get_recipe(inputs.recipe)
    inputs = with_frames_from_audio(inputs)
    if inputs.frames_from_audio and BUDGET.last_run is not None:
        BUDGET.last_run.notes.append(
            f"frames_from_audio: {inputs.num_frames} frames ({inputs.seconds:.2f} s at {inputs.frame_rate:g} fps), "
            f"the longest 8k+1 the audio from {inputs.audio_start:g} s covers"
        )
    windows = windows_of(inputs)
    images = conditioning_images(inputs.image, resolved_keyframes(inputs.keyframes, inputs.num_frames))
    width, height, frame_rate = inputs.width, inputs.height, inputs.frame_rate
    audio = conditioning_audio(inputs.waveform, inputs.sample_rate, inputs.seconds, inputs.audio_start)
    generator = generator_for(device, inputs.seed)
    dtype = model.precision_on(device).transformer
    with torch.inference_mode():
        if plan.base_guided:
            positive, negative = encode_prompts(model, [inputs.prompt, inputs.negative_prompt], device, on_tensor)
        else:  # CFG 1: the negative prompt is never used
            (positive,) = encode_prompts(model, [inputs.prompt], device, on_tensor, names=("prompt",))
        audio_latents = window_audio(model, device, inputs, windows, dtype, on_tensor)
        encoded = encode_images(model, images, width, height, inputs.image_crf, device, on_tensor)
        if plan.base_sigmas is None:
            sigmas = LTX2Scheduler().execute(steps=inputs.steps).to(dtype=torch.float32, device=device)
        else:
            sigmas = torch.tensor(plan.base_sigmas, dtype=torch.float32, device=device)
        working = activations.denoise(model.config, width, height, windows[0].frames, frame_rate, dtype)
        with (
            BUDGET.phase("stage 1 denoise", device),
            # The user's LoRAs before the transformer, as stage 2 asks for its factors (see there).
            model.user_loras(device) as loras,
            model.component(
                "transformer",
                device,
                with_distilled_lora=plan.base_lora,
                on_tensor=on_tensor,
                activations=working,
                hand_over=hand_over,
            ) as tr,
            applied(tr, *loras) if loras else contextlib.nullcontext(),
            interruptible(tr, on_tensor),
        ):
            if plan.base_guided:
                denoise = multi_modal_guider_denoising_func(
                    video_guider=MultiModalGuider(
                        params=_guider_params(model, inputs.cfg), negative_context=negative.video_encoding
                    ),
                    audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
                    v_context=positive.video_encoding,
                    a_context=positive.audio_encoding,
                    transformer=X0Model(tr),
                )
            else:
                denoise = simple_denoising_func(positive.video_encoding, positive.audio_encoding, X0Model(tr))

            def denoise_window(window: Window, items: list, step, denoise=denoise) -> torch.Tensor:
                shape = VideoPixelShape(batch=1, frames=window.frames, width=width, height=height, fps=frame_rate)
                audio_latent = audio_latents[window.index]
                return _denoise(
                    shape, items, generator, sigmas, denoise, step, device, dtype, initial_audio_latent=audio_latent
                ).latent

            video = denoise_windows(
                windows, lambda w: conditioning_items(images, encoded, w), denoise_window, progress, say
            )
            finite.check(model, "stage 1 denoise", "transformer", video)
            del denoise, denoise_window, tr, loras  # nothing may hold the transformer once the budget lets it go
    return A2VLatent(
        video,
        tuple(a.cpu() if len(windows) > 1 else a for a in audio_latents),
        audio,
        width,
        height,
        inputs.num_frames,
        frame_rate,
        inputs.seed,
        prompt_encoding=(prompt_key(model, inputs.prompt, device), encoding_on(positive, "cpu")),
        noise_state=generator.get_state(),
        recipe=plan.name,
        images=images,
        windows=tuple(windows),
    )


def windows_of(inputs: RunInputs) -> list[Window]:
    """The run's windows (windows.py): its window and overlap, or the defaults for its frame rate (0 = default)."""
    window = inputs.window_frames or default_window_frames(inputs.frame_rate)
    overlap = inputs.overlap_frames or default_overlap_frames(inputs.frame_rate)
    problem = check_windows(window, overlap)
    if problem:
        raise LTX2InputError(problem)
    return plan_windows(inputs.num_frames, window, overlap)


def _guider_params(model: ModelSpec, cfg: float) -> MultiModalGuiderParams:
    """LTX-2.3's stage-1 guidance with the user's CFG. STG perturbs block 28 of 48: a model without that block
    (a small test model) gets no STG rather than a perturbation that silently does nothing."""
    params = replace(LTX_2_3_PARAMS.video_guider_params, cfg_scale=cfg)
    layers = model.config.get("transformer", {}).get("num_layers", 48)
    blocks = [b for b in params.stg_blocks or [] if b < layers]
    return replace(params, stg_blocks=blocks, stg_scale=params.stg_scale if blocks else 0.0)


def upscale(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
) -> A2VLatent:
    """2x spatial upsample of the video latent (ltx-core's upsample_video). The result keeps within the limits
    the sampler states for width and height (checked before anything is built: stage 1 at 4096x64 would make an
    8192x128 video)."""
    width, height = latent.width * 2, latent.height * 2
    high = max(LIMITS["width"][1], LIMITS["height"][1])
    if max(width, height) > high:
        raise LTX2InputError(
            f"width / height: upscaling {latent.width}x{latent.height} makes a {width}x{height} video, past the "
            f"{high} limit of width and height. Give the base sampler at most {high // 2} for each side when an "
            "upscale follows (one less upscale for a chain)."
        )
    windows = list(latent.windows) or [Window(0, 0, latent.video.shape[2], 0)]
    with torch.inference_mode(), BUDGET.phase("upscale", device):
        parts = upscale_windows(model, device, latent.video, windows, on_tensor)
    if progress is not None:
        progress(1, 1)
    video = parts[0] if len(parts) == 1 else joined(parts, windows)
    return replace(
        latent, video=video, width=width, height=height, window_videos=tuple(parts) if len(parts) > 1 else ()
    )


def sample_refine(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    prompt: str,
    seed: int,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    image_crf: int = DEFAULT_IMAGE_CRF,
    say: Say = None,
) -> A2VLatent:
    """Stage 2: the distilled LoRA's fixed schedule (the recipe stage 1 ran) on the upscaled latent, audio still
    frozen, no CFG, on stage 1's transformer: the fast recipe's has the LoRA fused already; the reference's gets
    it applied at each forward from its resident factors (components/lora_layers.py), so the checkpoint is not
    read again. A long video window by window, as stage 1 made it."""
    generator = generator_for(device, seed, latent)
    windows = list(latent.windows) or [Window(0, 0, latent.video.shape[2], 0)]
    starts = latent.window_videos or tuple(latent_windows(latent.video, windows))
    width, height, frame_rate = latent.width, latent.height, latent.frame_rate
    with torch.inference_mode():
        kept = latent.prompt_encoding
        if kept is not None and kept[0] == prompt_key(model, prompt, device):
            positive = encoding_on(kept[1], device)
        else:
            (positive,) = encode_prompts(model, [prompt], device, on_tensor, names=("prompt",))
        encoded = encode_images(model, latent.images, width, height, image_crf, device, on_tensor)
        plan = get_recipe(latent.recipe)
        sigmas = torch.tensor(plan.refine_sigmas, device=device)
        dtype = model.precision_on(device).transformer
        working = activations.denoise(model.config, width, height, windows[0].frames, frame_rate, dtype)
        with (
            BUDGET.phase("stage 2 denoise", device),
            # The factors before the transformer: under a tight budget their room is made by streaming some units
            # of the transformer stage 1 kept, rather than by reading the checkpoint again.
            model.user_loras(device) as loras,
            _lora_factors(model, device, fused=plan.base_lora) as lora,
            model.component(
                "transformer", device, with_distilled_lora=plan.base_lora, on_tensor=on_tensor, activations=working
            ) as tr,
            # ltx-pipelines' stage 2: its `loras`, then the distilled LoRA (ModelLedger.with_additional_loras).
            applied(tr, *loras, *([lora] if lora is not None else [])) if loras or lora else contextlib.nullcontext(),
            interruptible(tr, on_tensor),
        ):
            denoise = simple_denoising_func(positive.video_encoding, positive.audio_encoding, X0Model(tr))

            def denoise_window(window: Window, items: list, step, denoise=denoise) -> torch.Tensor:
                shape = VideoPixelShape(batch=1, frames=window.frames, width=width, height=height, fps=frame_rate)
                return _denoise(
                    shape,
                    items,
                    generator,
                    sigmas,
                    denoise,
                    step,
                    device,
                    dtype,
                    noise_scale=float(sigmas[0]),
                    initial_video_latent=starts[window.index].to(device, dtype),
                    initial_audio_latent=latent.audio_latents[window.index].to(device, dtype),
                ).latent

            video = denoise_windows(
                windows,
                lambda w: conditioning_items(latent.images, encoded, w),
                denoise_window,
                progress,
                say,
                "stage 2",
            )
            finite.check(model, "stage 2 denoise", "transformer", video)
            del denoise, denoise_window, tr, loras, lora
    return replace(latent, video=video, seed=seed, noise_state=generator.get_state(), window_videos=())


@contextlib.contextmanager
def _lora_factors(model: ModelSpec, device: torch.device, fused: bool):
    """The distilled LoRA's factors for a block, or None when the transformer's weights have it `fused`."""
    if fused:
        yield None
        return
    with model.distilled_lora(device) as lora:
        yield lora
