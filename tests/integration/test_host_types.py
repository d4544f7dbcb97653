"""The pack's values in a real ComfyUI's own types: the MESH every core mesh node reads, the
File3D output Preview 3D takes, the workflow inside the saved GLB, templates offered only
where they run, and error names as the frontend shows them."""

from __future__ import annotations

import json

import pygltflib
import pytest
from test_comfyui import assert_success, errors_of, run, sampler_graph

pytestmark = pytest.mark.integration


def mesh_graph(save_inputs: dict | None = None) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "syncdreamer_chicken_views.png"}},
        "2": {"class_type": "SyncDreamerSplitViews", "inputs": {"image": ["1", 0], "layout": "auto"}},
        "3": {"class_type": "SyncDreamerReconstruct", "inputs": {
            "views": ["2", 0], "method": "fast", "resolution": 64, "quality_steps": 800, "quality_resolution": 96,
            "vote_tolerance": 2, "texture": "512", "max_faces": 5000, "cleanup": False}},
        "4": {"class_type": "SyncDreamerSaveMesh", "inputs": {"mesh": ["3", 0], "filename_prefix": "mesh/host_types",
                                                              "format": "glb", "up_axis": "y", **(save_inputs or {})}},
    }


def test_the_saved_glb_carries_the_prompt_and_the_workflow(comfy):
    graph = mesh_graph()
    from comfy_client import ComfyClient

    client = ComfyClient(comfy.server, timeout=600)
    workflow = {"nodes": [{"id": 3, "type": "SyncDreamerReconstruct"}], "links": [], "version": 0.4}
    prompt_id = client.submit(graph, extra_data={"extra_pnginfo": {"workflow": workflow}})
    entry = client.wait(prompt_id)
    assert_success(entry)
    saved = entry["outputs"]["4"]["3d"][0]
    gltf = pygltflib.GLTF2().load(str(comfy.base / "output" / saved["subfolder"] / saved["filename"]))
    assert json.loads(gltf.asset.extras["prompt"])["3"]["class_type"] == "SyncDreamerReconstruct"
    assert json.loads(gltf.asset.extras["workflow"]) == workflow


def test_save_mesh_offers_the_hosts_3d_file_where_it_has_one(comfy):
    outputs = comfy.get("/object_info/SyncDreamerSaveMesh")["SyncDreamerSaveMesh"]["output"]
    if comfy.version == "0.3.64":
        assert outputs == ["STRING"]
        return
    assert outputs[1].startswith("FILE_3D")
    graph = mesh_graph()
    graph["5"] = {"class_type": "Preview3D", "inputs": {"model_file": ["4", 1]}}
    entry = run(comfy, graph)
    assert_success(entry)


@pytest.mark.parametrize("file_format", ["stl", "3mf"])
def test_save_mesh_writes_a_printable_solid_at_the_size_asked_for(comfy, file_format):
    import trimesh

    entry = run(comfy, mesh_graph({"format": file_format, "print_size_mm": 60.0, "size_of": "height",
                                   "flat_base": True, "filename_prefix": f"mesh/print_{file_format}"}))
    assert_success(entry)
    saved = entry["outputs"]["4"]["3d"][0]
    assert saved["filename"].endswith(f".{file_format}")
    path = comfy.base / "output" / saved["subfolder"] / saved["filename"]
    if file_format == "3mf":
        from helpers import read_3mf

        mesh = read_3mf(path)
    else:
        mesh = trimesh.load(str(path), force="mesh")
    mesh.merge_vertices()
    assert mesh.is_volume and mesh.extents[2] == pytest.approx(60.0, abs=0.05)
    report, where = entry["outputs"]["4"]["text"]
    assert "closed 2-manifold, 1 body" in report and "x 60.0 x" in report, report
    preview = entry["outputs"]["4"]["3d"][1]["filename"]  # what Preview 3D is given: a GLB of the same mesh
    assert preview.endswith("_preview.glb") and where.endswith(f"Preview 3D shows output/mesh/{preview}"), where


def test_core_mesh_nodes_take_the_packs_mesh(comfy):
    graph = mesh_graph()
    graph["6"] = {"class_type": "SaveGLB", "inputs": {"mesh": ["3", 0], "filename_prefix": "mesh/core"}}
    assert_success(run(comfy, graph))


def test_the_loaders_download_button_is_served_and_reports_a_failure_on_the_node(comfy):
    import time
    import urllib.request

    from comfy_server import UNREACHABLE_HUB

    assert "/extensions/ComfyUI-SyncDreamer/js/checkpoint_download.js" in comfy.get("/extensions")
    status = comfy.get("/syncdreamer/checkpoint")
    assert status["present"] is False and status["file"] == "syncdreamer-pretrain.ckpt" and status["total"] > 5e9
    request = urllib.request.Request(comfy.url + "/syncdreamer/checkpoint/download", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["state"] in ("downloading", "failed")
    deadline = time.monotonic() + 60
    while comfy.get("/syncdreamer/checkpoint")["state"] == "downloading" and time.monotonic() < deadline:
        time.sleep(0.5)
    status = comfy.get("/syncdreamer/checkpoint")
    assert status["state"] == "failed" and f"could not download {UNREACHABLE_HUB}/camenduru/SyncDreamer" in \
        status["message"], status
    assert status["kind"] == "unreachable" and status["summary"] == "can't reach 127.0.0.1" and status["usable"]
    cancel = urllib.request.Request(comfy.url + "/syncdreamer/checkpoint/cancel", method="POST", data=b"")
    with urllib.request.urlopen(cancel, timeout=30) as response:
        assert json.load(response)["state"] == "failed"  # nothing runs, nothing to cancel: the failure stays told
    assert_success(run(comfy, sampler_graph(1, 1)))  # the loader loads a checkpoint: the failure is not shown any more
    assert comfy.get("/syncdreamer/checkpoint")["state"] == "idle"


def test_node_errors_name_the_node_by_its_display_name(comfy):
    graph = sampler_graph(1, 1)
    graph["3"]["inputs"]["crop_size"] = 2
    entry = run(comfy, graph)
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["exception_message"].startswith("SyncDreamer Prepare Image: "), error["exception_message"]


def test_templates_are_listed_only_where_they_run(comfy):
    listed = comfy.get("/api/workflow_templates")["ComfyUI-SyncDreamer"]
    assert listed[0] == "SyncDreamer - Image to 3D"  # simplest first
    assert ("SyncDreamer - Photo to 3D" in listed) == (comfy.version != "0.3.64")


def test_errors_carry_a_short_type_name(comfy):
    graph = sampler_graph(1, 1)
    graph["3"]["inputs"]["crop_size"] = 2
    entry = run(comfy, graph)
    assert entry["status"]["status_str"] == "error", errors_of(entry)
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["exception_type"] == "SyncDreamer.NodeInputError"
