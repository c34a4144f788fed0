"""LTX2Decode: the video latent to frames, with the conditioning audio of the video's length; LTX2DecodeToVideo:
the same written to an mp4 as it is decoded (ComfyUI's VIDEO), for videos too long to hold as frames."""

from pathlib import Path

from comfy_api.latest import io

from ..ltx2.a2v.limits import TILE_LIMITS, check_numbers, check_tiles
from .adapters import audio_out
from .run import node_run
from .search_aliases import search_aliases
from .types import LTX2LatentType, LTX2ModelType, check_links, expect


def _tile(name: str, default: int, step: int, tooltip: str) -> io.Int.Input:
    low, high, _ = TILE_LIMITS[name]
    return io.Int.Input(name, default=default, min=low, max=high, step=step, optional=True, tooltip=tooltip)


class LTX2Decode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX2Decode",
            display_name="LTX-2 Decode (frames + audio)",
            category="model/latent/ltxv",
            description="Decodes the LTX-2 video latent to frames, tile by tile, with the input audio cut to the "
            "video's length.",
            **search_aliases("vae decode", "decode", "tiled decode", "frames", "audio"),
            inputs=[
                LTX2ModelType.Input("model"),
                LTX2LatentType.Input("latent"),
                # ltx-pipelines' TilingConfig.default(): the same frames as the reference, and a decode whose peak
                # does not grow with the video's size.
                _tile("spatial_tile", 512, 32, "Decode in tiles of this many pixels (0: the whole frame at once)"),
                _tile("spatial_overlap", 64, 32, "Pixels two neighbouring tiles share"),
                _tile("temporal_tile", 64, 8, "Decode this many frames at a time (0: all at once)"),
                _tile("temporal_overlap", 24, 8, "Frames two neighbouring chunks share"),
            ],
            outputs=[
                io.Image.Output(display_name="frames"),
                io.Audio.Output(display_name="audio"),
                io.Float.Output(display_name="frame_rate"),
            ],
        )

    @classmethod
    def validate_inputs(
        cls, spatial_tile=512, spatial_overlap=64, temporal_tile=64, temporal_overlap=24, model=None, latent=None
    ) -> bool | str:
        problem = check_links(model=model, latent=latent)
        if problem:
            return problem
        tiles = dict(
            spatial_tile=spatial_tile,
            spatial_overlap=spatial_overlap,
            temporal_tile=temporal_tile,
            temporal_overlap=temporal_overlap,
        )
        if None in tiles.values():  # linked: checked when the node runs, by ltx-core
            return check_numbers(TILE_LIMITS, **tiles) or True
        return check_numbers(TILE_LIMITS, **tiles) or check_tiles(**tiles) or True

    @classmethod
    def execute(
        cls, model, latent, spatial_tile=512, spatial_overlap=64, temporal_tile=64, temporal_overlap=24
    ) -> io.NodeOutput:
        from ..ltx2.a2v.decode import decode

        model, latent, tiling = _checked(model, latent, spatial_tile, spatial_overlap, temporal_tile, temporal_overlap)
        with node_run(model) as run:
            frames, audio = decode(model, run.device, latent, run.progress, run.on_tensor, tiling)
        return io.NodeOutput(frames, audio_out(audio), float(latent.frame_rate))


class LTX2DecodeToVideo(io.ComfyNode):
    """ComfyUI's IMAGE holds every frame in float32 at once (a 2-minute 768x512 video: 13 GiB) and CreateVideo takes
    it whole: this node writes the frames to an mp4 as each temporal tile is decoded instead, a tile's frames in
    memory at a time, and outputs it as ComfyUI's VIDEO, which SaveVideo saves without encoding it again."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX2DecodeToVideo",
            display_name="LTX-2 Decode to Video (long videos)",
            category="model/latent/ltxv",
            description="Decodes the latent straight into a video file with its audio, never holding all the "
            "frames: for videos as long as the voice track. Connect to Save Video.",
            **search_aliases("vae decode", "decode", "video", "long video", "save video", "audio"),
            inputs=LTX2Decode.define_schema().inputs,
            outputs=[
                io.Video.Output(display_name="video"),
                io.Audio.Output(display_name="audio"),
                io.Float.Output(display_name="frame_rate"),
            ],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return LTX2Decode.validate_inputs(**inputs)

    @classmethod
    def execute(
        cls, model, latent, spatial_tile=512, spatial_overlap=64, temporal_tile=64, temporal_overlap=24
    ) -> io.NodeOutput:
        import uuid

        import folder_paths
        from comfy_api.latest import InputImpl

        from ..ltx2.a2v.decode import decode_to_mp4

        model, latent, tiling = _checked(model, latent, spatial_tile, spatial_overlap, temporal_tile, temporal_overlap)
        # ComfyUI's temp folder: emptied when the server starts; SaveVideo copies the file to the output folder.
        folder = Path(folder_paths.get_temp_directory()) / "ltx2"
        folder.mkdir(parents=True, exist_ok=True)
        with node_run(model) as run:
            path, audio = decode_to_mp4(
                model, run.device, latent, folder / f"{uuid.uuid4().hex}.mp4", run.progress, run.on_tensor, tiling
            )
        return io.NodeOutput(InputImpl.VideoFromFile(str(path)), audio_out(audio), float(latent.frame_rate))


def _checked(model, latent, spatial_tile, spatial_overlap, temporal_tile, temporal_overlap):
    """(model, latent, ltx-core's TilingConfig), the links checked at run time."""
    from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

    from ..ltx2.a2v.latent import A2VLatent
    from ..ltx2.components.model_spec import ModelSpec

    expect(model, ModelSpec, "model")
    expect(latent, A2VLatent, "latent")
    tiling = TilingConfig(
        spatial_config=SpatialTilingConfig(spatial_tile, spatial_overlap) if spatial_tile else None,
        temporal_config=TemporalTilingConfig(temporal_tile, temporal_overlap) if temporal_tile else None,
    )
    return model, latent, tiling
