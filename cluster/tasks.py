"""The one task: run an A2V job on this worker's ComfyUI and store its outputs by job id.

Its settings are the Celery app's (`self.app.conf`, app.py): the worker's ComfyUI, results folder, name and inputs
roots (put there by `python -m cluster worker`), the limits and the retry policy every process shares. The message
is checked again here, whoever put it on the queue (checks.py), before anything is read, uploaded or written.
"""

import re
import signal
import time
from pathlib import Path

from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from .app import RETRY_BACKOFF_MAX, app
from .checks import checked_job_id, checked_message
from .comfy_client import ComfyClient
from .errors import ComfyHung, ComfyUnavailable, JobFailed, JobRefused, JobTimedOut
from .inputs import input_bytes
from .job import pointed_at_uploads
from .outputs import JobFolder, output_refs

# Cancellation is this flag in the result backend's Redis, read by the task before it starts and while it follows
# its prompt, and not one of Celery's own means, because none of them reaches the prompt on ComfyUI (read in Celery
# 5.6.3's source):
# - `app.control.revoke(id)` adds the id to `celery.worker.state.revoked`, a set in the memory of each worker's main
#   process that was up when it was broadcast; the consumer drops a revoked job when it is delivered. The pool
#   process that runs a job never sees that set, and a worker started after the revoke never heard of it. So
#   `cancel` sends it (a queued job is then dropped without a word) and sets this flag, which every worker reads.
# - `revoke(id, terminate=True)` signals the pool process (`Request.cancel` -> `pool.terminate_job`): the worker's
#   side ends, the prompt keeps running on ComfyUI; and Celery's documentation reserves `terminate` for an
#   administrator with a stuck task (the process may already run the next job when the signal lands).
# - `celery.contrib.abortable` keeps its flag as the task's state (`AbortableAsyncResult.abort` stores ABORTED as
#   the result), which this task overwrites with PROGRESS several times a second, and Celery with STARTED when it
#   takes the job (`task_track_started`): an abort would be lost before `is_aborted()` read it.
# A job cancelled ends in Celery's own REVOKED state, stored by Celery's backend (`mark_as_revoked`).
CANCEL_KEY = "ltx2-cluster:cancel:{}"
PROMPT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def cancel_requested(job_id: str) -> bool:
    """Whether the flag is set; False while the result backend cannot be reached (the job goes on: if the broker is
    gone too, the worker ends it, see Terminated)."""
    try:
        return bool(app.backend.client.exists(CANCEL_KEY.format(job_id)))
    except app.backend.connection_errors:
        return False


def cancelled(task, reason: str):
    task.backend.mark_as_revoked(task.request.id, reason, request=task.request)
    raise Ignore()


