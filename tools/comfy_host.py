"""A ComfyUI host started with tools/serve.py and driven over HTTP and the websocket (tests and the demo).

This is how ComfyUI's own server tests work: a subprocess on a free port, prompts queued on /prompt,
progress and results read from /ws and /history.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websocket

ROOT = Path(__file__).resolve().parents[1]
# The sample portrait and voice clip the example workflows load.
MEDIA = ROOT / "example_workflows" / "media"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PromptResult:
    prompt_id: str
    messages: list[dict] = field(default_factory=list)
    history: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        """'success', 'error' or 'interrupted', from the websocket messages."""
        kinds = {m["type"] for m in self.messages}
        if "execution_error" in kinds:
            return "error"
        if "execution_interrupted" in kinds:
            return "interrupted"
        return "success"

    def error(self) -> dict:
        return next(m["data"] for m in self.messages if m["type"] == "execution_error")

    def outputs(self, node_id: str) -> dict:
        return self.history.get("outputs", {}).get(node_id, {})


def node_timings(result: PromptResult) -> dict[str, float]:
    """Seconds each node ran, from the websocket's 'executing' messages (receive times)."""
    timings, current, started = {}, None, 0.0
    for message in result.messages:
        if message["type"] == "execution_success" and current is not None:
            timings[current] = message["received"] - started
            break
        if message["type"] != "executing":
            continue
        if current is not None:
            timings[current] = message["received"] - started
        current, started = message["data"].get("node"), message["received"]
    return timings


class ComfyHost:
    """`cpu`: pass --cpu (the default; False on a GPU machine). `extra_args`: further ComfyUI arguments. `python`
    and `comfyui`: another lane's Python and ComfyUI tree (default: this process's, and LTX2_COMFYUI's)."""

    def __init__(
        self,
        models_dir: Path,
        work_dir: Path,
        extra_env: dict | None = None,
        cpu: bool = True,
        extra_args: tuple[str, ...] = (),
        python: str = sys.executable,
        comfyui: str | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.input_dir = work_dir / "input"
        self.output_dir = work_dir / "output"
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = work_dir / "comfyui.log"
        self.client_id = uuid.uuid4().hex
        command = [
            python,
            str(ROOT / "tools" / "serve.py"),
            "--models-dir",
            str(models_dir),
            "--port",
            str(self.port),
            *(["--cpu"] if cpu else []),
            "--input-directory",
            str(self.input_dir),
            "--output-directory",
            str(self.output_dir),
            "--database-url",
            f"sqlite:///{work_dir / 'comfyui.db'}",
            *extra_args,
        ]
        env = {**os.environ, **(extra_env or {})}
        if comfyui is not None:
            env["LTX2_COMFYUI"] = comfyui
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._ws = None

    def wait_ready(self, timeout: float = 180.0) -> "ComfyHost":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/system_stats", timeout=2).ok:
                    self._ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}")
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not serve within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-6000:]

    def stop(self) -> None:
        if self._ws is not None:
            self._ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    # --- HTTP API ---
    def system_stats(self) -> dict:
        return requests.get(f"{self.url}/system_stats", timeout=30).json()

    def object_info(self, node_class: str | None = None) -> dict:
        path = f"/object_info/{node_class}" if node_class else "/object_info"
        return requests.get(self.url + path, timeout=30).json()

    def post_prompt(self, prompt: dict) -> requests.Response:
        return requests.post(f"{self.url}/prompt", json={"prompt": prompt, "client_id": self.client_id}, timeout=30)

    def queue(self, prompt: dict) -> str:
        response = self.post_prompt(prompt)
        body = response.json()
        if response.status_code != 200 or "prompt_id" not in body:
            raise AssertionError(f"prompt rejected: {json.dumps(body)[:2000]}")
        return body["prompt_id"]

    def history(self, prompt_id: str) -> dict:
        return requests.get(f"{self.url}/history/{prompt_id}", timeout=30).json().get(prompt_id, {})

    def interrupt(self) -> None:
        requests.post(f"{self.url}/interrupt", timeout=30)

    def vram(self, diagnostics: bool = False) -> dict:
        """The pack's budget state (GET /ltx2/vram); with diagnostics, the count of live tensors too, asked again
        while the server says to wait (409: a prompt runs or waits; 429: a walk ran just now)."""
        if not diagnostics:
            return requests.get(f"{self.url}/ltx2/vram", timeout=60).json()
        deadline = time.monotonic() + 120
        while True:
            response = requests.get(f"{self.url}/ltx2/vram?diagnostics=1", timeout=60)
            if response.status_code not in (409, 429) or time.monotonic() > deadline:
                return response.json()
            time.sleep(float(response.headers.get("Retry-After", 1)))

    def rss(self) -> int:
        """Resident memory of the ComfyUI process (serve.py's child)."""
        import psutil

        children = psutil.Process(self.process.pid).children()
        return children[0].memory_info().rss if children else 0

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """ComfyUI's /free, done before this returns. The server only sets a flag that its worker reads after the
        next prompt it takes (or when its wait for one times out, up to minutes later): a prompt queued right
        after could run on the old caches. So a prompt that does nothing but set the pack's budget to its
        default (VRAMGuard, budget 0) is run after it: once it is done, so is the free."""
        requests.post(f"{self.url}/free", json={"unload_models": unload_models, "free_memory": free_memory}, timeout=30)
        done = self.run({"1": {"class_type": "VRAMGuard", "inputs": {"budget_gb": 0.0, "action": "enforce"}}}, 120)
        assert done.status == "success", done.messages
        # The worker may have taken that prompt before it read the flag (it reads it after a prompt), and frees only
        # after it: when models are to go, wait until the pack holds nothing.
        deadline = time.monotonic() + 60
        while unload_models and self.vram().get("resident_bytes") and time.monotonic() < deadline:
            time.sleep(0.2)

    # --- websocket ---
    def wait(self, prompt_id: str, timeout: float = 600.0, on_message=None) -> PromptResult:
        """Reads the websocket until the prompt finishes; returns its messages and history entry."""
        result = PromptResult(prompt_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._ws.settimeout(max(0.1, deadline - time.monotonic()))
            raw = self._ws.recv()
            if not isinstance(raw, str):
                continue  # binary preview frames
            message = json.loads(raw)
            message["received"] = time.monotonic()
            data = message.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if data.get("prompt_id") == prompt_id:
                result.messages.append(message)
                if on_message is not None:
                    on_message(message)
            kind = message["type"]
            done = kind in ("execution_error", "execution_interrupted", "execution_success") or (
                kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id
            )
            if done:
                result.history = self._history_when_written(prompt_id)
                return result
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s:\n{self.log()}")

    def _history_when_written(self, prompt_id: str) -> dict:
        for _ in range(50):
            entry = self.history(prompt_id)
            if entry:
                return entry
            time.sleep(0.1)
        return {}

    def run(self, prompt: dict, timeout: float = 600.0) -> PromptResult:
        return self.wait(self.queue(prompt), timeout)
