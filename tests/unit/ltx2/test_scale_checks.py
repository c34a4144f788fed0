"""No silent black video, no raw error: every scale a file brings is checked when its header is read (finite,
positive, the shape and dtype its format requires, a plausible range), under every policy alike, and refused naming
the file, the key and the value; a block scale as its weight streams in; each malformed-file class refused naming the
file, the key and the fix; a NaN appearing in a stage's output caught at that stage, naming the component."""

import json

import pytest
import torch
from building import build_component
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_a2v.errors import LTX2InputError, LTX2LoadError, LTX2NonFiniteError
from ltx2_a2v.ltx2.a2v import finite
from ltx2_a2v.ltx2.components.bundle_parts import check_bundle
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.plan import ComponentPlan
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.memory.budget import BUDGET

LAYER = "model.diffusion_model.transformer_blocks.0.attn1.to_q"


def rewritten(src, dst, change, metadata_change=None):
    with safe_open(str(src), framework="pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    change(tensors)
    if metadata_change is not None:
        metadata_change(metadata)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


def setting(key, value, dtype=None):
    def change(tensors):
        old = tensors[key]
        tensors[key] = torch.full(old.shape, value, dtype=dtype or old.dtype) if not callable(value) else value(old)

    return change


@pytest.mark.parametrize(
    "value, dtype, words",
    [
        (float("nan"), None, r"'{layer}.weight_scale' is nan\. Such a scale makes a black or noisy video"),
        (float("inf"), None, r"'{layer}.weight_scale' is inf"),
        (0.0, None, r"'{layer}.weight_scale' is 0; a scale must be positive"),
        (-1.0, None, r"'{layer}.weight_scale' is -1; a scale must be positive"),
        (1e30, None, r"'{layer}.weight_scale' is 1e\+30, beyond 146\.3: the weights it scales would exceed 65536"),
        (3, torch.int32, r"'{layer}.weight_scale' is stored as torch.int32; float8_e4m3fn stores it as float32"),
        (lambda old: torch.ones(4), None, r"'{layer}.weight_scale' has shape \[4\], where float8_e4m3fn beside a "),
    ],
)
@pytest.mark.parametrize("policy", ["none", "fp8_scaled", "as_stored"])
def test_a_hostile_fp8_scale_is_refused_under_every_policy(tiny_paths, tmp_path, value, dtype, words, policy):
    path = rewritten(
        tiny_paths["fp8_checkpoint"], tmp_path / "hostile.safetensors", setting(f"{LAYER}.weight_scale", value, dtype)
    )
    with pytest.raises(LTX2LoadError, match="^hostile.safetensors: " + words.format(layer=LAYER)):
        build_component(Bundle(checkpoint=path), "transformer", policy)


def test_the_legacy_spelling_names_the_key_as_the_file_does(tiny_paths, tmp_path):
    from make_tiny_bundle import write_fp8_checkpoint

    legacy = write_fp8_checkpoint(tiny_paths["checkpoint"], tmp_path / "legacy.safetensors", "scaled_fp8") or (
        tmp_path / "legacy.safetensors"
    )
    path = rewritten(legacy, tmp_path / "hostile.safetensors", setting(f"{LAYER}.scale_weight", float("nan")))
    with pytest.raises(LTX2LoadError, match=rf"^hostile.safetensors: '{LAYER}.scale_weight' is nan"):
        ComponentPlan.read(Bundle(checkpoint=path), "transformer")


def test_an_fp8_gemmas_nan_scale_is_refused_naming_it(tiny_paths, tmp_path):
    key = "model.layers.1.mlp.down_proj.weight_scale"
    path = rewritten(tiny_paths["text_encoder_fp8"], tmp_path / "gemma.safetensors", setting(key, float("nan")))
    with pytest.raises(LTX2LoadError, match=rf"^gemma.safetensors: '{key}' is nan"):
        ComponentPlan.read(Bundle(tiny_paths["checkpoint"], text_encoder=path), "text_encoder")


def split(paths, checkpoint):
    return Bundle(
        checkpoint=checkpoint,
        video_vae=paths["video_vae"],
        audio_vae=paths["audio_vae"],
        text_projection=paths["text_projection"],
    )


def test_nvfp4s_tensor_scale_and_block_scales_are_checked(low_bit_paths, tmp_path):
    nvfp4 = low_bit_paths["nvfp4_transformer"]
    second = rewritten(nvfp4, tmp_path / "scale2.safetensors", setting(f"{LAYER}.weight_scale_2", float("nan")))
    with pytest.raises(LTX2LoadError, match=rf"'{LAYER}.weight_scale_2' is nan"):
        ComponentPlan.read(split(low_bit_paths, second), "transformer")

    def nan_block(tensors):
        blocks = tensors[f"{LAYER}.weight_scale"].view(torch.uint8).clone()
        blocks[0, 0] = 0x7F  # e4m3's NaN
        tensors[f"{LAYER}.weight_scale"] = blocks.view(torch.float8_e4m3fn)

    blocks = rewritten(nvfp4, tmp_path / "blocks.safetensors", nan_block)
    for policy in ("none", "as_stored"):  # read with their weight, as it streams in
        with pytest.raises(LTX2LoadError, match=rf"'{LAYER}.weight_scale' holds nan \(1 of \d+\)"):
            build_component(split(low_bit_paths, blocks), "transformer", policy)
    shape = rewritten(nvfp4, tmp_path / "shape.safetensors", setting(f"{LAYER}.weight_scale", lambda old: old[:64]))
    with pytest.raises(LTX2LoadError, match=rf"'{LAYER}.weight_scale' has shape \[64, 4\], where nvfp4 beside a "):
        ComponentPlan.read(split(low_bit_paths, shape), "transformer")


# --- every malformed-file class: file, key and fix named ---


def declared(layers_change):
    def change(metadata):
        data = json.loads(metadata["_quantization_metadata"])
        layers_change(data["layers"])
        metadata["_quantization_metadata"] = json.dumps(data)

    return change


@pytest.mark.parametrize(
    "change, words",
    [
        (
            declared(lambda layers: layers[LAYER].update(format=["float8_e4m3fn"])),
            r"gives as its format '\[.*a list, not",
        ),
        (declared(lambda layers: layers.update({LAYER: "fp8"})), rf"gives layer '{LAYER}' a str, not a map"),
        (declared(lambda layers: layers[LAYER].update(format={"a": 1})), r"a dict, not a format name"),
    ],
)
def test_metadata_of_the_wrong_json_types_is_refused_naming_the_layer(tiny_paths, tmp_path, change, words):
    path = rewritten(tiny_paths["fp8_checkpoint"], tmp_path / "types.safetensors", lambda t: None, change)
    with pytest.raises(LTX2LoadError, match=words + ".*download it again"):
        ComponentPlan.read(Bundle(checkpoint=path), "transformer")


def test_a_bf16_comfy_quant_is_refused_naming_it(low_bit_paths, tmp_path):
    key = f"{LAYER}.comfy_quant"
    path = rewritten(
        low_bit_paths["nvfp4_transformer"], tmp_path / "bf16.safetensors", setting(key, lambda old: old.bfloat16())
    )
    with pytest.raises(LTX2LoadError, match=rf"its '{key}' is stored as torch.bfloat16; ComfyUI writes a .comfy_quant"):
        ComponentPlan.read(split(low_bit_paths, path), "transformer")


@pytest.mark.parametrize(
    "section, value, words",
    [
        ("transformer", "48 layers", r"'config' metadata's transformer section is a str, not a JSON object"),
        ("num_layers", "2", r"'config' metadata's transformer section gives num_layers as str '2', not a number"),
    ],
)
def test_a_config_of_the_wrong_json_types_is_refused_naming_the_key(tiny_paths, tmp_path, section, value, words):
    def change(metadata):
        config = json.loads(metadata["config"])
        if section == "transformer":
            config["transformer"] = value
        else:
            config["transformer"][section] = value
        metadata["config"] = json.dumps(config)

    path = rewritten(tiny_paths["checkpoint"], tmp_path / "config.safetensors", lambda t: None, change)
    with pytest.raises(LTX2InputError, match="^config.safetensors: its " + words):
        read_checkpoint_config(path)


def test_a_single_file_gemmas_sizes_are_range_checked_as_a_folders(tiny_paths, tmp_path):
    def stray(tensors):
        tensors["model.layers.99999.input_layernorm.weight"] = torch.ones(64)

    path = rewritten(tiny_paths["text_encoder_file"], tmp_path / "stray.safetensors", stray)
    with pytest.raises(
        LTX2InputError, match=r"stray.safetensors'?: its tensors' shapes give num_hidden_layers = 100000"
    ):
        check_bundle(Bundle(tiny_paths["checkpoint"], text_encoder=path))


def test_a_tokenizer_larger_than_the_embedding_is_refused(tiny_paths, tmp_path):
    key = "model.embed_tokens.weight"
    path = rewritten(
        tiny_paths["text_encoder_file"], tmp_path / "small.safetensors", setting(key, lambda old: old[:256])
    )
    with pytest.raises(
        LTX2InputError, match=r"small.safetensors holds a tokenizer of 512 pieces .* a token embedding of 256 rows"
    ):
        check_bundle(Bundle(tiny_paths["checkpoint"], text_encoder=path))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float8_e4m3fn])
