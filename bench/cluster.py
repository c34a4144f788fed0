"""Cluster benchmark: jobs per minute with 1 and 2 workers on the tiny bundle, and the queue's overhead per job
against queueing the same workflow on ComfyUI directly.

    .venv/bin/python bench/cluster.py [--jobs 4] [--rounds 3] [--out bench/results]

A throw-away Redis and two ComfyUI hosts (tools/comfy_host.py, --cpu) on this machine; the workers are
`python -m cluster worker --comfyui-url ...`, one per host. The job is the two-stage example workflow at 128x96,
17 frames, 3 + 3 steps (tests/workflows.py's size), with the sample portrait and voice clip sent as bytes.
- direct: upload (to a folder of the run's own, as the worker does), queue, follow the websocket, fetch the mp4 over
  /view, on host A, `--rounds` times in a row;
- overhead: the same through the queue with one worker (submit, wait for the result); each job's wall time less
  ComfyUI's own time for its prompt (history), queued minus direct;
- jobs/minute: `--jobs` jobs submitted at once, with 1 worker, then 2, until the last is done.
Prints a table and writes cluster.json.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, ensure_bundle

sys.path.insert(0, str(ROOT))
from comfy_host import MEDIA, ComfyHost  # noqa: E402  (tools/)
from local_redis import RedisServer  # noqa: E402  (tools/)

API = ROOT / "example_workflows" / "api" / "ltx2_a2v_two_stage.json"


def workflow(prefix: str) -> dict:
    prompt = json.loads(API.read_text())
    for node in ("4", "6"):
        prompt[node]["inputs"].update(width=128, height=96, num_frames=17, frame_rate=24.0)
    prompt["4"]["inputs"]["steps"] = 3
    prompt["9"]["inputs"]["filename_prefix"] = prefix
    return prompt


def inputs() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in MEDIA.iterdir()}


def execution_seconds(url: str, prompt_id: str) -> float:
    """ComfyUI's own time for the prompt, from execution_start to execution_success (its history's status messages,
    millisecond stamps): what is left of a job's wall time once it is taken away is the overhead around it."""
    from cluster.comfy_client import ComfyClient

    messages = dict(ComfyClient(url).history(prompt_id)["status"]["messages"])
    return (messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]) / 1000


def direct_run(url: str, prefix: str) -> tuple[float, float]:
    """What a client does without the queue: the same HTTP work the worker does. The inputs go to a folder of the
    run's own, as a worker puts them in the job's: with the same file names ComfyUI would reuse its cached outputs
    of every node and run nothing but the save."""
    from cluster.comfy_client import ComfyClient
    from cluster.job import pointed_at_uploads
    from cluster.outputs import output_refs

    started = time.perf_counter()
    comfy = ComfyClient(url)
    uploaded = {name: comfy.upload(name, data, f"direct/{uuid.uuid4().hex}") for name, data in inputs().items()}
    comfy.connect()
    prompt_id = comfy.queue(pointed_at_uploads(workflow(prefix), uploaded))
    status, _ = comfy.follow(prompt_id, lambda m: None, lambda: False)
    comfy.close()
    assert status == "success", status
    for _, ref in output_refs(comfy.history(prompt_id)):
        comfy.view(ref)
    return time.perf_counter() - started, execution_seconds(url, prompt_id)


def start_worker(name: str, url: str, broker: str, results: Path, log: Path) -> subprocess.Popen:
    from cluster.app import app

    env = {**os.environ, "LTX2_CLUSTER_BROKER": broker}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cluster",
            "worker",
            "--name",
            name,
            "--comfyui-url",
            url,
            "--results-dir",
            str(results),
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    while not any(name in reply for reply in (app.control.ping(timeout=1.0) or [])):
        if process.poll() is not None:
            raise RuntimeError(f"worker {name} exited:\n{log.read_text()[-3000:]}")
    return process


