"""An A2V job as it travels through the queue: an API-format workflow and the input files it loads.

The workflow names its input files where ComfyUI expects them (LoadImage's `image`, LoadAudio's `audio`). Each file
is sent with the job (its bytes, base64 in the message) or named by a path on storage every worker can read. The
worker uploads them into `jobs/<job id>/` of its ComfyUI's input folder and points the workflow there, so two jobs
with a `face.png` each never see each other's file.
"""

import base64
import copy
from dataclasses import dataclass, field
from pathlib import Path

from .errors import JobFailed


@dataclass
class Job:
    workflow: dict
    # file name as the workflow names it -> its bytes, or a path on shared storage (read by the worker)
    inputs: dict[str, bytes | str | Path] = field(default_factory=dict)

    def message(self) -> dict:
        """The JSON the broker carries."""
        files = {}
        for name, source in self.inputs.items():
            if Path(name).name != name or not name:
                raise ValueError(f"input name {name!r}: give a plain file name (the workflow's value), no folders")
            if isinstance(source, bytes):
                files[name] = {"data": base64.b64encode(source).decode()}
            else:
                files[name] = {"path": str(source)}
        if not isinstance(self.workflow, dict) or not all(
            isinstance(n, dict) and "class_type" in n for n in self.workflow.values()
        ):
            raise ValueError(
                "workflow: give ComfyUI's API format ({id: {class_type, inputs}}), as saved by "
                "'Export (API)'; the drag-and-drop format (nodes, links) cannot be queued"
            )
        return {"workflow": self.workflow, "files": files}


def input_bytes(name: str, entry: dict) -> bytes:
    """The bytes of one input file of a job message; a path that this worker cannot read fails the job, naming it."""
    if "data" in entry:
        return base64.b64decode(entry["data"])
    path = Path(entry["path"])
    try:
        return path.read_bytes()
    except OSError as error:
        raise JobFailed(
            f"input {name!r}: cannot read {path} on this worker ({error.strerror}); put it on storage "
            "every worker mounts at the same path, or send its bytes with the job"
        ) from None


def pointed_at_uploads(workflow: dict, uploaded: dict[str, str]) -> dict:
    """A copy of the workflow whose input values naming an uploaded file name its place in the job's folder."""
    workflow = copy.deepcopy(workflow)
    for node in workflow.values():
        inputs = node.get("inputs", {})
        for key, value in inputs.items():
            if isinstance(value, str) and value in uploaded:
                inputs[key] = uploaded[value]
    return workflow
