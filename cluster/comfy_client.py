"""ComfyUI's HTTP API and websocket, as a worker uses them: upload, queue, follow, fetch, interrupt.

Every way of not reaching ComfyUI (refused, dropped, timed out, HTTP 5xx) becomes `ComfyUnavailable`, which the
task retries; a refused workflow (HTTP 400 from /prompt) becomes `PromptRefused` with the nodes' messages, and any
other HTTP 4xx (413: an upload over ComfyUI's --max-upload-size) `JobFailed` with its reason: neither is retried,
the same request would be refused again. A ComfyUI that stops answering while it runs the prompt (nothing on the
websocket, and no answer to GET /queue, for the stall timeout each) becomes `ComfyHung`.
"""

import json
import time
import uuid

import requests
import websocket

from .errors import ComfyHung, ComfyUnavailable, JobFailed, PromptRefused

UNREACHABLE = (
    requests.ConnectionError,
    requests.Timeout,
    websocket.WebSocketException,
    ConnectionError,
    TimeoutError,
    OSError,
)


def refusal_message(body: dict) -> str:
    """One line per node error of a /prompt refusal: `node 4 (A2VSampler) width: <message>: <details>`."""
    lines = []
    for node_id, node in (body.get("node_errors") or {}).items():
        for error in node.get("errors", []):
            name = (error.get("extra_info") or {}).get("input_name", "")
            text = ": ".join(p for p in (error.get("message"), error.get("details")) if p)
            lines.append(f"node {node_id} ({node.get('class_type', '?')}) {name}: {text}".replace(" :", ":"))
    if not lines:
        error = body.get("error") or {}
        lines.append(": ".join(p for p in (error.get("message"), error.get("details")) if p) or json.dumps(body))
    return "; ".join(lines)


def refused(url: str, what: str, response: requests.Response) -> JobFailed:
    hint = ""
    if response.status_code == 413:
        hint = ": the file is over ComfyUI's upload limit (--max-upload-size, 100 MB by default); send a smaller one"
    body = " ".join(response.text.split())[:300]
    return JobFailed(
        f"ComfyUI at {url} refused {what}: HTTP {response.status_code} {response.reason}{hint}"
        + (f" ({body})" if body and not hint else "")
    )


