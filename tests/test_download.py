"""The checkpoint download (``python -m syncdreamer_core download`` and the loader's button, one
implementation) against a local stand-in for the Hugging Face Hub (tests have no network),
honest and hostile: the file arrives with progress and is checked before anything loads it; a
cut connection resumes; a server that sends more than the file, announces another length or
redirects to another file is stopped before its bytes pass the expected size; a dripping server
is cancelled within a second with its bytes kept; a full disk is named before the start and in
the middle; two downloads into one folder do not ruin each other; each failure says by kind what
happened to the bytes. And the loader names a file under the official name that is truncated
(which the download then really continues), another file or a different model."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from helpers import ROOT, fast_tiny_config
from safetensors.torch import save_file

from syncdreamer_core.cli import main
from syncdreamer_core.weights import download as dl
from syncdreamer_core.weights import transfer
from syncdreamer_core.weights.checkpoint import OFFICIAL_FILENAME, OFFICIAL_SIZE, CheckpointError, load_checkpoint
from syncdreamer_core.weights.official_layout import random_checkpoint

REPO = "mirror/SyncDreamer"
NAME = "tiny-pretrain.ckpt"
PATH = f"/{REPO}/resolve/main/{NAME}"


class StandInHub:
    """Serves one file as the Hub's resolve endpoint does (GET with Range, 206 answers).

    ``mode``: 'honest'; 'cut' (the first GET sends ``cut_at`` bytes and drops the connection;
    ``then`` 'resume' serves later requests, 'fail' answers them 503); 'endless' (no length,
    the file then more bytes until the client goes); 'lying' (a Content-Range of the right
    size, no Content-Length, and a body that does not end); 'other_size' (announces another
    length); 'redirect_other' (302 to a file of another size); 'drip' (``drip`` bytes every
    0.05 s); 'stall' (``cut_at`` bytes, then silence with the connection open, and silence
    after the headers of every later request)."""

    def __init__(self, data: bytes, mode: str = "honest", cut_at: int | None = None, then: str = "resume",
                 drip: int = 64):
        self.data, self.mode, self.cut_at, self.then, self.drip = data, mode, cut_at, then, drip
        self.ranges: list[str | None] = []
        self.sent = 0
        self.stop, self.hurry = threading.Event(), threading.Event()  # hurry: a drip sends the rest at once
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _headers(self, status: int, length: int | None, extra: dict | None = None):
                self.send_response(status)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()

            def _send(self, block: bytes) -> bool:
                try:
                    self.wfile.write(block)
                    self.wfile.flush()
                except OSError:
                    return False
                hub.sent += len(block)
                return True

            def do_GET(self):
                if self.path == "/other-file":
                    self._headers(200, len(hub.data) * 2)
                    self._send(hub.data * 2)
                    return
                if self.path.split("?")[0] != PATH:
                    self.send_error(404)
                    return
                asked = self.headers.get("Range")
                first = not hub.ranges
                hub.ranges.append(asked)
                start = int(re.match(r"bytes=(\d+)-", asked).group(1)) if asked else 0
                body = hub.data[start:]
                total = len(hub.data)
                ranged = {"Content-Range": f"bytes {start}-{total - 1}/{total}"}
                if hub.mode == "cut" and not first and hub.then == "fail":
                    self.send_error(503)
                    return
                if hub.mode == "redirect_other":
                    self._headers(302, 0, {"Location": "/other-file"})
                    return
                if hub.mode == "other_size":
                    self._headers(206, len(body) + 1000, {"Content-Range": f"bytes {start}-{total + 999}/{total + 1000}"})
                    self._send(body + bytes(1000))
                    return
                if hub.mode in ("endless", "lying"):
                    self.close_connection = True
                    if hub.mode == "endless":
                        self._headers(200, None, {"Connection": "close"})
                    else:
                        self._headers(206, None, {**ranged, "Connection": "close"})
                    if self._send(body):
                        while not hub.stop.is_set() and self._send(bytes(65536)):
                            pass
                    return
                self._headers(206, len(body), ranged)
                if hub.mode == "drip":
                    for offset in range(0, len(body), hub.drip):
                        if hub.stop.is_set() or not self._send(body[offset:offset + hub.drip]):
                            return
                        if not hub.hurry.is_set():
                            time.sleep(0.05)
                    return
                if hub.mode == "stall":
                    self._send(body[: hub.cut_at] if first else b"")
                    hub.stop.wait(30)
                    return
                if hub.mode == "cut" and first:
                    self._send(body[: hub.cut_at])
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("hub") / NAME
    torch.save({"state_dict": random_checkpoint(fast_tiny_config(), seed=1)}, path)
    return path.read_bytes()


@pytest.fixture
def expected(tiny_file, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    official = dl.OfficialFile(REPO, NAME, len(tiny_file), hashlib.sha256(tiny_file).hexdigest())
    monkeypatch.setattr(dl, "OFFICIAL", official)
    return official


def largest_seen(folder: Path, stop: threading.Event, seen: list[int]) -> threading.Thread:
    """Watches the size of the partial file while a download runs."""
    def watch():
        while not stop.is_set():
            for path in folder.glob(f"{NAME}*"):
                try:
                    seen.append(path.stat().st_size)
                except OSError:
                    pass
            time.sleep(0.002)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def wait_for(reached, what: str, seconds: float = 30) -> None:
    """Polls ``reached()`` until it holds; a download that failed instead fails the test, not hangs it."""
    deadline = time.monotonic() + seconds
    while not reached():
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        time.sleep(0.01)


# ---------------------------------------------------------------- an honest hub

def test_the_download_shows_progress_checks_the_file_and_converts_it(expected, tiny_file, tmp_path, capsys):
    with StandInHub(tiny_file) as hub:
        code = main(["download", "--to", str(tmp_path / "models"), "--endpoint", hub.endpoint, "--safetensors"])
    out, err = capsys.readouterr()
    assert code == 0, err
    got = tmp_path / "models" / NAME
    assert got.read_bytes() == tiny_file and "is the official checkpoint" in out
    assert re.search(r"100%.*\|", err), err[-500:]  # the progress bar reached the end
    # no partial file or holder's note left (the empty lock file stays: removing it would race a second download)
    assert sorted(p.name for p in got.parent.iterdir()) == [NAME, f"{NAME}.lock", "tiny-pretrain.safetensors"]
    from safetensors import safe_open

    with safe_open(str(got.parent / "tiny-pretrain.safetensors"), "pt") as stored:
        assert stored.get_slice("cc_projection.weight").get_dtype() == "F16"
    load_checkpoint(got.parent / "tiny-pretrain.safetensors", with_vae=False, with_clip=False)
    with StandInHub(tiny_file) as hub:  # a second run finds the file whole and fetches nothing
        assert main(["download", "--to", str(tmp_path / "models"), "--endpoint", hub.endpoint]) == 0
    assert hub.ranges == []


def resumed_from(hub: StandInHub) -> int:
    (asked,) = hub.ranges[1:]
    return int(re.match(r"bytes=(\d+)-$", asked).group(1))


def test_a_cut_connection_resumes_in_the_same_run(expected, tiny_file, tmp_path):
    cut = len(tiny_file) * 9 // 10
    with StandInHub(tiny_file, "cut", cut_at=cut) as hub:
        path = dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    assert path.read_bytes() == tiny_file and hub.ranges[0] == "bytes=0-"
    start = resumed_from(hub)
    assert start == cut and hub.sent == len(tiny_file)  # only what was not kept is fetched again


def test_a_failed_download_says_how_far_it_got_and_the_next_run_resumes(expected, tiny_file, tmp_path, capsys):
    cut = len(tiny_file) * 9 // 10
    with StandInHub(tiny_file, "cut", cut_at=cut, then="fail") as hub:
        code = main(["download", "--to", str(tmp_path), "--endpoint", hub.endpoint, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert re.search(rf"stopped at {cut:,} of {len(tiny_file):,} bytes: the server answered 503 .*The {cut:,} bytes "
                     rf"downloaded so far are kept in {re.escape(str(tmp_path))}.*the next download continues from "
                     "there", err), err
    assert not (tmp_path / NAME).exists() and (tmp_path / f"{NAME}.part").stat().st_size == cut
    with StandInHub(tiny_file) as hub:
        assert main(["download", "--to", str(tmp_path), "--endpoint", hub.endpoint, "--no-progress"]) == 0
    assert hub.ranges == [f"bytes={cut}-"] and (tmp_path / NAME).read_bytes() == tiny_file


def test_a_short_file_under_the_official_name_is_continued_as_the_loader_says(expected, tiny_file, tmp_path):
    kept = len(tiny_file) // 3
    (tmp_path / NAME).write_bytes(tiny_file[:kept])  # a copy or browser download that stopped
    with pytest.raises(CheckpointError) as told:
        from syncdreamer_core.weights.checkpoint import check_official_size

        check_official_size(tmp_path / NAME, len(tiny_file), NAME)
    assert f"--to {tmp_path}`, continues it from byte {kept:,}" in str(told.value)
    with StandInHub(tiny_file) as hub:
        assert main(["download", "--to", str(tmp_path), "--endpoint", hub.endpoint, "--no-progress"]) == 0
    assert hub.ranges == [f"bytes={kept}-"] and (tmp_path / NAME).read_bytes() == tiny_file


def test_a_truncated_official_file_is_called_that_with_the_way_to_resume(tmp_path, tiny_file):
    path = tmp_path / OFFICIAL_FILENAME
    path.write_bytes(tiny_file)  # a zip that stops: what a cut download leaves
    with pytest.raises(CheckpointError, match=f"is truncated: {len(tiny_file):,} of the official {OFFICIAL_SIZE:,} "
                                              "bytes.*Download checkpoint button.*syncdreamer_core download --to "
                                              f".*continues it from byte {len(tiny_file):,}"):
        load_checkpoint(path)


def test_another_model_under_the_official_name_is_named(tmp_path):
    path = tmp_path / "syncdreamer-pretrain.safetensors"
    save_file(random_checkpoint(fast_tiny_config(), seed=1), str(path))
    with pytest.raises(CheckpointError, match="a different model under the official name: model_channels"):
        load_checkpoint(path, with_vae=False, with_clip=False)


# ---------------------------------------------------------------- hostile hubs

def test_a_mirror_serving_another_file_of_the_same_size_is_deleted(expected, tiny_file, tmp_path):
    other = bytearray(tiny_file)
    other[len(other) // 2] ^= 0xFF
    with StandInHub(bytes(other)) as hub, pytest.raises(dl.DownloadError) as told:
        dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    assert told.value.kind == "wrong_file" and "not the official content" in str(told.value)
    assert "deleted" in str(told.value) and "again" not in str(told.value).split("deleted")[0]
    assert [p.name for p in tmp_path.iterdir()] == [f"{NAME}.lock"]


@pytest.mark.parametrize("mode", ["endless", "lying"])
def test_a_body_that_does_not_end_is_stopped_at_the_files_size_and_discarded(mode, expected, tiny_file, tmp_path):
    stop, seen = threading.Event(), []
    watcher = largest_seen(tmp_path, stop, seen)
    with StandInHub(tiny_file, mode) as hub, pytest.raises(dl.DownloadError) as told:
        dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    stop.set()
    watcher.join()
    message = str(told.value)
    assert told.value.kind == "wrong_file", message
    assert f"{hub.endpoint}{PATH} is not the official checkpoint: it sent more than the {len(tiny_file):,} bytes" in message
    assert "stopped there and deleted" in message and "resume" not in message and "again to" not in message
    assert max(seen, default=0) <= len(tiny_file)  # never more on disk than the file has
    assert [p.name for p in tmp_path.iterdir()] == [f"{NAME}.lock"]


def test_a_mirror_announcing_another_length_is_refused_before_a_byte_and_an_earlier_part_is_kept(
        expected, tiny_file, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(tiny_file[:1000])  # from an earlier, honest download
    with StandInHub(tiny_file, "other_size") as hub, pytest.raises(dl.DownloadError) as told:
        dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    message = str(told.value)
    assert told.value.kind == "wrong_file"
    assert f"it serves a file of {len(tiny_file) + 1000:,} bytes, the official {NAME} has {len(tiny_file):,}" in message
    assert "Nothing was saved from it" in message and "The 1,000 bytes downloaded so far are kept" in message
    assert (tmp_path / f"{NAME}.part").read_bytes() == tiny_file[:1000]


def test_a_redirect_to_a_file_of_another_size_names_where_it_went(expected, tiny_file, tmp_path):
    with StandInHub(tiny_file, "redirect_other") as hub, pytest.raises(dl.DownloadError) as told:
        dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    host = hub.endpoint.split("//")[1]
    assert f"(redirected to {host}) is not the official checkpoint: it serves a file of {2 * len(tiny_file):,}" in str(
        told.value)
    assert [p.name for p in tmp_path.iterdir()] == [f"{NAME}.lock"]


def test_a_dripping_server_is_cancelled_within_a_second_and_the_next_download_continues(expected, tiny_file, tmp_path):
    cancel, reached = dl.Cancel(), []
    result: dict = {}

    def run():
        try:
            dl.download_checkpoint(tmp_path, hub.endpoint, progress=lambda done, total: reached.append(done),
                                   cancel=cancel)
        except dl.DownloadError as error:
            result["error"], result["at"] = error, time.monotonic()

    with StandInHub(tiny_file, "drip", drip=256) as hub:
        worker = threading.Thread(target=run)
        worker.start()
        wait_for(lambda: max(reached, default=0) >= 2048, "2,048 bytes downloaded")
        asked = time.monotonic()
        cancel.set()
        worker.join(10)
    error = result["error"]
    assert error.kind == "cancelled" and result["at"] - asked < 1.0
    kept = (tmp_path / f"{NAME}.part").stat().st_size
    assert kept >= 2048 and f"download cancelled at {kept:,} of {len(tiny_file):,} bytes" in str(error)
    assert f"The {kept:,} bytes downloaded so far are kept" in str(error)
    with StandInHub(tiny_file) as hub:
        assert dl.download_checkpoint(tmp_path, hub.endpoint, progress=False).read_bytes() == tiny_file
    assert hub.ranges == [f"bytes={kept}-"]


def test_a_server_that_goes_silent_is_given_up_with_the_bytes_kept(expected, tiny_file, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "ATTEMPTS_WITHOUT_PROGRESS", 2)
    with StandInHub(tiny_file, "stall", cut_at=4096) as hub, pytest.raises(dl.DownloadError) as told:
        dl.download_checkpoint(tmp_path, hub.endpoint, progress=False, stall=0.3)
    assert told.value.kind == "interrupted"
    assert re.search(r"stopped at 4,096 of [\d,]+ bytes: no data for 0.3 s\. The 4,096 bytes .* are kept",
                     str(told.value)), told.value


def test_an_unreachable_hub_is_named_without_resume_talk_or_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "syncdreamer_core", "download", "--to", str(tmp_path), "--endpoint",
                          "http://127.0.0.1:9", "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr
    assert re.search("could not download http://127.0.0.1:9/camenduru/SyncDreamer/resolve/main/syncdreamer-pretrain.ckpt: "
                     r"ConnectionRefusedError: \[Errno 111\] Connection refused\. Nothing was downloaded\. Check the "
                     "internet connection", run.stderr), run.stderr[-800:]
    assert "Traceback" not in run.stderr and "resume" not in run.stderr and "force_download" not in run.stderr
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())


def test_an_endpoint_that_is_not_a_web_address_is_refused(tmp_path, capsys):
    assert main(["download", "--to", str(tmp_path), "--endpoint", "file:///etc", "--no-progress"]) == 3
    assert "--endpoint must be a web address such as https://huggingface.co, got 'file:///etc'" in capsys.readouterr().err


# ---------------------------------------------------------------- the disk

def test_too_little_free_space_is_named_before_anything_is_fetched(expected, tiny_file, tmp_path, monkeypatch):
    (tmp_path / f"{NAME}.part").write_bytes(tiny_file[:1000])
    monkeypatch.setattr(dl, "free_bytes", lambda folder: 1234)
    with StandInHub(tiny_file) as hub, pytest.raises(dl.DownloadError) as told:
        dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    need = (len(tiny_file) - 1000) / 1e6
    assert told.value.kind == "disk_full" and hub.ranges == []
    assert f"needs {need:.1f} MB more in {tmp_path}, 0.0 MB free" in str(told.value)
    assert "The 1,000 bytes downloaded so far are kept" in str(told.value)


def test_a_disk_that_fills_up_midway_keeps_what_was_written_whole(expected, tiny_file, tmp_path, monkeypatch):
    import errno

    limit = len(tiny_file) // 2
    write = transfer._write

    def full_disk(handle, block):
        if handle.tell() + len(block) > limit:
            handle.write(block[: limit - handle.tell()])  # a short write, as a full disk does
            raise OSError(errno.ENOSPC, "No space left on device")
        write(handle, block)

    monkeypatch.setattr(transfer, "CHUNK", 4096)
    monkeypatch.setattr(transfer, "_write", full_disk)
    with StandInHub(tiny_file) as hub, pytest.raises(dl.DownloadError) as told:
        dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
    part = (tmp_path / f"{NAME}.part").read_bytes()
    assert told.value.kind == "disk_full" and "the disk is full" in str(told.value)
    assert limit - 4096 < len(part) <= limit and tiny_file.startswith(part)  # the short write was cut off
    assert f"The {len(part):,} bytes downloaded so far are kept" in str(told.value)


SMALL_FS = """
import sys, hashlib, subprocess
sys.path.insert(0, {root!r})
subprocess.run(["mount", "-t", "tmpfs", "-o", "size={size}", "tmpfs", {folder!r}], check=True)
from syncdreamer_core.weights import download as dl
dl.free_bytes = lambda folder: 1 << 40   # the check before the start believes there is room
data = open({source!r}, "rb").read()
official = dl.OfficialFile("mirror/SyncDreamer", "tiny-pretrain.ckpt", len(data), hashlib.sha256(data).hexdigest())
try:
    dl.download_checkpoint({folder!r}, {endpoint!r}, progress=False, expected=official)
