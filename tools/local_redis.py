"""A throw-away Redis on 127.0.0.1 (Debian's redis-server, tools/setup_redis.sh), append-only file on: the broker of
the cluster's tests and benchmark. Not for production: see README, "Scaling past one GPU"."""

import subprocess
import time
from pathlib import Path

import redis
from comfy_host import free_port

REDIS = "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, work_dir: Path):
        self.port, self.dir = free_port(), Path(work_dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> "RedisServer":
        if not Path(REDIS).exists():
            raise FileNotFoundError(f"{REDIS} is missing: run `make setup` (tools/setup_redis.sh installs it)")
        self.process = subprocess.Popen(
            [
                REDIS,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{(self.dir / 'redis.log').read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, as in a planned restart."""
        self.process.terminate()
        self.process.wait(timeout=30)
