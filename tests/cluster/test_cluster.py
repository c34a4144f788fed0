"""The cluster on one real ComfyUI (the session's host): a job's way through Redis, a Celery worker and ComfyUI's
HTTP API, and what happens on bad input, an unreachable ComfyUI, a cancel and a Redis restart. The two-worker
failover is in test_failover.py (long)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_rig import MEDIA, ROOT, image_job, media_inputs, portrait
from workflows import small_workflow

import cluster
from cluster import Job
from cluster.errors import ComfyUnavailable, JobFailed, JobRefused, PromptRefused


def wait_for_state(job_id: str, wanted, seconds: float = 120.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = cluster.status(job_id)
        if wanted(state):
            return state
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id}: last state {state}")


@pytest.fixture
def worker(make_worker, host, fresh_queue, tmp_path):
    return make_worker("w1@test", tmp_path / "results", "--comfyui-url", host.url).wait_ready()


def test_a_job_runs_reports_progress_and_stores_its_outputs_by_job_id(worker, host, tmp_path):
    job_id = cluster.submit(Job(small_workflow(prefix="cluster/one", seed=11), media_inputs()))
    progress = wait_for_state(job_id, lambda s: s["state"] == "PROGRESS" and s.get("class_type") == "A2VSampler")
    assert wait_for_state(job_id, lambda s: s.get("step", 0) > 0)["steps"] == 3
    assert progress["worker"] == "w1@test" and progress["comfyui"] == host.url and progress["seconds"] >= 0
    result = cluster.result(job_id, timeout=300)

    job_dir = tmp_path / "results" / job_id
    assert result["outputs"] == [str(job_dir / "9-0.mp4")]
    assert sorted(p.name for p in job_dir.iterdir()) == [".written", "9-0.mp4", "report.json"]
    assert result["report"]["run_id"] == result["prompt_id"] and result["report"]["phases"]
    assert cluster.status(job_id)["state"] == "SUCCESS"
    # The inputs went up with the job, into a folder of its own.
    assert sorted(p.name for p in (host.input_dir / "jobs" / job_id).iterdir()) == sorted(media_inputs())


def test_a_refused_workflow_fails_at_once_with_the_nodes_message_and_is_not_retried(worker, tmp_path):
    workflow = small_workflow(prefix="cluster/bad")
    workflow["4"]["inputs"]["num_frames"] = 18
    started = time.monotonic()
    job_id = cluster.submit(Job(workflow, media_inputs()))
    with pytest.raises(PromptRefused, match=r"node 4 \(A2VSampler\).*num_frames"):
        cluster.result(job_id, timeout=60)
    assert time.monotonic() - started < 30
    assert cluster.status(job_id)["state"] == "FAILURE"
    assert "Retry in" not in worker.log()


def test_a_node_failing_while_running_fails_the_job_with_its_message_and_is_not_retried(worker):
    workflow = small_workflow(prefix="cluster/empty_audio")
    workflow["2"] = {"class_type": "EmptyAudio", "inputs": {"duration": 0.0, "sample_rate": 16000, "channels": 1}}
    image = {name: data for name, data in media_inputs().items() if name.endswith(".png")}  # no file it does not load
    job_id = cluster.submit(Job(workflow, image))
    with pytest.raises(JobFailed, match=r"node 4 \(A2VSampler\): .*audio: the clip is empty"):
        cluster.result(job_id, timeout=300)
    assert "Retry in" not in worker.log()


def test_a_worker_reads_no_paths_unless_given_an_inputs_root_nor_starts_with_a_time_limit_past_the_visibility(
    worker, make_worker, tmp_path
):
    by_path = cluster.submit(Job(image_job("in.png"), {"in.png": str(MEDIA / "ltx2_a2v_portrait.png")}))
    with pytest.raises(JobRefused, match="and this worker reads no paths: send the file's bytes, or start"):
        cluster.result(by_path, timeout=60)
    good = cluster.result(cluster.submit(Job(image_job(), {"portrait.png": portrait()})), timeout=120)
    assert good["worker"] == "w1@test" and Path(good["outputs"][0]).name == "2-0.png"
    # The rig's visibility timeout is 600 s: a 500 s job (620 s hard) could be handed out twice.
    refused = make_worker(
        "w-long@test", tmp_path / "results", "--comfyui-url", "http://127.0.0.1:1", "--time-limit", "500"
    )
    assert refused.process.wait(timeout=120) != 0
    assert "the hard time limit (620 s) plus the longest retry wait (60 s) must be under the visibility timeout" in (
        refused.log()
    )


def test_an_unreachable_comfyui_is_retried_with_backoff_a_bounded_number_of_times(make_worker, fresh_queue, tmp_path):
    from comfy_host import free_port

    worker = make_worker(
        "w-down@test",
        tmp_path / "results",
        "--comfyui-url",
        f"http://127.0.0.1:{free_port()}",
        env={"LTX2_CLUSTER_MAX_RETRIES": "3", "LTX2_CLUSTER_RETRY_BACKOFF": "1"},
    ).wait_ready()
    job_id = cluster.submit(Job(small_workflow(), media_inputs()))
    assert wait_for_state(job_id, lambda s: s["state"] == "RETRY", 30)["state"] == "RETRY"
    # 3 retries, 1 + 2 + 4 s apart (5 from 2 s by default), then the job fails with the reason.
    started = time.monotonic()
    with pytest.raises(ComfyUnavailable, match="did not answer POST /upload/image"):
        cluster.result(job_id, timeout=60)
    assert worker.log().count("Retry in") == 3 and time.monotonic() - started > 5


def test_a_cancelled_job_is_interrupted_on_its_worker_and_the_next_one_runs(worker, host, tmp_path):
    slow = small_workflow(prefix="cluster/cancelled", steps=40)
    job_id = cluster.submit(Job(slow, media_inputs()))
    wait_for_state(job_id, lambda s: s["state"] == "PROGRESS" and s.get("class_type") == "A2VSampler")
    cluster.cancel(job_id)
    queued = cluster.submit(Job(small_workflow(prefix="cluster/never"), media_inputs()))
    cluster.cancel(queued)
    good = cluster.submit(Job(small_workflow(prefix="cluster/after_cancel"), media_inputs()))
    assert cluster.result(good, timeout=300)["outputs"]
    assert cluster.status(job_id)["state"] == cluster.status(queued)["state"] == "REVOKED"
    # ComfyUI stopped the cancelled prompt (it never saved) and never saw the queued one.
    assert "Interrupting prompt" in host.log() or "Processing interrupted" in host.log()
    assert not list((host.output_dir / "cluster").glob("cancelled*"))
    assert not list((host.output_dir / "cluster").glob("never*"))
    assert not (tmp_path / "results" / job_id / "9-0.mp4").exists()


def test_a_job_survives_a_redis_restart_between_submit_and_pick_up(
    redis_server, make_worker, host, fresh_queue, tmp_path
):
    """Through the command line, the inputs named by path (shared storage: here the same machine, the worker's
    --inputs-root)."""

    def command(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cluster", "--broker", redis_server.url, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(small_workflow(prefix="cluster/restart")))
    job_id = command(
        "submit", str(workflow), "--by-path", *(f"--input={path.name}={path}" for path in MEDIA.iterdir())
    ).strip()
    assert json.loads(command("status", job_id))["state"] == "PENDING"
    time.sleep(1.5)  # the append-only file is written to disk once a second
    redis_server.stop()
    redis_server.start()
    make_worker("w2@test", tmp_path / "results", "--comfyui-url", host.url, "--inputs-root", str(MEDIA)).wait_ready()
    result = json.loads(command("result", job_id, "--timeout", "300"))
    assert Path(result["outputs"][0]).is_file() and result["outputs"][0].startswith(str(tmp_path / "results"))


def test_a_job_running_when_the_broker_goes_away_is_stopped_on_comfyui_and_the_worker_serves_the_next(
    redis_server, worker, host
):
    """The worker cannot acknowledge a job once its broker connection is lost, and the broker will hand the job out
    again: the worker ends it (worker_cancel_long_running_tasks_on_connection_loss), and its pool process takes the
    prompt off ComfyUI as it goes, so the redelivery does not run beside it."""
    job_id = cluster.submit(Job(small_workflow(prefix="cluster/broker_lost", steps=40), media_inputs()))
    prompt_id = wait_for_state(job_id, lambda s: s.get("step", 0) > 0)["prompt_id"]
    redis_server.stop()
    try:
        deadline = time.monotonic() + 60
        while f"Interrupting prompt {prompt_id}" not in host.log() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        redis_server.start()
    assert f"Interrupting prompt {prompt_id}" in host.log()
    assert "cannot be acknowledged after a connection loss" in worker.log_path.read_text()
    worker.wait_ready()
    good = cluster.submit(Job(image_job(), {"portrait.png": portrait()}))
    assert Path(cluster.result(good, timeout=120)["outputs"][0]).is_file()
    assert not list((host.output_dir / "cluster").glob("broker_lost*"))
