"""The cluster's test rig: real Celery workers (`python -m cluster worker`) in their own process groups, attached
to real ComfyUI hosts, on a real Redis (tools/local_redis.py). The fixtures are in conftest.py."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from comfy_host import MEDIA  # noqa: E402  (tools/)

from cluster.app import app, settings  # noqa: E402

# How long a delivered job may stay unacknowledged before Redis hands it out again. It must exceed the hard time
# limit plus the longest retry wait (or a job runs twice): a tiny job takes seconds alone but over a minute on two
# cores shared with other work, so the tests that do not kill a worker keep 600 s, jobs 300 s (420 s hard); the
# failover test sets its own. A lost job is looked for every second (kombu's sweep), instead of every 100 s.
# Inputs: up to 120 MiB each (over ComfyUI's 100 MB upload limit, to see its refusal), 3 MiB of message (to see
# the per-message limit without sending much). ComfyUI silent for 5 s is asked whether it still answers.
VISIBILITY_TIMEOUT = 600
WORKER_ENV = {
    "LTX2_CLUSTER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    "LTX2_CLUSTER_TRANSPORT_OPTIONS": '{"unacked_restore_interval": 1, "unacked_restore_throttle": 1}',
    "LTX2_CLUSTER_SOFT_TIME_LIMIT": "300",
    "LTX2_CLUSTER_TIME_LIMIT": "420",
    "LTX2_CLUSTER_MAX_INPUT_MB": "120",
    "LTX2_CLUSTER_MAX_MESSAGE_MB": "3",
    "LTX2_CLUSTER_STALL_TIMEOUT": "5",
}


def use_rig_settings() -> None:
    """This process (the tests' client) with the workers' settings, as a deployment gives all the same."""
    app.conf.update(settings({**os.environ, **WORKER_ENV}))


class Worker:
    """`python -m cluster worker` in its own process group (what a machine's death takes down: the worker, its pool
    process and, when it started one, its ComfyUI)."""

    def __init__(self, name: str, broker: str, results: Path, log: Path, *args: str, env: dict | None = None):
        self.name, self.log_path = name, log
        env = {**os.environ, **WORKER_ENV, "LTX2_CLUSTER_BROKER": broker, **(env or {})}
        env.pop("LTX2_CLUSTER_BACKEND", None)
        self._log = open(log, "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cluster",
                "worker",
                "--name",
                name,
                "--results-dir",
                str(results),
                "--loglevel",
                "INFO",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 300.0) -> "Worker":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if any(self.name in reply for reply in (app.control.ping(timeout=1.0) or [])):
                    return self
            except (redis.ConnectionError, OSError):  # the broker was just restarted: the next call reconnects
                time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-6000:]

    def kill(self) -> None:
        """SIGKILL to the whole process group: nothing gets to clean up or hand its job back."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def media_inputs() -> dict[str, bytes]:
    """The sample portrait and voice clip, sent with the job as bytes."""
    return {path.name: path.read_bytes() for path in MEDIA.iterdir()}


def image_job(name: str = "portrait.png", prefix: str = "cluster/image") -> dict:
    """The cheapest good job: LoadImage -> SaveImage (ComfyUI's core nodes), one input, one output, well under a
    second: what shows that a worker still serves after a hostile case."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def portrait() -> bytes:
    return (MEDIA / "ltx2_a2v_portrait.png").read_bytes()
