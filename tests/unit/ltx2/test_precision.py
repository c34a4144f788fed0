"""Compute dtype apart from storage: weights stay as stored, the forward runs in the compute dtype, and the result
is the model's in that dtype exactly; nothing is hooked where the two agree."""

import pytest
import torch
from building import build_component
from probe import denoise_step, probe_inputs
from torch.utils._python_dispatch import TorchDispatchMode

from ltx2_a2v.ltx2.components.precision import Precision, compute_in, library_default
from ltx2_a2v.ltx2.components.table import Bundle
from ltx2_a2v.ltx2.files.checkpoint import read_checkpoint_config
from ltx2_a2v.memory.accounting import module_bytes
from ltx2_a2v.memory.ledger import CPU_LEDGER, PhaseMeter


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
    first = denoise_step(model, *inputs)
    out = denoise_step(model, *inputs)  # the second forward cuts its upcast copies from one scratch buffer
    assert all(o.dtype == torch.float32 for o in out)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # stored as before, after the forward too
    assert module_bytes(model) == module_bytes(bf16_model(bundle, "transformer"))
    expected = denoise_step(float32_copy(bundle, "transformer"), *inputs)
    assert all(torch.equal(a, b) for a, b in zip(out, expected))
    assert all(torch.equal(a, b) for a, b in zip(first, expected))
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


class _Weights(torch.nn.Module):
    """A module whose forward gives its own (upcast) weight."""

    def __init__(self, *shape: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(*shape).to(torch.bfloat16))

    def forward(self, x):
        return self.weight


def test_upcast_copies_after_the_first_forward_share_one_buffer_and_die_with_the_forward():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Linear(256, 512)).to(torch.bfloat16)
    reference = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Linear(256, 512))
    reference.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    compute_in(model, torch.float32)
    copies: list[torch.Tensor] = []
    for layer in model:  # after the compute-dtype hooks: sees the copies the layer computes with
        layer.register_forward_pre_hook(lambda mod, _args: copies.append(mod.weight))
    x = torch.randn(3, 64)
    meter = PhaseMeter(torch.device("cpu"))
    with torch.inference_mode():
        # The first forward sizes the buffer: the larger second weight does not fit yet and is a copy of its own.
        assert torch.equal(model(x), reference(x))
        first = {c.untyped_storage().data_ptr() for c in copies}
        copies.clear()
        with meter:
            out = model(x)
        assert torch.equal(out, reference(x))
    assert len(first) == 2
    assert len({c.untyped_storage().data_ptr() for c in copies}) == 1  # both cut from one buffer
    assert all(c.dtype == torch.float32 for c in copies)
    assert all(layer.weight.dtype == torch.bfloat16 for layer in model)
    copies.clear()  # the only holders of the buffer but the forward itself: nothing else keeps it
    # What the ledger saw made in the forward and still alive: the output, and the input it was handed.
    assert CPU_LEDGER.allocated - meter.start == out.untyped_storage().nbytes() + x.untyped_storage().nbytes()
    assert meter.peak - meter.start >= 256 * 512 * 4  # the buffer was counted while it lived


def test_from_the_second_forward_every_copy_fits_the_buffer_when_the_first_forward_made_some_apart():
    """The model's own weights are copied first and held all forward; the first forward's buffer is sized by
    its first copy, so its second is made apart: it still counts for the next forward's buffer."""

    class Root(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
            self.b = torch.nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
            self.linear = torch.nn.Linear(64, 256).to(torch.bfloat16)

        def forward(self, x):
            return self.linear(x) * self.a.sum() + self.b.sum()

    class WeightSized(TorchDispatchMode):
        made = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.empty.memory_format and out.dtype == torch.float32 and out.numel() >= 64 * 256:
                WeightSized.made += 1
            return out

    model = Root()
    compute_in(model, torch.float32)
    made = []
    with torch.inference_mode():
        for _ in range(3):
            WeightSized.made = 0
            with WeightSized():
                model(torch.ones(2, 64))
            made.append(WeightSized.made)
    assert made == [1, 1, 1]  # the first: the linear's copy apart; then the buffer holding all three


def test_an_output_that_is_an_upcast_copy_is_not_overwritten_by_the_next_module():
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = _Weights(4, 8), _Weights(4, 8)

        def forward(self, x):
            return self.a(x), self.b(x)

    model = Two()
    compute_in(model, torch.float32)
    with torch.inference_mode():
        for _ in range(2):  # the second forward uses the buffer
            a, b = model(None)
            assert torch.equal(a, model.a.weight.float()) and torch.equal(b, model.b.weight.float())


def test_library_default_is_float32_on_a_cpu():
    assert library_default("cpu") == Precision.uniform(torch.float32)
    assert Precision(vae=torch.float32).of("vocoder") == torch.float32
    assert Precision(vae=torch.float32).describe() == "compute transformer bf16, text encoder bf16, VAE float32"