class ComfyClient:
    def __init__(self, url: str, timeout: float = 60.0, stall_timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.client_id = uuid.uuid4().hex
        self._ws = None

    def _request(self, method: str, path: str, timeout: float | None = None, **kwargs) -> requests.Response:
        """The response of a request ComfyUI answered with 2xx or 3xx (or 400 from /prompt, for `queue`)."""
        try:
            response = requests.request(method, self.url + path, timeout=timeout or self.timeout, **kwargs)
        except UNREACHABLE as error:
            raise ComfyUnavailable(f"ComfyUI at {self.url} did not answer {method} {path}: {error}") from None
        if response.status_code >= 500:
            raise ComfyUnavailable(f"ComfyUI at {self.url}: HTTP {response.status_code} on {method} {path}")
        if response.status_code >= 400 and (method, path, response.status_code) != ("POST", "/prompt", 400):
            raise refused(self.url, f"{method} {path}", response)
        return response

    def ready(self) -> bool:
        try:
            return self._request("GET", "/system_stats").ok
        except (ComfyUnavailable, JobFailed):
            return False

    def upload(self, name: str, data: bytes, subfolder: str) -> str:
        """Puts a file in ComfyUI's input folder (the route is /upload/image for any file: LoadAudio reads the same
        folder); overwrites, so a redelivered job uploads to the same place. Returns the name a loader takes."""
        try:
            response = self._request(
                "POST",
                "/upload/image",
                files={"image": (name, data)},
                data={"overwrite": "true", "type": "input", "subfolder": subfolder},
            )
        except JobFailed as error:
            raise JobFailed(f"input {name!r} ({len(data) / 2**20:.1f} MiB): {error}") from None
        body = response.json()
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]

    def connect(self) -> None:
        """Opens the websocket before queuing, so no message of the prompt is missed."""
        ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        try:
            self._ws = websocket.create_connection(f"{ws_url}/ws?clientId={self.client_id}", timeout=self.timeout)
        except UNREACHABLE as error:
            raise ComfyUnavailable(f"ComfyUI at {self.url}: websocket: {error}") from None

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def queue(self, workflow: dict) -> str:
        response = self._request("POST", "/prompt", json={"prompt": workflow, "client_id": self.client_id})
        body = response.json()
        if response.status_code == 400 or "error" in body:
            raise PromptRefused(refusal_message(body))
        return body["prompt_id"]

    def follow(self, prompt_id: str, on_message, cancelled, poll: float = 0.5) -> tuple[str, list[dict]]:
        """Reads the websocket until the prompt ends: ('success' | 'error' | 'interrupted', its messages).
        `on_message(message)` sees each; `cancelled()` is asked every `poll` seconds, and when true the prompt is
        taken off the queue and interrupted."""
        messages, interrupting, heard = [], False, time.monotonic()
        while True:
            if not interrupting and cancelled():
                self.interrupt(prompt_id)
                interrupting = True
            try:
                self._ws.settimeout(poll)
                raw = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                if time.monotonic() - heard > self.stall_timeout:
                    self.still_answering(messages)  # a long node sends nothing for minutes, yet ComfyUI answers
                    heard = time.monotonic()
                continue
            except UNREACHABLE as error:
                raise ComfyUnavailable(f"ComfyUI at {self.url} went away while running: {error}") from None
            heard = time.monotonic()
            if not isinstance(raw, str):
                continue  # binary preview frames
            message = json.loads(raw)
            data = message.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            message["received"] = time.monotonic()
            messages.append(message)
            on_message(message)
            kind = message["type"]
            if kind == "execution_error":
                return "error", messages
            if kind == "execution_interrupted":
                return "interrupted", messages
            if kind == "execution_success" or (kind == "executing" and data.get("node") is None):
                return "success", messages

    def still_answering(self, messages: list[dict]) -> None:
        """Raises ComfyHung when ComfyUI does not answer GET /queue within the stall timeout."""
        try:
            self._request("GET", "/queue", timeout=self.stall_timeout)
        except ComfyUnavailable:
            node = next((m["data"].get("node") for m in reversed(messages) if m["type"] == "executing"), None)
            raise ComfyHung(
                f"ComfyUI at {self.url} stopped answering while running the job"
                + (f" (node {node})" if node is not None else "")
                + f": nothing on its websocket for {self.stall_timeout:g} s, and no answer to GET /queue within "
                f"{self.stall_timeout:g} s"
            ) from None

    def history(self, prompt_id: str) -> dict:
        for _ in range(50):  # the entry is written just after the last websocket message
            entry = self._request("GET", f"/history/{prompt_id}").json().get(prompt_id)
            if entry:
                return entry
            time.sleep(0.1)
        raise ComfyUnavailable(f"ComfyUI at {self.url} has no history for prompt {prompt_id}")

    def view(self, file_ref: dict) -> bytes:
        params = {k: file_ref.get(k, "") for k in ("filename", "subfolder", "type")}
        return self._request("GET", "/view", params=params).content

    def run_report(self, prompt_id: str) -> dict | None:
        """The pack's report of this prompt (GET /ltx2/vram, `last_run`), or None when the host has no pack or the
        report is of another prompt."""
        try:
            response = self._request("GET", "/ltx2/vram")
        except JobFailed:
            return None
        last = response.json().get("last_run") or {}
        return last if prompt_id in (last.get("run_id"), last.get("prompt_id")) else None

    def interrupt(self, prompt_id: str, timeout: float | None = None) -> None:
        """Takes the prompt off ComfyUI's queue if it waits there, and interrupts it if it runs (ComfyUI interrupts
        only that prompt: another one running is left alone)."""
        self._request("POST", "/queue", timeout=timeout, json={"delete": [prompt_id]})
        self._request("POST", "/interrupt", timeout=timeout, json={"prompt_id": prompt_id})
