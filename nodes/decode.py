"""LTX2Decode: the video latent to frames, with the conditioning audio of the video's length."""

from comfy_api.latest import io

from .adapters import audio_out
from .run import node_run
from .types import LTX2LatentType, LTX2ModelType


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
        from ..ltx2.a2v import stages as a2v

        with node_run(model) as run:
            frames, audio = a2v.decode(model, run.device, latent, run.progress, run.on_tensor)
        return io.NodeOutput(frames, audio_out(audio), float(latent.frame_rate))
