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
- the conditioning image goes through an H.264 round trip at crf 33 (`image_crf`) before it is encoded, in both
  stages, as the model's training frames did;
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
from ltx_core.conditioning import VideoConditionByLatentIndex
from ltx_core.model.audio_vae import encode_audio
from ltx_core.model.transformer import X0Model
from ltx_core.model.upsampler import upsample_video
from ltx_core.model.video_vae import TilingConfig, decode_video, get_video_chunks_number
from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessorOutput
from ltx_core.types import Audio, AudioLatentShape, VideoPixelShape
from ltx_pipelines.utils.constants import DEFAULT_IMAGE_CRF, LTX_2_3_PARAMS
from ltx_pipelines.utils.helpers import (
    denoise_video_only,
    multi_modal_guider_denoising_func,
    simple_denoising_func,
)
from ltx_pipelines.utils.media_io import normalize_latent, preprocess, resize_and_center_crop
from ltx_pipelines.utils.samplers import euler_denoising_loop
from ltx_pipelines.utils.types import PipelineComponents

from ...errors import LTX2InputError
from ...memory.budget import BUDGET
from ...memory.faults import inject_oom
from ...memory.kept_outputs import ENCODED_PROMPTS
from ..components import activations
from ..components.lora_layers import applied
from ..components.model_spec import ModelSpec
from ..files.file_identity import identities
from ..files.gemma_single_file import open_text_encoder
from . import finite
from .inputs import conditioning_audio, first_image, playable
from .interrupts import interruptible
from .latent import A2VLatent
from .limits import LIMITS, check_prompt
from .recipes import get_recipe

# Called as progress(done, total) after each unit of work; may raise to interrupt (ComfyUI's ProgressBar does).
Progress = Callable[[int, int], None]
# Called for each tensor read while a component is built; may raise to interrupt a long load.
OnTensor = Callable[[str], None] | None


def _generator(device: torch.device, seed: int, latent: A2VLatent | None = None) -> torch.Generator:
    """The run's one generator: continuing the stream the latent's last stage left, when this stage has the seed
    that stage had; else seeded anew."""
    generator = torch.Generator(device=device)
    if latent is not None and latent.noise_state is not None and latent.seed == seed:
        generator.set_state(latent.noise_state)
        return generator
    return generator.manual_seed(seed)


def _encode_prompts(
    model: ModelSpec,
    prompts: list[str],
    device: torch.device,
    on_tensor: OnTensor = None,
    names: tuple[str, ...] = ("prompt", "negative_prompt"),
):
    """Each prompt's encoding: kept from an earlier run (memory/kept_outputs.py) when the text, the text encoder's
    files and policies and the transformer's dtype are the same, else encoded and kept. A run whose prompts were
    all kept builds no text encoder: the run report says "prompt reused"."""
    for name, text in zip(names, prompts):
        problem = check_prompt(name, text)
        if problem:
            raise LTX2InputError(problem)
    keys = [_prompt_key(model, text, device) for text in prompts]
    files = model.files_of("text_encoder") + model.files_of("embeddings_processor")
    built_from = identities(files)
    kept = [ENCODED_PROMPTS.get(key) for key in keys]
    with BUDGET.stage("text encode", device):
        missing = [i for i, k in enumerate(kept) if k is None]
        # What is kept is never handed out: each run gets its own copy (on a CPU `_to` would return the same).
        encoded = [None if k is None else _to(k[0], device, copy=True) for k in kept]
        if missing:
            fresh = _encode(model, [prompts[i] for i in missing], device, on_tensor)
            for i, (encoding, tokens) in zip(missing, fresh):
                encoded[i], kept[i] = encoding, (_to(encoding, "cpu", copy=True), tokens)
                ENCODED_PROMPTS.put(
                    keys[i],
                    kept[i],
                    tuple(t for t in kept[i][0] if t is not None),
                    device,
                    alive=lambda: identities(files) == built_from,
                )
        reused = [names[i] for i in range(len(prompts)) if i not in missing]
        if reused and BUDGET.last_run is not None:
            BUDGET.last_run.notes.append(
                f"prompt reused: {' and '.join(reused)} encoded by an earlier run"
                + ("" if missing else ", no text encoder built")
            )
        for name, (_, (count, limit)) in zip(names, kept):
            if count > limit and BUDGET.last_run is not None:
                BUDGET.last_run.notes.append(
                    f"{name} cut to the text encoder's {limit} tokens: it has {count}, the "
                    f"last {count - limit} were not read"
                )
        return encoded


