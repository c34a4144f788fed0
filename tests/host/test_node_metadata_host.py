"""How users find the pack's nodes, as a real server describes them (GET /object_info): each node's category (the
node library's folder, where ComfyUI files its own LTX nodes), its one-line description (the tooltip) and its
search aliases, where the lane's ComfyUI serves them (0.33 does; 0.3.75's V3 schema has no such field, and the
nodes register without them)."""

from workflows import PACK_NODES

# The folders ComfyUI 0.33 files its own nodes of the same kind in: LTXAVTextEncoderLoader (model/loaders),
# KSampler (model/sampling), LTXVLatentUpsampler and LTXVAudioVAEDecode (model/latent/ltxv), LTXVAddGuide
# (model/conditioning/ltxv), LoraLoaderModelOnly (model/loaders), its utility nodes.
CATEGORIES = {
    "LoadLTX2Quantized": "model/loaders",
    "A2VSampler": "model/sampling",
    "SpatialUpscale": "model/latent/ltxv",
    "LTX2Decode": "model/latent/ltxv",
    "LTX2DecodeToVideo": "model/latent/ltxv",
    "VRAMGuard": "utilities",
    "LTX2Keyframe": "model/conditioning/ltxv",
    "LTX2LoRA": "model/loaders",
}
# What a user types looking for this pack: every node answers these ...
EVERY_NODE = {"ltx", "ltx-2", "lip sync", "talking", "audio to video"}
# ... and these the nodes they fit.
OWN_WORDS = {
    "LoadLTX2Quantized": {"fp8", "int8", "quantized", "vram"},
    "A2VSampler": {"sampler"},
    "SpatialUpscale": {"upscale"},
    "LTX2Decode": {"vae decode"},
    "LTX2DecodeToVideo": {"vae decode", "long video"},
    "VRAMGuard": {"vram", "free memory", "unload"},
    "LTX2Keyframe": {"keyframe", "first frame", "last frame"},
    "LTX2LoRA": {"lora"},
}


def test_nodes_are_filed_where_comfyui_files_its_own(host):
    info = host.object_info()
    assert {name: info[name]["category"] for name in PACK_NODES} == CATEGORIES
    core = {spec["category"] for name, spec in info.items() if name not in PACK_NODES}
    if "LTXVLatentUpsampler" in info:  # a ComfyUI with LTX-2 nodes of its own (0.33): the same folders
        assert set(CATEGORIES.values()) <= core, set(CATEGORIES.values()) - core


def test_each_node_says_what_it_does_in_one_line(host):
    info = host.object_info()
    for name in PACK_NODES:
        description = info[name]["description"]
        assert description and "\n" not in description and len(description) <= 160, (name, description)


def test_search_aliases_where_the_lane_serves_them(host):
    info = host.object_info()
    # Whether this ComfyUI serves aliases at all is read from its own nodes (0.33's GetICLoRAParameters has some).
    served = any(spec.get("search_aliases") for name, spec in info.items() if name not in PACK_NODES)
    for name in PACK_NODES:
        if served:
            aliases = set(info[name]["search_aliases"])
            assert EVERY_NODE | OWN_WORDS[name] <= aliases, (name, EVERY_NODE | OWN_WORDS[name] - aliases)
        else:  # 0.3.75: the nodes are listed, without the field
            assert not info[name].get("search_aliases"), name
