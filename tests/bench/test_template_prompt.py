"""bench/template_prompt.py: a UI-format workflow made into the API prompt ComfyUI runs, as the page makes it.

The node definitions below are ComfyUI 0.33.0's, as its /object_info gives them (tooltips left out): a widget with
`control_after_generate`, a dynamic combo with its option's widgets, an autogrow input, an upload combo, a lazy
switch. The workflow holds what ComfyUI's LTX-2.3 template holds (a subgraph with inputs exposed on its face and
proxied widgets, a reroute, primitives, a bypassed node, a switch on a constant) and what older workflows hold (a
legacy PrimitiveNode, a muted node, a note)."""

import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from template_prompt import (  # noqa: E402  (bench/)
    TEMPLATE_ID,
    TemplateError,
    api_prompt,
    duration_for,
    find_template,
    name_widgets,
)

OBJECT_INFO = {
    "LoadImage": {
        "input": {"required": {"image": [["example.png"], {"image_upload": True}]}},
        "input_order": {"required": ["image"]},
        "output_node": False,
    },
    "SaveImage": {
        "input": {
            "required": {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        },
        "input_order": {"required": ["images", "filename_prefix"], "hidden": ["prompt", "extra_pnginfo"]},
        "output_node": True,
    },
    "ImageInvert": {
        "input": {"required": {"image": ["IMAGE"]}},
        "input_order": {"required": ["image"]},
        "output_node": False,
    },
    "PrimitiveInt": {
        "input": {
            "required": {"value": ["INT", {"min": -(2**63) + 1, "max": 2**63 - 1, "control_after_generate": "fixed"}]}
        },
        "input_order": {"required": ["value"]},
        "output_node": False,
    },
    "PrimitiveBoolean": {
        "input": {"required": {"value": ["BOOLEAN", {}]}},
        "input_order": {"required": ["value"]},
        "output_node": False,
    },
    "ComfySwitchNode": {
        "input": {
            "required": {
                "switch": ["BOOLEAN", {}],
                "on_false": ["COMFY_MATCHTYPE_V3", {"lazy": True, "template": {"template_id": "switch"}}],
                "on_true": ["COMFY_MATCHTYPE_V3", {"lazy": True, "template": {"template_id": "switch"}}],
            }
        },
        "input_order": {"required": ["switch", "on_false", "on_true"]},
        "output_node": False,
    },
    "ComfyMathExpression": {
        "input": {
            "required": {
                "expression": ["STRING", {"default": "a + b", "multiline": True}],
                "values": [
                    "COMFY_AUTOGROW_V3",
                    {"template": {"input": {"required": {"value": ["FLOAT,INT,BOOLEAN", {}]}}}},
                ],
            }
        },
        "input_order": {"required": ["expression", "values"]},
        "output_node": False,
    },
    "ResizeImageMaskNode": {
        "input": {
            "required": {
                "input": ["COMFY_MATCHTYPE_V3", {"template": {"template_id": "input_type"}}],
                "resize_type": [
                    "COMFY_DYNAMICCOMBO_V3",
                    {
                        "options": [
                            {
                                "key": "scale dimensions",
                                "inputs": {
                                    "required": {
                                        "width": ["INT", {"default": 512, "min": 0, "max": 16384}],
                                        "height": ["INT", {"default": 512, "min": 0, "max": 16384}],
                                        "crop": ["COMBO", {"default": "center", "options": ["disabled", "center"]}],
                                    }
                                },
                            },
                            {
                                "key": "scale by multiplier",
                                "inputs": {"required": {"multiplier": ["FLOAT", {"default": 1.0}]}},
                            },
                        ]
                    },
                ],
                "scale_method": ["COMBO", {"default": "area", "options": ["nearest-exact", "bilinear", "lanczos"]}],
            }
        },
        "input_order": {"required": ["input", "resize_type", "scale_method"]},
        "output_node": False,
    },
}

SUBGRAPH = {
    "id": "sg-1",
    "name": "Resize",
    "inputs": [
        {"name": "image", "type": "IMAGE"},
        {"name": "value", "type": "INT", "label": "width"},
        {"name": "value_1", "type": "INT", "label": "height"},
    ],
    "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
    "nodes": [
        {
            "id": 20,
            "type": "PrimitiveInt",
            "title": "Width",
            "mode": 0,
            "inputs": [{"name": "value", "type": "INT", "link": 100, "widget": {"name": "value"}}],
            "outputs": [{"name": "INT", "type": "INT", "links": [111]}],
            "widgets_values": [1280, "fixed"],
        },
        {
            "id": 21,
            "type": "PrimitiveInt",
            "title": "Height",
            "mode": 0,
            "inputs": [{"name": "value", "type": "INT", "link": 101, "widget": {"name": "value"}}],
            "outputs": [{"name": "INT", "type": "INT", "links": [104]}],
            "widgets_values": [720, "fixed"],
        },
        {
            "id": 31,
            "type": "ComfyMathExpression",
            "mode": 0,
            "inputs": [
                {"name": "values.a", "type": "INT", "link": 111},
                {"name": "values.b", "type": "INT", "link": None},
            ],
            "outputs": [{"name": "FLOAT", "links": []}, {"name": "INT", "type": "INT", "links": [103]}],
            "widgets_values": ["a/2"],
        },
        {
            "id": 23,
            "type": "ResizeImageMaskNode",
            "mode": 0,
            "inputs": [
                {"name": "input", "type": "IMAGE", "link": 102},
                {"name": "resize_type.width", "type": "INT", "link": 103, "widget": {"name": "resize_type.width"}},
                {"name": "resize_type.height", "type": "INT", "link": 104, "widget": {"name": "resize_type.height"}},
            ],
            "outputs": [{"name": "resized", "type": "IMAGE", "links": [105]}],
            "widgets_values": ["scale dimensions", 512, 512, "center", "lanczos"],
        },
        {
            "id": 24,
            "type": "Reroute",
            "mode": 0,
            "inputs": [{"name": "", "type": "*", "link": 105}],
            "outputs": [{"links": [106]}],
        },
        {
            "id": 25,
            "type": "ImageInvert",
            "mode": 4,  # bypassed: its image goes through
            "inputs": [{"name": "image", "type": "IMAGE", "link": 106}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [107]}],
            "widgets_values": [],
        },
        {
            "id": 27,
            "type": "PrimitiveBoolean",
            "mode": 0,
            "outputs": [{"name": "BOOLEAN", "type": "BOOLEAN", "links": [108]}],
            "widgets_values": [False],
        },
        {
            "id": 28,
            "type": "ImageInvert",
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": 112}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [109]}],
            "widgets_values": [],
        },
        {
            "id": 26,
            "type": "ComfySwitchNode",
            "mode": 0,
            "inputs": [
                {"name": "switch", "type": "BOOLEAN", "link": 108, "widget": {"name": "switch"}},
                {"name": "on_false", "type": "*", "link": 107},
                {"name": "on_true", "type": "*", "link": 109},
            ],
            "outputs": [{"name": "output", "type": "*", "links": [110]}],
            "widgets_values": [True],
        },
        {
            "id": 29,
            "type": "ImageInvert",
            "mode": 2,  # muted
            "inputs": [{"name": "image", "type": "IMAGE", "link": None}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}],
            "widgets_values": [],
        },
    ],
    "links": [
        {"id": 100, "origin_id": -10, "origin_slot": 1, "target_id": 20, "target_slot": 0, "type": "INT"},
        {"id": 101, "origin_id": -10, "origin_slot": 2, "target_id": 21, "target_slot": 0, "type": "INT"},
        {"id": 102, "origin_id": -10, "origin_slot": 0, "target_id": 23, "target_slot": 0, "type": "IMAGE"},
        {"id": 112, "origin_id": -10, "origin_slot": 0, "target_id": 28, "target_slot": 0, "type": "IMAGE"},
        {"id": 111, "origin_id": 20, "origin_slot": 0, "target_id": 31, "target_slot": 0, "type": "INT"},
        {"id": 103, "origin_id": 31, "origin_slot": 1, "target_id": 23, "target_slot": 1, "type": "INT"},
        {"id": 104, "origin_id": 21, "origin_slot": 0, "target_id": 23, "target_slot": 2, "type": "INT"},
        {"id": 105, "origin_id": 23, "origin_slot": 0, "target_id": 24, "target_slot": 0, "type": "IMAGE"},
        {"id": 106, "origin_id": 24, "origin_slot": 0, "target_id": 25, "target_slot": 0, "type": "IMAGE"},
        {"id": 107, "origin_id": 25, "origin_slot": 0, "target_id": 26, "target_slot": 1, "type": "IMAGE"},
        {"id": 108, "origin_id": 27, "origin_slot": 0, "target_id": 26, "target_slot": 0, "type": "BOOLEAN"},
        {"id": 109, "origin_id": 28, "origin_slot": 0, "target_id": 26, "target_slot": 2, "type": "IMAGE"},
        {"id": 110, "origin_id": 26, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
    ],
}

