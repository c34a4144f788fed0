"""Every policy: CPU ones load the tiny bundle and run a denoising step under inference_mode; GPU-only ones
refuse this machine before reading a weight; layers are chosen by the declared table; LoRA is fused first."""

import pytest
import torch
from building import build_component
from probe import denoise_step, probe_inputs

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.ltx2.files.safetensors_file import read_header, read_tensor
from ltx2_a2v.memory.accounting import module_bytes
from ltx2_a2v.quant import POLICIES, PolicyUnavailable, check_policy, get_policy
from ltx2_a2v.quant.fp8_scaled import quantize_rows
from ltx2_a2v.quant.layers import select_layers

CPU_POLICIES = [
    "none",
    "fp8_cast",
    "fp8_scaled",
    "torchao_fp8_weight_only",
    "torchao_int8_weight_only",
    "torchao_int8_dynamic",
]
GPU_POLICIES = ["fp8_scaled_mm", "torchao_fp8_dynamic", "torchao_int4_weight_only"]
# Quantizes nothing itself: keeps what the file stores (tests/unit/quant/test_as_stored.py).
STORED_POLICIES = ["as_stored"]


@pytest.fixture(scope="module")
def bundle(tiny_paths) -> Bundle:
    return Bundle(
        checkpoint=tiny_paths["checkpoint"],
        text_encoder=tiny_paths["text_encoder"],
        distilled_lora=tiny_paths["distilled_lora"],
    )


@pytest.fixture(scope="module")
def reference(bundle):
    """Unquantized output of one denoising step (float32 compute, bf16 weights), the yardstick of every policy."""
    inputs = probe_inputs(read_checkpoint_config(bundle.checkpoint), dtype=torch.float32)
    model, _ = build_component(bundle, "transformer", "none")
    return inputs, torch.cat([t.flatten() for t in denoise_step(model, *inputs)]).float(), module_bytes(model)


def test_registry_covers_every_policy_and_lists_valid_names_for_an_unknown_one():
    assert set(CPU_POLICIES + GPU_POLICIES + STORED_POLICIES) == set(POLICIES)
    with pytest.raises(LTX2InputError, match="unknown policy 'int3'.*fp8_scaled.*torchao_int8_weight_only"):
        get_policy("int3")


@pytest.mark.parametrize("policy", CPU_POLICIES)
def test_cpu_policy_loads_and_denoises_under_inference_mode(bundle, reference, policy):
    inputs, expected, bf16_bytes = reference
    model, report = build_component(bundle, "transformer", policy)
    out = torch.cat([t.flatten() for t in denoise_step(model, *inputs)]).float()
    assert torch.isfinite(out).all()
    error = float((out - expected).norm() / expected.norm())
    if policy == "none":
        assert error == 0 and report.quantized == 0
    else:
        assert 0 < error < 0.1, error
        assert report.quantized == 56  # 28 linears in each of the 2 blocks
        assert module_bytes(model) < 0.85 * bf16_bytes


@pytest.mark.parametrize("policy", GPU_POLICIES)
def test_gpu_only_policy_refuses_this_cpu_before_reading_any_weight(tiny_paths, tmp_path, policy):
    # The checkpoint does not even exist: the refusal must come first, when the spec is made.
    missing = Bundle(checkpoint=tmp_path / "not-there.safetensors")
    with pytest.raises(PolicyUnavailable, match="^quantization: .*Pick"):
        ModelSpec(missing, {}, quantization=policy).checked_on("cpu")


