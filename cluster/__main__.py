"""The command line: `python -m cluster submit|status|result|cancel|worker ...` (docs/api-and-cluster.md).

    python -m cluster submit workflow.json --input face.png=./face.png --input voice.wav=/shared/voice.wav [--wait]
    python -m cluster status JOB_ID
    python -m cluster result JOB_ID [--timeout 600] [--verbose]
    python -m cluster cancel JOB_ID
    python -m cluster worker --models-dir /models --cuda-device 0 --results-dir /shared/results
    python -m cluster worker --comfyui-url http://127.0.0.1:8188 --results-dir /shared/results --inputs-root /shared

The broker is LTX2_CLUSTER_BROKER (or --broker), e.g. redis://queue-host:6379/0. A failed job prints its error in
a line or two on stderr and exits 1 (--verbose: the worker's full traceback too).
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


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", help="broker URL (default: LTX2_CLUSTER_BROKER, else redis://127.0.0.1:6379/0)")
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("submit", help="queue an API-format workflow with its input files; prints the job id")
    sub.add_argument("workflow", type=Path)
    sub.add_argument("--input", type=parse_input, action="append", default=[], metavar="NAME=PATH")
    sub.add_argument(
        "--by-path",
        action="store_true",
        help="send the inputs' paths (under the workers' --inputs-root, on storage they mount), not their bytes",
    )
    sub.add_argument("--job-id", help="your own id (resubmitted, it runs again into the same folder: overwritten)")
    sub.add_argument("--time-limit", type=float, help="seconds the job may run (at most the workers' limit)")
    sub.add_argument("--wait", action="store_true", help="wait and print the result")
    sub.add_argument("--verbose", action="store_true", help="with --wait: a failed job's full traceback")
    for name in ("status", "result", "cancel"):
        sub = commands.add_parser(name)
        sub.add_argument("job_id")
        if name == "result":
            sub.add_argument("--timeout", type=float)
            sub.add_argument("--verbose", action="store_true", help="a failed job's full traceback (the worker's)")
    sub = commands.add_parser("worker", help="one worker: one GPU, one ComfyUI, one job at a time")
    sub.add_argument("--results-dir", type=Path, required=True, help="where outputs go, by job id (shared storage)")
    sub.add_argument("--comfyui-url", help="a running ComfyUI with this pack")
    sub.add_argument("--models-dir", type=Path, help="start ComfyUI (tools/serve.py) with this models folder")
    sub.add_argument("--cuda-device", type=int, help="the GPU of the started ComfyUI")
    sub.add_argument("--cpu", action="store_true", help="start ComfyUI with --cpu (tests)")
    sub.add_argument("--comfyui-port", type=int)
    sub.add_argument("--work-dir", type=Path, help="the started ComfyUI's input/output folders")
    sub.add_argument("--name", help="worker name (default gpuN@host, or cpu@host)")
    sub.add_argument(
        "--inputs-root",
        type=Path,
        action="append",
        default=[],
        help="a folder whose files jobs may name by path (repeatable; none by default: inputs come as bytes)",
    )
    sub.add_argument("--time-limit", type=float, help="seconds a job may run (default LTX2_CLUSTER_SOFT_TIME_LIMIT)")
    sub.add_argument("--loglevel", default="INFO")
    return parser


def outcome(job_id: str, timeout: float | None, verbose: bool) -> int:
    """Waits for the job: its result as JSON on stdout, or its error in two lines on stderr (its id and state; the
    error's type and message on one line), then the worker's traceback with --verbose."""
    from . import client

    try:
        meta = client.ended(job_id, timeout)
    except TimeoutError as error:
        print(error, file=sys.stderr)
        return 3
    if meta["status"] == "SUCCESS":
        print(json.dumps(meta["result"], indent=1))
        return 0
    error = meta["result"]
    print(f"job {job_id}: {meta['status']}", file=sys.stderr)
    print(f"{type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
    if verbose:
        print(meta.get("traceback") or "(no traceback stored)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    if extra and args.command != "worker":
        parser().error(f"unrecognized arguments: {' '.join(extra)}")

    from .app import use_broker

    if args.broker:
        use_broker(args.broker)
    from . import client
    from .checks import checked_job_id
    from .errors import JobRefused
    from .job import Job

    try:
        if args.command == "submit":
            inputs = {name: (source if args.by_path else Path(source).read_bytes()) for name, source in args.input}
            workflow = json.loads(args.workflow.read_text())
            job_id = client.submit(Job(workflow, inputs), args.job_id, args.time_limit)
            print(job_id)
            return outcome(job_id, None, args.verbose) if args.wait else 0
        if args.command in ("status", "result", "cancel"):
            checked_job_id(args.job_id)
        if args.command == "status":
            print(json.dumps(client.status(args.job_id), indent=1))
        elif args.command == "cancel":
            client.cancel(args.job_id)
        elif args.command == "result":
            return outcome(args.job_id, args.timeout, args.verbose)
    except JobRefused as error:
        print(f"{args.command} refused: {error}", file=sys.stderr)
        return 2
    if args.command == "worker":
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
            args.inputs_root,
            args.time_limit,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
