"""A hostile client against one real worker (`python -m cluster worker --inputs-root <shared>`), on the session's
ComfyUI host and a real Redis (password and TLS). Each hostile case is refused or stopped with a message naming what
and why, leaves nothing behind, and is followed by a good job on the same worker. Messages that the client would
refuse are also put on the queue directly (`run_job.apply_async`), as anything that reaches the broker can."""

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import psutil
import pytest
from cluster_rig import MEDIA, ROOT, Worker, image_job, portrait
from workflows import small_workflow

import cluster
from cluster import Job, JobFailed, JobRefused, JobTimedOut
from cluster.tasks import run_job

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def rig(redis_server, host, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    shared = base / "shared"
    shared.mkdir()
    for media in MEDIA.iterdir():
        shutil.copy(media, shared / media.name)
    redis_server.client().flushall()  # the module starts on an empty queue; its one worker then declares it
    worker = Worker(
        "hostile@test",
        redis_server.url,
        base / "results",
        base / "worker.log",
        *("--comfyui-url", host.url, "--inputs-root", str(shared)),
    ).wait_ready()
    yield SimpleNamespace(worker=worker, results=base / "results", shared=shared, base=base)
    worker.stop()


def good_job(rig, name: str = "portrait.png", source=None) -> dict:
    """A good job on the rig's worker: it runs and stores its output in its folder."""
    job_id = cluster.submit(Job(image_job(name), {name: source if source is not None else portrait()}))
    result = cluster.result(job_id, timeout=120)
    assert result["worker"] == "hostile@test" and result["outputs"] == [str(rig.results / job_id / "2-0.png")]
    assert (rig.results / job_id / "2-0.png").read_bytes()[:4] == b"\x89PNG"
    return result


def queued_directly(message: dict, job_id: str | None = None) -> str:
    """A message put on the queue without the client's checks."""
    job_id = job_id or os.urandom(8).hex()
    run_job.apply_async(args=(message,), task_id=job_id)
    return job_id


def refusal(job_id: str, timeout: float = 60) -> str:
    with pytest.raises(JobRefused) as refused:
        cluster.result(job_id, timeout=timeout)
    return str(refused.value)


def image_message(name: str = "portrait.png", entry: dict | None = None, workflow: dict | None = None) -> dict:
    entry = entry or {"data": base64.b64encode(portrait()).decode()}
    return {"workflow": workflow or image_job(name), "files": {name: entry}}


def everything_in(store) -> list[bytes]:
    """Every key and value Redis holds, of every type."""
    read = {
        b"string": lambda key: [store.get(key)],
        b"list": lambda key: store.lrange(key, 0, -1),
        b"hash": lambda key: [b for pair in store.hgetall(key).items() for b in pair],
        b"set": lambda key: list(store.smembers(key)),
        b"zset": lambda key: store.zrange(key, 0, -1),
    }
    return [value for key in store.keys("*") for value in [key, *read[store.type(key)](key)]]


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_job_ids_that_are_paths_are_refused_at_submit_and_by_the_worker(rig):
    before = listing(rig.base)
    victim = rig.base / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("not the cluster's")
    for bad in ("../victim", str(victim), "a/b", "..", "", "x" * 129):
        with pytest.raises(JobRefused, match="job id .*: give 1 to 128 letters"):
            cluster.submit(Job(image_job(), {"portrait.png": portrait()}), job_id=bad)
    for bad in ("../victim", str(victim)):
        assert "job id" in refusal(queued_directly(image_message(), bad))
    assert listing(victim) == ["keep.txt"] and listing(rig.base) == sorted([*before, "victim"])
    good_job(rig)


def test_node_ids_that_are_paths_never_name_a_file(rig, host):
    for bad in ("../../elsewhere/x", "/tmp/elsewhere", ".written"):
        workflow = image_job()
        workflow[bad] = workflow.pop("2")
        with pytest.raises(JobRefused, match="node id .*: give ids of letters"):
            cluster.submit(Job(workflow, {"portrait.png": portrait()}))
        job_id = queued_directly(image_message(workflow=workflow))
        assert f"node id {bad!r}" in refusal(job_id)
        assert not (host.input_dir / "jobs" / job_id).exists()  # refused before anything went to ComfyUI
    assert not list(rig.base.rglob("elsewhere*")) and not os.path.exists("/tmp/elsewhere-0.png")
    good_job(rig)


def test_a_job_removes_only_what_its_earlier_attempt_wrote_in_its_folder(rig):
    """An earlier attempt of the job recorded a half-written file; the folder also holds a file of someone else's
    and the record names a file outside it (as a tampered record would)."""
    job_id = "rerun-into-a-used-folder"
    folder = rig.results / job_id
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("someone else's")
    (folder / "2-0.png.4242.partial").write_bytes(b"half")
    outside = rig.base / "outside.txt"
    outside.write_text("outside")
    (folder / ".written").write_text("2-0.png\n2-0.png.4242.partial\n../outside.txt\n/etc/hostname\nnotes\n")
    cluster.result(cluster.submit(Job(image_job(), {"portrait.png": portrait()}), job_id=job_id), timeout=120)
    assert listing(folder) == [".written", "2-0.png", "notes.txt", "report.json"]
    assert outside.read_text() == "outside" and (folder / ".written").read_text() == "2-0.png\nreport.json\n"
    good_job(rig)


def test_input_names_are_checked_by_the_worker(rig, host):
    shared_input = host.input_dir / "ltx2_a2v_portrait.png"
    before = hashlib.sha256(shared_input.read_bytes()).hexdigest()
    for bad in ("../../ltx2_a2v_portrait.png", "/abs.png", ".hidden.png", "a\nb.png"):
        with pytest.raises(JobRefused, match="input name"):
            cluster.submit(Job(image_job(bad), {bad: b"not an image"}))
        message = image_message(bad, {"data": base64.b64encode(b"not an image").decode()})
        assert "give a plain file name" in refusal(queued_directly(message))
    unused = image_message()
    unused["files"]["other.png"] = {"data": base64.b64encode(b"x").decode()}
    assert "no node input of the workflow names this file" in refusal(queued_directly(unused))
    assert hashlib.sha256(shared_input.read_bytes()).hexdigest() == before
    good_job(rig)


def test_by_path_inputs_are_read_only_under_the_inputs_root_only_regular_named_and_bounded(rig, host):
    fifo, link, big = rig.shared / "voice.fifo", rig.shared / "passwd.png", rig.shared / "huge.png"
    os.mkfifo(fifo)
    link.symlink_to("/etc/passwd")
    with open(big, "wb") as file:
        file.truncate(121 * MiB)  # sparse: over the 120 MiB per input, nothing on disk
    cases = {
        "/etc/passwd": "is outside the folders this worker reads inputs from",
        str(link): "is outside the folders this worker reads inputs from",  # a link under the root, resolved
        "/dev/zero": "is outside the folders this worker reads inputs from",
        str(fifo): "is not a regular file",
        str(rig.shared): "is not a regular file",
        str(big): "121.0 MiB, over the limit of 120 MiB per input",
    }
    started = time.monotonic()
    for path, why in cases.items():
        job_id = cluster.submit(Job(image_job("in.png"), {"in.png": path}))
        assert why in refusal(job_id) and "input 'in.png'" in refusal(job_id), path
        assert not (host.input_dir / "jobs" / job_id).exists()  # nothing was uploaded
    assert time.monotonic() - started < 60  # the FIFO blocked nothing
    relative = image_message("in.png", {"path": "shared/ltx2_a2v_portrait.png"})  # the client makes paths absolute
    assert "is relative" in refusal(queued_directly(relative))
    with pytest.raises(JobRefused, match="no node input of the workflow names this file"):
        cluster.submit(Job(image_job(), {"portrait.png": portrait(), "passwd": "/etc/passwd"}))
    unnamed = image_message()
    unnamed["files"]["passwd"] = {"path": "/etc/passwd"}
    assert "'passwd': no node input" in refusal(queued_directly(unnamed))
    good_job(rig, "in.png", str(rig.shared / "ltx2_a2v_portrait.png"))  # by path, under the root


def test_sizes_are_bounded_comfyui_refusals_are_final_and_inputs_never_reach_the_result_backend(
    rig, host, redis_server
):
    noise = os.urandom(4 * MiB)
    with pytest.raises(JobRefused, match=r"job message: 5\.3 MiB, over the limit of 3 MiB per message"):
        cluster.submit(Job(image_job("big.png"), {"big.png": noise}))
    big = image_message("big.png", {"data": base64.b64encode(noise).decode()})
    assert "over the limit of 3 MiB per message" in refusal(queued_directly(big))

    # Under the worker's 120 MiB, over ComfyUI's 100 MB upload limit: HTTP 413, a final failure with its reason.
    over_comfyui = rig.shared / "over_comfyui.png"
    with open(over_comfyui, "wb") as file:
        file.truncate(101 * MiB)
    retries = rig.worker.log().count("Retry in")
    job_id = cluster.submit(Job(image_job("in.png"), {"in.png": str(over_comfyui)}))
    with pytest.raises(JobFailed, match=r"input 'in.png' \(101.0 MiB\): ComfyUI at .* refused POST /upload/image: "):
        cluster.result(job_id, timeout=120)
    assert "HTTP 413" in cluster.status(job_id)["error"] and "--max-upload-size" in cluster.status(job_id)["error"]
    assert rig.worker.log().count("Retry in") == retries

    # A good job: its inputs are nowhere in Redis once it has run (states, results, queues).
    result = good_job(rig)
    needle = base64.b64encode(portrait()).decode()[100:160].encode()
    stored = everything_in(redis_server.client())
    assert any(result["job_id"].encode() in value for value in stored)  # its result is there
    assert not any(needle in value for value in stored)


def test_a_job_past_its_time_limit_is_stopped_on_comfyui_and_failed(rig, host):
    slow = cluster.submit(Job(small_workflow(prefix="cluster/slow", steps=200), media_inputs_bytes()), time_limit=4)
    with pytest.raises(JobTimedOut, match=r"ran past its time limit of 4 s .* stopped on its ComfyUI"):
        cluster.result(slow, timeout=120)
    assert not list((host.output_dir / "cluster").glob("slow*"))  # never saved: interrupted
    too_long = cluster.submit(Job(image_job(), {"portrait.png": portrait()}), time_limit=100_000)
    with pytest.raises(JobRefused, match="over this worker's 300 s"):
        cluster.result(too_long, timeout=60)
    result = cluster.result(cluster.submit(Job(small_workflow(prefix="cluster/after_slow"), media_inputs_bytes())), 300)
    assert result["worker"] == "hostile@test" and result["outputs"][0].endswith("9-0.mp4")


def media_inputs_bytes() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in MEDIA.iterdir()}