def _encode(model: ModelSpec, prompts: list[str], device: torch.device, on_tensor: OnTensor):
    """[(encoding, (tokens, the encoder's token limit))] of each prompt, by the text encoder and the embeddings
    processor (the encoder cuts a longer prompt to its limit, as ltx-pipelines does)."""
    working = 0
    if model.bundle.text_encoder is not None:
        working = activations.text(
            open_text_encoder(model.bundle.text_encoder).config(), model.config, model.precision_on(device).text_encoder
        )
    with (
        model.component("text_encoder", device, on_tensor=on_tensor, activations=working) as encoder,
        interruptible(encoder, on_tensor),
    ):
        tokenizer = encoder.tokenizer
        tokens = [(len(tokenizer.tokenizer(p)["input_ids"]), tokenizer.max_length) for p in prompts]
        raw = [encoder.encode(p) for p in prompts]
        finite.check(model, "text encode", "text_encoder", raw)
        del encoder, tokenizer
    with (
        model.component("embeddings_processor", device, on_tensor=on_tensor, activations=working) as processor,
        interruptible(processor, on_tensor),
    ):
        # The contexts go to the transformer: in its compute dtype (the text family's may differ).
        dtype = model.precision_on(device).transformer
        encoded = [_to(processor.process_hidden_states(hidden, mask), device, dtype) for hidden, mask in raw]
        finite.check(model, "text encode", "embeddings_processor", encoded)
        del processor, raw
    return list(zip(encoded, tokens))


def _prompt_key(model: ModelSpec, prompt: str, device: torch.device) -> tuple:
    """What an encoded prompt depends on: the text, the files and policies of both text components, and the dtype
    it is cast to for the transformer."""
    return (
        prompt,
        model.component_key("text_encoder", device),
        model.component_key("embeddings_processor", device),
        str(model.precision_on(device).transformer),
    )


def _to(
    encoding: EmbeddingsProcessorOutput,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
    copy: bool = False,
) -> EmbeddingsProcessorOutput:
    """The encoding on `device`; its floating tensors (not the attention mask) in `dtype` if given; new tensors
    if `copy` (what is kept must not be the run's own tensors)."""

    def move(t: torch.Tensor) -> torch.Tensor:
        if dtype is not None and t.is_floating_point():
            return t.to(device, dtype, copy=copy)
        return t.to(device, copy=copy)

    return EmbeddingsProcessorOutput(*(move(t) if t is not None else None for t in encoding))


