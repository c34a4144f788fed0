"""An A2V job as it travels through the queue: an API-format workflow and the input files it loads.

The workflow names its input files where ComfyUI expects them (LoadImage's `image`, LoadAudio's `audio`). Each file
is sent with the job (its bytes, base64 in the message) or named by a path under a folder every worker reads
(`--inputs-root`). The worker uploads them into `jobs/<job id>/` of its ComfyUI's input folder and points the
workflow there, so two jobs with a `face.png` each never see each other's file. What a message may hold is
checks.py's, applied here when it is made and by the worker when it is used.
"""

import base64
import copy
from dataclasses import dataclass, field
from pathlib import Path

from .app import app
from .checks import checked_message, too_large


@dataclass
class Job:
    workflow: dict
    # file name as the workflow names it -> its bytes, or a path under the workers' --inputs-root
    inputs: dict[str, bytes | str | Path] = field(default_factory=dict)

    def message(self, max_input_bytes: int | None = None, max_message_bytes: int | None = None) -> dict:
        """The JSON the broker carries; refused (JobRefused) where a worker would refuse it. The limits are the
        app's (LTX2_CLUSTER_MAX_INPUT_MB, LTX2_CLUSTER_MAX_MESSAGE_MB) unless given."""
        max_input_bytes = max_input_bytes or app.conf.ltx2_max_input_bytes
        max_message_bytes = max_message_bytes or app.conf.ltx2_max_message_bytes
        files = {}
        for name, source in self.inputs.items():
            if isinstance(source, bytes):
                if len(source) > max_input_bytes:  # before its base64 copy is made
                    raise too_large(str(name), len(source), max_input_bytes)
                files[name] = {"data": base64.b64encode(source).decode()}
            else:
                files[name] = {"path": str(Path(source).absolute())}
        return checked_message({"workflow": self.workflow, "files": files}, max_input_bytes, max_message_bytes)


def pointed_at_uploads(workflow: dict, uploaded: dict[str, str]) -> dict:
    """A copy of the workflow whose input values naming an uploaded file name its place in the job's folder."""
    workflow = copy.deepcopy(workflow)
    for node in workflow.values():
        inputs = node.get("inputs", {})
        for key, value in inputs.items():
            if isinstance(value, str) and value in uploaded:
                inputs[key] = uploaded[value]
    return workflow
