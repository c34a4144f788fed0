"""What a cluster job can fail with. The task's retry policy is decided by type: `ComfyUnavailable` is retried a
bounded number of times, `ComfyHung` once; every other error is final."""


class ComfyUnavailable(RuntimeError):
    """The worker's ComfyUI did not answer (connection refused or dropped, HTTP 5xx): it is starting, restarting or
    gone. Transient: the job is retried with backoff, a bounded number of times, on whichever worker is free."""


class ComfyHung(RuntimeError):
    """The worker's ComfyUI stopped answering while it ran the job's prompt (nothing on its websocket and no answer
    to a request for as long as the worker's stall timeout). The job is retried once (its stale prompt is taken off
    that ComfyUI first); a second hang fails it."""


class PromptRefused(ValueError):
    """ComfyUI refused the workflow (HTTP 400 from /prompt: bad input). The message names the node, the input and
    what ComfyUI said. Never retried: the same workflow would be refused again."""


class JobRefused(ValueError):
    """The job was refused before anything ran: a job id, input name, node id, path or size that the worker does
    not take (the client refuses the same at submit). Never retried: the message names what to change."""


class JobFailed(RuntimeError):
    """The workflow ran and a node failed (`execution_error` on the websocket), a job's input could not be read, or
    ComfyUI refused a request with HTTP 4xx (a file over its upload size: 413). Not retried."""


class JobTimedOut(RuntimeError):
    """The job ran past its time limit (the worker's soft time limit, or the lower one given at submit); its prompt
    was stopped on ComfyUI. Not retried: it would take as long again."""