WORKFLOW = {
    "nodes": [
        {"id": 2, "type": "MarkdownNote", "mode": 0, "widgets_values": ["a note"]},
        {
            "id": 1,
            "type": "LoadImage",
            "mode": 0,
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [10]}],
            "widgets_values": ["face.png", "image"],  # the upload button's value after the file's
        },
        {
            "id": 3,
            "type": "sg-1",
            "mode": 0,
            "inputs": [
                {"name": "image", "type": "IMAGE", "link": 10},
                {"name": "value", "type": "INT", "link": None, "widget": {"name": "value"}},
            ],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [11]}],
            "properties": {"proxyWidgets": [["23", "scale_method"]]},
            "widgets_values": ["bilinear"],
        },
        {
            "id": 5,
            "type": "PrimitiveNode",
            "mode": 0,
            "outputs": [{"name": "STRING", "type": "STRING", "links": [12], "widget": {"name": "filename_prefix"}}],
            "widgets_values": ["from/primitive"],
        },
        {
            "id": 4,
            "type": "SaveImage",
            "mode": 0,
            "inputs": [
                {"name": "images", "type": "IMAGE", "link": 11},
                {"name": "filename_prefix", "type": "STRING", "link": 12, "widget": {"name": "filename_prefix"}},
            ],
            "widgets_values": ["ComfyUI"],
        },
    ],
    "links": [[10, 1, 0, 3, 0, "IMAGE"], [11, 3, 0, 4, 0, "IMAGE"], [12, 5, 0, 4, 1, "STRING"]],
    "definitions": {"subgraphs": [SUBGRAPH]},
}