@pytest.fixture
def mocked_gpu(monkeypatch):
    """A GPU cannot exist here: torch.cuda answers as a machine with an RTX 3090 (compute capability 8.6) would."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3090")


def test_fp8_scaled_mm_without_tensorrt_llm_on_a_mocked_gpu_names_the_package_and_alternatives(mocked_gpu):
    with pytest.raises(
        PolicyUnavailable, match=r"^quantization: fp8_scaled_mm needs TensorRT-LLM.*Pick torchao_fp8_dynamic"
    ):
        check_policy(get_policy("fp8_scaled_mm"), "cuda")


def test_fp8_w8a8_on_a_mocked_sm86_gpu_names_the_gpu(mocked_gpu):
    with pytest.raises(PolicyUnavailable, match="compute capability 8.9.*this device is NVIDIA GeForce RTX 3090"):
        check_policy(get_policy("torchao_fp8_dynamic"), "cuda")


@pytest.mark.parametrize(
    "capability, refused",
    [
        ((7, 5), {"torchao_fp8_dynamic", "torchao_int4_weight_only"}),
        ((8, 6), {"torchao_fp8_dynamic"}),
        ((8, 9), set()),
    ],
)
def test_gpu_policies_on_a_mocked_gpu_are_refused_below_their_capability_only(monkeypatch, capability, refused):
    """A GPU cannot exist here: torch.cuda answers with the capability given."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"a GPU of capability {capability}")
    for name in ("torchao_fp8_dynamic", "torchao_int4_weight_only"):
        if name in refused:
            with pytest.raises(PolicyUnavailable, match=rf"{name} .*this device is a GPU of capability .*\. Pick "):
                check_policy(get_policy(name), "cuda")
        else:
            check_policy(get_policy(name), "cuda")


def test_text_encoder_policy_errors_name_their_input():
    with pytest.raises(PolicyUnavailable, match="^text_encoder_quantization: "):
        check_policy(get_policy("torchao_int4_weight_only"), "cpu", "text_encoder_quantization")


def test_torchao_leaves_global_torch_settings_alone(bundle):
    import torch._inductor.config as inductor_config

    before = inductor_config.get_config_copy()
    build_component(bundle, "transformer", "torchao_int8_weight_only")
    build_component(bundle, "transformer", "torchao_fp8_weight_only")
    assert inductor_config.get_config_copy() == before


def test_torchao_fp8_model_runs_inside_and_outside_inference_mode(bundle, reference):
    (video, audio), _, _ = reference
    model, _ = build_component(bundle, "transformer", "torchao_fp8_weight_only")
    from ltx_core.guidance.perturbations import BatchedPerturbationConfig

    with torch.no_grad():
        outside = model(video, audio, BatchedPerturbationConfig.empty(1))[0]
    assert torch.equal(outside, denoise_step(model, video, audio)[0])


def test_layer_table_skips_conditioning_projections_and_gates(bundle):
    model, report = build_component(bundle, "transformer", "fp8_scaled")
    assert report.skipped["patchify_proj"] == "patchify / output projection"
    assert report.skipped["adaln_single.linear"] == "AdaLN / timestep conditioning"
    assert report.skipped["transformer_blocks.0.attn1.to_gate_logits"] == "attention gate"
    assert model.patchify_proj.weight.dtype == torch.bfloat16
    assert model.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn


def test_fp8_policies_skip_linears_whose_dims_are_not_multiples_of_16():
    layer = torch.nn.Sequential()
    layer.add_module("transformer_blocks", torch.nn.ModuleList([torch.nn.Module()]))
    block = layer.transformer_blocks[0]
    block.ok = torch.nn.Linear(32, 64)
    block.odd = torch.nn.Linear(32, 40)
    fp8 = select_layers(layer, "transformer", fp8=True)
    assert fp8.quantize == ["transformer_blocks.0.ok"]
    assert "not multiples of 16" in fp8.skipped["transformer_blocks.0.odd"]
    assert select_layers(layer, "transformer", fp8=False).quantize == [
        "transformer_blocks.0.ok",
        "transformer_blocks.0.odd",
    ]


