"""Submitting jobs and reading them back, from Python (the command line is a thin layer over this).

from cluster import Job, submit, status, result
job_id = submit(Job(workflow, {"face.png": Path("face.png").read_bytes(), "voice.wav": "/shared/voice.wav"}))
status(job_id)   # {"state": "PROGRESS", "node": "4", "class_type": "A2VSampler", "step": 2, "steps": 3, ...}
result(job_id)   # {"outputs": ["<results>/<job id>/9-0.mp4"], "report": {...}, "worker": ..., ...}
"""

import uuid

from celery.result import AsyncResult

from .app import app
from .job import Job
from .tasks import CANCEL_KEY, run_job


def submit(job: Job, job_id: str | None = None) -> str:
    """Queues the job; returns its id (Celery's task id). Given an id, a job submitted again under it (a client
    retrying after a crash) runs again into the same folder: its outputs are overwritten, not doubled."""
    job_id = job_id or uuid.uuid4().hex
    run_job.apply_async(args=(job.message(),), task_id=job_id)
    return job_id


def status(job_id: str) -> dict:
    """PENDING (queued, or unknown), STARTED, PROGRESS (with the node, step and seconds), SUCCESS, FAILURE (with the
    error), RETRY, REVOKED (cancelled)."""
    meta = app.backend.get_task_meta(job_id)  # a read, with no subscription left behind
    state = {"job_id": job_id, "state": meta["status"]}
    info = meta["result"]
    if isinstance(info, dict):
        state.update({k: v for k, v in info.items() if k not in state})
    elif isinstance(info, BaseException):
        state["error"] = f"{type(info).__name__}: {info}"
    return state


def result(job_id: str, timeout: float | None = None) -> dict:
    """Waits for the job and returns what it wrote; raises its error (PromptRefused, JobFailed, ...) if it failed."""
    return AsyncResult(job_id, app=app).get(timeout=timeout, interval=0.2)


def cancel(job_id: str) -> None:
    """A queued job is dropped when a worker would take it; a running one is interrupted on its worker's ComfyUI
    (the worker reads the flag while it follows the prompt). Either way it ends REVOKED."""
    app.backend.client.set(CANCEL_KEY.format(job_id), 1, ex=7 * 24 * 3600)
    app.control.revoke(job_id)
