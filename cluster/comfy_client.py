"""ComfyUI's HTTP API and websocket, as a worker uses them: upload, queue, follow, fetch, interrupt.

Every way of not reaching ComfyUI (refused, dropped, timed out, HTTP 5xx) becomes `ComfyUnavailable`, which the
task retries; a refused workflow (HTTP 400) becomes `PromptRefused` with the nodes' messages, which it never
retries.
"""

import json
import time
import uuid

import requests
import websocket

from .errors import ComfyUnavailable, PromptRefused

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


class ComfyClient:
    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        self._ws = None

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = requests.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except UNREACHABLE as error:
            raise ComfyUnavailable(f"ComfyUI at {self.url} did not answer {method} {path}: {error}") from None
        if response.status_code >= 500:
            raise ComfyUnavailable(f"ComfyUI at {self.url}: HTTP {response.status_code} on {method} {path}")
        return response

    def ready(self) -> bool:
        try:
            return self._request("GET", "/system_stats").ok
        except ComfyUnavailable:
            return False

    def upload(self, name: str, data: bytes, subfolder: str) -> str:
        """Puts a file in ComfyUI's input folder (the route is /upload/image for any file: LoadAudio reads the same
        folder); overwrites, so a redelivered job uploads to the same place. Returns the name a loader takes."""
        response = self._request(
            "POST",
            "/upload/image",
            files={"image": (name, data)},
            data={"overwrite": "true", "type": "input", "subfolder": subfolder},
        )
        if not response.ok:
            raise ComfyUnavailable(f"ComfyUI at {self.url} refused the upload of {name!r}: HTTP {response.status_code}")
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
        if not response.ok:
            raise ComfyUnavailable(f"ComfyUI at {self.url}: HTTP {response.status_code} on POST /prompt")
        return body["prompt_id"]

    def follow(self, prompt_id: str, on_message, cancelled, poll: float = 0.5) -> tuple[str, list[dict]]:
        """Reads the websocket until the prompt ends: ('success' | 'error' | 'interrupted', its messages).
        `on_message(message)` sees each; `cancelled()` is asked every `poll` seconds, and when true the prompt is
        taken off the queue and interrupted."""
        messages, interrupting = [], False
        while True:
            if not interrupting and cancelled():
                self.interrupt(prompt_id)
                interrupting = True
            try:
                self._ws.settimeout(poll)
                raw = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except UNREACHABLE as error:
                raise ComfyUnavailable(f"ComfyUI at {self.url} went away while running: {error}") from None
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

    def history(self, prompt_id: str) -> dict:
        for _ in range(50):  # the entry is written just after the last websocket message
            entry = self._request("GET", f"/history/{prompt_id}").json().get(prompt_id)
            if entry:
                return entry
            time.sleep(0.1)
        raise ComfyUnavailable(f"ComfyUI at {self.url} has no history for prompt {prompt_id}")

    def view(self, file_ref: dict) -> bytes:
        params = {k: file_ref.get(k, "") for k in ("filename", "subfolder", "type")}
        response = self._request("GET", "/view", params=params)
        if not response.ok:
            raise ComfyUnavailable(f"ComfyUI at {self.url}: GET /view {params}: HTTP {response.status_code}")
        return response.content

    def run_report(self, prompt_id: str) -> dict | None:
        """The pack's report of this prompt (GET /ltx2/vram, `last_run`), or None when the host has no pack or the
        report is of another prompt."""
        response = self._request("GET", "/ltx2/vram")
        if not response.ok:
            return None
        last = response.json().get("last_run") or {}
        return last if prompt_id in (last.get("run_id"), last.get("prompt_id")) else None

    def interrupt(self, prompt_id: str) -> None:
        """Takes the prompt off ComfyUI's queue if it waits there, and interrupts it if it runs."""
        self._request("POST", "/queue", json={"delete": [prompt_id]})
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})
