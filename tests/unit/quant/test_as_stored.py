"""as_stored: each low-bit file's layers kept as stored (never dequantized at load), computing through
comfy-kitchen. On this CPU kitchen dequantizes per forward (its eager backend), into the model's scratch buffer; its
native kernels run where a GPU has them, and kitchen's eager implementations of those kernels stand in for the GPU
here. Resident bytes are the file's, the estimate from the header is what is built, block streaming moves the
stored bytes, a LoRA runs beside the stored layers or is fused and quantized again into their layout."""

import dataclasses
import math

import pytest
import torch
from building import build_component
from probe import denoise_step, probe_inputs
from safetensors.torch import save_file
from tiny_run import run_inputs

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.components.lora_layers import LoraLayers, applied
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.plan import ComponentPlan
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.ltx2.files.lora_file import LoraFactors
from ltx2_a2v.ltx2.files.safetensors_file import iter_tensors, read_header
from ltx2_a2v.memory.accounting import module_bytes
from ltx2_a2v.quant import POLICIES
from ltx2_a2v.quant.as_stored import StoredLinear
from ltx2_a2v.quant.formats import FORMATS, dequantize, layout_class, layout_params

TRANSFORMERS = ["nvfp4_transformer", "int8_transformer", "int8_convrot_transformer"]


def split_bundle(paths, transformer: str) -> Bundle:
    return Bundle(
        checkpoint=paths[transformer],
        text_encoder=paths["text_encoder"],
        distilled_lora=paths["distilled_lora"],
        video_vae=paths["video_vae"],
        audio_vae=paths["audio_vae"],
        text_projection=paths["text_projection"],
    )


def step(model, inputs) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([t.flatten() for t in denoise_step(model, *inputs)]).float()


@pytest.fixture(scope="module")
def inputs(low_bit_paths):
    return probe_inputs(read_checkpoint_config(low_bit_paths["checkpoint"]), dtype=torch.float32)


@pytest.mark.parametrize("part", TRANSFORMERS)
def test_the_transformer_keeps_the_files_bytes_and_denoises_as_dequantized_at_load(low_bit_paths, inputs, part):
    bundle = split_bundle(low_bit_paths, part)
    plan = ComponentPlan.read(bundle, "transformer")
    file_bytes = sum(h.entries[k].nbytes for h in plan.headers.values() for k in plan.renames if k in h.entries)
    estimate = sum(plan.sizes(POLICIES["as_stored"]).values())
    kept, report = build_component(bundle, "transformer", "as_stored")
    resident = module_bytes(kept)
    loaded, _ = build_component(bundle, "transformer", "none")  # dequantized to bf16 at load
    assert resident / file_bytes <= 1.02 and estimate == resident
    assert resident < 0.8 * module_bytes(loaded)
    assert sum(isinstance(m, StoredLinear) for m in kept.modules()) == 56
    assert "kept as stored: 56 " in report.summary() and "dequantized per forward by comfy-kitchen" in report.summary()
    # The same weights: at load rounded to bf16, here dequantized in float32 for each forward.
    error = float((step(kept, inputs) - step(loaded, inputs)).norm() / step(loaded, inputs).norm())
    assert error < 1e-2, error


@pytest.mark.parametrize("part", TRANSFORMERS)
def test_a_forward_dequantizes_exactly_as_kitchen_in_slices_of_rows(low_bit_paths, part):
    """Each layer's weight as the forward makes it (kitchen's dequantize, 128 rows at a time into the scratch) is
    bit for bit kitchen's QuantizedTensor dequantized whole, in float32."""
    from comfy_kitchen.tensor import QuantizedTensor

    kept, _ = build_component(split_bundle(low_bit_paths, part), "transformer", "as_stored")
    layers = [m for m in kept.modules() if isinstance(m, StoredLinear)]
    assert any(m.out_features > 128 for m in layers)
    for layer in layers:
        fmt, scales = FORMATS[layer.stored_format], layer.scales()
        shape = (layer.out_features, layer.in_features)
        ours = dequantize(fmt, layer.weight, scales, layer.options, shape, torch.float32, rows_per_chunk=128)
        whole = QuantizedTensor(
            layer.weight, fmt.layout, layout_params(fmt, scales, layer.options, shape, torch.float32)
        )
        assert torch.equal(ours, whole.dequantize())


@pytest.mark.parametrize("part", TRANSFORMERS)
def test_kitchens_kernels_standing_in_for_a_gpu_multiply_the_stored_weights(low_bit_paths, inputs, part):
    """A GPU with native kernels cannot exist here: kitchen's eager implementations of the same kernels (nvfp4's
    scaled matmul on a quantized input, int8's linear on per-token int8 activations) run the native branch."""
    kept, _ = build_component(split_bundle(low_bit_paths, part), "transformer", "as_stored")
    dequantized = step(kept, inputs)
    for layer in kept.modules():
        if isinstance(layer, StoredLinear):
            layer.native = True
    native = step(kept, inputs)
    error = float((native - dequantized).norm() / dequantized.norm())
    assert torch.isfinite(native).all() and error < (0.2 if part == "nvfp4_transformer" else 0.05), error


