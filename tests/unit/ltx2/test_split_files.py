"""Split files, as ComfyUI users download them: a transformer-only checkpoint with the video VAE, the audio VAE (with
its vocoder) and the text projection beside it build every component as the one-file checkpoint does; what the
checkpoint lacks and no split file gives is refused from the headers, naming the input that would give it."""

import dataclasses

import pytest
import torch
from building import build_component

from ltx2_a2v.errors import LTX2InputError
from ltx2_a2v.ltx2.components.bundle_parts import check_bundle, missing_parts
from ltx2_a2v.ltx2.components.model_spec import ModelSpec
from ltx2_a2v.ltx2.components.table import COMPONENTS, Bundle


@pytest.fixture(scope="module")
def split(low_bit_paths) -> Bundle:
    p = low_bit_paths
    return Bundle(
        checkpoint=p["transformer_only"],
        text_encoder=p["text_encoder"],
        spatial_upsampler=p["spatial_upsampler"],
        video_vae=p["video_vae"],
        audio_vae=p["audio_vae"],
        text_projection=p["text_projection"],
    )


@pytest.mark.parametrize("name", [n for n, c in COMPONENTS.items() if c.file == "checkpoint"])
def test_split_files_build_what_the_full_checkpoint_builds(split, low_bit_paths, name):
    full = dataclasses.replace(split, checkpoint=low_bit_paths["checkpoint"], video_vae=None, audio_vae=None)
    full = dataclasses.replace(full, text_projection=None)
    built, report = build_component(split, name)
    reference, _ = build_component(full, name)
    expected = reference.state_dict()
    assert built.state_dict().keys() == expected.keys()
    assert all(torch.equal(t, expected[k]) for k, t in built.state_dict().items())
    # The run report names the file each component came from.
    part = next((p.field for p in COMPONENTS[name].parts), None)
    assert getattr(split, part or "checkpoint").name in report.summary()


def test_a_split_file_replaces_the_part_the_checkpoint_also_holds(split, low_bit_paths):
    both = dataclasses.replace(split, checkpoint=low_bit_paths["checkpoint"])
    model = ModelSpec(both, check_bundle(both))
    assert model.files_of("video_decoder") == [low_bit_paths["checkpoint"], low_bit_paths["video_vae"]]
    _, report = build_component(both, "video_decoder")
    assert ", from ltx-2.3-tiny_video_vae.safetensors;" in report.summary() + ";"  # not the checkpoint's VAE


def test_the_config_comes_from_the_files_that_hold_each_part(split, low_bit_paths):
    config = check_bundle(split)
    full = check_bundle(Bundle(checkpoint=low_bit_paths["checkpoint"], text_encoder=low_bit_paths["text_encoder"]))
    assert config == full


@pytest.mark.parametrize(
    "drop, words",
    [
        (
            "video_vae",
            r"^video_vae: ltx-2.3-tiny-dev_transformer_only.safetensors is not an LTX-2 audio-video checkpoint "
            r"by itself: it lacks the video VAE \(no vae.encoder., vae.per_channel_statistics., vae.decoder. entries\)",
        ),
        ("audio_vae", r"^audio_vae: .* lacks the audio VAE and its vocoder \(no audio_vae.encoder., "),
        (
            ("video_vae", "text_projection"),
            r"^video_vae and text_projection: .* lacks the video VAE and the text projection \(no ",
        ),
        (
            "text_projection",
            r"^text_projection: .* lacks the text projection \(no text_embedding_projection. entries\)",
        ),
    ],
)
def test_a_part_the_checkpoint_lacks_is_refused_naming_the_input_that_gives_it(split, drop, words):
    lacking = dataclasses.replace(split, **dict.fromkeys((drop,) if isinstance(drop, str) else drop))
    assert missing_parts(split) == []
    with pytest.raises(LTX2InputError, match=words):
        check_bundle(lacking)


def test_a_split_file_of_the_wrong_kind_is_refused_naming_it(split):
    wrong = dataclasses.replace(split, video_vae=split.text_projection)
    (problem,) = missing_parts(wrong)
    assert problem.startswith("video_vae: ltx-2.3-tiny_text_projection.safetensors does not hold the video VAE")
