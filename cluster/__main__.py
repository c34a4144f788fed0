"""The command line: `python -m cluster submit|status|result|cancel|worker ...` (README, "Scaling past one GPU").

    python -m cluster submit workflow.json --input face.png=./face.png --input voice.wav=/shared/voice.wav [--wait]
    python -m cluster status JOB_ID
    python -m cluster result JOB_ID [--timeout 600]
    python -m cluster cancel JOB_ID
    python -m cluster worker --models-dir /models --cuda-device 0 --results-dir /shared/results
    python -m cluster worker --comfyui-url http://127.0.0.1:8188 --results-dir /shared/results

The broker is LTX2_CLUSTER_BROKER (or --broker), e.g. redis://queue-host:6379/0.
"""

import argparse
import json
import socket
import sys
from pathlib import Path


def parse_input(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--input {text!r}: write NAME=PATH (NAME as the workflow names the file)")
    return name, source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", help="broker URL (default: LTX2_CLUSTER_BROKER, else redis://127.0.0.1:6379/0)")
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("submit", help="queue an API-format workflow with its input files; prints the job id")
    sub.add_argument("workflow", type=Path)
    sub.add_argument("--input", type=parse_input, action="append", default=[], metavar="NAME=PATH")
    sub.add_argument(
        "--by-path",
        action="store_true",
        help="send the inputs' paths (shared storage every worker mounts), not their bytes",
    )
    sub.add_argument("--job-id", help="your own id (resubmitted, it runs again into the same folder: overwritten)")
    sub.add_argument("--wait", action="store_true", help="wait and print the result")
    for name in ("status", "result", "cancel"):
        sub = commands.add_parser(name)
        sub.add_argument("job_id")
        if name == "result":
            sub.add_argument("--timeout", type=float)
    sub = commands.add_parser("worker", help="one worker: one GPU, one ComfyUI, one job at a time")
    sub.add_argument("--results-dir", type=Path, required=True, help="where outputs go, by job id (shared storage)")
    sub.add_argument("--comfyui-url", help="a running ComfyUI with this pack")
    sub.add_argument("--models-dir", type=Path, help="start ComfyUI (tools/serve.py) with this models folder")
    sub.add_argument("--cuda-device", type=int, help="the GPU of the started ComfyUI")
    sub.add_argument("--cpu", action="store_true", help="start ComfyUI with --cpu (tests)")
    sub.add_argument("--comfyui-port", type=int)
    sub.add_argument("--work-dir", type=Path, help="the started ComfyUI's input/output folders")
    sub.add_argument("--name", help="worker name (default gpuN@host, or cpu@host)")
    sub.add_argument("--loglevel", default="INFO")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    from .app import use_broker

    if args.broker:
        use_broker(args.broker)
    from . import client
    from .job import Job

    if args.command == "submit":
        inputs = {name: (source if args.by_path else Path(source).read_bytes()) for name, source in args.input}
        job_id = client.submit(Job(json.loads(args.workflow.read_text()), inputs), args.job_id)
        print(job_id)
        if args.wait:
            print(json.dumps(client.result(job_id), indent=1))
    elif args.command == "status":
        print(json.dumps(client.status(args.job_id), indent=1))
    elif args.command == "result":
        print(json.dumps(client.result(args.job_id, args.timeout), indent=1))
    elif args.command == "cancel":
        client.cancel(args.job_id)
    else:
        from .worker import run_worker

        device = "cpu" if args.cpu else f"gpu{args.cuda_device if args.cuda_device is not None else 0}"
        run_worker(
            args.name or f"{device}@{socket.gethostname()}",
            args.results_dir,
            args.comfyui_url,
            args.models_dir,
            args.work_dir,
            args.cuda_device,
            args.cpu,
            args.comfyui_port,
            extra,
            args.loglevel,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
