"""A client of ComfyUI's HTTP API (no ComfyUI import: it talks to a running server):
queue an API-format workflow (POST /prompt), upload inputs, follow the progress on the
websocket (/ws), read /history and download the outputs (/view)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path


class ComfyError(RuntimeError):
    """The server answered but refused the request (e.g. an invalid prompt)."""


class ComfyClient:
    def __init__(self, server: str = "127.0.0.1:8188", timeout: float = 3600.0):
        self.server = server.replace("http://", "").rstrip("/")
        self.client_id = uuid.uuid4().hex
        self.timeout = timeout

    # -- HTTP ------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"http://{self.server}{path}"

    def get_json(self, path: str):
        with urllib.request.urlopen(self._url(path), timeout=60) as response:
            return json.load(response)

    def post_json(self, path: str, payload: dict):
        request = urllib.request.Request(self._url(path), data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise ComfyError(f"{path} refused the request: {error.read().decode(errors='replace')}") from None
        return json.loads(body) if body else {}

    def upload_image(self, path: str | Path, name: str | None = None) -> str:
        path = Path(path)
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name or path.name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + (
                f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
                f"--{boundary}--\r\n").encode()
        request = urllib.request.Request(self._url("/upload/image"), data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["name"]

    # -- running -----------------------------------------------------------------------
    def submit(self, workflow: dict, extra_data: dict | None = None) -> str:
        """Queue an API-format workflow; ``extra_data`` as ComfyUI takes it (e.g. the UI
        workflow under extra_pnginfo, which saved files then carry)."""
        body = {"prompt": workflow, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        return self.post_json("/prompt", body)["prompt_id"]

    def interrupt(self) -> None:
        self.post_json("/interrupt", {})

    def history(self, prompt_id: str) -> dict | None:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, on_event=None) -> dict:
        """Block until the prompt finished; ``on_event(type, data)`` sees progress messages."""
        try:
            import websocket  # websocket-client
        except ImportError:
            websocket = None
        if websocket is not None:
            try:
                self._follow(websocket, prompt_id, on_event)
            except websocket.WebSocketException as error:  # the server went away
                raise ConnectionError(f"{self.server}: {error}") from None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry:
                return entry
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {self.timeout} s")

    def _follow(self, websocket, prompt_id: str, on_event) -> None:
        """Read the websocket's progress messages until the prompt ends."""
        ws = websocket.create_connection(f"ws://{self.server}/ws?clientId={self.client_id}", timeout=5)
        try:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                try:
                    message = ws.recv()
                except websocket.WebSocketTimeoutException:
                    if self.history(prompt_id):
                        break
                    continue
                if not isinstance(message, str):
                    continue  # binary preview images
                event = json.loads(message)
                data = event.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if on_event:
                    on_event(event["type"], data)
                if event["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                    break
                if event["type"] == "executing" and data.get("node") is None:
                    break
        finally:
            ws.close()

    def fetch(self, file_entry: dict) -> bytes:
        """The bytes of an output file (an entry of a node's outputs in /history)."""
        query = urllib.parse.urlencode({k: file_entry.get(k, "") for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(self._url(f"/view?{query}"), timeout=120) as response:
            return response.read()

    def download(self, file_entry: dict, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / file_entry["filename"]
        target.write_bytes(self.fetch(file_entry))
        return target

    def download_outputs(self, entry: dict, folder: Path) -> list[Path]:
        files = []
        for output in entry.get("outputs", {}).values():
            for kind in ("images", "3d", "gifs"):
                for item in output.get(kind, []):
                    if isinstance(item, dict) and "filename" in item:
                        files.append(self.download(item, folder))
        return files