def test_block_streaming_moves_the_stored_bytes_with_the_same_output(low_bit_paths, inputs):
    bundle = split_bundle(low_bit_paths, "nvfp4_transformer")
    spec = ModelSpec(bundle, read_checkpoint_config(low_bit_paths["checkpoint"]), quantization="as_stored")
    whole, _, _ = spec.build_component("transformer")
    plan = ComponentPlan.read(bundle, "transformer")
    units = plan.units()[:1]
    streamed, report, streamer = spec.build_component("transformer", streamed=units)
    stored = plan.unit_sizes(POLICIES["as_stored"])[0][units[0]]
    assert streamer.store.nbytes() == stored  # the unit's file bytes, not a bf16 copy
    assert module_bytes(streamed) + stored == module_bytes(whole)
    assert torch.equal(step(streamed, inputs), step(whole, inputs))


def test_the_distilled_lora_runs_beside_the_stored_layers(low_bit_paths, inputs):
    bundle = split_bundle(low_bit_paths, "int8_transformer")
    kept, _ = build_component(bundle, "transformer", "as_stored")
    before = {k: v.clone() for k, v in kept.state_dict().items()}
    fused, _ = build_component(bundle, "transformer", "none", lora=(low_bit_paths["distilled_lora"], 1.0))
    lora = LoraLayers(LoraFactors(low_bit_paths["distilled_lora"], 1.0), torch.device("cpu"))
    with applied(kept, lora):
        beside = step(kept, inputs)
    reference = step(fused, inputs)
    assert float((beside - reference).norm() / reference.norm()) < 1e-2
    assert all(torch.equal(v, before[k]) for k, v in kept.state_dict().items())  # nothing changed for good


def test_a_lora_fused_while_loading_is_quantized_again_into_the_files_layout(low_bit_paths, inputs):
    """The fast recipe fuses the LoRA for stage 1: a stored layer is dequantized, fused and quantized by kitchen into
    the layout it was stored in (its rotation and scales kept), never left in bf16."""
    bundle = split_bundle(low_bit_paths, "int8_convrot_transformer")
    lora = (low_bit_paths["distilled_lora"], 1.0)
    kept, report = build_component(bundle, "transformer", "as_stored", lora=lora)
    plain, _ = build_component(bundle, "transformer", "as_stored")
    fused, _ = build_component(bundle, "transformer", "none", lora=lora)
    assert module_bytes(kept) == module_bytes(plain)
    assert all(m.options.get("convrot") for m in kept.modules() if isinstance(m, StoredLinear))
    error = float((step(kept, inputs) - step(fused, inputs)).norm() / step(fused, inputs).norm())
    assert error < 2e-2, error


@pytest.mark.parametrize("part, bound", [("text_encoder_fp4", 0.10), ("text_encoder_int8", 0.02)])
def test_the_single_file_gemma_keeps_its_stored_bytes(low_bit_paths, part, bound):
    bundle = Bundle(checkpoint=low_bit_paths["checkpoint"], text_encoder=low_bit_paths[part])
    folder = dataclasses.replace(bundle, text_encoder=low_bit_paths["text_encoder"])
    prompt = "A young woman speaks calmly to the camera."
    with torch.inference_mode():
        kept, report = build_component(bundle, "text_encoder", "as_stored")
        reference = torch.stack(build_component(folder, "text_encoder")[0].encode(prompt)[0]).float()
        states = torch.stack(kept.encode(prompt)[0]).float()
    loaded, _ = build_component(bundle, "text_encoder", "none")
    assert module_bytes(kept) < module_bytes(loaded)
    assert 0 < float((states - reference).norm() / reference.norm()) < bound
    assert "kept as stored" in report.summary()


def test_pre_quant_scale_is_applied_as_comfyui_does(low_bit_paths, tmp_path, inputs):
    """ModelOpt's AWQ smoothing: ComfyUI computes W (s * x). Kept as stored the input is scaled; dequantized at
    load the scale is folded into W's columns: the same product."""
    path = low_bit_paths["nvfp4_transformer"]
    tensors = dict(iter_tensors(read_header(path)))
    layer = "model.diffusion_model.transformer_blocks.0.attn1.to_q"
    columns = tensors[f"{layer}.weight"].shape[1] * 2
    smoothing = torch.linspace(0.5, 2.0, columns)
    tensors[f"{layer}.pre_quant_scale"] = smoothing.to(torch.bfloat16)
    save_file(tensors, str(tmp_path / "awq.safetensors"), metadata=read_header(path).metadata)
    bundle = dataclasses.replace(
        split_bundle(low_bit_paths, "nvfp4_transformer"), checkpoint=tmp_path / "awq.safetensors"
    )
    kept, _ = build_component(bundle, "transformer", "as_stored")
    loaded, _ = build_component(bundle, "transformer", "none")
    module = kept.get_submodule("transformer_blocks.0.attn1.to_q")
    x = torch.randn(3, columns)
    weight = dequantize(
        FORMATS["nvfp4"],
        module.weight,
        {k: v for k, v in module.scales().items() if k != "pre_quant_scale"},
        {},
        (module.out_features, columns),
        torch.float32,
    )
    with torch.inference_mode():
        expected = torch.nn.functional.linear(x * smoothing.to(torch.bfloat16).float(), weight, module.bias.float())
        assert torch.allclose(module.float()(x), expected, atol=1e-5)
        folded = loaded.get_submodule("transformer_blocks.0.attn1.to_q").weight.float()
        assert torch.allclose(folded, weight * smoothing.to(torch.bfloat16).float(), rtol=1e-2, atol=1e-3)


