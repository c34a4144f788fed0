"""The one task: run an A2V job on this worker's ComfyUI and store its outputs by job id.

The worker's settings arrive in the environment (set by `python -m cluster worker`): LTX2_CLUSTER_COMFYUI (its
ComfyUI's URL), LTX2_CLUSTER_RESULTS (where outputs go: shared storage when clients read them from other
machines), LTX2_CLUSTER_WORKER (its name, shown in the job's progress).
"""

import os
import time
from pathlib import Path

from celery import states
from celery.exceptions import Ignore

from .app import app
from .comfy_client import ComfyClient
from .errors import ComfyUnavailable, JobFailed
from .job import input_bytes, pointed_at_uploads
from .outputs import JobFolder, output_refs

CANCEL_KEY = "ltx2-cluster:cancel:{}"
# ComfyUI restarting or unreachable: 2, 4, 8, 16, 32 s between tries (LTX2_CLUSTER_RETRY_BACKOFF doubled each
# time), then the job fails.
MAX_RETRIES = int(os.environ.get("LTX2_CLUSTER_MAX_RETRIES", "5"))
RETRY_BACKOFF = int(os.environ.get("LTX2_CLUSTER_RETRY_BACKOFF", "2"))


def cancel_requested(job_id: str) -> bool:
    return bool(app.backend.client.exists(CANCEL_KEY.format(job_id)))


class Progress:
    """The job's Celery state while it runs: PROGRESS with the node running, its step and the seconds so far."""

    def __init__(self, task, workflow: dict, comfyui: str):
        self.task, self.workflow, self.started = task, workflow, time.monotonic()
        self.meta = {
            "worker": os.environ.get("LTX2_CLUSTER_WORKER", task.request.hostname),
            "comfyui": comfyui,
            "node": None,
            "class_type": None,
            "step": 0,
            "steps": 0,
            "seconds": 0.0,
            "attempt": task.request.retries + 1,
            "redelivered": bool((task.request.delivery_info or {}).get("redelivered")),
        }
        self.last_sent = 0.0

    def publish(self, force: bool = False) -> None:
        now = time.monotonic()
        self.meta["seconds"] = round(now - self.started, 2)
        if force or now - self.last_sent >= 0.25:  # a step a few times a second is plenty for a watcher
            self.task.update_state(state="PROGRESS", meta=dict(self.meta))
            self.last_sent = now

    def on_message(self, message: dict) -> None:
        data = message.get("data") or {}
        if message["type"] == "executing" and data.get("node") is not None:
            node = str(data["node"])
            self.meta.update(node=node, class_type=self.workflow.get(node, {}).get("class_type"), step=0, steps=0)
            self.publish(force=True)
        elif message["type"] == "progress":
            self.meta.update(step=data.get("value", 0), steps=data.get("max", 0))
            self.publish()


def cancelled(task, reason: str):
    """Ends the job as REVOKED, the state Celery gives a revoked job (its info is a TaskRevokedError)."""
    task.update_state(
        state=states.REVOKED,
        meta={"exc_type": "TaskRevokedError", "exc_module": "celery.exceptions", "exc_message": [reason]},
    )
    raise Ignore()


def node_failure(messages: list[dict]) -> str:
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    return (
        f"node {error.get('node_id')} ({error.get('node_type')}): {error.get('exception_type', 'error')}: "
        f"{str(error.get('exception_message', '')).strip()}"
    )


@app.task(
    bind=True,
    name="ltx2_cluster.run_job",
    autoretry_for=(ComfyUnavailable,),
    max_retries=MAX_RETRIES,
    retry_backoff=RETRY_BACKOFF,
    retry_backoff_max=60,
    retry_jitter=False,
)
def run_job(self, job: dict) -> dict:
    job_id = self.request.id
    if cancel_requested(job_id):
        cancelled(self, "cancelled before it started")
    comfy = ComfyClient(os.environ["LTX2_CLUSTER_COMFYUI"])
    folder = JobFolder(Path(os.environ["LTX2_CLUSTER_RESULTS"]), job_id)
    progress = Progress(self, job["workflow"], comfy.url)
    progress.publish(force=True)

    uploaded = {
        name: comfy.upload(name, input_bytes(name, entry), f"jobs/{job_id}") for name, entry in job["files"].items()
    }
    workflow = pointed_at_uploads(job["workflow"], uploaded)
    comfy.connect()
    try:
        prompt_id = comfy.queue(workflow)
        status, messages = comfy.follow(prompt_id, progress.on_message, lambda: cancel_requested(job_id))
    finally:
        comfy.close()
    if status == "interrupted":
        cancelled(self, f"cancelled while running node {progress.meta['node']} on {progress.meta['worker']}")
    if status == "error":
        raise JobFailed(node_failure(messages))

    history = comfy.history(prompt_id)
    written, counts = [], {}
    for node_id, ref in output_refs(history):
        index = counts[node_id] = counts.get(node_id, -1) + 1
        written.append(folder.write(node_id, index, ref["filename"], comfy.view(ref)))
    report = comfy.run_report(prompt_id)
    progress.publish(force=True)
    result = {
        "job_id": job_id,
        "worker": progress.meta["worker"],
        "comfyui": comfy.url,
        "prompt_id": prompt_id,
        "outputs": [str(p) for p in written],
        "seconds": progress.meta["seconds"],
        "attempt": progress.meta["attempt"],
        "redelivered": progress.meta["redelivered"],
        "report": report,
        "history_outputs": history.get("outputs", {}),
    }
    report_path = folder.write_report(result)
    folder.clear_leftovers(set(written) | {report_path})
    result["report_path"] = str(report_path)
    return result
