"""A throw-away Redis on 127.0.0.1 (Debian's redis-server, tools/setup_redis.sh), append-only file on, behind a
password, and with `tls=True` reached over TLS only (a self-signed certificate made here with openssl): the broker
of the cluster's tests and benchmark, set up as docs/api-and-cluster.md tells production to. Not itself for
production."""

import secrets
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis
from comfy_host import free_port

REDIS = "/usr/bin/redis-server"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key; the certificate is also the authority clients check it against."""
    cert, key = folder / "redis-cert.pem", folder / "redis-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class RedisServer:
    def __init__(self, work_dir: Path, tls: bool = False):
        self.port, self.dir = free_port(), Path(work_dir)
        self.password = secrets.token_hex(16)
        self.tls_args: list[str] = []
        if tls:
            cert, key = self_signed(self.dir)
            self.tls_args = [
                *("--port", "0", "--tls-port", str(self.port)),
                *("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)),
                *("--tls-auth-clients", "no"),
            ]
            query = f"?ssl_cert_reqs=required&ssl_ca_certs={quote(str(cert))}"
            self.url = f"rediss://:{self.password}@127.0.0.1:{self.port}/0{query}"
        else:
            self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> "RedisServer":
        if not Path(REDIS).exists():
            raise FileNotFoundError(f"{REDIS} is missing: run `make setup` (tools/setup_redis.sh installs it)")
        self.process = subprocess.Popen(
            [
                REDIS,
                *("--bind", "127.0.0.1", "--port", str(self.port), *self.tls_args),
                *("--requirepass", self.password, "--dir", str(self.dir)),
                *("--appendonly", "yes", "--save", "", "--daemonize", "no"),
                *("--logfile", str(self.dir / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = self.client()
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
