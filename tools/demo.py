"""The main job: the two-stage A2V example workflow run through a real ComfyUI host on the tiny bundle.

    .venv/bin/python tools/demo.py [--out DIR]

It writes the tiny bundle, starts the host with tools/serve.py, checks that the pack's nodes are listed,
queues example_workflows/api/ltx2_a2v_two_stage.json over HTTP with the sample image and voice clip, follows
it on the websocket, checks the mp4 (a video and an audio stream) and prints its path and per-node timings.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import ComfyHost, node_timings  # noqa: E402
from make_tiny_bundle import make_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "example_workflows" / "api" / "ltx2_a2v_two_stage.json"
MEDIA = ROOT / "example_workflows" / "media"
PACK_NODES = ("LoadLTX2Quantized", "A2VSampler", "SpatialUpscale", "LTX2Decode", "VRAMGuard")


def describe_mp4(path: Path) -> str:
    import av

    with av.open(str(path)) as container:
        video = next(s for s in container.streams if s.type == "video")
        audio = next((s for s in container.streams if s.type == "audio"), None)
        frames = sum(1 for _ in container.decode(video=0))
        if audio is None:
            raise SystemExit(f"demo: {path} has no audio stream")
        return (
            f"video {video.codec_context.name} {video.codec_context.width}x{video.codec_context.height}, "
            f"{frames} frames at {float(video.average_rate):g} fps; audio {audio.codec_context.name} "
            f"{audio.codec_context.sample_rate} Hz, {audio.codec_context.channels} ch"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "demo", help="work folder (models, output, log)")
    args = parser.parse_args()
    out = args.out.resolve()
    timings = {}

    start = time.monotonic()
    models = out / "models"
    make_bundle(models, "tiny", seed=0)
    timings["bundle"] = time.monotonic() - start

    start = time.monotonic()
    host = ComfyHost(models, out)
    for media in MEDIA.iterdir():
        shutil.copy(media, host.input_dir / media.name)
    host.wait_ready()
    timings["host start"] = time.monotonic() - start
    try:
        info = host.object_info()
        missing = [n for n in PACK_NODES if n not in info]
        if missing:
            print(f"demo: the host does not list {', '.join(missing)}; see {host.log_path}", file=sys.stderr)
            return 1
        print(f"demo: host lists the pack's nodes: {', '.join(PACK_NODES)}")

        start = time.monotonic()
        result = host.run(json.loads(WORKFLOW.read_text()), timeout=1800)
        timings["workflow"] = time.monotonic() - start
        if result.status != "success":
            print(
                f"demo: the workflow ended with {result.status}: {json.dumps(result.messages[-1])[:2000]}",
                file=sys.stderr,
            )
            return 1
        prompt = json.loads(WORKFLOW.read_text())
        for node_id, seconds in node_timings(result).items():
            title = prompt.get(node_id, {}).get("_meta", {}).get("title", node_id)
            print(f"demo:   {title:28s} {seconds:7.2f} s")
        videos = [
            host.output_dir / f.get("subfolder", "") / f["filename"]
            for output in result.history.get("outputs", {}).values()
            for f in output.get("images", [])
            if f.get("filename", "").endswith(".mp4")
        ]
        if not videos:
            print(
                f"demo: the workflow wrote no mp4: {json.dumps(result.history.get('outputs'))[:2000]}", file=sys.stderr
            )
            return 1
        streams = describe_mp4(videos[0])
        for text in result.outputs("10").get("text", []):
            print("demo: " + text.replace("\n", "\ndemo: "))
        print(f"demo: wrote {videos[0]} ({streams})")
    finally:
        host.stop()
    print("demo: timings " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"demo: host log {host.log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
