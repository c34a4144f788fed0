"""Writes the two-stage A2V example workflows in both of ComfyUI's formats from one description.

    .venv/bin/python tools/make_workflows.py

example_workflows/<name>.json      UI format: drag it into the page; listed in the template browser
example_workflows/api/<name>.json  API format: POST it to /prompt

Variants of one graph: ltx2_a2v_22b names the LTX-2.3 release files (768x512, 97 frames: what users open),
ltx2_a2v_22b_fast the same with the fast recipe, ltx2_a2v_first_last_frame with a last-frame keyframe,
ltx2_a2v_user_lora with the user's LoRA, ltx2_a2v_long_voice as long as its voice track (in windows, decoded to the
video file); ltx2_a2v_two_stage is the tiny test bundle's (tools/make_tiny_bundle.py: the demo and the tests run
it).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "ltx2_a2v_two_stage"  # the tiny bundle's variant

# The release files ComfyUI's own LTX-2.3 image+audio template names (video_ltx2_3_ia2v, comfyui-workflow-templates
# 0.11.41), the files a ComfyUI LTX-2.3 user already has: name -> (ComfyUI folder, download address). The README
# table lists them with their sizes (tests/unit/pack/test_workflow_files.py checks both against each other).
CHECKPOINT = "ltx-2.3-22b-dev-fp8.safetensors"
TEXT_ENCODER = "gemma_3_12B_it_fp4_mixed.safetensors"
DISTILLED_LORA = "ltx_2.3_22b_distilled_1.1_lora_dynamic_fro09_avg_rank_111_bf16.safetensors"
UPSCALER = "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
RELEASE_FILES = {
    CHECKPOINT: ("checkpoints", "https://huggingface.co/Lightricks/LTX-2.3-fp8/resolve/main/" + CHECKPOINT),
    TEXT_ENCODER: (
        "text_encoders",
        "https://huggingface.co/Comfy-Org/ltx-2/resolve/main/split_files/text_encoders/" + TEXT_ENCODER,
    ),
    DISTILLED_LORA: (
        "loras",
        "https://huggingface.co/Comfy-Org/ltx-2.3/resolve/main/split_files/loras/" + DISTILLED_LORA,
    ),
    UPSCALER: ("latent_upscale_models", "https://huggingface.co/Lightricks/LTX-2.3/resolve/main/" + UPSCALER),
}
# The loader inputs that name a file, per node class.
FILE_INPUTS = {
    "LoadLTX2Quantized": ("ckpt_name", "text_encoder", "distilled_lora"),
    "SpatialUpscale": ("upscale_model",),
}

REAL_FILES_NOTE = (
    f"With the LTX-2.3 release files pick: checkpoint {CHECKPOINT} (models/checkpoints), text encoder "
    f"{TEXT_ENCODER} (models/text_encoders), distilled LoRA {DISTILLED_LORA} (models/loras), upscaler {UPSCALER} "
    "(models/latent_upscale_models): the ltx2_a2v_22b workflow names them. The defaults here are the tiny test "
    "bundle's (tools/make_tiny_bundle.py). Stage 1 runs at half the final size: 384x256 gives 768x512."
)

PROMPT = "A young woman speaks calmly to the camera in a softly lit room, her lips moving with the words."
NEGATIVE = "blurry, low quality, still frame, distorted face, watermark"

# id -> (class, title, widget inputs in the node's input order, linked inputs {input: (node id, output slot)}, pos)
GRAPH = {
    "1": ("LoadImage", "Image (first frame)", {"image": "ltx2_a2v_portrait.png", "upload": "image"}, {}, (0, 0)),
    "2": ("LoadAudio", "Audio (drives the lips)", {"audio": "ltx2_a2v_voice.wav"}, {}, (0, 360)),
    "3": (
        "LoadLTX2Quantized",
        "Prepare LTX-2 (quantized)",
        {
            "ckpt_name": "ltx-2.3-tiny-dev.safetensors",
            "text_encoder": "gemma-3-tiny-it",
            "quantization": "fp8_scaled",
            "text_encoder_quantization": "none",
            "residency": "cold_start",
            "distilled_lora": "ltx-2.3-tiny-distilled-lora-384.safetensors",
            "distilled_lora_strength": 1.0,
        },
        {},
        (0, 600),
    ),
    "4": (
        "A2VSampler",
        "Stage 1 (half size)",
        {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "seed": 42,
            "width": 384,
            "height": 256,
            "num_frames": 49,
            "frame_rate": 24.0,
            "steps": 20,
            "cfg": 3.0,
            "stage": "base",
            "image_crf": 33,
        },
        {"model": ("3", 0), "image": ("1", 0), "audio": ("2", 0)},
        (420, 0),
    ),
    "5": (
        "SpatialUpscale",
        "2x latent upscale",
        {"upscale_model": "ltx-2.3-tiny-spatial-upscaler-x2.safetensors"},
        {"model": ("3", 0), "latent": ("4", 0)},
        (420, 560),
    ),
    "6": (
        "A2VSampler",
        "Stage 2 (distilled LoRA)",
        {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "seed": 42,
            "width": 384,
            "height": 256,
            "num_frames": 49,
            "frame_rate": 24.0,
            "steps": 3,
            "cfg": 1.0,
            "stage": "refine",
            "image_crf": 33,
        },
        {"model": ("3", 0), "image": ("1", 0), "audio": ("2", 0), "latent": ("5", 0)},
        (840, 0),
    ),
    "7": (
        "LTX2Decode",
        "Decode frames + audio",
        {
            "spatial_tile": 512,
            "spatial_overlap": 64,
            "temporal_tile": 64,
            "temporal_overlap": 24,
        },
        {"model": ("3", 0), "latent": ("6", 0)},
        (840, 560),
    ),
    "8": ("CreateVideo", "Create video", {"fps": 24.0}, {"images": ("10", 0), "audio": ("7", 1)}, (1260, 440)),
    "9": (
        "SaveVideo",
        "Save mp4",
        {"filename_prefix": "ltx2_a2v/video", "format": "mp4", "codec": "h264"},
        {"video": ("8", 0)},
        (1680, 120),
    ),
    # Between decode and video: reports the run (per-stage time and peak) once the frames exist.
    "10": (
        "VRAMGuard",
        "VRAM guard + run report",
        {"budget_gb": 0.0, "action": "enforce"},
        {"passthrough": ("7", 0)},
        (1260, 0),
    ),
}
# Output socket types, for the UI format's links.
OUTPUT_TYPES = {
    "LoadImage": ["IMAGE", "MASK"],
    "LoadAudio": ["AUDIO"],
    "LoadLTX2Quantized": ["LTX2_MODEL"],
    "A2VSampler": ["LTX2_LATENT"],
    "SpatialUpscale": ["LTX2_LATENT"],
    "LTX2Decode": ["IMAGE", "AUDIO", "FLOAT"],
    "LTX2DecodeToVideo": ["VIDEO", "AUDIO", "FLOAT"],
    "LTX2Keyframe": ["LTX2_KEYFRAMES"],
    "LTX2LoRA": ["LTX2_MODEL"],
    "CreateVideo": ["VIDEO"],
    "SaveVideo": [],
    "VRAMGuard": ["*", "STRING"],
}
# Widgets the page shows after a value, with their saved value (seed's "control after generate").
EXTRA_WIDGET_VALUES = {("A2VSampler", "seed"): "fixed"}
# The sampler's optional widgets in its schema's order, with their defaults: the UI form's values are positional,
# so a variant that sets a later one gives every one before it too.
OPTIONAL_WIDGETS = {
    "A2VSampler": (
        ("recipe", "reference"),
        ("audio_start", 0.0),
        ("window_frames", 0),
        ("overlap_frames", 0),
        ("frames_from_audio", False),
    )
}


RELEASE_NOTE = (
    f"Files of ComfyUI's own LTX-2.3 template (the page offers to download a missing one): checkpoint {CHECKPOINT} "
    f"in models/checkpoints, text encoder {TEXT_ENCODER} in models/text_encoders, distilled LoRA {DISTILLED_LORA} "
    f"in models/loras, upscaler {UPSCALER} in models/latent_upscale_models (docs/files.md). fp8_scaled keeps the "
    "transformer at ~18 GiB; the VRAM guard's budget_gb 0 takes what the GPU can give, on a 24 GB GPU 20 (14 beside "
    "a 4 GiB TTS model: the README's card table). Stage 1 runs at half the final size: 384x256 gives 768x512."
)


@dataclass(frozen=True)
class Variant:
    """GRAPH changed: widget values replaced, nodes added (or replaced), inputs linked anew, nodes left out."""

    note: str
    widgets: dict = field(default_factory=dict)  # node id -> widget values replacing GRAPH's
    nodes: dict = field(default_factory=dict)  # node id -> (class, title, widgets, links, pos), as in GRAPH
    links: dict = field(default_factory=dict)  # node id -> {input: (node id, output slot)} added or replaced
    drop: tuple = ()  # node ids left out


RELEASE_WIDGETS = {
    "3": {
        "ckpt_name": CHECKPOINT,
        "text_encoder": TEXT_ENCODER,
        "text_encoder_quantization": "fp8_scaled",
        "distilled_lora": DISTILLED_LORA,
    },
    "4": {"num_frames": 97, "steps": 30},
    "5": {"upscale_model": UPSCALER},
    "6": {"num_frames": 97},
}
FAST = {"cfg": 1.0, "recipe": "fast"}
FAST_NOTE = (
    " Fast recipe: the distilled LoRA in both stages, 8 + 3 steps at CFG 1 (steps and cfg of stage 1 do not apply)."
)
# A keyframe at the last frame: the video ends on this image (the sample portrait here: pick your own).
LAST_FRAME = {
    "11": ("LoadImage", "Image (last frame)", {"image": "ltx2_a2v_portrait.png", "upload": "image"}, {}, (0, 1000)),
    "12": ("LTX2Keyframe", "Keyframe: last frame", {"frame": -1, "strength": 1.0}, {"image": ("11", 0)}, (420, 1000)),
}
# The user's LoRA between the loader and every node that takes the model.
USER_LORA = {
    "13": (
        "LTX2LoRA",
        "Your LoRA",
        {"lora_name": "your_ltx-2.3_lora.safetensors", "strength": 1.0},
        {"model": ("3", 0)},
        (0, 1000),
    )
}
MODEL_USERS = ("4", "5", "6", "7")

# name -> Variant; GRAPH itself is the tiny bundle's variant.
VARIANTS = {
    NAME: Variant(REAL_FILES_NOTE),
    "ltx2_a2v_22b": Variant(RELEASE_NOTE, RELEASE_WIDGETS),
    # The fast recipe (ltx2/a2v/recipes.py): ComfyUI template's distilled schedule, 8 + 3 steps at CFG 1.
    "ltx2_a2v_22b_fast": Variant(RELEASE_NOTE + FAST_NOTE, {**RELEASE_WIDGETS, "4": {**RELEASE_WIDGETS["4"], **FAST}}),
    "ltx2_a2v_first_last_frame": Variant(
        RELEASE_NOTE + " First and last frame: the video starts on the first image and ends on the second (LTX-2 "
        "Keyframe at frame -1; chain more keyframes for frames between, each with its strength).",
        RELEASE_WIDGETS,
        LAST_FRAME,
        {"4": {"keyframes": ("12", 0)}},
    ),
    "ltx2_a2v_user_lora": Variant(
        RELEASE_NOTE + " Your LoRA: put it in models/loras and pick it in LTX-2 LoRA (chain several; connect a "
        "value to video_strength or audio_strength to give a branch its own strength).",
        RELEASE_WIDGETS,
        USER_LORA,
        {node: {"model": ("13", 0)} for node in MODEL_USERS},
    ),
    # A voice track of any length into one video: its length from the audio, made in windows of about 20 s, written
    # to the mp4 as it is decoded (no frames held).
    "ltx2_a2v_long_voice": Variant(
        RELEASE_NOTE + FAST_NOTE + " As long as the voice: num_frames follows the audio (frames_from_audio), made "
        "in windows of about 20 s that continue each other, decoded straight to the video file. Pick your voice "
        "track (a minute: 1,433 frames).",
        {**RELEASE_WIDGETS, "4": {**RELEASE_WIDGETS["4"], **FAST, "num_frames": 1441, "frames_from_audio": True}},
        {
            "7": (
                "LTX2DecodeToVideo",
                "Decode to video (long)",
                {"spatial_tile": 512, "spatial_overlap": 64, "temporal_tile": 64, "temporal_overlap": 24},
                {"model": ("3", 0), "latent": ("6", 0)},
                (840, 560),
            )
        },
        {"9": {"video": ("10", 0)}},
        drop=("8",),
    ),
}


def models_of(cls: str, widgets: dict) -> list[dict]:
    """The `models` entries of a loader (name, url, directory: the format of ComfyUI's templates, which the page's
    missing-models dialog reads) for the release files it names; none for the tiny bundle's."""
    names = [widgets[name] for name in FILE_INPUTS.get(cls, ()) if widgets[name] in RELEASE_FILES]
    return [{"name": n, "url": RELEASE_FILES[n][1], "directory": RELEASE_FILES[n][0]} for n in names]


