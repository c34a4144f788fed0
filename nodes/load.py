"""LoadLTX2Quantized ("Prepare LTX-2 (quantized)"): picks the files, the policies and the residency, checks that
this device runs the policies, and outputs the spec (ltx2/components/model_spec.py). Nothing is read beyond the
checkpoint's header here; components are built, quantized, when a stage needs them. The node id says "Load" because
saved workflows name it so."""

from comfy_api.latest import io

from ..ltx2.a2v.limits import check_numbers
from ..quant import policy_names
from . import model_files
from .dependencies import require_packages
from .search_aliases import search_aliases
from .types import LTX2ModelType

RESIDENCY = ("cold_start", "persistent")
LIMITS = {"distilled_lora_strength": (0.0, 2.0, "1.0")}
# The split files' inputs (optional: a full checkpoint needs none), with what each gives.
SPLIT_INPUTS = {
    "video_vae": "The video VAE, when the checkpoint is transformer-only (models/vae/)",
    "audio_vae": "The audio VAE with its vocoder, when the checkpoint is transformer-only (models/vae/)",
    "text_projection": "The text projection, when the checkpoint is transformer-only (models/text_encoders/)",
}


class LoadLTX2Quantized(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        low, high, _ = LIMITS["distilled_lora_strength"]
        return io.Schema(
            node_id="LoadLTX2Quantized",
            display_name="Prepare LTX-2 (quantized)",
            category="model/loaders",
            description="Picks the LTX-2.3 files and how they are quantized (fp8, int8, int4); each part is loaded "
            "when a stage needs it.",
            **search_aliases("fp8", "int8", "int4", "nvfp4", "quantized", "gemma", "checkpoint", "vram"),
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=model_files.checkpoint_names(),
                    tooltip="The LTX-2.3 checkpoint, e.g. ltx-2.3-22b-dev.safetensors, or a transformer-only file from "
                    "diffusion_models/ with the split files below",
                ),
                io.Combo.Input(
                    "text_encoder",
                    options=model_files.text_encoder_names(),
                    tooltip="Gemma-3: a single file (bf16, fp8, nvfp4) or the release folder",
                ),
                io.Combo.Input(
                    "quantization",
                    options=policy_names(),
                    default="none",
                    tooltip="How the transformer is stored. fp8_scaled: half of bf16, any device. "
                    "torchao_fp8_dynamic: fastest on RTX 40xx / H100+.",
                ),
                io.Combo.Input("text_encoder_quantization", options=policy_names(text_encoder=True), default="none"),
                io.Combo.Input(
                    "residency",
                    options=list(RESIDENCY),
                    default="cold_start",
                    tooltip="cold_start frees the model after each run; persistent keeps it within the budget",
                ),
                io.Combo.Input(
                    "distilled_lora",
                    options=model_files.file_names("loras", with_none=True),
                    tooltip="The distilled LoRA for stage 2, e.g. ltx-2.3-22b-distilled-lora-384",
                ),
                io.Float.Input("distilled_lora_strength", default=1.0, min=low, max=high, step=0.05),
                *(
                    io.Combo.Input(
                        field,
                        options=model_files.split_names(field),
                        default=model_files.NONE,
                        optional=True,
                        tooltip=tooltip,
                    )
                    for field, tooltip in SPLIT_INPUTS.items()
                ),
            ],
            outputs=[LTX2ModelType.Output(display_name="model")],
        )

    @classmethod
    def validate_inputs(
        cls,
        ckpt_name,
        text_encoder,
        quantization,
        text_encoder_quantization,
        residency,
        distilled_lora,
        distilled_lora_strength,
        video_vae=model_files.NONE,
        audio_vae=model_files.NONE,
        text_projection=model_files.NONE,
    ) -> bool | str:
        # ComfyUI 0.3.75 does not check V3 combo values against their options (it does for V1 nodes), so a
        # prompt from the API queue could name any file, '../' paths included. Check them here, at queue time.
        choices = {
            "ckpt_name": (ckpt_name, model_files.checkpoint_names()),
            "text_encoder": (text_encoder, model_files.text_encoder_names()),
            "quantization": (quantization, policy_names()),
            "text_encoder_quantization": (text_encoder_quantization, policy_names(text_encoder=True)),
            "residency": (residency, list(RESIDENCY)),
            "distilled_lora": (distilled_lora, model_files.file_names("loras", with_none=True)),
        }
        split = {"video_vae": video_vae, "audio_vae": audio_vae, "text_projection": text_projection}
        choices |= {field: (name, model_files.split_names(field)) for field, name in split.items()}
        for name, (value, options) in choices.items():
            if value not in options:
                shown = ", ".join(options[:8]) + (" ..." if len(options) > 8 else "") or "none found"
                return f"{name}: '{value}' is not one of the available choices ({shown})."
        return (
            check_numbers(LIMITS, distilled_lora_strength=distilled_lora_strength)
            or _compute_dtype_problem(quantization, text_encoder_quantization)
            or _missing(ckpt_name, split)
        )

    @classmethod
    def fingerprint_inputs(cls, ckpt_name, text_encoder, distilled_lora, **values) -> tuple:
        """ComfyUI runs the node again when this changes: a file replaced on disk under the same name (even a copy
        that keeps its modification time) is read again, not taken from ComfyUI's cache."""
        split = {field: values.get(field, model_files.NONE) for field in SPLIT_INPUTS}
        return model_files.identities(ckpt_name, text_encoder, distilled_lora, split)

    @classmethod
    def execute(
        cls,
        ckpt_name,
        text_encoder,
        quantization,
        text_encoder_quantization,
        residency,
        distilled_lora,
        distilled_lora_strength,
        video_vae=model_files.NONE,
        audio_vae=model_files.NONE,
        text_projection=model_files.NONE,
    ) -> io.NodeOutput:
        require_packages()
        # Imported here so that the node registers even when ltx-core or torch is missing.
        import comfy.model_management

        from ..ltx2.components.bundle_parts import check_bundle
        from ..ltx2.components.model_spec import ModelSpec
        from .precision import comfy_precision

        device = comfy.model_management.get_torch_device()
        split = {"video_vae": video_vae, "audio_vae": audio_vae, "text_projection": text_projection}
        bundle = _bundle(ckpt_name, text_encoder, distilled_lora, split)
        model = ModelSpec(
            bundle=bundle,
            config=check_bundle(bundle),
            quantization=quantization,
            text_encoder_quantization=text_encoder_quantization,
            residency=residency,
            distilled_lora_strength=distilled_lora_strength,
            precision=comfy_precision(device),
        ).checked_on(device)  # a policy this machine cannot run is refused here, before any weight is read
        return io.NodeOutput(model)


