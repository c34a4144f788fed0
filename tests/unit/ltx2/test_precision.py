"""Compute dtype apart from storage: weights stay as stored, the forward runs in the compute dtype, and the result
is the model's in that dtype exactly; nothing is hooked where the two agree."""

import pytest
import torch
from building import build_component
from probe import denoise_step, probe_inputs

from ltx2_a2v.ltx2.checkpoint import read_checkpoint_config
from ltx2_a2v.ltx2.components import Bundle
from ltx2_a2v.ltx2.precision import Precision, compute_in, library_default
from ltx2_a2v.memory.accounting import module_bytes


@pytest.fixture(scope="module")
def bundle(tiny_paths) -> Bundle:
    return Bundle(
        checkpoint=tiny_paths["checkpoint"],
        text_encoder=tiny_paths["text_encoder"],
        spatial_upsampler=tiny_paths["spatial_upsampler"],
    )


def bf16_model(bundle: Bundle, name: str) -> torch.nn.Module:
    """The component as stored and computing as stored (bf16): no hook at all."""
    return build_component(bundle, name, compute_dtype=torch.bfloat16)[0]


def float32_copy(bundle: Bundle, name: str) -> torch.nn.Module:
    """The same weights (stored bf16) converted to float32 once: what computing in float32 must equal."""
    with torch.inference_mode():
        return bf16_model(bundle, name).float()


def test_transformer_computing_in_float32_keeps_bf16_weights_and_equals_the_float32_model(bundle):
    model, report = build_component(bundle, "transformer", "none", compute_dtype=torch.float32)
    inputs = probe_inputs(read_checkpoint_config(bundle.checkpoint), dtype=torch.float32)
    out = denoise_step(model, *inputs)
    assert all(o.dtype == torch.float32 for o in out)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # stored as before, after the forward too
    assert module_bytes(model) == module_bytes(bf16_model(bundle, "transformer"))
    expected = denoise_step(float32_copy(bundle, "transformer"), *inputs)
    assert all(torch.equal(a, b) for a, b in zip(out, expected))
    assert "computes in float32" in report.summary()


def test_video_decoder_and_upsampler_computing_in_float32_equal_their_float32_models(bundle):
    latent = torch.randn(1, 128, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    for name in ("video_decoder", "spatial_upsampler"):
        model, _ = build_component(bundle, name, "none", compute_dtype=torch.float32)
        with torch.inference_mode():
            # bf16 in: ltx-core hands a model inputs in the dtype of its first parameter; the model computes in
            # float32 anyway.
            out = model(latent.to(torch.bfloat16))
            expected = float32_copy(bundle, name)(latent.to(torch.bfloat16).float())
        assert out.dtype == torch.float32 and torch.equal(out, expected), name


def test_text_encoder_computing_in_float32_equals_its_float32_model(bundle):
    encoder, _ = build_component(bundle, "text_encoder", "none", compute_dtype=torch.float32)
    with torch.inference_mode():
        hidden, mask = encoder.encode("A young woman speaks calmly.")
        expected, _ = float32_copy(bundle, "text_encoder").encode("A young woman speaks calmly.")
    assert all(h.dtype == torch.float32 for h in hidden)
    assert all(torch.equal(a, b) for a, b in zip(hidden, expected))


def test_nothing_is_hooked_where_compute_and_storage_agree(bundle):
    model = bf16_model(bundle, "transformer")
    assert compute_in(model, torch.bfloat16) == 0
    assert not model._forward_pre_hooks and not any(m._forward_pre_hooks for m in model.modules())


def test_stored_weights_come_back_when_the_forward_fails():
    layer = torch.nn.Linear(8, 4).to(torch.bfloat16)
    assert compute_in(layer, torch.float32) == 1
    with pytest.raises(RuntimeError), torch.inference_mode():
        layer(torch.ones(3, 5))  # wrong width: fails inside the forward, after the upcast
    assert layer.weight.dtype == torch.bfloat16 and isinstance(layer.weight, torch.nn.Parameter)
    with torch.inference_mode():
        assert layer(torch.ones(3, 8)).dtype == torch.float32


def test_library_default_is_float32_on_a_cpu():
    assert library_default("cpu") == Precision.uniform(torch.float32)
    assert Precision(vae=torch.float32).of("vocoder") == torch.float32
    assert Precision(vae=torch.float32).describe() == "compute transformer bf16, text encoder bf16, VAE float32"
