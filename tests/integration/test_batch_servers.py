"""Batch over a pool of real ComfyUI servers: any API workflow, keyed outputs, resume, and
a server stopped mid-run whose item is finished by the other."""

from __future__ import annotations

import json
import threading
import time

import pytest
from comfy_server import TINY, start_server, stop_server
from PIL import Image
from test_comfyui import sampler_graph

from syncdreamer_core.files import EXAMPLES

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray", reason="batch generation needs Ray: pip install -r requirements-batch.txt")


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    server = start_server(tmp_path_factory)
    yield server
    if server.process.poll() is None:
        stop_server(server)


def test_a_workflow_runs_over_two_servers_and_survives_one_stopping(comfy, second_server, tmp_path):
    from comfy_client import ComfyClient

    from syncdreamer_core.batch.items import expand_inputs
    from syncdreamer_core.batch.servers import run_on_servers

    folder = tmp_path / "inputs"
    folder.mkdir()
    teapot = Image.open(EXAMPLES / "teapot.png")
    for i in range(4):
        teapot.rotate(i * 11, expand=True).save(folder / f"object-{i}.png")
    graph = sampler_graph(seed=5, steps=3, prefix="batch")
    graph["2"]["inputs"]["ckpt_name"] = TINY
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(graph))
    output = tmp_path / "out"
    items = expand_inputs([str(folder)])
    result = {}

    def run():
        result["report"] = run_on_servers(items, [comfy.server, second_server.server], workflow, "1", output)

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    try:
        worker = threading.Thread(target=run)
        worker.start()
        client = ComfyClient(second_server.server)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not client.get_json("/queue")["queue_running"]:
            time.sleep(0.2)
        stop_server(second_server)  # mid-item
        worker.join(900)
    finally:
        ray.shutdown()
    report = result["report"]
    assert report.count("done") == 4 and len(report.lines) == 4, report.summary()
    records = [json.loads(p.read_text()) for p in output.glob("*/record.json")]
    assert len(records) == 4
    # the second server was stopped inside its first item: that item, like every other, was finished by the first
    assert {r["server"] for r in records} == {comfy.server}
    for record in records:
        assert len(record["outputs"]) == 16 and all(name.endswith(".png") for name in record["outputs"])
        assert all((output / record["key"] / name).stat().st_size > 0 for name in record["outputs"])

    again = run_on_servers(items, [comfy.server], workflow, "1", output)
    assert again.count("skipped") == 4