def graph(name: str = NAME) -> dict:
    """GRAPH as variant `name` changes it."""
    variant = VARIANTS[name]
    nodes = {**GRAPH, **variant.nodes}
    out = {}
    for node_id, (cls, title, widgets, links, pos) in nodes.items():
        if node_id in variant.drop:
            continue
        widgets = {**widgets, **variant.widgets.get(node_id, {})}
        links = {**links, **variant.links.get(node_id, {})}
        out[node_id] = (cls, title, widgets, links, pos)
    return out


def api_workflow(name: str = NAME) -> dict:
    prompt = {}
    for node_id, (cls, title, widgets, links, _pos) in graph(name).items():
        inputs = {k: v for k, v in positional(cls, widgets).items() if k != "upload"}
        inputs.update({k: [src, slot] for k, (src, slot) in links.items()})
        prompt[node_id] = {"class_type": cls, "inputs": inputs, "_meta": {"title": title}}
        if models := models_of(cls, widgets):  # the API format has no properties: _meta holds them
            prompt[node_id]["_meta"]["models"] = models
    prompt["3"]["_meta"]["note"] = VARIANTS[name].note
    return prompt


def positional(cls: str, widgets: dict) -> dict:
    """The widget values in the order the page reads them: a node's optional widgets after its others, each one
    before the last given with its default (OPTIONAL_WIDGETS)."""
    optional = OPTIONAL_WIDGETS.get(cls, ())
    given = [i for i, (name, _) in enumerate(optional) if name in widgets]
    values = {k: v for k, v in widgets.items() if k not in dict(optional)}
    for name, default in optional[: max(given) + 1 if given else 0]:
        values[name] = widgets.get(name, default)
    return values


