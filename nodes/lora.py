"""LTX2LoRA ("LTX-2 LoRA"): one of the user's own LoRAs on the model, with a strength for the video and the audio
branch; chain any number. Applied in both stages as ltx-pipelines applies its `loras`, kept beside the
transformer (ltx2/components/user_loras.py): changing a LoRA or its strength reads no weight again."""

import dataclasses

from comfy_api.latest import io

from ..ltx2.a2v.limits import check_numbers
from . import model_files
from .dependencies import require_packages
from .search_aliases import search_aliases
from .types import LTX2ModelType, check_links, expect

# ComfyUI's own LoRA loaders take -100..100; a trained LoRA is used between about -2 and 2.
STRENGTH = (-100.0, 100.0, "1.0")
LIMITS = {"strength": STRENGTH, "video_strength": STRENGTH, "audio_strength": STRENGTH}


class LTX2LoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX2LoRA",
            display_name="LTX-2 LoRA",
            category="model/loaders",
            description="Your own LoRA (character, style, camera) on the LTX-2 model, in both stages, with a "
            "strength for the video and the audio branch; chain several.",
            **search_aliases("lora", "lora loader", "style", "character", "lora stack"),
            inputs=[
                LTX2ModelType.Input("model"),
                io.Combo.Input(
                    "lora_name",
                    options=model_files.file_names("loras"),
                    tooltip="From models/loras: Lightricks' layout (diffusion_model. keys, lora_A / lora_B) or "
                    "ComfyUI-trained ones (lora_down / lora_up with alpha, kohya's lora_unet_ names)",
                ),
                io.Float.Input("strength", default=1.0, min=STRENGTH[0], max=STRENGTH[1], step=0.01),
                io.Float.Input(
                    "video_strength",
                    optional=True,
                    force_input=True,
                    tooltip="Connect a value to override strength on the video branch (and the cross-modal "
                    "attention layers)",
                ),
                io.Float.Input(
                    "audio_strength",
                    optional=True,
                    force_input=True,
                    tooltip="Connect a value to override strength on the audio branch",
                ),
            ],
            outputs=[LTX2ModelType.Output(display_name="model")],
        )

    @classmethod
    def validate_inputs(cls, lora_name, strength, model=None, video_strength=None, audio_strength=None) -> bool | str:
        problem = check_links(model=model) or check_numbers(
            LIMITS, strength=strength, video_strength=video_strength, audio_strength=audio_strength
        )
        if problem:
            return problem
        options = model_files.file_names("loras")
        if lora_name not in options:
            shown = ", ".join(options[:8]) + (" ..." if len(options) > 8 else "") or "none found"
            return f"lora_name: '{lora_name}' is not in models/loras/ ({shown})."
        return True

    @classmethod
    def fingerprint_inputs(cls, lora_name, **_) -> tuple:
        """A file replaced on disk under the same name is read again, not taken from ComfyUI's cache."""
        import folder_paths

        from ..ltx2.files.file_identity import identity

        path = folder_paths.get_full_path("loras", lora_name)
        return identity(path) if path else (lora_name, None)

    @classmethod
    def execute(cls, model, lora_name, strength, video_strength=None, audio_strength=None) -> io.NodeOutput:
        require_packages()
        from ..ltx2.components.model_spec import ModelSpec
        from ..ltx2.components.user_loras import UserLora
        from ..ltx2.files.lora_file import LoraFactors, transformer_shapes
        from ..ltx2.files.safetensors_file import read_header

        expect(model, ModelSpec, "model")
        path = model_files.resolve_file("lora_name", lora_name, ("loras",))
        # Checked now, from the headers, so that a LoRA for another model is refused before any stage runs.
        shapes = transformer_shapes(read_header(model.bundle.checkpoint, "ckpt_name"))
        LoraFactors(path, 1.0, "lora_name").fit_to(shapes, model.bundle.checkpoint.name)
        lora = UserLora(path, float(strength), _maybe(video_strength), _maybe(audio_strength))
        return io.NodeOutput(dataclasses.replace(model, loras=(*model.loras, lora)))


def _maybe(value) -> float | None:
    return None if value is None else float(value)