def test_a_hung_comfyui_is_found_and_the_job_retried_once_without_running_twice(rig, host):
    """ComfyUI frozen (SIGSTOP) in the sampler: the worker hears nothing for 5 s, gets no answer to GET /queue in 5
    s, and retries the job once; ComfyUI thawed, the retry takes the hung prompt off it and runs the job."""
    (comfyui,) = [
        p for p in psutil.Process(host.process.pid).children() if any(a.endswith("main.py") for a in p.cmdline())
    ]
    job_id = cluster.submit(Job(small_workflow(prefix="cluster/hung", steps=8), media_inputs_bytes()))
    deadline = time.monotonic() + 120
    while not cluster.status(job_id).get("step") and time.monotonic() < deadline:
        time.sleep(0.1)
    hung_prompt = cluster.status(job_id)["prompt_id"]
    comfyui.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 40
        while cluster.status(job_id)["state"] != "RETRY" and time.monotonic() < deadline:
            time.sleep(0.2)
        state = cluster.status(job_id)
    finally:
        comfyui.send_signal(signal.SIGCONT)
    assert state["state"] == "RETRY" and "ComfyHung: ComfyUI at" in state["error"], state
    assert "stopped answering while running the job (node 4)" in state["error"]
    result = cluster.result(job_id, timeout=300)
    assert result["attempt"] == 2 and result["prompt_id"] != hung_prompt
    assert f"Interrupting prompt {hung_prompt}" in host.log()
    assert len(list((host.output_dir / "cluster").glob("hung*"))) == 1  # the hung prompt never finished
    good_job(rig)


def test_the_command_line_prints_a_failed_job_in_two_lines(rig, redis_server):
    job_id = queued_directly(image_message("../x.png"))
    refusal(job_id)

    def result(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cluster", "--broker", redis_server.url, "result", job_id, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    short, verbose = result(), result("--verbose")
    assert short.returncode == verbose.returncode == 1 and short.stdout == ""
    assert short.stderr.splitlines() == [
        f"job {job_id}: FAILURE",
        "JobRefused: input name '../x.png': give a plain file name (the value the workflow's loader names), with no "
        "folder, no leading '.' and no control characters",
    ]
    assert verbose.stderr.startswith(short.stderr) and "Traceback (most recent call last)" in verbose.stderr
    assert 'cluster/checks.py", line' in verbose.stderr  # the worker's traceback, where it was refused
    good_job(rig)
