"""ComfyUI's own LTX-2.3 image+audio template (`video_ltx2_3_ia2v`) as an API prompt, on given files and inputs.

A template is a UI-format workflow (what the page saves: nodes with positional `widgets_values`, links by id,
subgraphs, reroutes); ComfyUI's `/prompt` takes the API format (node id -> class_type and named inputs). The page
converts one into the other with each node class's input definitions; `api_prompt` does the same with the server's
`/object_info`:

- widget values are named in the order of the class's inputs (required, then optional), skipping sockets; an input
  with `control_after_generate` has one more value after its own (the page's "fixed / randomize" widget); a
  dynamic combo's value is followed by the chosen option's own widgets (`name.sub`); values left over at the end
  (an upload button's) are ignored;
- links are followed through reroutes, legacy primitive nodes (their value), bypassed nodes (mode 4: to their input
  of the same type) and subgraphs (inner nodes become `outer:inner`; a subgraph input linked outside takes that
  link, one set in `exposed` that value, an unlinked one leaves the inner widget's own value); muted nodes (mode 2)
  and nodes the server has no class for without a link out (notes) are left out;
- a switch whose `switch` is a constant (ComfySwitchNode) is replaced by the branch it takes, and only what the
  output nodes need is kept: ComfyUI validates every linked input of what it runs, lazy or not.

`ltx23_ia2v_prompt` sets what the template exposes on its face (its subgraph's inputs: prompt, size, frame rate,
duration, seed, files) as a user would, the prompt enhancer off (core's Gemma would write a new prompt first; the
pack has none), and the image and audio files.
"""

import json
import math
import subprocess
from pathlib import Path

TEMPLATE_ID = "video_ltx2_3_ia2v"
# The page's virtual nodes: never sent to the server.
REROUTE, PRIMITIVE = "Reroute", "PrimitiveNode"
MODE_NEVER, MODE_BYPASS = 2, 4
# Subgraph link ends: the subgraph's input node and output node.
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "COMFY_DYNAMICCOMBO_V3"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


class TemplateError(ValueError):
    """The template cannot be made into a prompt for this server (what, which node, what to do)."""


