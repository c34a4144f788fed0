"""Submitting jobs and reading them back, from Python (the command line is a thin layer over this).

from cluster import Job, submit, status, result
job_id = submit(Job(workflow, {"face.png": Path("face.png").read_bytes(), "voice.wav": "/shared/voice.wav"}))
status(job_id)   # {"state": "PROGRESS", "node": "4", "class_type": "A2VSampler", "step": 2, "steps": 3, ...}
result(job_id)   # {"outputs": ["<results>/<job id>/9-0.mp4"], "report": {...}, "worker": ..., ...}
"""

import time
import uuid

from celery import states
from celery.exceptions import TaskRevokedError

from .app import app
from .checks import checked_job_id
from .errors import JobFailed
from .job import Job
from .tasks import CANCEL_KEY, run_job


def submit(job: Job, job_id: str | None = None, time_limit: float | None = None) -> str:
    """Queues the job; returns its id (Celery's task id). Given an id (letters, digits, '_', '-'), a job submitted
    again under it (a client retrying after a crash) runs again into the same folder: its outputs are overwritten,
    not doubled. `time_limit`: seconds this job may run, under the workers' own limit (LTX2_CLUSTER_SOFT_TIME_LIMIT);
    refused (JobRefused) like everything a worker would refuse: a bad id, input name or node id, an input or message
    over its size limit."""
    job_id = checked_job_id(job_id) if job_id is not None else uuid.uuid4().hex
    message = job.message()
    limits = {}
    if time_limit is not None:
        grace = app.conf.task_time_limit - app.conf.task_soft_time_limit
        limits = {"soft_time_limit": time_limit, "time_limit": time_limit + grace}
    # What logs and Flower show of the job: its nodes and input names, never the inputs' bytes.
    summary = f"(<job: {len(message['workflow'])} nodes, inputs {sorted(message['files'])}>,)"
    run_job.apply_async(args=(message,), task_id=job_id, argsrepr=summary, **limits)
    return job_id


def status(job_id: str) -> dict:
    """PENDING (queued, or unknown), STARTED, PROGRESS (with the node, step and seconds), SUCCESS, FAILURE (with the
    error), RETRY, REVOKED (cancelled)."""
    meta = app.backend.get_task_meta(checked_job_id(job_id))  # a read, with no subscription left behind
    state = {"job_id": job_id, "state": meta["status"]}
    info = meta["result"]
    if isinstance(info, dict):
        state.update({k: v for k, v in info.items() if k not in state})
    elif isinstance(info, BaseException):
        state["error"] = f"{type(info).__name__}: {info}"
    return state


def result(job_id: str, timeout: float | None = None) -> dict:
    """Waits for the job and returns what it wrote; raises its error (PromptRefused, JobFailed, ...) if it failed,
    TaskRevokedError if it was cancelled, TimeoutError after `timeout` seconds. The stored state is polled (`ended`):
    a wait on Celery's result subscription (`AsyncResult.get`) begun just after the job ended was seen to miss it
    (60 s of waiting on a job its worker had refused 3 ms after it was queued, in the same process)."""
    meta = ended(job_id, timeout, interval=0.2)
    if meta["status"] == states.SUCCESS:
        return meta["result"]
    if meta["status"] == states.REVOKED:
        raise TaskRevokedError(f"job {job_id} was cancelled")
    error = meta["result"]
    raise error if isinstance(error, BaseException) else JobFailed(f"job {job_id}: {error}")


def ended(job_id: str, timeout: float | None = None, interval: float = 0.5) -> dict:
    """The job's record in the result backend once it has ended (SUCCESS, FAILURE, REVOKED: `status` is its state,
    `result` its result or error, `traceback` the worker's), read by polling, with no subscription left open: what
    the command line, a process that ends right after, uses. Raises TimeoutError after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while (meta := app.backend.get_task_meta(checked_job_id(job_id)))["status"] not in states.READY_STATES:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id}: {meta['status']}, not ended within {timeout:g} s")
        time.sleep(interval)
    return meta


def cancel(job_id: str) -> None:
    """A queued job is dropped when a worker would take it; a running one is interrupted on its worker's ComfyUI
    (the worker reads the flag while it follows the prompt). Either way it ends REVOKED. Why a flag beside Celery's
    revoke: tasks.py, at CANCEL_KEY."""
    app.backend.client.set(CANCEL_KEY.format(checked_job_id(job_id)), 1, ex=7 * 24 * 3600)
    app.control.revoke(job_id)
