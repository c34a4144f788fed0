"""The Celery application: broker, result backend and the delivery rules every worker and client share.

Settings come from the environment so that workers, clients and Flower (`celery -A cluster.app flower`) agree:
- LTX2_CLUSTER_BROKER: the broker URL (default redis://127.0.0.1:6379/0; RabbitMQ's amqp:// works the same).
- LTX2_CLUSTER_BACKEND: where job states and results are kept (default: the broker's URL; must be Redis for
  `cancel`, which leaves its flag there).
- LTX2_CLUSTER_VISIBILITY_TIMEOUT: seconds a delivered job may stay unacknowledged before the broker hands it to
  another worker (Redis only; default 3600). It must exceed the longest job, or a job runs twice.
- LTX2_CLUSTER_TRANSPORT_OPTIONS: further kombu transport options as JSON (tests shorten the sweep of lost jobs
  with {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}).
"""

import json
import os

from celery import Celery

QUEUE = "ltx2-a2v"
BROKER = os.environ.get("LTX2_CLUSTER_BROKER", "redis://127.0.0.1:6379/0")
BACKEND = os.environ.get("LTX2_CLUSTER_BACKEND", BROKER)


def transport_options() -> dict:
    options = {"visibility_timeout": float(os.environ.get("LTX2_CLUSTER_VISIBILITY_TIMEOUT", "3600"))}
    options.update(json.loads(os.environ.get("LTX2_CLUSTER_TRANSPORT_OPTIONS", "{}")))
    return options


app = Celery("ltx2_cluster", broker=BROKER, backend=BACKEND, include=["cluster.tasks"])
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A job is acknowledged only when it has finished: a worker (or its machine) that dies mid-job leaves it
    # unacknowledged, and the broker gives it to another worker. One job per worker process, none held in reserve,
    # so a queued job never waits behind a busy GPU while another is free.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=1,
    task_track_started=True,
    result_extended=True,
    result_expires=7 * 24 * 3600,
    broker_transport_options=transport_options(),
    result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def use_broker(url: str, backend: str | None = None) -> None:
    """Points this process at another broker (the command line's --broker, tests); before the first job is sent."""
    app.conf.broker_url = url
    app.conf.result_backend = backend or url
