"""Stage 2 on stage 1's transformer: the distilled LoRA kept resident and applied at each forward (fused into a plain
weight for the length of its forward, beside a quantized one) gives the bits a fused load gives where the weights
are plain, and stays close to them beside quantized weights; a cold_start run reads the checkpoint once, and one
under a budget too small to keep the whole transformer through the upscale streams some of its units instead
(or, under a policy that cannot stream, reads it again) and still finishes."""

import pytest
import torch
from safetensors.torch import save_file
from test_comfy_formats import tensors_of
from tiny_run import model_of, run_inputs

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.a2v.graph import two_stage
from ltx2_a2v.ltx2.components import activations
from ltx2_a2v.ltx2.components.lora_layers import LoraLayers, applied
from ltx2_a2v.ltx2.components.model_spec import ComponentLoad, ModelSpec
from ltx2_a2v.ltx2.components.plan import ComponentPlan
from ltx2_a2v.ltx2.components.precision import Precision
from ltx2_a2v.ltx2.files.lora_file import LoraFactors
from ltx2_a2v.quant import POLICIES

CPU = torch.device("cpu")


def spec(tiny_paths, **kwargs) -> ModelSpec:
    return model_of(tiny_paths, **kwargs)


def layer_outputs(model: torch.nn.Module, paths: list[str], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Each layer's output for one fixed input (its width from the layer)."""
    outputs = {}
    with torch.inference_mode():
        for path in paths:
            layer = model.get_submodule(path)
            x = torch.randn(7, layer.in_features, generator=torch.Generator().manual_seed(len(path)), dtype=dtype)
            outputs[path] = layer(x)
    return outputs


@pytest.mark.parametrize("compute", [torch.bfloat16, torch.float32])
def test_a_plain_weight_computes_with_the_bits_of_a_fused_load_and_is_restored_after(tiny_paths, compute):
    model = spec(tiny_paths, precision=Precision.uniform(compute))
    fused, _, _ = model.build_component("transformer", CPU, with_distilled_lora=True)
    plain, _, _ = model.build_component("transformer", CPU)
    lora = LoraLayers(LoraFactors(tiny_paths["distilled_lora"], 1.0), CPU)
    paths = list(lora.layers)
    assert len(paths) > 10
    before = layer_outputs(plain, paths, compute)
    with applied(plain, lora):
        during = layer_outputs(plain, paths, compute)
    after = layer_outputs(plain, paths, compute)
    reference = layer_outputs(fused, paths, compute)
    assert all(torch.equal(during[p], reference[p]) for p in paths)
    assert all(torch.equal(after[p], before[p]) for p in paths)  # nothing of the LoRA left behind
    assert not all(torch.equal(during[p], before[p]) for p in paths)


def test_a_quantized_weight_gets_the_lora_beside_it_closer_to_bf16_than_fusing_then_quantizing(tiny_paths):
    bf16 = spec(tiny_paths, precision=Precision.uniform(torch.float32))
    reference, _, _ = bf16.build_component("transformer", CPU, with_distilled_lora=True)
    fp8 = spec(tiny_paths, quantization="fp8_scaled", precision=Precision.uniform(torch.float32))
    fused_then_quantized, _, _ = fp8.build_component("transformer", CPU, with_distilled_lora=True)
    quantized, _, _ = fp8.build_component("transformer", CPU)
    lora = LoraLayers(LoraFactors(tiny_paths["distilled_lora"], 1.0), CPU)
    paths = [p for p in lora.layers if quantized.get_submodule(p).weight.dtype == torch.float8_e4m3fn]
    assert paths, "fp8_scaled quantizes some of the LoRA's layers"
    want = layer_outputs(reference, paths, torch.float32)
    with applied(quantized, lora):
        beside = layer_outputs(quantized, paths, torch.float32)
    before = layer_outputs(fused_then_quantized, paths, torch.float32)

    def error(got):
        return sum(float((got[p] - want[p]).norm()) for p in paths) / sum(float(want[p].norm()) for p in paths)

    print(f"fp8_scaled, error against bf16: beside {error(beside):.4f}, fused, quantized {error(before):.4f}")
    assert error(beside) < 0.05 and error(beside) <= error(before) * 1.05


@pytest.mark.parametrize("dtype, value", [(torch.float32, 1e38), (torch.bfloat16, 3e19), (torch.float32, 1e4)])
def test_factors_whose_product_is_not_a_lora_are_refused_before_any_forward(tiny_paths, tmp_path, dtype, value):
    tensors, _ = tensors_of(tiny_paths["distilled_lora"])
    a_key = sorted(k for k in tensors if k.endswith(".lora_A.weight"))[0]
    b_key = a_key.replace("lora_A", "lora_B")
    tensors[a_key] = torch.full_like(tensors[a_key], value, dtype=dtype)
    tensors[b_key] = torch.full_like(tensors[b_key], value, dtype=dtype)
    save_file(tensors, str(tmp_path / "huge.safetensors"))
    plain, _, _ = spec(tiny_paths).build_component("transformer", CPU)

    def hooks():
        return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in plain.modules()]

    before = hooks()
    with pytest.raises(LTX2InputError, match=r"huge\.safetensors .*(overflows|times its own size)"):
        with applied(plain, LoraLayers(LoraFactors(tmp_path / "huge.safetensors", 1.0), CPU)):
            pass
    assert hooks() == before  # none of the LoRA's hooks left on the transformer


