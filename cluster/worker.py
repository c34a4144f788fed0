"""One worker per GPU: a Celery worker process taking one job at a time, attached to one ComfyUI.

The ComfyUI is either given by URL (one already running, e.g. `CUDA_VISIBLE_DEVICES=1 python main.py --port 8189`)
or started here with tools/serve.py on the GPU named by --cuda-device (ComfyUI's own option), in this process's
process group, and started again if it exits while the worker runs (jobs meanwhile retry with backoff).
"""

import atexit
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .app import QUEUE, app, visibility_rule
from .comfy_client import ComfyClient

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManagedComfyUI:
    """ComfyUI with this pack (tools/serve.py), its input and output folders under `work_dir`."""

    def __init__(
        self,
        models_dir: Path,
        work_dir: Path,
        cuda_device: int | None,
        cpu: bool,
        port: int | None,
        extra_args: list[str],
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        work_dir.mkdir(parents=True, exist_ok=True)
        self.command = [
            sys.executable,
            str(ROOT / "tools" / "serve.py"),
            "--models-dir",
            str(models_dir),
            "--port",
            str(self.port),
            "--input-directory",
            str(work_dir / "input"),
            "--output-directory",
            str(work_dir / "output"),
            "--database-url",
            f"sqlite:///{work_dir / 'comfyui.db'}",
            *(["--cpu"] if cpu else []),
            *(["--cuda-device", str(cuda_device)] if cuda_device is not None else []),
            *extra_args,
        ]
        self.log_path = work_dir / "comfyui.log"
        self.owner = os.getpid()
        self.stopping = False
        self.process = None

    def start(self, timeout: float = 600.0) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline, client = time.monotonic() + timeout, ComfyClient(self.url, timeout=2)
        while not client.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ComfyUI did not start (exit {self.process.poll()}); see {self.log_path}")
            time.sleep(0.5)

    def supervise(self) -> None:
        """Starts ComfyUI again whenever it exits (a crash, an out-of-memory kill) while the worker lives."""

        def loop():
            while not self.stopping:
                if self.process.poll() is not None and not self.stopping:
                    print(f"ComfyUI exited with {self.process.returncode}; starting it again", file=sys.stderr)
                    try:
                        self.start()
                    except RuntimeError as error:
                        print(error, file=sys.stderr)
                time.sleep(1.0)

        threading.Thread(target=loop, daemon=True, name="comfyui-supervisor").start()

    def stop(self) -> None:
        if os.getpid() != self.owner or self.process is None:
            return  # a forked pool process inherits the handler; only the worker stops ComfyUI
        self.stopping = True
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def configure(
    name: str, results_dir: Path, comfyui_url: str, inputs_roots: list[Path], time_limit: float | None
) -> None:
    """The worker's settings, in the app's configuration: its pool process, forked from this one, reads them there.
    Refuses (SystemExit) an inputs root that is no folder, and time limits that break the visibility rule."""
    roots = []
    for root in inputs_roots:
        if not Path(root).is_dir():
            raise SystemExit(f"worker: --inputs-root {root}: no such folder")
        roots.append(str(Path(root).resolve()))
    if time_limit is not None:
        app.conf.task_time_limit = time_limit + app.conf.task_time_limit - app.conf.task_soft_time_limit
        app.conf.task_soft_time_limit = time_limit
    if problem := visibility_rule():
        raise SystemExit(f"worker: {problem}")
    results_dir.mkdir(parents=True, exist_ok=True)
    app.conf.update(
        ltx2_comfyui_url=comfyui_url,
        ltx2_results_dir=str(results_dir.resolve()),
        ltx2_worker_name=name,
        ltx2_inputs_roots=tuple(roots),
    )


def run_worker(
    name: str,
    results_dir: Path,
    comfyui_url: str | None = None,
    models_dir: Path | None = None,
    work_dir: Path | None = None,
    cuda_device: int | None = None,
    cpu: bool = False,
    comfyui_port: int | None = None,
    comfyui_args: list[str] = (),
    loglevel: str = "INFO",
    inputs_roots: list[Path] = (),
    time_limit: float | None = None,
) -> None:
    configure(name, results_dir, comfyui_url or "", list(inputs_roots), time_limit)
    if comfyui_url is None:
        if models_dir is None:
            raise SystemExit(
                "worker: give --comfyui-url (a running ComfyUI with this pack) or --models-dir (to start one)"
            )
        comfy = ManagedComfyUI(
            models_dir,
            work_dir or results_dir.parent / f"comfyui-{name}",
            cuda_device,
            cpu,
            comfyui_port,
            list(comfyui_args),
        )
        atexit.register(comfy.stop)
        comfy.start()
        comfy.supervise()
        comfyui_url = comfy.url
    elif not ComfyClient(comfyui_url, timeout=5).ready():
        print(f"worker: no ComfyUI answers at {comfyui_url} yet; jobs will retry until it does", file=sys.stderr)
    app.conf.ltx2_comfyui_url = comfyui_url
    # One process, one job at a time (the pool's single child runs it, so a dying job is seen by the worker and
    # put back on the queue), no job held in reserve.
    app.worker_main(
        [
            "worker",
            f"--hostname={name}",
            f"--queues={QUEUE}",
            "--concurrency=1",
            "--pool=prefork",
            "--prefetch-multiplier=1",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
