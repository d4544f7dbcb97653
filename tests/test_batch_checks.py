"""What the batch command checks before it starts Ray, and how it joins a cluster: a bad
checkpoint is named in seconds with the message `generate` gives, an address where no Ray
cluster answers fails within seconds, and the documented cluster route (a head started
with `ray start --head` plus a worker node) runs a batch."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
import torch
from helpers import ROOT, fast_tiny_config
from safetensors.torch import save_file

from syncdreamer_core.cli import main
from syncdreamer_core.files import EXAMPLES

ray = pytest.importorskip("ray", reason="batch generation needs Ray: pip install -r requirements-batch.txt")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory, tiny_checkpoint):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "page.ckpt").write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>")
    torch.save({"state_dict": tiny_checkpoint, "callbacks": _Payload(folder / "marker")}, folder / "evil.ckpt")
    layout = dict(tiny_checkpoint)
    layout["first_stage_model.decoder.conv_out.weight"] = torch.zeros(3, 7, 3, 3)
    save_file(layout, str(folder / "other-vae.safetensors"))
    sd = {k: v for k, v in tiny_checkpoint.items() if not k.startswith("spatial_volume.")}
    save_file(sd, str(folder / "not-syncdreamer.safetensors"))
    return folder


@pytest.mark.parametrize(("name", "match"), [
    ("page.ckpt", "is a web page \\(HTML\\), not a checkpoint"),
    ("evil.ckpt", "cannot be loaded safely"),
    ("other-vae.safetensors", "not a Stable Diffusion 1.x VAE"),
    ("not-syncdreamer.safetensors", "is not a SyncDreamer checkpoint"),
])
def test_a_bad_checkpoint_is_named_before_ray_starts_as_generate_names_it(bad_checkpoints, tmp_path, capsys, name,
                                                                          match):
    import re

    checkpoint = bad_checkpoints / name
    started = time.monotonic()
    code = main(["batch", str(EXAMPLES / "teapot.png"), "--ckpt", str(checkpoint), "--output", str(tmp_path / "o")])
    took = time.monotonic() - started
    batch_error = capsys.readouterr().err
    assert code == 2 and re.search(match, batch_error), batch_error
    assert not ray.is_initialized() and not (bad_checkpoints / "marker").exists()
    assert main(["generate", "--ckpt", str(checkpoint), "--input", str(EXAMPLES / "teapot.png"), "--output",
                 str(tmp_path / "g"), "--elevation", "30"]) == 2
    assert capsys.readouterr().err.strip() == batch_error.strip()  # the same words
    print(f"{name}: refused in {took:.1f} s")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_with_no_ray_cluster_fails_within_seconds(tmp_path):
    class NotRay(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_error(404)

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("", 0), NotRay)  # where Ray looks for a head on this machine
    Thread(target=http.serve_forever, daemon=True).start()
    try:
        cases = {f"127.0.0.1:{_closed_port()}": "nothing answers on that port",
                 f"127.0.0.1:{http.server_address[1]}": "something answers on that port, but not a Ray head",
                 "ray://127.0.0.1:10001": "Ray Client \\(ray://\\) cannot run this batch",
                 "nonsense": "is not HOST:PORT"}
        for address, expected in cases.items():
            started = time.monotonic()
            run = subprocess.run([sys.executable, "-m", "syncdreamer_core", "batch", str(EXAMPLES / "teapot.png"),
                                  "--ckpt", str(tmp_path / "absent.ckpt"), "--output", str(tmp_path / "o"),
                                  "--address", address, "--comfyui", "127.0.0.1:9", "--workflow", str(_workflow(tmp_path)),
                                  "--image-node", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "RAY_ADDRESS": ""})
            took = time.monotonic() - started
            print(f"{address}: {took:.1f} s: {run.stderr.strip()[-200:]}")
            assert took < 30 and run.returncode == 2, (address, took, run.stderr)
            import re

            assert re.search(expected, run.stderr) and "Traceback" not in run.stderr, (address, run.stderr)
    finally:
        http.shutdown()


def _workflow(folder):
    path = folder / "api.json"
    path.write_text(json.dumps({"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}))
    return path


def _free_port() -> int:
    return _closed_port()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The README's cluster route on one machine: a head started with `ray start --head` that
    takes no work (--num-cpus 0), and a worker node that joins it. The head's machine has a
    Ray token (any earlier local Ray leaves one), so the cluster authenticates with it: the
    worker joins as the README says (the token, RAY_AUTH_MODE=token) and the batch command
    must find the token by itself. Its own HOME and temp dir keep it apart from every other
    Ray here."""
    home = tmp_path_factory.mktemp("home")
    # Ray's socket paths live under the temp dir and may not exceed 107 bytes: a short one
    temp = Path(tempfile.mkdtemp(prefix="sdr-", dir="/tmp"))
    env = {**os.environ, "HOME": str(home), "RAY_ADDRESS": ""}
    env.pop("RAY_AUTH_MODE", None)
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    port = _free_port()
    common = ["--object-store-memory", str(80 * 2**20), "--disable-usage-stats"]
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    assert (home / ".ray" / "auth_token").is_file()
    subprocess.run([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard",
                    "false", "--temp-dir", str(temp), *common], env=env, check=True, capture_output=True, timeout=120,
                   cwd=home)  # away from the project: the nodes get the package from the job
    try:
        joined = subprocess.run([ray_cli, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "2", *common],
                                env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=120,
                                cwd=home)
        assert joined.returncode == 0, joined.stderr[-2000:]
        yield {"address": f"127.0.0.1:{port}", "env": env}
    finally:
        stop_processes_of(temp)
        shutil.rmtree(temp, ignore_errors=True)


def stop_processes_of(folder) -> None:
    """Stop this cluster's processes only (each names its session folder under ``folder``):
    `ray stop` would stop every Ray on the machine, the other tests' too."""
    mine = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    mine.append(int(entry.name))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in mine):
            time.sleep(0.2)


def test_a_batch_runs_on_a_cluster_through_the_documented_route(cluster, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    from syncdreamer_core.weights.official_layout import paint_square_decoder, random_checkpoint

    save_file(paint_square_decoder(random_checkpoint(fast_tiny_config(), seed=3)), str(checkpoint))
    output = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "syncdreamer_core", "batch", str(EXAMPLES / "teapot.png"),
                          str(EXAMPLES / "sketch_mug.png"), "--ckpt", str(checkpoint), "--output", str(output),
                          "--elevation", "0", "--steps", "1", "--resolution", "48", "--texture", "0", "--faces", "2000",
                          "--no-progress", "--address", cluster["address"]],
                         cwd=ROOT, env=cluster["env"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in output.glob("*/record.json")]
    assert len(records) == 2 and all((output / r["key"] / "model.glb").stat().st_size > 0 for r in records)
    # the head takes no work: every item was sampled on the worker node
    nodes = {r["sampled_on"] for r in records}
    assert len(nodes) == 1 and None not in nodes
    listed = subprocess.run([sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
                             " print([n['NodeID'] for n in ray.nodes() if n['Resources'].get('CPU')])",
                             cluster["address"]], env={**cluster["env"], "RAY_AUTH_MODE": "token"}, capture_output=True,
                            text=True, timeout=120)
    assert nodes <= set(eval(listed.stdout.strip().splitlines()[-1])), listed.stdout + listed.stderr
    for noise in ("ERROR", "Traceback", "uthentication"):
        assert noise not in run.stdout + run.stderr, run.stdout + run.stderr
