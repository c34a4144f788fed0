"""Draws the template browser's thumbnail of each example workflow: the sample portrait, the voice clip's
waveform and the workflow's chain of nodes, read from the UI-format file.

    .venv/bin/python tools/make_thumbnail.py

writes example_workflows/<name>.jpg beside each example_workflows/<name>.json. ComfyUI serves a custom-node
pack's example_workflows/ folder under /api/workflow_templates/<pack>/, and the page's template browser shows
`<name>.jpg` from there as the card of `<name>.json`. Same inputs, same pixels (only Pillow's bundled font is
used, no system font).
"""

import io
import json
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "example_workflows"
PORTRAIT = WORKFLOWS / "media" / "ltx2_a2v_portrait.png"
VOICE = WORKFLOWS / "media" / "ltx2_a2v_voice.wav"

SIZE = 640
BACKGROUND, PANEL, TEXT, MUTED = (24, 24, 27), (39, 39, 42), (235, 235, 240), (150, 150, 160)
PACK_COLOR, CORE_COLOR, WAVE_COLOR = (59, 130, 246), (82, 82, 91), (245, 158, 11)
# Nodes that only feed the chain (files, media, notes) are shown as the inputs at the top.
SOURCES = {"LoadImage", "LoadAudio", "LoadLTX2Quantized", "Note"}
PACK_NODES = {
    "LoadLTX2Quantized",
    "A2VSampler",
    "SpatialUpscale",
    "LTX2Decode",
    "LTX2DecodeToVideo",
    "VRAMGuard",
    "LTX2Keyframe",
    "LTX2LoRA",
}


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def chain(workflow: dict) -> list[dict]:
    """The workflow's processing nodes in execution order (their link order, ties by id)."""
    nodes = {n["id"]: n for n in workflow["nodes"] if n["type"] not in SOURCES}
    parents = {i: set() for i in nodes}
    for _id, src, _slot, dst, _dst_slot, _kind in workflow["links"]:
        if src in nodes and dst in nodes:
            parents[dst].add(src)
    ordered, done = [], set()
    while len(ordered) < len(nodes):
        ready = sorted(i for i in nodes if i not in done and parents[i] <= done)
        ordered.append(nodes[ready[0]])
        done.add(ready[0])
    return ordered


def waveform(path: Path, width: int) -> np.ndarray:
    """Peak amplitude (0..1) of `width` equal slices of the clip."""
    with wave.open(str(path)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, w.getnchannels())
    mono = np.abs(samples.astype(np.float32)).max(axis=1) / 32768.0
    slices = np.array_split(mono, width)
    peaks = np.array([s.max() if len(s) else 0.0 for s in slices])
    return peaks / max(peaks.max(), 1e-6)


def arrow(draw: ImageDraw.ImageDraw, *points: tuple[int, int]) -> None:
    """A line through `points` with its head at the last one."""
    draw.line(points, fill=MUTED, width=3, joint="curve")
    (x0, y0), (x1, y1) = points[-2:]
    direction = np.array([x1 - x0, y1 - y0], dtype=float)
    direction /= np.linalg.norm(direction)
    normal = np.array([-direction[1], direction[0]])
    tip = np.array([x1, y1])
    points = [tuple(tip), tuple(tip - 10 * direction + 6 * normal), tuple(tip - 10 * direction - 6 * normal)]
    draw.polygon([(round(x), round(y)) for x, y in points], fill=MUTED)


def draw_thumbnail(workflow: dict, name: str) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((28, 22), "LTX-2.3 audio to video", font=font(34), fill=TEXT)
    draw.text((30, 66), f"{name}  ·  quantized, in one VRAM budget", font=font(17), fill=MUTED)

    # Inputs: the first frame and the voice that drives the lips.
    top, side = 104, 200
    portrait = Image.open(PORTRAIT).convert("RGB")
    crop = min(portrait.size)
    left = (portrait.width - crop) // 2
    portrait = portrait.crop((left, 0, left + crop, crop)).resize((side, side), Image.Resampling.LANCZOS)
    image.paste(portrait, (28, top))
    box = (248, top, SIZE - 28, top + side)
    draw.rounded_rectangle(box, radius=10, fill=PANEL)
    middle, half = (box[1] + box[3]) // 2, (side - 56) // 2
    for x, peak in enumerate(waveform(VOICE, (box[2] - box[0] - 32) // 3)):
        px = box[0] + 16 + 3 * x
        draw.line([(px, middle - peak * half), (px, middle + peak * half)], fill=WAVE_COLOR, width=2)
    draw.text((box[0] + 14, box[3] - 26), "image + voice clip + prompt", font=font(15), fill=MUTED)

    # The chain of nodes, in two columns: down the left, then down the right.
    steps = chain(workflow)
    rows = (len(steps) + 1) // 2
    col_w, pill_h, gap = 268, 42, 24
    y0 = top + side + 30
    places = []
    for i, node in enumerate(steps):
        col, row = divmod(i, rows)
        x = 28 + col * (col_w + 48)
        y = y0 + row * (pill_h + gap)
        places.append((x, y))
        color = PACK_COLOR if node["type"] in PACK_NODES else CORE_COLOR
        draw.rounded_rectangle((x, y, x + col_w, y + pill_h), radius=9, fill=color)
        draw.text((x + 14, y + 12), node.get("title") or node["type"], font=font(17), fill=TEXT)
    for (xa, ya), (xb, yb) in zip(places, places[1:]):
        if xa == xb:
            arrow(draw, (xa + 24, ya + pill_h), (xb + 24, yb))
        else:  # from the bottom of the left column up to the top of the right one
            turn = (xa + col_w + xb) // 2
            arrow(
                draw,
                (xa + col_w, ya + pill_h // 2),
                (turn, ya + pill_h // 2),
                (turn, yb + pill_h // 2),
                (xb, yb + pill_h // 2),
            )
    arrow(draw, (places[0][0] + 24, top + side), (places[0][0] + 24, places[0][1]))
    draw.rounded_rectangle((28, SIZE - 38, 42, SIZE - 24), radius=3, fill=PACK_COLOR)
    draw.text((50, SIZE - 40), "LTX-2 pack", font=font(15), fill=MUTED)
    draw.rounded_rectangle((158, SIZE - 38, 172, SIZE - 24), radius=3, fill=CORE_COLOR)
    draw.text((180, SIZE - 40), "ComfyUI core", font=font(15), fill=MUTED)
    return image


def encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, optimize=True)
    return out.getvalue()


def thumbnail_of(path: Path) -> bytes:
    """The JPEG for the UI-format workflow at `path`."""
    return encode(draw_thumbnail(json.loads(path.read_text()), path.stem))


def write() -> list[Path]:
    written = []
    for path in sorted(WORKFLOWS.glob("*.json")):
        out = path.with_suffix(".jpg")
        out.write_bytes(thumbnail_of(path))
        written.append(out)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