def _image_conditioning(
    model: ModelSpec,
    image: torch.Tensor,
    width: int,
    height: int,
    crf: int,
    device: torch.device,
    on_tensor: OnTensor = None,
) -> list[VideoConditionByLatentIndex]:
    """The image encoded as the first latent frame, prepared exactly as ltx-pipelines' load_image_conditioning
    prepares a file: 8-bit RGB, the crf round trip, resize and center crop, [-1, 1]."""
    precision = model.precision_on(device)
    rgb8 = (image * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()  # ComfyUI's floats are 8-bit values / 255
    pixels = torch.tensor(preprocess(rgb8, crf), dtype=torch.float32)
    pixels = normalize_latent(resize_and_center_crop(pixels, height, width), device, precision.vae)
    working = activations.image_encode(width, height, precision.vae)
    with (
        BUDGET.stage("image encode", device),
        model.component("video_encoder", device, on_tensor=on_tensor, activations=working) as encoder,
        interruptible(encoder, on_tensor),
    ):
        encoded = encoder(pixels)
        finite.check(model, "image encode", "video_encoder", encoded)
        del encoder
    return [VideoConditionByLatentIndex(latent=encoded.to(precision.transformer), strength=1.0, latent_idx=0)]


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
        inject_oom("sampling")
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


def sample_base(
    model: ModelSpec,
    device: torch.device,
    image: torch.Tensor,
    waveform: torch.Tensor,
    sample_rate: int,
    prompt: str,
    negative_prompt: str,
    seed: int,
    width: int,
    height: int,
    num_frames: int,
    frame_rate: float,
    steps: int,
    cfg: float,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    image_crf: int = DEFAULT_IMAGE_CRF,
    recipe: str = "reference",
    hand_over: bool = False,
) -> A2VLatent:
    """Stage 1 at width x height (in the two-stage flow, half the final size), conditioned on the image as
    first frame ([H, W, C] in 0..1, any size) and on the audio ([channels, samples] at `sample_rate`), whose
    latent stays frozen. `recipe` (recipes.py): `reference` (the default) or `fast`. `hand_over`: a stage 2
    follows, which runs on this stage's transformer (kept for it in cold_start)."""
    plan = get_recipe(recipe)
    image = first_image(image)
    seconds = num_frames / frame_rate
    audio = conditioning_audio(waveform, sample_rate, seconds)
    generator = _generator(device, seed)
    with torch.inference_mode():
        if plan.base_guided:
            positive, negative = _encode_prompts(model, [prompt, negative_prompt], device, on_tensor)
        else:  # CFG 1: the negative prompt is never used
            (positive,) = _encode_prompts(model, [prompt], device, on_tensor, names=("prompt",))
        working = activations.audio_encode(seconds, audio.sampling_rate)
        with (
            BUDGET.stage("audio encode", device),
            model.component("audio_encoder", device, on_tensor=on_tensor, activations=working) as enc,
            interruptible(enc, on_tensor),
        ):
            audio_latent = encode_audio(Audio(audio.waveform.to(device), audio.sampling_rate), enc)
            finite.check(model, "audio encode", "audio_encoder", audio_latent)
            del enc
        frames = AudioLatentShape.from_duration(batch=1, duration=seconds, channels=8, mel_bins=16).frames
        dtype = model.precision_on(device).transformer
        audio_latent = audio_latent[:, :, :frames].to(dtype)

        shape = VideoPixelShape(batch=1, frames=num_frames, width=width, height=height, fps=frame_rate)
        conditionings = _image_conditioning(model, image, width, height, image_crf, device, on_tensor)
        if plan.base_sigmas is None:
            sigmas = LTX2Scheduler().execute(steps=steps).to(dtype=torch.float32, device=device)
        else:
            sigmas = torch.tensor(plan.base_sigmas, dtype=torch.float32, device=device)
        working = activations.denoise(model.config, width, height, num_frames, frame_rate, dtype)
        with (
            BUDGET.stage("stage 1 denoise", device),
            model.component(
                "transformer",
                device,
                with_distilled_lora=plan.base_lora,
                on_tensor=on_tensor,
                activations=working,
                hand_over=hand_over,
            ) as tr,
            interruptible(tr, on_tensor),
        ):
            if plan.base_guided:
                denoise = multi_modal_guider_denoising_func(
                    video_guider=MultiModalGuider(
                        params=_guider_params(model, cfg), negative_context=negative.video_encoding
                    ),
                    audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
                    v_context=positive.video_encoding,
                    a_context=positive.audio_encoding,
                    transformer=X0Model(tr),
                )
            else:
                denoise = simple_denoising_func(positive.video_encoding, positive.audio_encoding, X0Model(tr))
            state = _denoise(
                shape,
                conditionings,
                generator,
                sigmas,
                denoise,
                progress,
                device,
                dtype,
                initial_audio_latent=audio_latent,
            )
            finite.check(model, "stage 1 denoise", "transformer", state.latent)
            del denoise, tr  # nothing may hold the transformer once the budget lets it go
    return A2VLatent(
        state.latent,
        audio_latent,
        audio,
        image,
        width,
        height,
        num_frames,
        frame_rate,
        seed,
        prompt_encoding=(_prompt_key(model, prompt, device), _to(positive, "cpu")),
        noise_state=generator.get_state(),
        recipe=plan.name,
    )


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
    with torch.inference_mode(), BUDGET.stage("upscale", device):
        with (
            # Kept for stage 2's image conditioning, the next thing to run (no denoising between: no peak grows).
            model.component("video_encoder", device, on_tensor=on_tensor, hand_over=True) as encoder,
            model.component("spatial_upsampler", device, on_tensor=on_tensor) as upsampler,
            interruptible(encoder, on_tensor),
            interruptible(upsampler, on_tensor),
        ):
            video = upsample_video(latent.video.to(device), encoder, upsampler)
            finite.check(model, "upscale", "spatial_upsampler", video)
            del encoder, upsampler
    if progress is not None:
        progress(1, 1)
    return replace(latent, video=video, width=width, height=height)


def sample_refine(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    prompt: str,
    seed: int,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    image_crf: int = DEFAULT_IMAGE_CRF,
) -> A2VLatent:
    """Stage 2: the distilled LoRA's fixed schedule (the recipe stage 1 ran) on the upscaled latent, audio still
    frozen, no CFG, on stage 1's transformer: the fast recipe's has the LoRA fused already; the reference's gets
    it applied at each forward from its resident factors (components/lora_layers.py), so the checkpoint is not
    read again."""
    generator = _generator(device, seed, latent)
    with torch.inference_mode():
        kept = latent.prompt_encoding
        if kept is not None and kept[0] == _prompt_key(model, prompt, device):
            positive = _to(kept[1], device)
        else:
            (positive,) = _encode_prompts(model, [prompt], device, on_tensor, names=("prompt",))
        shape = VideoPixelShape(
            batch=1, frames=latent.num_frames, width=latent.width, height=latent.height, fps=latent.frame_rate
        )
        conditionings = _image_conditioning(
            model, latent.image, shape.width, shape.height, image_crf, device, on_tensor
        )
        plan = get_recipe(latent.recipe)
        sigmas = torch.tensor(plan.refine_sigmas, device=device)
        dtype = model.precision_on(device).transformer
        working = activations.denoise(model.config, shape.width, shape.height, shape.frames, shape.fps, dtype)
        with (
            BUDGET.stage("stage 2 denoise", device),
            # The factors before the transformer: under a tight budget their room is made by streaming some units
            # of the transformer stage 1 kept, rather than by reading the checkpoint again.
            _lora_factors(model, device, fused=plan.base_lora) as lora,
            model.component(
                "transformer", device, with_distilled_lora=plan.base_lora, on_tensor=on_tensor, activations=working
            ) as tr,
            applied(tr, lora) if lora is not None else contextlib.nullcontext(),
            interruptible(tr, on_tensor),
        ):
            denoise = simple_denoising_func(positive.video_encoding, positive.audio_encoding, X0Model(tr))
            state = _denoise(
                shape,
                conditionings,
                generator,
                sigmas,
                denoise,
                progress,
                device,
                dtype,
                noise_scale=float(sigmas[0]),
                initial_video_latent=latent.video.to(device, dtype),
                initial_audio_latent=latent.audio_latent.to(device, dtype),
            )
            finite.check(model, "stage 2 denoise", "transformer", state.latent)
            del denoise, tr
    return replace(latent, video=state.latent, seed=seed, noise_state=generator.get_state())


@contextlib.contextmanager
def _lora_factors(model: ModelSpec, device: torch.device, fused: bool):
    """The distilled LoRA's factors for a block, or None when the transformer's weights have it `fused`."""
    if fused:
        yield None
        return
    with model.distilled_lora(device) as lora:
        yield lora


def decode(
    model: ModelSpec,
    device: torch.device,
    latent: A2VLatent,
    progress: Progress | None = None,
    on_tensor: OnTensor = None,
    tiling: TilingConfig | None = None,
) -> tuple[torch.Tensor, Audio]:
    """Frames [F, H, W, 3] float in 0..1 and the conditioning audio [channels, samples] of the video's length, as
    a container can carry it (inputs.playable).

    Tiled as `tiling` says (default: the reference's `TilingConfig.default()`, 512 px and 64 frames with
    overlaps; `TilingConfig()` decodes in one piece); progress is reported after each temporal tile."""
    tiling = TilingConfig.default() if tiling is None else tiling
    tiled = tiling.spatial_config is not None or tiling.temporal_config is not None
    total = get_video_chunks_number(latent.num_frames, tiling) if tiled else 1
    chunks = []
    working = activations.decode(
        model.config,
        latent.width,
        latent.height,
        latent.num_frames,
        tiling if tiled else None,
        model.precision_on(device).vae,
    )
    BUDGET.release_handed_over()  # no stage after the decode uses what an earlier one kept
    with torch.inference_mode(), BUDGET.stage("decode", device):
        with (
            model.component("video_decoder", device, on_tensor=on_tensor, activations=working) as decoder,
            interruptible(decoder, on_tensor),
            finite.watched(decoder, model, "decode", "video_decoder"),
        ):
            generator = _generator(device, latent.seed, latent)
            # In the decoder's compute dtype: a transformer computing in bf16 beside a VAE in float32 (ComfyUI's
            # --bf16-unet alone) hands over a bf16 latent, which the decoder's float32 convolutions refuse.
            video = latent.video.to(device, model.precision_on(device).vae)
            for chunk in decode_video(video, decoder, tiling if tiled else None, generator):
                chunks.append(chunk.cpu())
                if progress is not None:
                    progress(len(chunks), max(total, len(chunks)))
            del decoder
    frames = torch.cat(chunks, dim=0).float() / 255.0
    samples = round(latent.num_frames / latent.frame_rate * latent.audio.sampling_rate)
    audio = Audio(waveform=latent.audio.waveform[0, :, :samples].cpu(), sampling_rate=latent.audio.sampling_rate)
    return frames, playable(audio)