except dl.DownloadError as error:
    import os
    print(error.kind, os.path.getsize({folder!r} + "/tiny-pretrain.ckpt.part"))
    print(error)
"""


def test_a_real_small_file_system_that_fills_up(expected, tiny_file, tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                                                         capture_output=True).returncode:
        pytest.skip("needs user namespaces (unshare --user --mount) to mount a small tmpfs; "
                    "test_a_disk_that_fills_up_midway_keeps_what_was_written_whole covers the logic")
    source, folder = tmp_path / "source.ckpt", tmp_path / "small"
    source.write_bytes(tiny_file)
    folder.mkdir()
    size = max(64 * 1024, len(tiny_file) // 2 // 4096 * 4096)
    with StandInHub(tiny_file) as hub:
        run = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", SMALL_FS.format(
            root=str(ROOT), size=size, folder=str(folder), source=str(source), endpoint=hub.endpoint)],
            capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    kind, kept = run.stdout.split("\n")[0].split()
    assert kind == "disk_full" and 0 < int(kept) <= size, run.stdout
    assert "the disk is full" in run.stdout and f"The {int(kept):,} bytes downloaded so far are kept" in run.stdout


# ---------------------------------------------------------------- two downloads at once

def test_a_second_download_into_the_same_folder_says_who_holds_it_and_the_first_is_unharmed(
        expected, tiny_file, tmp_path):
    cancel, reached, result = dl.Cancel(), [], {}

    def first():
        result["path"] = dl.download_checkpoint(tmp_path, hub.endpoint, progress=lambda d, t: reached.append(d),
                                                cancel=cancel, who="the first download")

    with StandInHub(tiny_file, "drip", drip=8192) as hub:
        worker = threading.Thread(target=first)
        worker.start()
        wait_for(lambda: max(reached, default=0) >= 8192, "8,192 bytes downloaded")
        # another process: the command in a terminal
        script = ("import sys, hashlib; sys.path.insert(0, {root!r}); from syncdreamer_core.weights import download as dl;"
                  "data = open({src!r}, 'rb').read(); dl.OFFICIAL = dl.OfficialFile({repo!r}, {name!r}, len(data), "
                  "hashlib.sha256(data).hexdigest()); from syncdreamer_core.cli import main;"
                  "sys.exit(main(['download', '--to', {folder!r}, '--endpoint', {endpoint!r}, '--no-progress']))")
        (tmp_path.parent / "src.ckpt").write_bytes(tiny_file)
        other = subprocess.run([sys.executable, "-c", script.format(
            root=str(ROOT), src=str(tmp_path.parent / "src.ckpt"), repo=REPO, name=NAME, folder=str(tmp_path),
            endpoint=hub.endpoint)], capture_output=True, text=True, timeout=120)
        # and a second download in this process
        with pytest.raises(dl.DownloadError) as same_process:
            dl.download_checkpoint(tmp_path, hub.endpoint, progress=False)
        hub.hurry.set()
        worker.join(120)
    assert other.returncode == 3, other.stderr
    assert re.search(rf"another download of {NAME} into {re.escape(str(tmp_path))} is running: the first download "
                     rf"\(process {os.getpid()} on .*, since .*\)", other.stderr), other.stderr
    assert same_process.value.kind == "busy"
    assert result["path"].read_bytes() == tiny_file  # the first one went on, unharmed
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME, f"{NAME}.lock"]


# ---------------------------------------------------------------- the default folder

def test_the_default_folder_is_comfyuis_models_folder_inside_comfyui(monkeypatch, tmp_path):
    pack = tmp_path / "ComfyUI" / "custom_nodes" / "ComfyUI-SyncDreamer"
    fake_module = pack / "syncdreamer_core" / "weights" / "download.py"
    monkeypatch.setattr(dl, "__file__", str(fake_module))
    assert dl.default_folder() == tmp_path / "ComfyUI" / "models" / "syncdreamer"


# ---------------------------------------------------------------- the loader's Download checkpoint button

@pytest.fixture
def button(host, expected, tmp_path, monkeypatch):
    """The button's server side over an empty models/syncdreamer."""
    import importlib

    module = importlib.import_module("ComfyUI_SyncDreamer.nodes.checkpoint_download")
    folder = tmp_path / "models-syncdreamer"
    folder.mkdir()
    monkeypatch.setitem(host["folder_paths"].folder_names_and_paths, "syncdreamer", ([str(folder)], {".ckpt", ".safetensors"}))
    return module.CheckpointDownload(), folder


