"""One random stream per run, as ltx-pipelines has: a stage with the seed of the stage before continues that
stage's stream (carried in the latent), another seed starts a new one."""

import torch

from ltx2_a2v.ltx2.a2v.latent import A2VLatent
from ltx2_a2v.ltx2.a2v.stages import generator_for

CPU = torch.device("cpu")


def latent_after(seed: int, draws: int) -> A2VLatent:
    generator = torch.Generator(CPU).manual_seed(seed)
    torch.randn(draws, generator=generator)
    return A2VLatent(
        video=torch.zeros(1),
        audio_latents=(torch.zeros(1),),
        audio=None,
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=seed,
        noise_state=generator.get_state(),
    )


def test_the_same_seed_continues_the_stream_and_another_seed_starts_anew():
    one_stream = torch.Generator(CPU).manual_seed(42)
    first, second = torch.randn(100, generator=one_stream), torch.randn(100, generator=one_stream)
    latent = latent_after(42, 100)
    assert torch.equal(torch.randn(100, generator=generator_for(CPU, 42, latent)), second)
    assert torch.equal(
        torch.randn(100, generator=generator_for(CPU, 7, latent)),
        torch.randn(100, generator=torch.Generator(CPU).manual_seed(7)),
    )
    assert torch.equal(torch.randn(100, generator=generator_for(CPU, 42)), first)  # no latent: a fresh stream