class Progress:
    """The job's Celery state while it runs: PROGRESS with the node running, its step and the seconds so far."""

    def __init__(self, task, workflow: dict, comfyui: str):
        self.task, self.workflow, self.started = task, workflow, time.monotonic()
        self.meta = {
            "worker": task.app.conf.ltx2_worker_name or task.request.hostname,
            "comfyui": comfyui,
            "prompt_id": None,
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
            try:
                self.task.update_state(state="PROGRESS", meta=dict(self.meta))
            except self.task.backend.connection_errors:
                return  # progress is for watchers: a result backend out of reach does not stop the job
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


def node_failure(messages: list[dict]) -> str:
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    return (
        f"node {error.get('node_id')} ({error.get('node_type')}): {error.get('exception_type', 'error')}: "
        f"{str(error.get('exception_message', '')).strip()}"
    )


def checked_time_limits(task) -> None:
    """A job may ask for time limits lower than the worker's (submit's `time_limit`), never higher: the worker's
    are the ones its visibility timeout was set for."""
    hard, soft = task.request.timelimit or (None, None)
    conf = task.app.conf
    if (hard and hard > conf.task_time_limit) or (soft and soft > conf.task_soft_time_limit):
        raise JobRefused(
            f"time limit {soft} s (hard {hard} s): over this worker's {conf.task_soft_time_limit:g} s (hard "
            f"{conf.task_time_limit:g} s); ask for less, or run workers with a longer LTX2_CLUSTER_SOFT_TIME_LIMIT"
        )


def take_off_stale_prompt(comfy: ComfyClient, hung_prompt) -> None:
    """The prompt of this job's attempt that hung, taken off this ComfyUI before the job is queued again, so that a
    ComfyUI that comes back does not run the job twice. One on another worker's ComfyUI is out of reach here."""
    if not (isinstance(hung_prompt, list) and len(hung_prompt) == 2 and all(isinstance(v, str) for v in hung_prompt)):
        raise JobRefused(f"hung_prompt {hung_prompt!r}: not the [url, prompt id] a retry of this worker sends")
    url, prompt_id = hung_prompt
    if url == comfy.url and PROMPT_ID.fullmatch(prompt_id):
        comfy.interrupt(prompt_id)


@app.task(bind=True, name="ltx2_cluster.run_job")
def run_job(self, job: dict, hung_prompt: list | None = None) -> dict:
    conf = self.app.conf
    job_id = checked_job_id(self.request.id)
    checked_time_limits(self)
    checked_message(job, conf.ltx2_max_input_bytes, conf.ltx2_max_message_bytes)
    if cancel_requested(job_id):
        cancelled(self, "cancelled before it started")
    comfy = ComfyClient(conf.ltx2_comfyui_url, stall_timeout=conf.ltx2_stall_timeout)
    progress = Progress(self, job["workflow"], comfy.url)
    try:
        if hung_prompt is not None:
            take_off_stale_prompt(comfy, hung_prompt)
        return run(self, job, comfy, progress)
    except ComfyUnavailable as error:
        backoff = get_exponential_backoff_interval(
            int(conf.ltx2_retry_backoff), self.request.retries, RETRY_BACKOFF_MAX, full_jitter=False
        )
        raise self.retry(exc=error, countdown=backoff, max_retries=conf.ltx2_max_retries) from None
    except ComfyHung as error:
        if hung_prompt is not None:
            raise ComfyHung(f"{error}; it hung on the job's retry too, so the job is not tried again") from None
        # Retried once, with the hung prompt named, on whichever worker is free.
        retry = {"hung_prompt": [comfy.url, progress.meta["prompt_id"] or ""]}
        raise self.retry(exc=error, kwargs=retry, countdown=1, max_retries=self.request.retries + 1) from None
    except SystemExit:
        # The pool process was told to end (SIGTERM; billiard's handler raises SystemExit in it): Celery does so
        # when the worker loses the broker (worker_cancel_long_running_tasks_on_connection_loss: Request.cancel ->
        # pool.terminate_job), at the hard time limit (billiard's _trywaitkill: SIGTERM, then SIGKILL), on
        # revoke(terminate=True), and a service manager stopping the worker's process group does too. The prompt
        # is stopped on ComfyUI first, so a redelivery of the job does not run beside it; a second SIGTERM would
        # end the process before that (billiard's handler restores the default one), so it is ignored meanwhile.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_prompt(comfy, progress)
        raise
    except SoftTimeLimitExceeded:
        stop_prompt(comfy, progress)
        where = f" (node {progress.meta['node']}, {progress.meta['class_type']})" if progress.meta["node"] else ""
        limit = (self.request.timelimit or (None, None))[1] or conf.task_soft_time_limit
        raise JobTimedOut(
            f"the job ran past its time limit of {limit:g} s{where} on {progress.meta['worker']} and was stopped on "
            "its ComfyUI; give it a longer limit (submit's time_limit, up to the workers' "
            "LTX2_CLUSTER_SOFT_TIME_LIMIT) or make it shorter"
        ) from None


def stop_prompt(comfy: ComfyClient, progress: Progress) -> None:
    """The job's prompt taken off its ComfyUI, if it was queued: within seconds, or not at all if ComfyUI is gone
    (the hard time limit, or the signal, ends the job then)."""
    if progress.meta["prompt_id"]:
        try:
            comfy.interrupt(progress.meta["prompt_id"], timeout=5)
        except (ComfyUnavailable, JobFailed):
            pass


def run(task, job: dict, comfy: ComfyClient, progress: Progress) -> dict:
    conf, job_id = task.app.conf, task.request.id
    folder = JobFolder(Path(conf.ltx2_results_dir), job_id)
    progress.publish(force=True)
    roots = tuple(Path(root) for root in conf.ltx2_inputs_roots)
    uploaded = {
        name: comfy.upload(name, input_bytes(name, entry, roots, conf.ltx2_max_input_bytes), f"jobs/{job_id}")
        for name, entry in job["files"].items()
    }
    workflow = pointed_at_uploads(job["workflow"], uploaded)
    comfy.connect()
    try:
        prompt_id = progress.meta["prompt_id"] = comfy.queue(workflow)
        status, messages = comfy.follow(prompt_id, progress.on_message, lambda: cancel_requested(job_id))
    finally:
        comfy.close()
    if status == "interrupted":
        cancelled(task, f"cancelled while running node {progress.meta['node']} on {progress.meta['worker']}")
    if status == "error":
        raise JobFailed(node_failure(messages))

    history = comfy.history(prompt_id)
    written, counts = [], {}
    for node_id, ref in output_refs(history):
        index = counts[node_id] = counts.get(node_id, -1) + 1
        written.append(folder.write_output(node_id, index, ref["filename"], comfy.view(ref)))
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
