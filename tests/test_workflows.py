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
def test_the_whole_graph_fitted_to_a_1600x900_window_is_readable(name):
    """Today's frontend opens a template by fitting every node into 75 % of the window
    (it ignores the saved view): at 1600x900 the zoom must leave text readable (57 %)."""
    ui = load(name)
    x0, y0, x1, y1 = W.node_bounds(ui)
    zoom = W.template_zoom(ui)
    print(f"{name}: {x1 - x0:.0f} x {y1 - y0:.0f} canvas units, fitted zoom {zoom:.3f}")
    assert zoom > W.READABLE_ZOOM
    assert abs(ui["extra"]["ds"]["scale"] - zoom) < 1e-3  # frontends that keep saved views show the same
    note = next(n for n in ui["nodes"] if n["type"] == "MarkdownNote")
    # set in level-2 headings: 15 px, above the node titles' 14 px (body text is 10 px)
    paragraphs = note["widgets_values"][0].split("\n\n")
    assert all(p.startswith("## ") and "\n" not in p for p in paragraphs), paragraphs
    assert "Download checkpoint" in note["widgets_values"][0]
    assert note["pos"][0] == x0 and note["pos"][1] - W.TITLE_HEIGHT == y0  # the start note is the top-left node


@pytest.mark.parametrize("name", NAMES)
def test_no_wire_crosses_a_group_title_and_no_group_sits_under_the_missing_model_notice(name):
    """Nothing over a group title, no group under 0.27's error box (frontend 1.45) nor under
    frontend 1.58's wider, lower notice."""
    definitions = W.node_definitions(B.WORKFLOWS[name][2][-1])
    assert W.ui_layout_problems(load(name), definitions) == []


def test_the_layout_check_sees_a_wire_over_a_title_and_a_group_under_the_notice():
    """Groups stacked so the mesh group's first node takes a wire from the upper right: the
    wire crosses its title; pushed to the top right of a wide graph, a group sits under 0.27's notice."""
    definitions = W.node_definitions()
    decode = W.Node(1, "VAEDecode", pos=(700.0, 100.0), size=(157, 46))
    recon = W.Node(2, "SyncDreamerReconstruct", pos=(12.0, 500.0), size=(315, 246))
    groups = [("2. Views", (600.0, 0.0, 900.0, 300.0)), ("3. Textured mesh", (0.0, 414.0, 400.0, 800.0))]
    links = [(1, 0, 2, "views")]
    assert [p for p in W.layout_problems(groups, [decode, recon], links, definitions) if p.startswith("wire")] == [
        "wire VAEDecode -> SyncDreamerReconstruct over group '3. Textured mesh'"]
    recon.pos = (1000.0, 100.0)  # beside it instead: the wire enters from the left
    groups[1] = ("3. Textured mesh", (988.0, 14.0, 1400.0, 360.0))
    assert not [p for p in W.layout_problems(groups, [decode, recon], links, definitions) if p.startswith("wire")]
    spread = [W.Node(3, "VAEDecode", pos=(0.0, 30.0), size=(157, 46)),
              W.Node(4, "VAEDecode", pos=(1500.0, 30.0), size=(157, 46)),
              W.Node(5, "VAEDecode", pos=(0.0, 900.0), size=(157, 46))]
    far = [("left", (-12.0, -56.0, 200.0, 1000.0)), ("right", (1400.0, -56.0, 1700.0, 300.0))]
    assert W.layout_problems(far, spread, [], definitions) == [
        *(f"group 'right' under the notice at {area}" for area in W.KEEP_CLEAR)]


def test_sockets_sit_where_the_frontends_draw_them():
    """Measured in frontends 1.45.20 and 1.27.10 (``getConnectionPos`` minus the node's position)."""
    definitions = W.node_definitions()
    loader = W.Node(1, "SyncDreamerCheckpointLoader", size=(307, 148))
    inputs, outputs = W.slot_positions(loader, definitions[loader.type])
    assert outputs == [(298, 14), (298, 34), (298, 54)]
    sampler = W.Node(2, "SyncDreamerSampler", size=(270, 334))
    inputs, outputs = W.slot_positions(sampler, definitions[sampler.type])
    assert [inputs[k] for k in ("syncdreamer_model", "clip_vision", "elevation", "seed", "steps")] == [
        (10, 14), (10, 74), (10, 96), (10, 120), (10, 168)]  # steps below seed's control_after_generate row
    estimate = W.Node(3, "SyncDreamerEstimateElevation", size=(327, 122))
    inputs, outputs = W.slot_positions(estimate, definitions[estimate.type])
    assert inputs["views"] == (10, 54) and inputs["first_guess"] == (10, 76) and outputs[2] == (318, 54)


def test_the_readme_states_each_templates_fitted_zoom():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| template (1600x900) | fitted zoom |"):]
    for name, (title, _, _) in B.WORKFLOWS.items():
        stated = next(line for line in table.splitlines() if line.startswith(f"| {title.removeprefix('SyncDreamer - ')} |"))
        assert stated.split("|")[2].strip() == f"{100 * W.template_zoom(load(name)):.1f} %", title


