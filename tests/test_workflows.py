"""The shipped workflows: they parse, use only known nodes with valid widgets on every
ComfyUI they target, their links are type-consistent, no two nodes overlap, the view
opens on their start, their API twins match them, and they are up to date with their
builder."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import build_workflows as B  # noqa: E402
import workflow_tools as W  # noqa: E402

NAMES = sorted(B.WORKFLOWS)


def load(name):
    return json.loads((ROOT / "example_workflows" / f"{B.WORKFLOWS[name][0]}.json").read_text())


def test_the_promised_workflows_are_shipped_with_thumbnails_and_api_twins():
    assert {"image_to_3d", "text_to_3d", "sketch_to_3d", "candidates", "elevation_refinement",
            "image_to_3d_background_removal"} <= set(NAMES)
    shipped = {p.stem for p in (ROOT / "example_workflows").glob("*.json")}
    assert shipped == {title for title, _, _ in B.WORKFLOWS.values()}
    for name, (title, _, _) in B.WORKFLOWS.items():
        assert (ROOT / "example_workflows" / f"{title}.jpg").stat().st_size > 20000
        assert (ROOT / "example_workflows" / "api" / f"{name}.json").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_workflow_is_valid_on_every_host_it_targets(name):
    ui = load(name)
    assert ui["version"] == 0.4 and ui["nodes"] and ui["links"]
    for host in B.WORKFLOWS[name][2]:
        assert W.validate_ui(ui, W.node_definitions(host)) == [], host


@pytest.mark.parametrize("name", NAMES)
def test_no_two_nodes_overlap_and_every_node_sits_in_a_titled_group(name):
    ui = load(name)
    assert W.overlaps(ui) == []
    boxes = W.rectangles(ui)
    for node_id, (x0, y0, x1, y1) in boxes.items():
        holding = [g for g in ui["groups"] if g["bounding"][0] <= x0 and x1 <= g["bounding"][0] + g["bounding"][2]
                   and g["bounding"][1] <= y0 and y1 <= g["bounding"][1] + g["bounding"][3]]
        assert len(holding) == 1 and holding[0]["title"], node_id


@pytest.mark.parametrize("name", NAMES)
def test_the_saved_view_shows_the_start_note_and_the_first_input(name):
    ui = load(name)
    view = ui["extra"]["ds"]
    screen = (1280, 720)
    note = next(n for n in ui["nodes"] if n["type"] == "MarkdownNote")
    assert "syncdreamer-pretrain.ckpt" in note["widgets_values"][0] and "models/syncdreamer" in note["widgets_values"][0]
    first = [note] + [n for n in ui["nodes"] if n["type"] in ("LoadImage", "CheckpointLoaderSimple")][:1]
    for node in first:
        x = (node["pos"][0] + view["offset"][0]) * view["scale"]
        y = (node["pos"][1] + view["offset"][1]) * view["scale"]
        assert 0 <= x < screen[0] and 0 <= y < screen[1], node["type"]
    assert 0.6 <= view["scale"] <= 1.2


def test_overlap_check_finds_overlapping_nodes():
    ui = load("image_to_3d")
    moved = json.loads(json.dumps(ui))
    moved["nodes"][1]["pos"] = list(moved["nodes"][0]["pos"])
    assert W.overlaps(moved)


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_matches(name):
    definitions = W.node_definitions(B.WORKFLOWS[name][2][-1])
    twin = json.loads((ROOT / "example_workflows" / "api" / f"{name}.json").read_text())
    assert twin == W.ui_to_api(load(name), definitions)
    assert all(node["class_type"] in definitions for node in twin.values())


@pytest.mark.parametrize("name", NAMES)
def test_workflows_are_up_to_date_with_their_builder(name):
    assert B.build(name) == load(name)


def test_validator_catches_broken_workflows():
    definitions = W.node_definitions()
    broken = json.loads(json.dumps(load("image_to_3d")))
    sampler = next(n for n in broken["nodes"] if n["type"] == "SyncDreamerSampler")
    sampler["widgets_values"][sampler["widgets_values"].index("ddim")] = "no_such_sampler"
    broken["links"][0][5] = "LATENT"
    broken["nodes"].append({"id": 999, "type": "NoSuchNode", "inputs": [], "outputs": []})
    problems = "\n".join(W.validate_ui(broken, definitions))
    assert "no_such_sampler" in problems and "unknown node type NoSuchNode" in problems and "link says LATENT" in problems


def test_a_multi_type_input_accepts_each_of_its_types():
    assert W.accepts("STRING,FILE_3D_GLB,FILE_3D", "STRING") and W.accepts("MESH,FILE_3D_GLB", "MESH")
    assert not W.accepts("STRING,FILE_3D_GLB", "MESH") and not W.accepts("IMAGE", "MASK")


def test_example_inputs_named_in_workflows_are_bundled():
    init = (ROOT / "__init__.py").read_text()
    names = {n["widgets_values"][0] for name in NAMES for n in load(name)["nodes"] if n["type"] == "LoadImage"}
    assert names and all(name in init for name in names)
