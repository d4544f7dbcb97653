"""A real ComfyUI on 127.0.0.1 with this pack installed, for the integration tests.

Runs only when COMFYUI_ROOT names a ComfyUI checkout (its Python: $COMFYUI_PYTHON, else
$COMFYUI_ROOT/.venv/bin/python, else this interpreter). The server gets its own base
directory with the pack linked into custom_nodes/ and a tiny random SyncDreamer
checkpoint in models/syncdreamer/; tests that need Stable Diffusion add a random
checkpoint in its layout (sd15_random.py) to models/checkpoints/.
"""

from __future__ import annotations

import json
import os
import re
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
UNREACHABLE_HUB = "http://127.0.0.1:9"
SD15 = "sd15-random.safetensors"


def comfy_root() -> Path:
    value = os.environ.get("COMFYUI_ROOT")
    if not value:
        pytest.skip("integration tests need a ComfyUI checkout: set COMFYUI_ROOT=/path/to/ComfyUI")
    root = Path(value)
    if not (root / "main.py").is_file():
        pytest.skip(f"COMFYUI_ROOT={root} is not a ComfyUI checkout (no main.py)")
    return root


def host_python() -> str:
    root = comfy_root()
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    venv = root / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, root: Path, base: Path, process: subprocess.Popen, log: Path):
        self.url, self.root, self.base, self.process, self.log = url, root, base, process, log
        self.server = url.replace("http://", "")
        self.version = self.get("/system_stats")["system"]["comfyui_version"]

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.load(response)

    def import_seconds(self) -> float:
        """The pack's import time as ComfyUI logs it at start-up."""
        match = re.search(r"([\d.]+) seconds(?: \(IMPORT FAILED\))?: \S*ComfyUI-SyncDreamer", self.log.read_text())
        assert match and "IMPORT FAILED" not in match.group(0), "the pack is not in ComfyUI's import-time report"
        return float(match.group(1))

    def ensure_sd15(self) -> None:
        target = self.base / "models" / "checkpoints" / SD15
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([host_python(), str(Path(__file__).with_name("sd15_random.py")), str(target), str(ROOT)],
                           cwd=self.root, check=True, timeout=600)


def start_server(tmp_path_factory):
    root = comfy_root()
    from syncdreamer_core.network.config import SyncDreamerConfig
    from syncdreamer_core.weights.official_layout import random_checkpoint

    base = tmp_path_factory.mktemp("comfyui-base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-SyncDreamer").symlink_to(ROOT, target_is_directory=True)
    (base / "models" / "syncdreamer").mkdir(parents=True)
    (base / "input").mkdir()
    save_file(random_checkpoint(SyncDreamerConfig.tiny(), seed=5), str(base / "models" / "syncdreamer" / TINY))
    port = _free_port()
    log = base / "comfyui.log"
    process = subprocess.Popen(
        [host_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory",
         str(base), "--disable-auto-launch"], cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, "HF_ENDPOINT": UNREACHABLE_HUB})  # the loader's Download button never leaves the machine
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ComfyUI exited while starting:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/object_info/SyncDreamerSampler", timeout=5):
                break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1)
    else:
        process.terminate()
        pytest.fail(f"ComfyUI did not start within 180 s:\n{log.read_text()[-3000:]}")
    return Server(f"http://127.0.0.1:{port}", root, base, process, log)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