def test_a_workflow_with_a_subgraph_becomes_the_prompt_the_page_would_queue():
    prompt = api_prompt(WORKFLOW, OBJECT_INFO, {"width": 320})
    assert {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()} == {
        "1": ("LoadImage", {"image": "face.png"}),
        "3:20": ("PrimitiveInt", {"value": 320}),  # set on the template's face
        "3:21": ("PrimitiveInt", {"value": 720}),  # not set there: the inner widget's own value
        "3:31": ("ComfyMathExpression", {"expression": "a/2", "values.a": ["3:20", 0]}),
        "3:23": (
            "ResizeImageMaskNode",
            {
                "input": ["1", 0],
                "resize_type": "scale dimensions",
                "resize_type.width": ["3:31", 1],
                "resize_type.height": ["3:21", 0],
                "resize_type.crop": "center",
                "scale_method": "bilinear",  # the subgraph instance's proxied widget
            },
        ),
        # through the switch (constant False), the bypassed node and the reroute; the legacy primitive's value
        "4": ("SaveImage", {"images": ["3:23", 0], "filename_prefix": "from/primitive"}),
    }
    assert prompt["3:20"]["_meta"]["title"] == "Width"


def test_a_seeds_control_widget_takes_a_value_of_its_own():
    ksampler = {  # ComfyUI 0.33.0's KSampler, its sockets and widgets in its order
        "input": {
            "required": {
                "model": ["MODEL", {}],
                "seed": ["INT", {"default": 0, "min": 0, "max": 2**64 - 1, "control_after_generate": True}],
                "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}],
                "sampler_name": [["euler", "dpmpp_2m"], {}],
                "scheduler": [["simple", "normal"], {}],
                "positive": ["CONDITIONING", {}],
                "negative": ["CONDITIONING", {}],
                "latent_image": ["LATENT", {}],
                "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}],
            }
        },
        "input_order": {
            "required": [
                "model",
                "seed",
                "steps",
                "cfg",
                "sampler_name",
                "scheduler",
                "positive",
                "negative",
                "latent_image",
                "denoise",
            ]
        },
    }
    values = [42, "randomize", 20, 7.0, "euler", "normal", 1.0]
    assert name_widgets("KSampler", ksampler, values, "3") == {
        "seed": 42,
        "steps": 20,
        "cfg": 7.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
    }


