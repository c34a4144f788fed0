"""Writes the sample image and audio clip that go with the example workflows (made here, not downloaded).

    .venv/bin/python tools/make_sample_media.py [--out example_workflows/media]

ltx2_a2v_portrait.png: a drawn face on a soft background (640x480). ltx2_a2v_voice.wav: 3 s of a voice-like
sound (a 130 Hz glottal pulse train through moving vowel formants, in syllables), mono 22.05 kHz. Same bytes
every run.
"""

import argparse
import math
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
IMAGE_NAME, AUDIO_NAME = "ltx2_a2v_portrait.png", "ltx2_a2v_voice.wav"


def portrait(width: int = 640, height: int = 480) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    background = np.stack([90 + 60 * x / width, 110 + 40 * y / height, 150 - 30 * x / width], axis=-1)
    image = Image.fromarray(background.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy = width // 2, height // 2 + 20
    draw.rectangle([cx - 150, cy + 120, cx + 150, height], fill=(60, 70, 110))  # shoulders
    draw.ellipse([cx - 30, cy + 60, cx + 30, cy + 140], fill=(214, 170, 140))  # neck
    draw.ellipse([cx - 95, cy - 150, cx + 95, cy + 110], fill=(224, 180, 150))  # face
    draw.pieslice([cx - 105, cy - 175, cx + 105, cy + 20], 180, 360, fill=(70, 45, 30))  # hair
    for ex in (cx - 40, cx + 40):
        draw.ellipse([ex - 18, cy - 40, ex + 18, cy - 20], fill=(250, 250, 250))
        draw.ellipse([ex - 8, cy - 38, ex + 8, cy - 22], fill=(60, 40, 30))
    draw.line([cx, cy - 20, cx - 8, cy + 20, cx + 4, cy + 22], fill=(180, 130, 110), width=3)  # nose
    draw.chord([cx - 35, cy + 35, cx + 35, cy + 70], 0, 180, fill=(160, 60, 70))  # mouth
    return image.filter(ImageFilter.GaussianBlur(1.2))


def voice(seconds: float = 3.0, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    pitch = 130 * (1 + 0.08 * np.sin(2 * math.pi * 0.7 * t))
    phase = 2 * math.pi * np.cumsum(pitch) / rate
    source = sum(np.sin(k * phase) / k for k in range(1, 30))  # glottal-like harmonics
    # Vowel formants moving between /a/, /i/, /u/ across syllables of 0.25 s.
    syllable = (t / 0.25).astype(int) % 3
    formants = np.array([[730, 1090], [270, 2290], [300, 870]])[syllable]
    spectrum_gain = np.zeros_like(t)
    for k in range(1, 30):
        f = k * pitch
        spectrum_gain += np.sin(k * phase) / k * sum(np.exp(-(((f - formants[:, i]) / 120.0) ** 2)) for i in range(2))
    envelope = np.clip(np.sin(math.pi * (t % 0.25) / 0.25), 0, 1) ** 0.6 * (t % 0.75 < 0.6)
    signal = (0.3 * source / 3 + spectrum_gain) * envelope
    return (0.6 * signal / np.abs(signal).max() * 32767).astype(np.int16)


def write(out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    portrait().save(out / IMAGE_NAME, optimize=False)
    with wave.open(str(out / AUDIO_NAME), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(22050)
        f.writeframes(voice().tobytes())
    return out / IMAGE_NAME, out / AUDIO_NAME


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "example_workflows" / "media")
    for path in write(parser.parse_args().out):
        print(path)
