"""`python -m syncdreamer_core download` against a local stand-in for the Hugging Face Hub
(tests have no network): the file arrives with a progress bar, a cut connection resumes
where it stopped (in the same run, and in the next run after a failure), the result is
checked before anything loads it, and --safetensors converts it. And the loader names a
file under the official name that is truncated, another file or a different model."""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from helpers import fast_tiny_config
from safetensors.torch import save_file

from syncdreamer_core.cli import main
from syncdreamer_core.weights import download as dl
from syncdreamer_core.weights.checkpoint import OFFICIAL_FILENAME, OFFICIAL_SIZE, CheckpointError, load_checkpoint
from syncdreamer_core.weights.official_layout import random_checkpoint

REPO = "mirror/SyncDreamer"
NAME = "tiny-pretrain.ckpt"


class StandInHub:
    """Serves one file as the Hub's resolve endpoint does (HEAD metadata, GET with Range).
    ``cut_at``: the first GET sends that many bytes and drops the connection; ``then``:
    'resume' serves later requests, 'fail' answers them 503 (the network is gone)."""

    def __init__(self, data: bytes, cut_at: int | None = None, then: str = "resume"):
        self.data, self.cut_at, self.then = data, cut_at, then
        self.ranges: list[str | None] = []
        self.sent = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _headers(self, status: int, length: int, extra: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.send_header("X-Repo-Commit", "0" * 40)
                self.send_header("ETag", f'"{hashlib.sha256(hub.data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()

            def _known(self) -> bool:
                if self.path.split("?")[0] != f"/{REPO}/resolve/main/{NAME}":
                    self.send_error(404)
                    return False
                return True

            def do_HEAD(self):
                if self._known():
                    self._headers(200, len(hub.data))

            def do_GET(self):
                if not self._known():
                    return
                asked = self.headers.get("Range")
                first_cut = hub.cut_at is not None and not hub.ranges
                hub.ranges.append(asked)
                if not first_cut and hub.then == "fail":
                    self.send_error(503)
                    return
                start = int(re.match(r"bytes=(\d+)-", asked).group(1)) if asked else 0
                body = hub.data[start:]
                if asked:
                    self._headers(206, len(body), {"Content-Range": f"bytes {start}-{len(hub.data) - 1}/{len(hub.data)}"})
                else:
                    self._headers(200, len(body))
                if first_cut:
                    body = body[: hub.cut_at]
                self.wfile.write(body)
                hub.sent += len(body)
                if first_cut:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("hub") / NAME
    torch.save({"state_dict": random_checkpoint(fast_tiny_config(), seed=1)}, path)
    return path.read_bytes()


@pytest.fixture
def expected(tiny_file, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    official = dl.OfficialFile(REPO, NAME, len(tiny_file), hashlib.sha256(tiny_file).hexdigest())
    monkeypatch.setattr(dl, "OFFICIAL", official)
    return official


def test_the_download_shows_progress_checks_the_file_and_converts_it(expected, tiny_file, tmp_path, capsys):
    hub = StandInHub(tiny_file)
    try:
        code = main(["download", "--to", str(tmp_path / "models"), "--endpoint", hub.endpoint, "--safetensors"])
    finally:
        hub.close()
    out, err = capsys.readouterr()
    assert code == 0, err
    got = tmp_path / "models" / NAME
    assert got.read_bytes() == tiny_file and "is the official checkpoint" in out
    assert re.search(r"100%.*\|", err), err[-500:]  # the progress bar reached the end
    converted = tmp_path / "models" / "tiny-pretrain.safetensors"
    from safetensors import safe_open

    with safe_open(str(converted), "pt") as stored:
        assert stored.get_slice("cc_projection.weight").get_dtype() == "F16"
    load_checkpoint(converted, with_vae=False, with_clip=False)
    # a second run finds the file whole and fetches nothing
    hub = StandInHub(tiny_file)
    try:
        assert main(["download", "--to", str(tmp_path / "models"), "--endpoint", hub.endpoint]) == 0
    finally:
        hub.close()
    assert hub.ranges == []


def resumed_from(hub: StandInHub) -> int:
    (asked,) = hub.ranges[1:]
    return int(re.match(r"bytes=(\d+)-$", asked).group(1))


def test_a_cut_connection_resumes_in_the_same_run(expected, tiny_file, tmp_path):
    cut = len(tiny_file) * 9 // 10
    hub = StandInHub(tiny_file, cut_at=cut)
    try:
        path = dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    finally:
        hub.close()
    assert path.read_bytes() == tiny_file and hub.ranges[0] is None
    start = resumed_from(hub)
    assert 0 < start <= cut and hub.sent == cut + len(tiny_file) - start  # only what was not kept is fetched again


def test_a_failed_download_says_how_far_it_got_and_the_next_run_resumes(expected, tiny_file, tmp_path, capsys):
    cut = len(tiny_file) * 9 // 10
    hub = StandInHub(tiny_file, cut_at=cut, then="fail")
    try:
        code = main(["download", "--to", str(tmp_path), "--endpoint", hub.endpoint, "--no-progress"])
    finally:
        hub.close()
    err = capsys.readouterr().err
    kept = re.search(r"stopped at ([\d,]+) of ([\d,]+) bytes", err)
    assert code == 3 and kept and "again to resume" in err, err
    assert 0 < int(kept.group(1).replace(",", "")) <= cut and kept.group(2) == f"{len(tiny_file):,}"
    assert not (tmp_path / NAME).exists()
    hub = StandInHub(tiny_file)
    try:
        assert main(["download", "--to", str(tmp_path), "--endpoint", hub.endpoint, "--no-progress"]) == 0
    finally:
        hub.close()
    assert hub.ranges == [f"bytes={kept.group(1).replace(',', '')}-"] and (tmp_path / NAME).read_bytes() == tiny_file


def test_a_mirror_serving_another_file_is_refused_and_nothing_is_left(expected, tiny_file, tmp_path):
    other = bytearray(tiny_file)
    other[len(other) // 2] ^= 0xFF
    hub = StandInHub(bytes(other))
    try:
        with pytest.raises(CheckpointError, match="official size but not its content"):
            dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    finally:
        hub.close()
    assert not (tmp_path / NAME).exists()


def test_an_unreachable_hub_is_named_without_a_traceback(tmp_path):
    import subprocess
    import sys

    from helpers import ROOT

    run = subprocess.run([sys.executable, "-m", "syncdreamer_core", "download", "--to", str(tmp_path), "--endpoint",
                          "http://127.0.0.1:9", "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "HF_HOME": str(tmp_path / "hf")})
    assert run.returncode == 3, run.stderr
    assert re.search("could not download http://127.0.0.1:9/camenduru/SyncDreamer/resolve/main/syncdreamer-pretrain.ckpt: "
                     r"\w+: \[Errno 111\] Connection refused\. Check the connection", run.stderr), run.stderr[-800:]
    assert "Traceback" not in run.stderr


def test_the_default_folder_is_comfyuis_models_folder_inside_comfyui(monkeypatch, tmp_path):
    pack = tmp_path / "ComfyUI" / "custom_nodes" / "ComfyUI-SyncDreamer"
    fake_module = pack / "syncdreamer_core" / "weights" / "download.py"
    monkeypatch.setattr(dl, "__file__", str(fake_module))
    assert dl.default_folder() == tmp_path / "ComfyUI" / "models" / "syncdreamer"


# ---------------------------------------------------------------- the loader on files under the official name

def test_a_truncated_official_file_is_called_that_with_the_way_to_resume(tmp_path, tiny_file):
    path = tmp_path / OFFICIAL_FILENAME
    path.write_bytes(tiny_file)  # a zip that stops: what a cut download leaves
    with pytest.raises(CheckpointError, match=f"is truncated: {len(tiny_file):,} of the official {OFFICIAL_SIZE:,} "
                                              "bytes.*syncdreamer_core download. resumes it"):
        load_checkpoint(path)


def test_another_model_under_the_official_name_is_named(tmp_path):
    path = tmp_path / "syncdreamer-pretrain.safetensors"
    save_file(random_checkpoint(fast_tiny_config(), seed=1), str(path))
    with pytest.raises(CheckpointError, match="a different model under the official name: model_channels"):
        load_checkpoint(path, with_vae=False, with_clip=False)


# ---------------------------------------------------------------- the loader's Download checkpoint button

def test_the_loaders_download_button_fetches_into_the_model_folder_and_reports_progress(
        host, expected, tiny_file, monkeypatch):
    import importlib
    import time

    button = importlib.import_module("ComfyUI_SyncDreamer.nodes.checkpoint_download")
    folder_paths = host["folder_paths"]
    folder = Path(folder_paths.get_folder_paths("syncdreamer")[0])
    hub = StandInHub(tiny_file)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    download = button.CheckpointDownload()
    seen = []
    try:
        assert download.status()["present"] is False and download.status()["state"] == "idle"
        first = download.start()
        assert first["state"] == "downloading" and first["total"] == len(tiny_file)
        assert download.start()["state"] in ("downloading", "done")  # a second press joins the first
        deadline = time.monotonic() + 60
        while download.status()["state"] == "downloading" and time.monotonic() < deadline:
            seen.append(download.status()["done"])
            time.sleep(0.05)
    finally:
        hub.close()
        (folder / NAME).unlink(missing_ok=True)
    status = download.status()
    assert status["state"] == "done" and status["done"] == len(tiny_file), status
    assert "checked" in status["message"] and hub.ranges == [None]  # one download, whatever was pressed
    assert seen == sorted(seen)


def test_a_failed_button_download_says_why_on_the_node(host, expected, tiny_file, monkeypatch):
    import importlib

    button = importlib.import_module("ComfyUI_SyncDreamer.nodes.checkpoint_download")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    download = button.CheckpointDownload()
    download.start()
    download.thread.join(60)
    status = download.status()
    assert status["state"] == "failed" and "could not download http://127.0.0.1:9/" in status["message"], status