def test_a_layout_the_installed_kitchen_cannot_read_is_refused_with_the_release_that_reads_it(
    low_bit_paths, monkeypatch
):
    """An older comfy-kitchen cannot be installed beside the one here: its tensor module is made to lack the layout
    (as 0.2.10 lacks TensorWiseINT8Layout)."""
    import comfy_kitchen.tensor

    from ltx2_a2v.ltx2.files import stored_formats

    monkeypatch.delattr(comfy_kitchen.tensor, "TensorWiseINT8Layout")
    monkeypatch.setattr(stored_formats, "_cache", type(stored_formats._cache)())
    with pytest.raises(
        LTX2InputError,
        match=r"layer '.*' is stored as int8_tensorwise, which comfy-kitchen reads from release 0\.2\.11 on, and the "
        r'installed comfy-kitchen .* has no TensorWiseINT8Layout\. Update it .*"comfy-kitchen>=0\.2\.11"',
    ):
        ComponentPlan.read(split_bundle(low_bit_paths, "int8_transformer"), "transformer")


def test_every_quant_algos_layout_is_a_row_kitchen_reads():
    """ComfyUI 0.33's QUANT_ALGOS, as its comfy/quant_ops.py lists them."""
    assert set(FORMATS) == {
        "float8_e4m3fn",
        "float8_e5m2",
        "nvfp4",
        "mxfp8",
        "int8_tensorwise",
        "convrot_w4a4",
        "asym_w4a8_int8",
    }
    for fmt in FORMATS.values():
        assert fmt.fp8 or layout_class(fmt).__name__ == fmt.layout
        assert math.prod(fmt.stored_shape((64, 256))) * fmt.values_per_element == 64 * 256


def test_the_two_stage_graph_runs_on_split_low_bit_files_kept_as_stored(low_bit_paths, budget):
    """Stage 2 on stage 1's stored transformer with the distilled LoRA beside it; persistent keeps the stored
    transformer for the next run: nothing read again, the same frames. (cold_start: tests/host/test_low_bit_host.py)"""
    residency = "persistent"
    from ltx2_a2v.ltx2.a2v import stages
    from ltx2_a2v.ltx2.a2v.decode import decode
    from ltx2_a2v.ltx2.components.bundle_parts import check_bundle

    bundle = dataclasses.replace(
        split_bundle(low_bit_paths, "nvfp4_transformer"),
        text_encoder=low_bit_paths["text_encoder_fp4"],
        spatial_upsampler=low_bit_paths["spatial_upsampler"],
    )
    model = ModelSpec(bundle, check_bundle(bundle), "as_stored", "as_stored", residency=residency)
    cpu, inputs = torch.device("cpu"), run_inputs()
    runs = []
    for run in range(2):
        budget.begin_run(f"stored-{run}", "as_stored", residency)
        latent = stages.sample_base(model, cpu, inputs)
        latent = stages.sample_refine(model, cpu, stages.upscale(model, cpu, latent), inputs.prompt, inputs.seed)
        frames, _ = decode(model, cpu, latent)
        stage_1 = next(s for s in budget.last_run.phases if s.name == "stage 1 denoise")
        runs.append((frames, sum(c["bytes_read"] for c in stage_1.components), list(budget.last_run.loads)))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][0].std() > 0
    assert runs[0][1] > 0 and runs[1][1] == 0
    assert any("kept as stored: 56 nvfp4" in line for line in runs[0][2])


def test_an_fp8_release_is_kept_as_fp8_scaled_keeps_it_and_estimated_exactly(tiny_paths, inputs):
    bundle = Bundle(checkpoint=tiny_paths["fp8_checkpoint"])
    kept, report = build_component(bundle, "transformer", "as_stored")
    fp8, _ = build_component(bundle, "transformer", "fp8_scaled")
    assert sum(ComponentPlan.read(bundle, "transformer").sizes(POLICIES["as_stored"]).values()) == module_bytes(kept)
    assert all(torch.equal(v, fp8.state_dict()[k]) for k, v in kept.state_dict().items())
    assert "kept as stored: 56 float8_e4m3fn" in report.summary()