def test_distilled_lora_is_fused_before_quantizing(bundle, tiny_paths):
    stage2, report = build_component(bundle, "transformer", "fp8_scaled", lora=(tiny_paths["distilled_lora"], 1.0))
    key = "transformer_blocks.0.attn1.to_q"
    base = read_tensor(read_header(tiny_paths["checkpoint"]), f"model.diffusion_model.{key}.weight")
    lora = read_header(tiny_paths["distilled_lora"])
    a = read_tensor(lora, f"diffusion_model.{key}.lora_A.weight")
    b = read_tensor(lora, f"diffusion_model.{key}.lora_B.weight")
    # ltx-core's numerics (its apply_loras): (B * strength) @ A in the factors' dtype, added in the weight's.
    fused = torch.matmul(b * 1.0, a).to(torch.bfloat16).add_(base)
    expected_q, expected_scale = quantize_rows(fused)
    layer = stage2.transformer_blocks[0].attn1.to_q
    assert torch.equal(layer.weight.view(torch.uint8), expected_q.view(torch.uint8))
    assert torch.equal(layer.weight_scale, expected_scale)
    assert any("fused before quantizing" in n for n in report.notes)


def test_fp8_scaled_beats_fp8_cast_on_small_weights():
    # Weights of std 0.005 sit mostly below fp8's smallest normal number (2^-6).
    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(256, 512, generator=gen) * 0.005).to(torch.bfloat16)
    x = torch.randn(64, 512, generator=gen).to(torch.bfloat16)
    exact = x.float() @ weight.float().T

    def rel(w):
        return float((x.float() @ w.T - exact).norm() / exact.norm())

    q, scale = quantize_rows(weight)
    cast_error, scaled_error = rel(weight.to(torch.float8_e4m3fn).float()), rel(q.float() * scale)
    assert scaled_error < 0.05 < cast_error


@pytest.mark.parametrize("policy", ["fp8_scaled", "torchao_int8_weight_only", "torchao_fp8_weight_only"])
def test_text_encoder_policies_encode(bundle, policy):
    encoder, report = build_component(bundle, "text_encoder", policy)
    hidden, mask = encoder.encode("A young woman speaks calmly.")
    assert report.quantized == 14  # 7 linears in each of the 2 layers
    assert encoder.model.model.language_model.embed_tokens.weight.dtype == torch.bfloat16
    assert all(torch.isfinite(h.float()).all() for h in hidden)


def test_text_encoder_refuses_a_transformer_only_policy_when_the_spec_is_made(bundle):
    with pytest.raises(LTX2InputError, match="text_encoder_quantization: unknown policy 'fp8_cast'"):
        ModelSpec(bundle, {}, text_encoder_quantization="fp8_cast")


@pytest.mark.parametrize("policy", ["fp8_cast", "fp8_scaled", "torchao_fp8_weight_only"])
def test_fp8_release_checkpoint_is_never_quantized_twice(tiny_paths, reference, policy):
    fp8 = Bundle(checkpoint=tiny_paths["fp8_checkpoint"])
    model, report = build_component(fp8, "transformer", policy)
    assert any("already fp8" in n for n in report.notes)
    stored = read_tensor(
        read_header(tiny_paths["fp8_checkpoint"]), "model.diffusion_model.transformer_blocks.0.ff.net.2.weight"
    )
    assert torch.equal(model.transformer_blocks[0].ff.net[2].weight.view(torch.uint8), stored.view(torch.uint8))
    inputs, expected, _ = reference
    out = torch.cat([t.flatten() for t in denoise_step(model, *inputs)]).float()
    assert float((out - expected).norm() / expected.norm()) < 0.1


def test_fp8_release_checkpoint_with_none_is_dequantized(tiny_paths, reference):
    model, report = build_component(Bundle(checkpoint=tiny_paths["fp8_checkpoint"]), "transformer", "none")
    assert model.transformer_blocks[0].ff.net[2].weight.dtype == torch.bfloat16
    assert any("dequantized" in n for n in report.notes)
    inputs, expected, _ = reference
    out = torch.cat([t.flatten() for t in denoise_step(model, *inputs)]).float()
    assert float((out - expected).norm() / expected.norm()) < 0.1