def test_the_switch_takes_its_other_branch_when_set_so():
    workflow = copy.deepcopy(WORKFLOW)
    next(n for n in workflow["definitions"]["subgraphs"][0]["nodes"] if n["id"] == 27)["widgets_values"] = [True]
    prompt = api_prompt(workflow, OBJECT_INFO, {"width": 320})
    assert prompt["4"]["inputs"]["images"] == ["3:28", 0]
    assert prompt["3:28"]["inputs"] == {"image": ["1", 0]}
    assert "3:23" not in prompt  # nothing an output needs


def test_a_node_with_fewer_widget_values_than_the_servers_class_is_refused():
    workflow = copy.deepcopy(WORKFLOW)
    next(n for n in workflow["definitions"]["subgraphs"][0]["nodes"] if n["id"] == 23)["widgets_values"] = [
        "scale dimensions",
        512,
    ]
    with pytest.raises(TemplateError, match=r"node 3:23 \(ResizeImageMaskNode\).*'resize_type.height'"):
        api_prompt(workflow, OBJECT_INFO, {"width": 320})


def test_a_class_the_server_lacks_is_named_and_a_value_for_no_input_is_refused():
    info = {k: v for k, v in OBJECT_INFO.items() if k != "ComfyMathExpression"}
    with pytest.raises(TemplateError, match="node 3:31: this server has no node class 'ComfyMathExpression'"):
        api_prompt(WORKFLOW, info, {"width": 320})
    with pytest.raises(TemplateError, match=r"no unlinked input \['fps'\].*\['image', 'width', 'height'\]"):
        api_prompt(WORKFLOW, OBJECT_INFO, {"width": 320, "fps": 24})


def test_the_templates_duration_gives_the_frame_count_or_is_refused():
    assert duration_for(25, 24) == 1.0
    assert int(duration_for(97, 24) * 24 + 1) == 97
    with pytest.raises(TemplateError, match="121 frames at 11 fps"):
        duration_for(121, 11)


def test_the_installed_template_has_what_the_benchmark_sets():
    """On a lane whose ComfyUI has the template (the LTX2_COMFYUI lane): its face and the nodes bench/core.py
    addresses are there; the conversion itself runs in `make bench-core`, against the server's /object_info."""
    try:
        path = find_template(sys.executable)
    except TemplateError as e:
        pytest.skip(f"no {TEMPLATE_ID} template in this lane: {str(e)[:160]}")
    import json

    workflow = json.loads(path.read_text())
    (subgraph,) = workflow["definitions"]["subgraphs"]
    faces = {i.get("label") or i["name"] for i in subgraph["inputs"]}
    assert faces >= {"prompt", "prompt_enhance", "width", "height", "duration", "fps", "seed", "ckpt_name"}
    assert faces >= {"distilled_lora", "text_encoder", "upscale_model", "audio_start", "lora"}
    kinds = {n["type"] for n in subgraph["nodes"]} | {n["type"] for n in workflow["nodes"]}
    assert kinds >= {"LoadImage", "LoadAudio", "LoraLoaderModelOnly", "VAEDecodeTiled", "SaveVideo"}
    lora = next(n for n in subgraph["nodes"] if n["type"] == "LoraLoaderModelOnly")
    assert lora["widgets_values"][1] == 0.5
