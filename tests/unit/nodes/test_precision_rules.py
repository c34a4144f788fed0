"""The compute dtypes the loader node picks: ComfyUI's own rules (float32 on a CPU) and its flags."""

import pytest
import torch
from comfy.cli_args import args

from ltx2_a2v.nodes.precision import comfy_precision

CPU = torch.device("cpu")


def test_a_cpu_computes_everything_in_float32():
    precision = comfy_precision(CPU)
    assert (precision.transformer, precision.text_encoder, precision.vae) == (torch.float32,) * 3


@pytest.mark.parametrize(
    "flag, family", [("bf16_unet", "transformer"), ("bf16_vae", "vae"), ("bf16_text_enc", "text_encoder")]
)
def test_comfyui_flags_decide_the_compute_dtype_of_their_family(monkeypatch, flag, family):
    monkeypatch.setattr(args, flag, True)
    precision = comfy_precision(CPU)
    assert getattr(precision, family) == torch.bfloat16
    others = {"transformer", "vae", "text_encoder"} - {family}
    assert all(getattr(precision, other) == torch.float32 for other in others)


def test_fp32_flag_wins_on_a_mocked_ampere_gpu(monkeypatch):
    """A GPU cannot exist here: ComfyUI's bf16 test answers as on an Ampere card."""
    import comfy.model_management as mm

    monkeypatch.setattr(mm, "should_use_bf16", lambda *a, **k: True)
    monkeypatch.setattr(args, "fp32_unet", True)
    precision = comfy_precision(torch.device("cuda"))
    assert precision.transformer == torch.float32 and precision.text_encoder == torch.bfloat16
