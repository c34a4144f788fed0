"""The main job: the pack's example workflow run through a real ComfyUI host on the tiny bundle.

    .venv/bin/python tools/demo.py [--out DIR] [--keep-host]

It writes the tiny bundle (once), starts the host with tools/serve.py, checks that the pack's nodes are
listed, queues the API workflow over HTTP, follows it on the websocket and prints the timings.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import ComfyHost  # noqa: E402
from make_tiny_bundle import make_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "example_workflows" / "api" / "ltx2_load_check.json"
PACK_NODES = ("LoadLTX2Quantized", "VRAMGuard")


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
    host = ComfyHost(models, out).wait_ready()
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
            print(f"demo: the workflow ended with {result.status}: {json.dumps(result.messages[-1])[:2000]}",
                  file=sys.stderr)
            return 1
        for node_id, output in result.history.get("outputs", {}).items():
            for text in output.get("text", []):
                print(f"demo: node {node_id} reports: {text}")
    finally:
        host.stop()
    print("demo: timings " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"demo: host log {host.log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