def test_lora_factor_dtypes_are_checked_before_stage_1(tiny_paths, tmp_path, dtype):
    def change(tensors):
        key = sorted(k for k in tensors if k.endswith(".lora_B.weight"))[0]
        tensors[key] = tensors[key].to(dtype)

    path = rewritten(tiny_paths["distilled_lora"], tmp_path / "mixed.safetensors", change)
    with pytest.raises(LTX2InputError, match=r"^distilled_lora: mixed.safetensors .*lora_A.weight' is stored as "):
        check_bundle(Bundle(tiny_paths["checkpoint"], distilled_lora=path))


# --- a NaN appearing in a stage ---


def test_a_nan_in_a_stages_output_is_caught_there_naming_the_component(tiny_paths):
    model = ModelSpec(Bundle(tiny_paths["checkpoint"]), read_checkpoint_config(tiny_paths["checkpoint"]))
    BUDGET.begin_run("nan", "none", "cold_start")
    finite.check(model, "stage 1 denoise", "transformer", (torch.zeros(3), [torch.ones(2)]))
    with pytest.raises(
        LTX2NonFiniteError,
        match=r"^stage 1 denoise: the transformer produced NaN or infinite values \(1 of 3\) from ltx-2.3-tiny-dev",
    ):
        finite.check(model, "stage 1 denoise", "transformer", [torch.tensor([0.0, float("inf"), 1.0])])
    assert "stage 1 denoise: the transformer produced NaN or infinite values" in BUDGET.last_run.notes
    decoder = torch.nn.Linear(2, 2)
    with torch.no_grad():
        decoder.weight.fill_(float("nan"))
    with pytest.raises(LTX2NonFiniteError, match="^decode: the video_decoder produced NaN"):
        with finite.watched(decoder, model, "decode", "video_decoder"):
            decoder.forward(torch.ones(1, 2))  # as ltx-core's tiled decode calls it
    assert "forward" not in decoder.__dict__