def ui_workflow(variant: str = NAME) -> dict:
    nodes, links = [], []
    link_id = 0
    outgoing: dict[tuple[str, int], list[int]] = {}
    incoming: dict[str, list[dict]] = {}
    nodes_of = graph(variant)
    for node_id, (cls, _title, _widgets, node_links, _pos) in nodes_of.items():
        incoming[node_id] = []
        for name, (src, slot) in node_links.items():
            link_id += 1
            kind = OUTPUT_TYPES[nodes_of[src][0]][slot]
            links.append([link_id, int(src), slot, int(node_id), len(incoming[node_id]), kind])
            outgoing.setdefault((src, slot), []).append(link_id)
            incoming[node_id].append({"name": name, "type": kind, "link": link_id})
    for node_id, (cls, title, widgets, _links, pos) in nodes_of.items():
        values = []
        for name, value in positional(cls, widgets).items():
            values.append(value)
            if (cls, name) in EXTRA_WIDGET_VALUES:
                values.append(EXTRA_WIDGET_VALUES[(cls, name)])
        outputs = [
            {"name": kind.lower(), "type": kind, "links": outgoing.get((node_id, slot), []), "slot_index": slot}
            for slot, kind in enumerate(OUTPUT_TYPES[cls])
        ]
        nodes.append(
            {
                "id": int(node_id),
                "type": cls,
                "title": title,
                "pos": list(pos),
                "size": [380, 200],
                "flags": {},
                "order": list(nodes_of).index(node_id),
                "mode": 0,
                "inputs": incoming[node_id],
                "outputs": outputs,
                "properties": {"Node name for S&R": cls, **({"models": m} if (m := models_of(cls, widgets)) else {})},
                "widgets_values": values,
            }
        )
    note_id = max(int(k) for k in nodes_of) + 1
    nodes.append(
        {
            "id": note_id,
            "type": "Note",
            "title": "Which files to pick",
            "pos": [420, 780],
            "size": [800, 180],
            "flags": {},
            "order": note_id - 1,
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {},
            "widgets_values": [VARIANTS[variant].note],
        }
    )
    # Columns 420 apart: at 70% the whole graph fits a 1600x900 window beside the page's side bar and menus.
    return {
        "last_node_id": note_id,
        "last_link_id": link_id,
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 0.7, "offset": [110, 210]}},
        "version": 0.4,
    }


def write() -> list[Path]:
    written = []
    for name in VARIANTS:
        ui, api = ROOT / "example_workflows" / f"{name}.json", ROOT / "example_workflows" / "api" / f"{name}.json"
        api.parent.mkdir(parents=True, exist_ok=True)
        ui.write_text(json.dumps(ui_workflow(name), indent=2) + "\n")
        api.write_text(json.dumps(api_workflow(name), indent=2) + "\n")
        written += [ui, api]
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
