"""The Celery application: broker, result backend, and every setting of the cluster, in `app.conf`.

The task reads its settings from `app.conf` only. What every process must agree on (workers, clients, Flower:
`celery -A cluster.app flower`) is read here, once, from the environment:
- LTX2_CLUSTER_BROKER: the broker URL (default redis://127.0.0.1:6379/0; RabbitMQ's amqp:// works the same;
  `rediss://:PASSWORD@host:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/ca.pem` for Redis behind a password
  and TLS).
- LTX2_CLUSTER_BACKEND: where job states and results are kept (default: the broker's URL; must be Redis for
  `cancel`, which leaves its flag there).
- LTX2_CLUSTER_VISIBILITY_TIMEOUT: seconds a delivered job may stay unacknowledged before the broker hands it to
  another worker (Redis only; default 3600). It must exceed the hard time limit plus the longest retry wait
  (`visibility_rule`, checked when a worker starts), or a job runs twice.
- LTX2_CLUSTER_SOFT_TIME_LIMIT / LTX2_CLUSTER_TIME_LIMIT: seconds a job may run before it is stopped on ComfyUI and
  failed (default 1800), and before its pool process is killed (default: the soft limit + 120).
- LTX2_CLUSTER_MAX_INPUT_MB / LTX2_CLUSTER_MAX_MESSAGE_MB: the largest input file (64; ComfyUI refuses uploads over
  its --max-upload-size, 100 MB by default) and job message (96, base64 inputs included), refused at submit and by
  the worker.
- LTX2_CLUSTER_MAX_RETRIES / LTX2_CLUSTER_RETRY_BACKOFF: tries after an unreachable ComfyUI (5), the first wait (2
  s, doubled each time, at most RETRY_BACKOFF_MAX).
- LTX2_CLUSTER_STALL_TIMEOUT: seconds of silence on ComfyUI's websocket after which the worker asks ComfyUI whether
  it still answers, and as long to answer; no answer means it hung (default 60).
- LTX2_CLUSTER_TRANSPORT_OPTIONS: further kombu transport options as JSON (tests shorten the sweep of lost jobs
  with {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}).
A worker's own settings (its ComfyUI, results folder, name, inputs roots) are its command line's, which
`worker.configure` puts in `app.conf` before the worker starts (its pool process, forked from it, has them).
"""

import json
import os
from collections.abc import Mapping

from celery import Celery

QUEUE = "ltx2-a2v"
MiB = 1024 * 1024
RETRY_BACKOFF_MAX = 60  # seconds: the longest wait between two tries of a job
BROKER = os.environ.get("LTX2_CLUSTER_BROKER", "redis://127.0.0.1:6379/0")
BACKEND = os.environ.get("LTX2_CLUSTER_BACKEND", BROKER)


# Redis connections: a broker that vanishes without closing the connection (a failover, a NAT or firewall timeout)
# is found by a ping every 25 s and by a 30 s limit on every command, instead of a wait without end.
REDIS_CONNECTION = {
    "socket_timeout": 30.0,
    "socket_connect_timeout": 10.0,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": 25,
}


def settings(env: Mapping[str, str]) -> dict:
    """The settings every process reads from its environment (the LTX2_CLUSTER_* variables above), as app.conf
    keys: Celery's, and the cluster's own under the `ltx2_` prefix."""

    def number(name: str, default: float) -> float:
        return float(env.get(name, default))

    soft = number("LTX2_CLUSTER_SOFT_TIME_LIMIT", 1800)
    transport = {**REDIS_CONNECTION, "visibility_timeout": number("LTX2_CLUSTER_VISIBILITY_TIMEOUT", 3600)}
    transport.update(json.loads(env.get("LTX2_CLUSTER_TRANSPORT_OPTIONS", "{}")))
    return {
        "task_soft_time_limit": soft,
        "task_time_limit": number("LTX2_CLUSTER_TIME_LIMIT", soft + 120),
        "broker_transport_options": transport,
        "ltx2_max_input_bytes": int(number("LTX2_CLUSTER_MAX_INPUT_MB", 64) * MiB),
        "ltx2_max_message_bytes": int(number("LTX2_CLUSTER_MAX_MESSAGE_MB", 96) * MiB),
        "ltx2_max_retries": int(number("LTX2_CLUSTER_MAX_RETRIES", 5)),
        "ltx2_retry_backoff": number("LTX2_CLUSTER_RETRY_BACKOFF", 2),
        "ltx2_stall_timeout": number("LTX2_CLUSTER_STALL_TIMEOUT", 60),
    }


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
    # A job still running when the worker loses the broker could no longer be acknowledged, and the broker hands
    # it out again: the worker stops it instead of running it a second time beside its redelivery.
    worker_cancel_long_running_tasks_on_connection_loss=True,
    task_track_started=True,
    # Not result_extended: it stores a job's arguments, its inputs' base64 with them, beside its result.
    result_extended=False,
    result_expires=7 * 24 * 3600,
    result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
    # A state written while Redis restarts is written once it is back (up to about two minutes), not lost; without
    # this, the worker's own write of a cancelled job's state on a lost connection raises, and the worker exits.
    result_backend_always_retry=True,
    result_backend_max_retries=20,
    redis_socket_timeout=REDIS_CONNECTION["socket_timeout"],
    redis_socket_connect_timeout=REDIS_CONNECTION["socket_connect_timeout"],
    redis_socket_keepalive=True,
    redis_retry_on_timeout=True,
    redis_backend_health_check_interval=REDIS_CONNECTION["health_check_interval"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # A worker's own (the `ltx2_` prefix keeps the cluster's settings apart from Celery's): set by
    # worker.configure from its command line.
    ltx2_comfyui_url=None,
    ltx2_results_dir=None,
    ltx2_worker_name=None,
    ltx2_inputs_roots=(),
    **settings(os.environ),
)


def use_broker(url: str, backend: str | None = None) -> None:
    """Points this process at another broker (the command line's --broker, tests); before the first job is sent."""
    app.conf.broker_url = url
    app.conf.result_backend = backend or url


def visibility_rule() -> str | None:
    """Why this configuration would run a job twice, or None. Redis hands a job out again once it has been
    unacknowledged for the visibility timeout; a job is out from its delivery until it ends: its run, at most the
    hard time limit, after a retry's wait of at most RETRY_BACKOFF_MAX."""
    if not str(app.conf.broker_url).startswith(("redis", "sentinel")):
        return None  # RabbitMQ hands a job out again when the connection drops, not after a time
    visibility = app.conf.broker_transport_options.get("visibility_timeout", 3600)
    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    if not (soft and hard and soft <= hard):
        return f"give a soft time limit ({soft}) no longer than the hard time limit ({hard}), both set"
    if hard + RETRY_BACKOFF_MAX >= visibility:
        return (
            f"the hard time limit ({hard:g} s) plus the longest retry wait ({RETRY_BACKOFF_MAX} s) must be under the "
            f"visibility timeout ({visibility:g} s, LTX2_CLUSTER_VISIBILITY_TIMEOUT), or a long job is handed to a "
            "second worker while it still runs: lower LTX2_CLUSTER_TIME_LIMIT or raise the visibility timeout"
        )
    return None
