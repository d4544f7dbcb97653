"""The batch over ComfyUI servers that cannot be trusted: names from a server never leave the
item's folder, downloads are capped in bytes and time, malformed answers fail the item with
a message, a batch whose servers are all down reports its items as not run, and workflow
files are checked before anything starts (stand-in servers from hostile_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import ROOT
from hostile_server import HostileServer

from syncdreamer_core.batch.servers import ItemFailed, ServerWorker
from syncdreamer_core.comfy_http import WorkflowFileError, load_api_workflow, safe_base_name
from syncdreamer_core.files import EXAMPLES

WORKFLOW = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "batch"}}}


@pytest.fixture
def workflow(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(WORKFLOW))
    return path


def every_file(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(("name", "expected"), [
    ("views.png", "views.png"), ("../../../../ESCAPED.txt", "ESCAPED.txt"), ("/etc/passwd", "passwd"),
    ("C:\\Windows\\evil.dll", "evil.dll"), ("C:evil.txt", "evil.txt"), ("..\\..\\win.txt", "win.txt"),
    ("a\x1b[31m\x00b.png", "a[31mb.png"), ("CON.png", "_CON.png"), ("x:y.png", "y.png"), ("file.png:stream", "file.png_stream"),
    ("..", None), ("", None), ("/", None), ("./.", None), (" . ", None), (12, None), ("dir/..", None),
])
def test_a_server_name_becomes_a_plain_base_name_or_nothing(name, expected):
    assert safe_base_name(name) == expected


def test_long_names_are_capped_keeping_their_suffix():
    name = safe_base_name("é" * 300 + ".png")
    assert name.endswith(".png") and len(name.encode()) <= 120 and name.startswith("é")


def test_names_from_a_server_never_leave_the_item_folder(tmp_path):
    files = [{"filename": name, "subfolder": sub, "type": "output"} for name, sub in (
        ("../../../../ESCAPED.txt", ""), ("/tmp/absolute.png", ""), ("C:\\Windows\\evil.dll", ""),
        ("grid.png", "../../../outside"), ("grid.png", "other"), ("x" * 400 + ".png", ""), ("ok\x07.png", ""))]
    folder = tmp_path / "out" / "item"
    with HostileServer(files=files) as server:
        result = ServerWorker(server.address).run(str(EXAMPLES / "teapot.png"), WORKFLOW, "1", str(folder))
    assert every_file(tmp_path) == sorted(f"out/item/{name}" for name in result["outputs"])
    assert result["outputs"][:5] == ["9-ESCAPED.txt", "9-absolute.png", "9-evil.dll", "9-grid.png", "9-grid-2.png"]
    assert all(len(name.encode()) <= 130 and "/" not in name and "\\" not in name for name in result["outputs"])
    assert result["renamed"]["9-ESCAPED.txt"] == "../../../../ESCAPED.txt"
    assert (folder / "9-grid-2.png").read_text() == "content of grid.png"
    assert not list(tmp_path.rglob("ESCAPED.txt"))[1:]  # the one copy is inside the item folder


def test_a_name_with_nothing_usable_fails_the_item_and_writes_nothing(tmp_path):
    with HostileServer(files=[{"filename": "..", "subfolder": "", "type": "output"}]) as server:
        with pytest.raises(ItemFailed, match=r"names an output file '\.\.'.*refused"):
            ServerWorker(server.address).run(str(EXAMPLES / "teapot.png"), WORKFLOW, "1", str(tmp_path / "item"))
    assert every_file(tmp_path) == []


@pytest.mark.parametrize(("view", "match"), [
    ("huge", r"more than 1 MiB for the output file 9-views.png \(the cap\)"),
    ("endless", r"more than 1 MiB for the output file 9-views.png \(the cap\)"),
    ("drip", r"still sending the output file 9-views.png after 1 s \(the cap\)"),
])
def test_downloads_are_capped_in_bytes_and_time(tmp_path, view, match):
    started = time.monotonic()
    with HostileServer(view=view) as server:
        worker = ServerWorker(server.address, max_file_mb=1, file_seconds=1)
        with pytest.raises(ItemFailed, match=match):
            worker.run(str(EXAMPLES / "teapot.png"), WORKFLOW, "1", str(tmp_path / "item"))
    assert time.monotonic() - started < 30
    assert every_file(tmp_path) == []  # no partial file is left


@pytest.mark.parametrize(("history", "match"), [
    (b"{not json", "answered /history/p1 with malformed JSON"),
    (b"[1, 2]", "answered /history with a JSON list"),
    (b'{"p1": "done"}', "answered /history with a malformed entry"),
    (b'{"p1": {"status": {"status_str": "success"}, "outputs": []}}', "no 'outputs' object"),
    (b'{"p1": {"status": {"status_str": "error", "messages": [["execution_error", {"exception_message": "OOM"}]]}}}',
     "OOM"),
    (b'{"p1": {"status": {"status_str": "error", "messages": "garbage"}}}', "the workflow ended with status"),
])
def test_malformed_history_fails_the_item_with_a_message(tmp_path, history, match):
    with HostileServer(history=history) as server:
        with pytest.raises(ItemFailed, match=match):
            ServerWorker(server.address).run(str(EXAMPLES / "teapot.png"), WORKFLOW, "1", str(tmp_path / "item"))


def batch_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syncdreamer_core", "batch", *args, "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_hostile_server_cannot_write_outside_output_and_the_run_reads_clean(tmp_path, workflow):
    files = [{"filename": "../../../../ESCAPED.txt", "subfolder": "../..", "type": "output"}]
    output = tmp_path / "deep" / "er" / "out"
    with HostileServer(files=files) as server:
        run = batch_command(str(EXAMPLES / "teapot.png"), "--comfyui", server.address, "--workflow", str(workflow),
                            "--image-node", "1", "--output", str(output))
    assert run.returncode == 0, run.stdout + run.stderr
    [record] = [json.loads(p.read_text()) for p in output.glob("*/record.json")]
    assert record["outputs"] == ["9-ESCAPED.txt"]
    escaped = [p for p in tmp_path.rglob("*ESCAPED*")]
    assert escaped == [output / record["key"] / "9-ESCAPED.txt"]
    console = run.stdout + run.stderr
    # what the user sees: the pack's lines, none of Ray's
    for noise in ("Traceback", "ERROR", "core_worker", "uthentication", "INFO", "WARNING"):
        assert noise not in console, console


def test_every_server_down_reports_every_item_as_not_run(tmp_path, workflow):
    with HostileServer() as dead:
        address = dead.address
    output = tmp_path / "out"
    started = time.monotonic()
    run = batch_command(str(EXAMPLES / "teapot.png"), str(EXAMPLES / "sketch_mug.png"), "--comfyui", address,
                        "--workflow", str(workflow), "--image-node", "1", "--output", str(output))
    assert run.returncode == 3, run.stdout + run.stderr
    assert time.monotonic() - started < 60
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2 item(s) not run: no ComfyUI server answers" in errors[0], run.stderr
    lines = [json.loads(line) for line in (output / "report.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["not-run", "not-run"]
    assert all(address in line["message"] and "last error" in line["message"] for line in lines)
    assert not list(output.glob("*/failed.json"))  # not the items' fault: a rerun does them


def test_the_only_server_dying_mid_item_leaves_the_item_not_run(tmp_path, workflow):
    output = tmp_path / "out"
    with HostileServer(die_on_prompt=True) as server:
        run = batch_command(str(EXAMPLES / "teapot.png"), "--comfyui", server.address, "--workflow", str(workflow),
                            "--image-node", "1", "--output", str(output))
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "[server down]" in run.stderr
    [line] = [json.loads(text) for text in (output / "report.jsonl").read_text().splitlines()]
    assert line["status"] == "not-run" and "stopped while running the item" in line["message"]


def test_workflow_files_are_checked_before_anything_runs(tmp_path):
    def refused(text: str, match: str, node: str = "1"):
        path = tmp_path / f"wf{len(list(tmp_path.iterdir()))}.json"
        path.write_text(text)
        with pytest.raises(WorkflowFileError, match=match):
            from syncdreamer_core.comfy_http import check_image_node

            check_image_node(load_api_workflow(path), node, str(path))
        return path

    path = refused('{"1": {"class_type": "LoadImage",, }}', r"wf0.json is not JSON: Expecting property name enclosed "
                   r"in double quotes at line 1 column 34")
    assert str(path) in str(pytest.raises(WorkflowFileError, load_api_workflow, path).value)
    ui = (ROOT / "example_workflows" / "SyncDreamer - Image to 3D.json").read_text()
    refused(ui, r"is a UI workflow .* Export \(API\)")
    refused("[1, 2, 3]", r"holds a JSON list, not an API-format workflow")
    refused('{"1": 5}', r"node\(s\) 1 have no class_type/inputs")
    refused(json.dumps(WORKFLOW), r"--image-node 2 is a SaveImage node in .*; it must name the LoadImage node .*"
            r"its LoadImage nodes: 1\)", node="2")
    refused(json.dumps(WORKFLOW), r"--image-node 7 is not a node of it", node="7")
    refused(json.dumps({"2": WORKFLOW["2"]}), r"it has no LoadImage node", node="2")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(WorkflowFileError, match="not a text file"):
        load_api_workflow(tmp_path / "binary.json")


def test_the_command_names_a_bad_workflow_before_starting_ray(tmp_path):
    from syncdreamer_core.cli import main

    ui = tmp_path / "ui.json"
    ui.write_text((ROOT / "example_workflows" / "SyncDreamer - Image to 3D.json").read_text())
    code = main(["batch", str(EXAMPLES / "teapot.png"), "--comfyui", "127.0.0.1:9", "--workflow", str(ui),
                 "--image-node", "1", "--output", str(tmp_path / "out")])
    assert code == 2
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_an_output_folder_takes_one_batch_at_a_time(tmp_path, workflow):
    output = tmp_path / "out"
    output.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[2]); "
                               "from syncdreamer_core.outputs import OutputLock; lock = OutputLock(sys.argv[1]); "
                               "lock.__enter__(); print('held', flush=True); time.sleep(60)", str(output), str(ROOT)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with HostileServer() as server:
            run = batch_command(str(EXAMPLES / "teapot.png"), "--comfyui", server.address, "--workflow",
                                str(workflow), "--image-node", "1", "--output", str(output))
        assert run.returncode == 2, run.stdout + run.stderr
        assert f"another batch (pid {holder.pid} on" in run.stderr and "is writing into" in run.stderr
        assert not any(p.is_dir() for p in output.iterdir())  # nothing computed
    finally:
        holder.kill()
        holder.wait()
    # the lock goes with the process that held it, however it ended
    with HostileServer() as server:
        run = batch_command(str(EXAMPLES / "teapot.png"), "--comfyui", server.address, "--workflow", str(workflow),
                            "--image-node", "1", "--output", str(output))
    assert run.returncode == 0, run.stdout + run.stderr
    assert os.path.exists(output / "report.jsonl")