def test_the_fitted_zoom_follows_the_frontends_rule():
    margin = W.BOUNDS_MARGIN
    assert W.fitted_zoom(1600 - margin, 900 - margin) == pytest.approx(0.75)
    assert W.fitted_zoom(6748, 928) == pytest.approx(0.75 * 1600 / (6748 + margin))  # one long row: 18 %
    assert W.fitted_zoom(100, 100) == pytest.approx(0.75 * 900 / 300)  # the frontend's 300-unit minimum


@pytest.mark.parametrize("name", NAMES)
def test_notes_name_todays_run_button_and_links_are_ones_the_frontend_accepts(name):
    ui = load(name)
    for node in ui["nodes"]:
        if node["type"] == "MarkdownNote":
            assert "Run" in node["widgets_values"][0] and "Queue" not in node["widgets_values"][0]
        for model in node.get("properties", {}).get("models", []):
            host = model["url"].split("/")[2]
            assert host in ("huggingface.co", "civitai.com") or host.startswith("localhost"), model


@pytest.mark.parametrize("name", NAMES)
def test_the_start_note_tells_what_this_templates_sampling_costs_on_a_cpu_and_a_gpu(name):
    """From the shipped API twin's samplers: Best of 4 costs four runs, Elevation refinement two."""
    from syncdreamer_core.diffusion.schedule import steps_run
    from syncdreamer_core.wait import CPU_STEP_SECONDS, duration_span, typical_wait

    api = json.loads((ROOT / "example_workflows" / "api" / f"{name}.json").read_text())
    samplers = [n["inputs"] for n in api.values() if n["class_type"] == "SyncDreamerSampler"]
    evaluations = sum(steps_run(s["steps"]) * s["batch_size"] for s in samplers)
    assert evaluations == {"candidates": 200, "elevation_refinement": 100}.get(name, 50)
    wait = typical_wait(evaluations)
    assert wait.cpu == (evaluations * CPU_STEP_SECONDS[0], evaluations * CPU_STEP_SECONDS[1])
    assert 0 < wait.gpu[0] < wait.gpu[1] < wait.cpu[0] / 10
    note = next(n for n in load(name)["nodes"] if n["type"] == "MarkdownNote")["widgets_values"][0]
    cost = note.split("\n\n")[-1]
    assert f"takes {duration_span(*wait.cpu)} on a CPU" in cost and f"about {duration_span(*wait.gpu)} on a GPU" in cost


def test_a_span_of_durations_names_its_unit_once_where_both_ends_share_it():
    from syncdreamer_core.wait import duration_span

    assert duration_span(600, 2350) == "10-39 min"
    assert duration_span(2400, 9400) == "40 min-2.6 h"
    assert duration_span(13, 132) == "13 s-2 min"


@pytest.mark.parametrize("name", NAMES)
def test_every_loader_offers_the_checkpoint_for_download_from_hugging_face(name):
    from syncdreamer_core.weights.checkpoint import OFFICIAL_FILENAME, OFFICIAL_URL

    loaders = [n for n in load(name)["nodes"] if n["type"] == "SyncDreamerCheckpointLoader"]
    assert loaders
    for loader in loaders:
        assert loader["widgets_values"][0] == OFFICIAL_FILENAME
        assert loader["properties"]["models"] == [{"name": OFFICIAL_FILENAME, "url": OFFICIAL_URL,
                                                   "directory": "syncdreamer"}]


def test_templates_are_listed_in_the_order_a_user_needs_them():
    from nodes.templates import TEMPLATE_ORDER, order_listing

    assert list(TEMPLATE_ORDER) == [title for title, _, _ in B.WORKFLOWS.values()]
    assert TEMPLATE_ORDER[0] == "SyncDreamer - Image to 3D"
    shuffled = {"ComfyUI-SyncDreamer": sorted(TEMPLATE_ORDER, reverse=True) + ["Somebody's own"], "x": ["b", "a"]}
    ordered = order_listing(shuffled, "ComfyUI-SyncDreamer")
    assert ordered["ComfyUI-SyncDreamer"] == [*TEMPLATE_ORDER, "Somebody's own"] and ordered["x"] == ["b", "a"]


def test_each_template_is_offered_only_where_its_nodes_exist():
    from nodes.templates import filter_listing, templates_needing_absent_nodes

    folder = str(ROOT / "example_workflows")
    photo = B.WORKFLOWS["image_to_3d_background_removal"][0]
    for host in W.HOSTS:
        hidden = templates_needing_absent_nodes(folder, set(W.node_definitions(host)))
        expected = [title for title, _, hosts in B.WORKFLOWS.values() if host not in hosts]
        assert hidden == sorted(expected), host
    listing = {"ComfyUI-SyncDreamer": [t for t, _, _ in B.WORKFLOWS.values()], "other": [photo]}
    filtered = filter_listing(listing, "ComfyUI-SyncDreamer", [photo])
    assert photo not in filtered["ComfyUI-SyncDreamer"] and filtered["other"] == [photo]
    assert len(filtered["ComfyUI-SyncDreamer"]) == len(B.WORKFLOWS) - 1


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