def wait_while_running(download, seconds: float = 60) -> list[int]:
    seen, deadline = [], time.monotonic() + seconds
    while download.status()["state"] in ("downloading", "cancelling") and time.monotonic() < deadline:
        seen.append(download.status()["done"])
        time.sleep(0.02)
    return seen


def test_the_button_fetches_into_the_model_folder_and_reports_progress(button, tiny_file, monkeypatch):
    download, folder = button
    with StandInHub(tiny_file) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert download.status()["present"] is False and download.status()["state"] == "idle"
        first = download.start()
        assert first["state"] == "downloading" and first["total"] == len(tiny_file)
        assert download.start()["state"] in ("downloading", "done")  # a second press joins the first
        seen = wait_while_running(download)
    status = download.status()
    assert status["state"] == "done" and status["done"] == len(tiny_file) and status["present"], status
    assert "checked" in status["message"] and hub.ranges == ["bytes=0-"]  # one download, whatever was pressed
    assert seen == sorted(seen) and (folder / NAME).read_bytes() == tiny_file


def test_a_failed_button_download_says_why_and_goes_plain_once_a_checkpoint_is_there(button, monkeypatch):
    download, folder = button
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    download.start()
    download.thread.join(60)
    status = download.status()
    assert status["state"] == "failed" and status["kind"] == "unreachable", status
    assert "could not download http://127.0.0.1:9/" in status["message"] and "Nothing was downloaded" in status["message"]
    assert download.status()["state"] == "failed"  # asked again: still told
    save_file({"x": torch.zeros(1)}, str(folder / "my-syncdreamer.safetensors"))  # the user puts one there
    status = download.status()
    assert status["usable"] and not status["present"] and status["state"] == "idle" and status["message"] == ""


