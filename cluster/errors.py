"""What a cluster job can fail with. The task's retry policy is decided by type: only `ComfyUnavailable` is retried."""


class ComfyUnavailable(RuntimeError):
    """The worker's ComfyUI did not answer (connection refused or dropped, HTTP 5xx): it is starting, restarting or
    gone. Transient: the job is retried with backoff, a bounded number of times, on whichever worker is free."""


class PromptRefused(ValueError):
    """ComfyUI refused the workflow (HTTP 400 from /prompt: bad input). The message names the node, the input and
    what ComfyUI said. Never retried: the same workflow would be refused again."""


class JobFailed(RuntimeError):
    """The workflow ran and a node failed (`execution_error` on the websocket), or a job's input could not be
    read. Not retried."""