def batch(count: int, tag: str) -> float:
    """Seconds from submitting `count` jobs at once to the last one's result."""
    import cluster

    started = time.perf_counter()
    jobs = [cluster.submit(cluster.Job(workflow(f"bench/{tag}{i}"), inputs())) for i in range(count)]
    for job in jobs:
        cluster.result(job, timeout=3600)
    return time.perf_counter() - started


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs per throughput batch")
    parser.add_argument("--rounds", type=int, default=3, help="jobs one after another, direct and queued")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import cluster
    from cluster.app import use_broker

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that `finally` stops the servers and workers
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    models = work / "models"
    models.mkdir()
    ensure_bundle(models, "tiny")
    redis_server = RedisServer(work).start()
    use_broker(redis_server.url)
    hosts = [ComfyHost(models, work / f"host{i}") for i in range(2)]
    workers = []
    try:
        for host in hosts:
            host.wait_ready()
            direct_run(host.url, "bench/warmup")  # first run on a host: imports, first loads
        direct = [direct_run(hosts[0].url, f"bench/direct{i}") for i in range(args.rounds)]
        print(f"direct (wall, in ComfyUI): {[(round(w, 2), round(e, 2)) for w, e in direct]} s", flush=True)

        workers.append(start_worker("w1@bench", hosts[0].url, redis_server.url, work / "results", work / "w1.log"))
        queued = []
        for i in range(args.rounds):
            started = time.perf_counter()
            done = cluster.result(cluster.submit(cluster.Job(workflow(f"bench/queued{i}"), inputs())), timeout=3600)
            queued.append((time.perf_counter() - started, execution_seconds(hosts[0].url, done["prompt_id"])))
        print(f"queued (wall, in ComfyUI): {[(round(w, 2), round(e, 2)) for w, e in queued]} s", flush=True)
        one = batch(args.jobs, "one")
        workers.append(start_worker("w2@bench", hosts[1].url, redis_server.url, work / "results", work / "w2.log"))
        two = batch(args.jobs, "two")
    finally:
        for process in workers:
            process.terminate()
            process.wait(timeout=60)
        for host in hosts:
            host.stop()
        redis_server.stop()

    # Around each job: its wall time less ComfyUI's own time for the prompt. Direct: upload, queue, websocket,
    # /view; queued: the same on the worker plus the broker, the worker's delivery and the result. The difference of
    # the two is the queue's overhead, and it does not depend on how long the sampling took (which, on cores shared
    # with other work, varies by more than the overhead).
    around_direct = statistics.median(w - e for w, e in direct)
    around_queued = statistics.median(w - e for w, e in queued)
    figures = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "jobs": args.jobs,
        "rounds": args.rounds,
        "direct_seconds": statistics.median(w for w, _ in direct),
        "queued_seconds": statistics.median(w for w, _ in queued),
        "around_direct_seconds": around_direct,
        "around_queued_seconds": around_queued,
        "overhead_seconds": around_queued - around_direct,
        "jobs_per_minute": {"1 worker": 60 * args.jobs / one, "2 workers": 60 * args.jobs / two},
        "runs": {"direct": direct, "queued": queued, "batch_1_worker": one, "batch_2_workers": two},
    }
    print("\n| | seconds per job | of which around ComfyUI's run | jobs per minute |\n|---|---|---|---|")
    print(f"| ComfyUI directly, one after another | {figures['direct_seconds']:.2f} | {around_direct:.2f} | |")
    print(
        f"| through the queue, one after another (1 worker) | {figures['queued_seconds']:.2f} | {around_queued:.2f} | |"
    )
    for label, seconds in (("1 worker", one), ("2 workers", two)):
        print(
            f"| {args.jobs} jobs at once, {label} | {seconds / args.jobs:.2f} | | "
            f"{figures['jobs_per_minute'][label]:.1f} |"
        )
    print(
        f"\nqueue overhead per job: {figures['overhead_seconds']:+.2f} s (medians of {args.rounds}); "
        f"load average {figures['load_average'][0]:.1f} on {figures['cores']} cores"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(json.dumps(figures, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