def test_a_failure_is_no_longer_shown_once_the_loader_has_loaded_a_checkpoint(button, host, monkeypatch):
    from node_host import run

    download, folder = button
    save_file({"x": torch.zeros(1)}, str(folder / "another.safetensors"))  # there before the failure
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    download.start()
    download.thread.join(60)
    assert download.status()["state"] == "failed" and download.status()["usable"]
    monkeypatch.setattr(sys.modules["ComfyUI_SyncDreamer.nodes.checkpoint_download"], "DOWNLOAD", download)
    models = str(host["tmp"] / "models" / "syncdreamer")
    monkeypatch.setitem(host["folder_paths"].folder_names_and_paths, "syncdreamer", ([models], set()))
    run(host, "SyncDreamerCheckpointLoader", ckpt_name="tiny.safetensors", dtype="fp32")
    assert download.status()["state"] == "idle"


def test_the_button_cancels_within_a_second_and_the_next_press_continues(button, tiny_file, monkeypatch):
    download, folder = button
    with StandInHub(tiny_file, "drip", drip=512) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        download.start()
        wait_for(lambda: download.status()["done"] >= 4096, "4,096 bytes downloaded")
        asked = time.monotonic()
        assert download.stop()["state"] in ("cancelling", "cancelled")  # the thread may finish before the reply
        download.thread.join(10)
        assert time.monotonic() - asked < 1.0
    status = download.status()
    kept = (folder / f"{NAME}.part").stat().st_size
    assert status["state"] == "cancelled" and status["kind"] == "cancelled" and status["kept"] == kept >= 4096
    assert f"The {kept:,} bytes downloaded so far are kept" in status["message"]
    with StandInHub(tiny_file) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        download.start()
        wait_while_running(download)
    assert download.status()["state"] == "done" and hub.ranges == [f"bytes={kept}-"]


def test_the_button_names_a_terminal_download_that_holds_the_folder(button, tiny_file, monkeypatch):
    download, folder = button
    with StandInHub(tiny_file, "drip", drip=8192) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        cancel, reached = dl.Cancel(), []
        terminal = threading.Thread(target=lambda: pytest.raises(dl.DownloadError, dl.download_checkpoint, folder,
                                                                  progress=lambda d, t: reached.append(d), cancel=cancel))
        terminal.start()
        wait_for(lambda: reached, "the terminal download under way")
        download.start()
        download.thread.join(30)
        cancel.set()
        terminal.join(30)
    status = download.status()
    assert status["state"] == "failed" and status["kind"] == "busy"
    assert "is running: `python -m syncdreamer_core download` (process" in status["message"], status
