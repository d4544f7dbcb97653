"""A real ComfyUI on 127.0.0.1 with this pack installed, for the integration tests.

Runs only when COMFYUI_ROOT names a ComfyUI checkout (its Python: $COMFYUI_PYTHON, else
$COMFYUI_ROOT/.venv/bin/python, else this interpreter). The server gets its own base
directory with the pack linked into custom_nodes/ and a tiny random checkpoint in
models/syncdreamer/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

TINY = "tiny-test.safetensors"


def _comfy_root() -> Path:
    value = os.environ.get("COMFYUI_ROOT")
    if not value:
        pytest.skip("integration tests need a ComfyUI checkout: set COMFYUI_ROOT=/path/to/ComfyUI")
    root = Path(value)
    if not (root / "main.py").is_file():
        pytest.skip(f"COMFYUI_ROOT={root} is not a ComfyUI checkout (no main.py)")
    return root


def _python(root: Path) -> str:
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, base: Path, process: subprocess.Popen, log: Path):
        self.url, self.base, self.process, self.log = url, base, process, log
        self.server = url.replace("http://", "")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.load(response)


def start_server(tmp_path_factory):
    root = _comfy_root()
    from syncdreamer_core.network.config import SyncDreamerConfig
    from syncdreamer_core.weights.official_layout import random_checkpoint

    base = tmp_path_factory.mktemp("comfyui-base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-SyncDreamer").symlink_to(ROOT, target_is_directory=True)
    (base / "models" / "syncdreamer").mkdir(parents=True)
    (base / "input").mkdir()
    save_file(random_checkpoint(SyncDreamerConfig.tiny(), seed=5), str(base / "models" / "syncdreamer" / TINY))
    (base / "input" / "chicken_views.png").write_bytes(
        (ROOT / "syncdreamer_core" / "examples" / "chicken-views.png").read_bytes())
    port = _free_port()
    log = base / "comfyui.log"
    process = subprocess.Popen(
        [_python(root), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory",
         str(base), "--disable-auto-launch"], cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", base, process, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ComfyUI exited while starting:\n{log.read_text()[-3000:]}")
        try:
            server.get("/object_info/SyncDreamerSampler")
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1)
    else:
        process.terminate()
        pytest.fail(f"ComfyUI did not start within 180 s:\n{log.read_text()[-3000:]}")
    return server


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
