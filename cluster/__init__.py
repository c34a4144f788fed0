"""A2V jobs spread over many GPUs and machines: a Celery queue in front of one ComfyUI (with this pack) per GPU.

A client of ComfyUI's HTTP API and websocket only: nothing here imports the pack's layers (nodes/, ltx2/, quant/,
memory/), nor they this (tests/unit/pack/test_layers.py checks both). docs/api-and-cluster.md, "Scaling past one GPU".
"""

from .client import cancel, result, status, submit
from .errors import ComfyHung, ComfyUnavailable, JobFailed, JobRefused, JobTimedOut, PromptRefused
from .job import Job

__all__ = [
    "Job",
    "submit",
    "status",
    "result",
    "cancel",
    "ComfyHung",
    "ComfyUnavailable",
    "JobFailed",
    "JobRefused",
    "JobTimedOut",
    "PromptRefused",
]
