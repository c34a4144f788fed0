"""Fixtures of the cluster tests: a real Redis (Debian's redis-server, append-only file on, behind a password and
TLS, as docs/api-and-cluster.md has it) on a free port, and a factory of real Celery workers (cluster_rig.py)."""

import gc
from pathlib import Path

import pytest
from cluster_rig import Worker, use_rig_settings  # first: it puts the repository on sys.path, for `cluster`
from local_redis import REDIS, RedisServer  # tools/

from cluster.app import app, use_broker


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if not Path(REDIS).exists():
        pytest.fail(f"{REDIS} is missing: run `make setup` (tools/setup_redis.sh installs Debian's redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"), tls=True).start()
    use_broker(server.url)
    use_rig_settings()
    yield server
    # Celery's job handles unsubscribe from Redis when collected; collected after Redis has gone, each would retry
    # its reconnection and fail the session's end. So: collect them now, then close the subscription.
    gc.collect()
    consumer = app.backend.result_consumer
    consumer.stop()
    consumer._pubsub = None
    server.stop()


@pytest.fixture
def make_worker(redis_server, tmp_path):
    started = []

    def start(name: str, results: Path, *args: str, env: dict | None = None) -> Worker:
        worker = Worker(name, redis_server.url, results, tmp_path / f"{name.split('@')[0]}.log", *args, env=env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def fresh_queue(redis_server):
    """Each test starts on an empty broker and result backend."""
    redis_server.client().flushall()
