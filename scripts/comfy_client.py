"""Run a SyncDreamer workflow on a running ComfyUI through its HTTP API.

    python scripts/comfy_client.py --workflow image_to_3d --image my_object.png \
        --set 13.elevation=20 --out output/my_object

Submits an API-format workflow (a shipped one by name, or a path) to POST /prompt,
follows its progress over the websocket (/ws), and downloads everything it produced
(the 16 views, grids, the mesh) from /view into --out. ``--set NODE.INPUT=VALUE``
changes an input (VALUE is read as JSON when it parses, else as text); ``--image
[NODE=]PATH`` uploads a file and feeds it to LoadImage node NODE (or to all of them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
            raise RuntimeError(f"{path} refused the request: {error.read().decode(errors='replace')}") from None
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
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry:
                return entry
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {self.timeout} s")

    def download(self, file_entry: dict, folder: Path) -> Path:
        query = urllib.parse.urlencode({k: file_entry.get(k, "") for k in ("filename", "subfolder", "type")})
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / file_entry["filename"]
        with urllib.request.urlopen(self._url(f"/view?{query}"), timeout=120) as response:
            target.write_bytes(response.read())
        return target

    def download_outputs(self, entry: dict, folder: Path) -> list[Path]:
        files = []
        for output in entry.get("outputs", {}).values():
            for kind in ("images", "3d", "gifs"):
                for item in output.get(kind, []):
                    if isinstance(item, dict) and "filename" in item:
                        files.append(self.download(item, folder))
        return files


def load_workflow(name_or_path: str) -> dict:
    path = Path(name_or_path)
    if not path.is_file():
        path = ROOT / "example_workflows" / "api" / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no API workflow {name_or_path!r} (a path, or one of "
                                f"{sorted(p.stem for p in (ROOT / 'example_workflows' / 'api').glob('*.json'))})")
    return json.loads(path.read_text())


def apply_settings(workflow: dict, settings: list[str]) -> dict:
    for setting in settings:
        target, _, raw = setting.partition("=")
        node, _, name = target.partition(".")
        if node not in workflow or not name or not _:
            raise ValueError(f"--set needs NODE.INPUT=VALUE with an existing node id, got {setting!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        workflow[node]["inputs"][name] = value
    return workflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8188")
    parser.add_argument("--workflow", default="image_to_3d", help="shipped workflow name or API-format JSON path")
    parser.add_argument("--image", action="append", default=[], metavar="[NODE=]PATH",
                        help="upload an image and use it in LoadImage node NODE (default: every LoadImage)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE")
    parser.add_argument("--out", default="output/comfy_client")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)

    client = ComfyClient(args.server, args.timeout)
    workflow = apply_settings(load_workflow(args.workflow), args.set)
    for image in args.image:
        node_id, _, path = image.rpartition("=") if "=" in image else ("", "", image)
        name = client.upload_image(path)
        for key, node in workflow.items():
            if node["class_type"] == "LoadImage" and node_id in ("", key):
                node["inputs"]["image"] = name
    prompt_id = client.submit(workflow)
    print(f"queued {prompt_id}", flush=True)

    def show(kind, data):
        if kind == "progress":
            print(f"  node {data.get('node')}: {data.get('value')}/{data.get('max')}", flush=True)
        elif kind == "executing" and data.get("node"):
            print(f"running node {data['node']}", flush=True)

    entry = client.wait(prompt_id, show)
    status = entry.get("status", {})
    if status.get("status_str") != "success":
        errors = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
        print(f"failed: {errors[0].get('exception_message') if errors else status}", file=sys.stderr)
        return 1
    for path in client.download_outputs(entry, Path(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