def _missing(ckpt_name: str, split: dict[str, str]) -> bool | str:
    """True, or what a transformer-only checkpoint lacks that no split input gives (from the headers: refused when
    queued, not when a stage needs the VAE). Any other problem with the files is the node's to report when it runs,
    as before split files were read."""
    from ..errors import LTX2InputError
    from .dependencies import missing_packages

    if missing_packages():  # said when the node runs (require_packages), with what to install
        return True
    from ..ltx2.components.bundle_parts import missing_parts
    from ..ltx2.components.table import Bundle

    try:
        checkpoint = model_files.resolve_file("ckpt_name", ckpt_name, model_files.CHECKPOINT_FOLDERS)
        files = {field: model_files.resolve_split(field, name) for field, name in split.items()}
        problems = missing_parts(Bundle(checkpoint=checkpoint, **files), split_only=True)
    except LTX2InputError:
        return True
    return problems[0] if problems else True


def _bundle(ckpt_name: str, text_encoder: str, distilled_lora: str, split: dict[str, str]):
    """The files the loader's choices name, resolved in ComfyUI's model folders."""
    from ..ltx2.components.table import Bundle

    lora = None
    if distilled_lora != model_files.NONE:
        lora = model_files.resolve_file("distilled_lora", distilled_lora, ("loras",))
    return Bundle(
        checkpoint=model_files.resolve_file("ckpt_name", ckpt_name, model_files.CHECKPOINT_FOLDERS),
        text_encoder=model_files.resolve_text_encoder(text_encoder),
        distilled_lora=lora,
        **{field: model_files.resolve_split(field, name) for field, name in split.items()},
    )


def resident_estimate(values: dict[str, str]) -> dict:
    """What the transformer and the text encoder will hold under the chosen policies, from the files' headers, for
    the loader's panel (GET /ltx2/estimate): the loader's own inputs, by name."""
    from ..ltx2.components.bundle_parts import check_bundle, estimates
    from ..ltx2.components.model_spec import ModelSpec

    split = {field: values.get(field) or model_files.NONE for field in SPLIT_INPUTS}
    named = ("ckpt_name", "text_encoder", "quantization", "text_encoder_quantization")
    problem = LoadLTX2Quantized.validate_inputs(
        **{n: values.get(n, "") for n in named},
        residency="cold_start",
        distilled_lora=model_files.NONE,
        distilled_lora_strength=1.0,
        **split,
    )
    if problem is not True:
        return {"error": problem}
    bundle = _bundle(values["ckpt_name"], values["text_encoder"], model_files.NONE, split)
    spec = ModelSpec(bundle, check_bundle(bundle), values["quantization"], values["text_encoder_quantization"])
    return {"components": estimates(bundle, spec.policies)}


def _compute_dtype_problem(quantization: str, text_encoder_quantization: str) -> str | None:
    """At queue time, a GPU-only policy this GPU runs but not in the compute dtype ComfyUI's flags choose (float32:
    torchao's fp8 and int4 kernels assert mid-load). What the device cannot run at all is said when the node runs,
    naming what to install or pick."""
    from .dependencies import missing_packages

    if missing_packages():  # the node says so when it runs
        return None
    import comfy.model_management

    from ..quant import POLICIES, ComputeDtypeUnavailable, PolicyUnavailable, check_policy
    from .precision import comfy_precision

    device = comfy.model_management.get_torch_device()
    precision = comfy_precision(device)
    for name, value, dtype in (
        ("quantization", quantization, precision.transformer),
        ("text_encoder_quantization", text_encoder_quantization, precision.text_encoder),
    ):
        try:
            check_policy(POLICIES[value], device, name, dtype)
        except ComputeDtypeUnavailable as error:
            return str(error)
        except PolicyUnavailable:
            continue
    return None