def find_template(python: str, template_id: str = TEMPLATE_ID) -> Path:
    """The template's JSON file in the templates package that `python` (the compared ComfyUI's) imports."""
    code = (
        "import sys\n"
        "from comfyui_workflow_templates import get_asset_path\n"
        f"print(get_asset_path({template_id!r}, {template_id + '.json'!r}))\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    path = Path(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else None
    if path is None or not path.is_file():
        raise TemplateError(
            f"the template {template_id} is not installed for {python}: "
            f"{(done.stderr.strip().splitlines() or ['no path printed'])[-1]}. The templates' JSON is the "
            "comfyui-workflow-templates-json package (with comfyui-workflow-templates-core for its manifest): "
            f"`{python} -m pip install --no-deps comfyui-workflow-templates-json comfyui-workflow-templates-core` "
            "at the versions comfyui-workflow-templates requires (tools/setup_lane_host.sh installs them)."
        )
    return path


# --- widgets ----------------------------------------------------------------------------------------------------------


def _inputs_in_order(definition: dict) -> list[tuple[str, list, bool]]:
    """(name, spec, required) of a class's or a dynamic combo option's inputs, in the page's order."""
    inputs, order = definition.get("input", definition.get("inputs", {})), definition.get("input_order", {})
    out = []
    for category in ("required", "optional"):
        specs = inputs.get(category, {})
        for name in order.get(category, list(specs)):
            out.append((name, specs[name], category == "required"))
    return out


def _is_widget(spec: list) -> bool:
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def name_widgets(class_type: str, definition: dict, values: list | dict, node: str) -> dict:
    """Widget values of a node, named by its class's input definitions."""
    if isinstance(values, dict):
        return dict(values)
    named, queue = {}, list(values)

    def take(inputs: list[tuple[str, list, bool]], prefix: str) -> None:
        for name, spec, required in inputs:
            if not _is_widget(spec):
                continue
            key = prefix + name
            if not queue:
                if required:
                    raise TemplateError(
                        f"node {node} ({class_type}): no value for its widget {key!r} (the template has "
                        f"{len(values)} widget values; this server's {class_type} has more widgets: another version)"
                    )
                return
            named[key] = queue.pop(0)
            options = spec[1] if len(spec) > 1 else {}
            if options.get("control_after_generate") and queue:
                queue.pop(0)  # the page's "fixed / increment / randomize" widget
            if spec[0] == DYNAMIC_COMBO:
                chosen = next((o for o in options.get("options", []) if o["key"] == named[key]), None)
                if chosen is None:
                    keys = [o["key"] for o in options.get("options", [])]
                    raise TemplateError(f"node {node} ({class_type}): {key}={named[key]!r} is not one of {keys}")
                take(_inputs_in_order(chosen), key + ".")

    take(_inputs_in_order(definition), "")
    return named


# --- the graph --------------------------------------------------------------------------------------------------------


def _links(graph: dict) -> dict[int, tuple[int, int]]:
    """link id -> (origin node id, origin slot); the top level lists arrays, a subgraph dicts."""
    out = {}
    for link in graph.get("links", []):
        if isinstance(link, dict):
            out[link["id"]] = (link["origin_id"], link["origin_slot"])
        else:
            out[link[0]] = (link[1], link[2])
    return out


class _Level:
    """One graph level: the top one, or a subgraph as one instance node of the level above has it."""

    def __init__(self, graph: dict, prefix: str, outer: "_Level | None", instance: dict | None, subgraphs: dict):
        self.graph, self.prefix, self.outer, self.instance, self.subgraphs = graph, prefix, outer, instance, subgraphs
        self.nodes = {n["id"]: n for n in graph.get("nodes", [])}
        self.links = _links(graph)


# What a link resolves to: ("link", api id, slot), ("value", v), ("unset",) or None (nothing).
def _resolve(level: _Level, node_id: int, slot: int, exposed: dict, used: set):
    if node_id == SUBGRAPH_INPUT:
        instance, spec = level.instance, level.graph["inputs"][slot]
        outer_input = next((i for i in instance.get("inputs", []) if i["name"] == spec["name"]), None)
        if outer_input is not None and outer_input.get("link") is not None:
            origin = level.outer.links[outer_input["link"]]
            return _resolve(level.outer, *origin, exposed, used)
        if level.outer.outer is None:  # the template's face: what a user sets there
            for key in (spec.get("label"), spec["name"]):
                if key in exposed:
                    used.add(key)
                    return ("value", exposed[key])
        return ("unset",)
    node = level.nodes[node_id]
    if node["type"] == REROUTE:
        link = node["inputs"][0].get("link")
        return None if link is None else _resolve(level, *level.links[link], exposed, used)
    if node["type"] == PRIMITIVE:
        return ("value", node["widgets_values"][0])
    if node.get("mode") == MODE_NEVER:
        return None
    if node.get("mode") == MODE_BYPASS:
        kind = node["outputs"][slot]["type"]
        match = next((i for i in node.get("inputs", []) if i["type"] == kind and i.get("link") is not None), None)
        return None if match is None else _resolve(level, *level.links[match["link"]], exposed, used)
    if node["type"] in level.subgraphs:
        inner = _Level(level.subgraphs[node["type"]], f"{level.prefix}{node_id}:", level, node, level.subgraphs)
        return _resolve_output(inner, slot, exposed, used)
    return ("link", f"{level.prefix}{node_id}", slot)


def _resolve_output(level: _Level, slot: int, exposed: dict, used: set):
    for link in level.graph.get("links", []):
        if isinstance(link, dict) and link["target_id"] == SUBGRAPH_OUTPUT and link["target_slot"] == slot:
            return _resolve(level, link["origin_id"], link["origin_slot"], exposed, used)
    return None


def _proxied_values(instance: dict) -> dict[tuple[str, str], object]:
    """Values a subgraph instance holds for its inner nodes' widgets (properties.proxyWidgets), when it has them."""
    proxies = instance.get("properties", {}).get("proxyWidgets", [])
    values = instance.get("widgets_values") or []
    if len(values) != len(proxies):
        return {}
    return {(str(node), widget): value for (node, widget), value in zip(proxies, values)}


def _expand(level: _Level, object_info: dict, exposed: dict, used: set, prompt: dict) -> None:
    proxied = _proxied_values(level.instance) if level.instance is not None else {}
    for node_id, node in level.nodes.items():
        kind = node["type"]
        if kind in (REROUTE, PRIMITIVE) or node.get("mode") in (MODE_NEVER, MODE_BYPASS):
            continue
        if kind in level.subgraphs:
            inner = _Level(level.subgraphs[kind], f"{level.prefix}{node_id}:", level, node, level.subgraphs)
            _expand(inner, object_info, exposed, used, prompt)
            continue
        api_id = f"{level.prefix}{node_id}"
        if kind not in object_info:
            if any(o.get("links") for o in node.get("outputs", [])):
                raise TemplateError(
                    f"node {api_id}: this server has no node class {kind!r}; a ComfyUI new enough for the template "
                    "(or the custom node that provides it) is needed"
                )
            continue  # a note
        inputs = name_widgets(kind, object_info[kind], node.get("widgets_values") or [], api_id)
        for (proxy_node, widget), value in proxied.items():
            if proxy_node == str(node_id) and widget in inputs:
                inputs[widget] = value
        for entry in node.get("inputs", []):
            if entry.get("link") is None:
                continue
            resolved = _resolve(level, *level.links[entry["link"]], exposed, used)
            if resolved is None:
                inputs.pop(entry["name"], None)
            elif resolved[0] == "link":
                inputs[entry["name"]] = [resolved[1], resolved[2]]
            elif resolved[0] == "value":
                inputs[entry["name"]] = resolved[1]
        prompt[api_id] = {"class_type": kind, "inputs": inputs, "_meta": {"title": node.get("title") or kind}}


def api_prompt(workflow: dict, object_info: dict, exposed: dict | None = None) -> dict:
    """The API prompt of a UI-format workflow; `exposed`: values for the top subgraph's unlinked inputs, by label or
    name. Every key of `exposed` must be used."""
    exposed, used, prompt = dict(exposed or {}), set(), {}
    subgraphs = {s["id"]: s for s in workflow.get("definitions", {}).get("subgraphs", [])}
    _expand(_Level(workflow, "", None, None, subgraphs), object_info, exposed, used, prompt)
    unused = sorted(set(exposed) - used)
    if unused:
        faces = [
            i.get("label") or i["name"]
            for s in subgraphs.values()
            for i in s.get("inputs", [])
            if any(n["type"] == s["id"] for n in workflow.get("nodes", []))
        ]
        raise TemplateError(f"the template has no unlinked input {unused} on its face; it has: {faces}")
    return prune(resolve_switches(prompt), object_info)


# --- after the conversion ---------------------------------------------------------------------------------------------


def resolve_switches(prompt: dict) -> dict:
    """A ComfySwitchNode whose `switch` is a constant (a value, or a PrimitiveBoolean's) replaced by the branch it
    takes."""
    prompt = json.loads(json.dumps(prompt))
    for node_id in [k for k, v in prompt.items() if v["class_type"] == "ComfySwitchNode"]:
        switch = prompt[node_id]["inputs"].get("switch")
        if isinstance(switch, list) and prompt[switch[0]]["class_type"] == "PrimitiveBoolean":
            switch = prompt[switch[0]]["inputs"].get("value")
        if not isinstance(switch, bool):
            continue
        taken = prompt[node_id]["inputs"].get("on_true" if switch else "on_false")
        del prompt[node_id]
        for node in prompt.values():
            for name, value in node["inputs"].items():
                if isinstance(value, list) and value == [node_id, 0]:
                    node["inputs"][name] = taken
    return prompt


def prune(prompt: dict, object_info: dict) -> dict:
    """Only the output nodes and what they need."""
    needed, todo = set(), [k for k, v in prompt.items() if object_info[v["class_type"]].get("output_node")]
    while todo:
        node_id = todo.pop()
        if node_id in needed:
            continue
        needed.add(node_id)
        todo += [v[0] for v in prompt[node_id]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return {k: v for k, v in prompt.items() if k in needed}


def set_inputs(prompt: dict, class_type: str, **inputs) -> list[str]:
    """Sets inputs of every node of `class_type`; the ids set (at least one, or an error)."""
    ids = [k for k, v in prompt.items() if v["class_type"] == class_type]
    if not ids:
        raise TemplateError(f"the prompt has no {class_type} node (a changed template?)")
    for node_id in ids:
        prompt[node_id]["inputs"].update(inputs)
    return ids


# --- the LTX-2.3 image+audio template ---------------------------------------------------------------------------------


def duration_for(frames: int, fps: int) -> float:
    """The template's `duration` for `frames` frames: it computes the length as int(duration x fps + 1)."""
    duration = (frames - 1) / fps
    if int(duration * fps + 1) != frames:
        raise TemplateError(
            f"{frames} frames at {fps} fps: core's template computes the length as int(duration x fps + 1), which "
            f"gives {int(duration * fps + 1)} for the nearest duration; take frames - 1 a multiple of the fps's "
            "factors (e.g. 25 frames at 24 fps)"
        )
    return duration


def ltx23_ia2v_prompt(
    workflow: dict,
    object_info: dict,
    *,
    checkpoint: str,
    distilled_lora: str,
    text_encoder: str,
    upscale_model: str,
    image: str,
    audio: str,
    prompt: str,
    seed: int,
    width: int,
    height: int,
    frames: int,
    fps: int,
) -> dict:
    """Core's template with these files and inputs, set where a user sets them (`width` x `height`: the output's
    size; stage 1 runs at half of it). The distilled LoRA's strength stays the template's (0.5)."""
    exposed = {
        "prompt": prompt,
        "prompt_enhance": False,
        "width": width,
        "height": height,
        "audio_start": 0.0,
        "duration": duration_for(frames, fps),
        "fps": fps,
        "seed": seed,
        "ckpt_name": checkpoint,
        "distilled_lora": distilled_lora,
        "text_encoder": text_encoder,
        "upscale_model": upscale_model,
        # the enhancer's Gemma LoRA: with the enhancer off it is never loaded, and pruned with the enhancer
        "lora": "",
    }
    api = api_prompt(workflow, object_info, exposed)
    set_inputs(api, "LoadImage", image=image)
    set_inputs(api, "LoadAudio", audio=audio)
    if not math.isclose(api[set_inputs(api, "LoraLoaderModelOnly")[0]]["inputs"]["strength_model"], 0.5):
        raise TemplateError("the template's distilled LoRA strength is no longer 0.5 (a changed template?)")
    return api
