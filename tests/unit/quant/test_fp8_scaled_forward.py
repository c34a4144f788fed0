"""fp8_scaled's two forwards: the upcast path rescales in place with the numerics of the out-of-place formula;
the fp8-matmul path (per-token activation scales, row-wise weight scales) stays close to bf16. torch._scaled_mm
with row-wise scales exists only on CUDA GPUs of compute capability 8.9+, so on this CPU the matmul itself is
emulated (fp8 products are exact in float32, which is how the tensor cores accumulate)."""

import sys
from pathlib import Path

import pytest
import torch

from ltx2_a2v.quant.fp8_scaled import (
    CPU_UPCAST_FACTOR,
    Fp8ScaledLinear,
    fp8_matmul_available,
    fp8_matmul_linear,
    quantize_rows,
    upcast_fp8_cpu,
)


def layer_from(weight: torch.Tensor, bias: torch.Tensor) -> Fp8ScaledLinear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
    layer.__class__ = Fp8ScaledLinear
    q, scale = quantize_rows(weight)
    layer.weight, layer.bias = torch.nn.Parameter(q, requires_grad=False), torch.nn.Parameter(bias, requires_grad=False)
    layer.weight_scale = torch.nn.Parameter(scale, requires_grad=False)
    return layer


@pytest.fixture(scope="module")
def case():
    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(256, 512, generator=gen) * 0.02).to(torch.bfloat16)
    bias = (torch.randn(256, generator=gen) * 0.1).to(torch.bfloat16)
    x = torch.randn(3, 40, 512, generator=gen).to(torch.bfloat16)
    return weight, bias, x


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_upcast_path_rescales_in_place_with_the_out_of_place_numerics(case, dtype):
    weight, bias, x = case
    layer = layer_from(weight, bias.to(dtype))
    with torch.inference_mode():
        out = layer(x.to(dtype))
        plain = torch.nn.functional.linear(x.to(dtype), layer.weight.to(dtype))
        expected = (plain.float() * layer.weight_scale.view(-1)).to(dtype) + bias.to(dtype)
    assert out.dtype == dtype and torch.equal(out, expected)


def test_fp8_matmul_path_error_against_bf16_with_a_mocked_gpu_scaled_mm(case, monkeypatch):
    """A GPU cannot exist here: torch._scaled_mm is the emulation the quantization benchmark uses."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
    from fp8_emulation import emulated_scaled_mm

    monkeypatch.setattr(torch, "_scaled_mm", emulated_scaled_mm)
    weight, bias, x = case
    layer = layer_from(weight, bias)
    exact = torch.nn.functional.linear(x.float(), weight.float(), bias.float())
    w8a8 = fp8_matmul_linear(x, layer.weight, layer.weight_scale, layer.bias)
    weight_only = layer(x)
    error = float((w8a8.float() - exact).norm() / exact.norm())
    assert w8a8.shape == exact.shape and w8a8.dtype == torch.bfloat16
    # fp8 activations add their rounding to the weights': a few percent, not more.
    assert float((weight_only.float() - exact).norm() / exact.norm()) < error < 0.06, error


def test_this_cpu_multiplies_by_upcasting_and_says_why():
    assert "has no fp8 tensor cores" in fp8_matmul_available(torch.device("cpu"), torch.float32)


def test_on_a_mocked_sm86_gpu_fp8_matmuls_are_not_attempted(monkeypatch):
    """A GPU cannot exist here: torch.cuda answers as an RTX 3090 (compute capability 8.6) would."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3090")
    assert "RTX 3090 is compute capability below 8.9" in fp8_matmul_available(torch.device("cuda"), torch.bfloat16)


def test_cpu_upcast_of_every_fp8_value_is_exact():
    every = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).reshape(16, 16)
    finite = torch.isfinite(every.float())  # 0x7f and 0xff are NaN in e4m3fn
    for dtype in (torch.float32, torch.bfloat16):
        fast = upcast_fp8_cpu(every, dtype, chunk_elements=32) * CPU_UPCAST_FACTOR  # several chunks
        assert torch.equal(fast[finite], every.to(dtype)[finite]), dtype


def test_fp8_layers_of_a_float32_model_upcast_into_its_one_scratch_buffer(case):
    from torch.utils._python_dispatch import TorchDispatchMode

    from ltx2_a2v.ltx2.components.precision import compute_in

    weight, bias, x = case
    model = torch.nn.Sequential(layer_from(weight, bias), torch.nn.ReLU(), layer_from(weight.T.contiguous(), bias))
    model[2].bias = None
    compute_in(model, torch.float32)  # bf16 bias: the first layer is hooked; the second has nothing to upcast

    class NewStorages(TorchDispatchMode):
        """Counts the float32 weight-sized tensors made with new memory."""

        made = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if (
                func is torch.ops.aten.empty.memory_format
                and out.dtype == torch.float32
                and out.numel() >= weight.numel()
            ):
                NewStorages.made += 1
            return out

    def expected():
        first = torch.nn.functional.linear(x.float(), model[0].weight.float()) * model[0].weight_scale.view(-1)
        first = torch.relu(first + bias.float())
        return torch.nn.functional.linear(first, model[2].weight.float()) * model[2].weight_scale.view(-1)

    with torch.inference_mode():
        runs = []
        for _ in range(2):
            NewStorages.made = 0
            with NewStorages():
                out = model(x)
            runs.append(NewStorages.made)
            assert torch.allclose(out, expected(), rtol=1e-5, atol=1e-6)
    assert runs == [2, 1]  # the second forward: one buffer for both layers' upcasts


def test_fp8_matmul_quantizes_a_chunk_of_rows_at_a_time_with_a_mocked_gpu_scaled_mm(monkeypatch):
    """A GPU cannot exist here: torch._scaled_mm is the emulation the quantization benchmark uses. A wide input gives
    the rows the one-chunk product gives, and what the CPU ledger sees made beside the output stays within a chunk's
    temporaries, not a float32 copy of the whole input (what quantizing it whole costs)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
    from fp8_emulation import emulated_scaled_mm

    from ltx2_a2v.memory.ledger import PhaseMeter
    from ltx2_a2v.quant import fp8_scaled

    monkeypatch.setattr(torch, "_scaled_mm", emulated_scaled_mm)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 512, generator=generator).bfloat16()
    layer = layer_from(weight, torch.zeros(64))
    x = torch.randn(4096, 512, generator=generator).bfloat16()
    whole = fp8_matmul_linear(x, layer.weight, layer.weight_scale, layer.bias)
    monkeypatch.setattr(fp8_scaled, "QUANT_CHUNK_ELEMENTS", 64 * 512)  # 64 rows at a time: 64 chunks
    meter = PhaseMeter(torch.device("cpu"))
    with meter:
        x = x.clone()  # made inside: the ledger counts it from here, not when it first sees a view of it
        chunked = fp8_matmul_linear(x, layer.weight, layer.weight_scale, layer.bias)
    assert torch.equal(chunked, whole)
    beside = meter.peak - meter.start - x.untyped_storage().nbytes() - chunked.untyped_storage().nbytes()
    assert 0 < beside < x.numel()  # under a byte per input element: quantized whole, 8 (float32, |x|, fp8)