def two_stages(model: ModelSpec, budget, run_id: str) -> dict:
    """Stage 1 (handing its transformer over), the upscale, stage 2 and the decode on the tiny bundle."""
    budget.begin_run(run_id, model.quantization, model.residency)
    two_stage(model, CPU, run_inputs())
    return budget.last_run.as_dict()


def reads(report: dict, stage: str) -> dict[str, int]:
    return {c["name"]: c["bytes_read"] for s in report["phases"] if s["name"] == stage for c in s["components"]}


def test_a_cold_start_run_reads_the_checkpoints_transformer_once(tiny_paths, budget):
    report = two_stages(spec(tiny_paths), budget, "resident-lora-cold")
    assert reads(report, "stage 1 denoise")["transformer"] > 0
    stage_2 = reads(report, "stage 2 denoise")
    assert stage_2["transformer"] == 0 and stage_2["distilled LoRA"] > 0
    assert budget.resident_bytes() == 0  # the decode let the kept transformer go; the stage let the factors go


def test_a_budget_too_small_for_the_kept_transformer_streams_some_of_its_units_rather_than_reading_it_again(
    tiny_paths, budget
):
    model = spec(tiny_paths)
    transformer = model.estimate_bytes("transformer")
    units, _ = ComponentPlan.read(model.bundle, "transformer").unit_sizes(POLICIES["none"])
    needs = {c: ComponentLoad(model, c, CPU, False, None, 0).need() for c in ("video_encoder", "spatial_upsampler")}
    held = {c: n.total + n.upcast_bytes for c, n in needs.items()}
    # What each step after stage 1 holds beside the kept transformer at its largest: the upscale's two models,
    # stage 2's image encode, stage 2's LoRA factors and activations. The budget leaves room for the largest less
    # half the transformer's units (the tiny transformer's blocks are a small part of it): met only by streaming.
    beside = max(
        held["video_encoder"] + held["spatial_upsampler"],
        held["video_encoder"] + activations.image_encode(128, 128, torch.float32),
        tiny_paths["distilled_lora"].stat().st_size
        + activations.denoise(model.config, 128, 128, 9, 24.0, torch.float32),
    )
    budget.budget_bytes = transformer + beside - sum(units.values()) // 2
    report = two_stages(model, budget, "resident-lora-small")
    stage_2 = next(s for s in report["phases"] if s["name"] == "stage 2 denoise")
    kept = next(c for c in stage_2["components"] if c["name"] == "transformer")
    assert kept["bytes_read"] == 0 and kept["streamed"], stage_2["components"]
    assert kept["bytes"] < transformer
    assert budget.resident_bytes() == 0 and len(report["phases"]) >= 6


def test_a_kept_transformer_that_cannot_stream_is_read_again_when_the_budget_is_too_small(tiny_paths, budget):
    model = spec(tiny_paths, quantization="torchao_int8_weight_only")
    budget.budget_bytes = model.estimate_bytes("transformer") + model.estimate_bytes("spatial_upsampler") // 2
    report = two_stages(model, budget, "resident-lora-small-int8")
    assert reads(report, "stage 2 denoise")["transformer"] > 0
    assert budget.resident_bytes() == 0 and len(report["phases"]) >= 6


def test_a_latent_from_a_bf16_transformer_decodes_on_a_float32_vae(tiny_paths, budget):
    """ComfyUI's --bf16-unet without --bf16-vae: the decoder is given the latent in its own compute dtype."""
    mixed = Precision(transformer=torch.bfloat16, text_encoder=torch.float32, vae=torch.float32)
    report = two_stages(spec(tiny_paths, precision=mixed), budget, "mixed-precision")
    assert [s["name"] for s in report["phases"]][-1] == "decode"


def test_the_factors_are_read_a_pair_at_a_time_cpu_ledger(tiny_paths):
    """Not the whole file into host memory first (6.9 GiB for the rank-384 release): the ledger's peak while reading
    every pair is a few pairs' (the one handed out, the next being read, their finiteness checks), not the file's."""
    from ltx2_a2v.memory.ledger import PhaseMeter

    factors = LoraFactors(tiny_paths["distilled_lora"], 1.0)
    pairs = [sum(factors.header.entries[k].nbytes for k in pair) for pair in factors.targets.values()]
    meter = PhaseMeter(CPU)
    with meter:
        read = sum(1 for _ in factors.read_all())
    assert read == len(pairs) > 10
    assert meter.peak - meter.start <= 4 * max(pairs) < sum(pairs) / 4
