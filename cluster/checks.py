"""What a job message may hold, checked where it is made (the client) and again where it is used (the worker): a
worker trusts nothing in a message, since anything that can reach the broker can put one on the queue.

- a job id is a token of letters, digits, `_` and `-` (it names a folder and a ComfyUI subfolder);
- a node id is a token that may also hold `.` and `:` (ComfyUI's ids of nodes inside a subgraph), never a path:
  it names the node's output files;
- an input name is a plain file name that a node input of the workflow names (a file no node loads is never sent,
  read or uploaded);
- each input is sent as base64 bytes or as a path, one of the two, within the per-input limit; the whole message
  within the per-message limit.
"""

import json
import re

from .errors import JobRefused

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MiB = 1024 * 1024


def checked_job_id(job_id) -> str:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise JobRefused(
            f"job id {job_id!r}: give 1 to 128 letters, digits, '_' or '-' (starting with a letter or digit); "
            "a job id names the job's folder, so it can be no path"
        )
    return job_id


def checked_input_name(name) -> str:
    bad = (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or name.startswith(".")
        or len(name.encode()) > 255
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )
    if bad:
        raise JobRefused(
            f"input name {name!r}: give a plain file name (the value the workflow's loader names), with no folder, "
            "no leading '.' and no control characters"
        )
    return name


def checked_workflow(workflow) -> dict:
    if not isinstance(workflow, dict) or not all(isinstance(n, dict) and "class_type" in n for n in workflow.values()):
        raise JobRefused(
            "workflow: give ComfyUI's API format ({id: {class_type, inputs}}), as saved by "
            "'Export (API)'; the drag-and-drop format (nodes, links) cannot be queued"
        )
    for node_id in workflow:
        if not NODE_ID.fullmatch(node_id):
            raise JobRefused(
                f"workflow: node id {node_id!r}: give ids of letters, digits, '_', '-', '.' or ':' (up to 64, "
                "starting with a letter or digit); a node id names its output files, so it can be no path"
            )
    return workflow


def named_files(workflow: dict) -> set[str]:
    """Every string value of a node input: the file names the workflow's loaders take."""
    return {
        value for node in workflow.values() for value in (node.get("inputs") or {}).values() if isinstance(value, str)
    }


def checked_files(files, workflow: dict, max_input_bytes: int) -> dict[str, dict]:
    """The message's `files` ({name: {"data": base64} or {"path": str}}), each name a plain file name that the
    workflow loads, each base64 entry within the per-input limit (its decoded size, known before decoding)."""
    if not isinstance(files, dict):
        raise JobRefused("files: give {name: {'data': base64} or {'path': path}}")
    loaded = named_files(workflow)
    for name, entry in files.items():
        checked_input_name(name)
        if name not in loaded:
            raise JobRefused(
                f"input {name!r}: no node input of the workflow names this file; name it in a loader "
                "(LoadImage's image, LoadAudio's audio) or leave it out"
            )
        if not isinstance(entry, dict) or len(entry) != 1 or not isinstance(next(iter(entry.values())), str):
            raise JobRefused(f"input {name!r}: give either {{'data': base64 text}} or {{'path': text}}")
        if "data" in entry:
            size = len(entry["data"]) * 3 // 4
            if size > max_input_bytes:
                raise too_large(name, size, max_input_bytes)
        elif "path" not in entry:
            raise JobRefused(f"input {name!r}: give either {{'data': base64 text}} or {{'path': text}}")
    return files


def too_large(name: str, size: int, limit: int) -> JobRefused:
    return JobRefused(
        f"input {name!r}: {size / MiB:.1f} MiB, over the limit of {limit / MiB:.0f} MiB per input "
        "(LTX2_CLUSTER_MAX_INPUT_MB, the same on clients and workers); send a smaller file"
    )


def checked_message_size(size: int, limit: int) -> None:
    if size > limit:
        raise JobRefused(
            f"job message: {size / MiB:.1f} MiB, over the limit of {limit / MiB:.0f} MiB per message "
            "(LTX2_CLUSTER_MAX_MESSAGE_MB: inputs sent as bytes travel in it, base64); send fewer or smaller "
            "files, or put them under a worker's --inputs-root and send their paths"
        )


def message_size(message: dict) -> int:
    """Characters of the message as JSON, counted without making it again: the workflow's JSON and the inputs'
    base64 text (the rest is a few bytes per input)."""
    data = sum(len(entry.get("data", "")) + len(entry.get("path", "")) for entry in message["files"].values())
    return len(json.dumps(message["workflow"])) + data


def checked_message(message, max_input_bytes: int, max_message_bytes: int) -> dict:
    """The whole message, as the worker receives it or the client is about to send it."""
    if not isinstance(message, dict) or set(message) != {"workflow", "files"}:
        raise JobRefused("job message: give {'workflow': ..., 'files': ...} (cluster.Job.message())")
    workflow = checked_workflow(message["workflow"])
    checked_files(message["files"], workflow, max_input_bytes)
    checked_message_size(message_size(message), max_message_bytes)
    return message
