"""The shipped workflows: they parse, use only known nodes with valid widgets, their
links are type-consistent, and their API-format twins match them."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import workflow_tools as W  # noqa: E402

WORKFLOWS = sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))


@pytest.fixture(scope="module")
def definitions():
    return W.node_definitions()


def load(name):
    return json.loads((ROOT / "example_workflows" / f"{name}.json").read_text())


def test_the_promised_workflows_are_shipped_with_thumbnails():
    assert {"image_to_3d", "text_to_3d", "sketch_to_3d", "candidates", "elevation_refinement"} <= set(WORKFLOWS)
    for name in WORKFLOWS:
        assert (ROOT / "example_workflows" / f"{name}.jpg").stat().st_size > 5000
        assert (ROOT / "example_workflows" / "api" / f"{name}.json").is_file()


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_is_valid(name, definitions):
    ui = load(name)
    assert ui["version"] == 0.4 and ui["nodes"] and ui["links"]
    assert W.validate_ui(ui, definitions) == []


@pytest.mark.parametrize("name", WORKFLOWS)
def test_api_twin_matches(name, definitions):
    twin = json.loads((ROOT / "example_workflows" / "api" / f"{name}.json").read_text())
    assert twin == W.ui_to_api(load(name), definitions)
    for node in twin.values():
        assert node["class_type"] in definitions


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflows_are_up_to_date_with_their_builder(name, definitions):
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_workflows

    assert W.build_ui(build_workflows.WORKFLOWS[name](), definitions) == load(name)


def test_validator_catches_broken_workflows(definitions):
    ui = load("image_to_3d")
    broken = json.loads(json.dumps(ui))
    sampler = next(n for n in broken["nodes"] if n["type"] == "SyncDreamerSampler")
    sampler["widgets_values"][sampler["widgets_values"].index("ddim")] = "no_such_sampler"
    link = broken["links"][0]
    link[5] = "LATENT"
    broken["nodes"].append({"id": 999, "type": "NoSuchNode", "inputs": [], "outputs": []})
    problems = "\n".join(W.validate_ui(broken, definitions))
    assert "no_such_sampler" in problems and "unknown node type NoSuchNode" in problems and "link says LATENT" in problems


def test_example_inputs_named_in_workflows_are_bundled():
    names = {n["widgets_values"][0] for name in WORKFLOWS for n in load(name)["nodes"] if n["type"] == "LoadImage"}
    init = (ROOT / "__init__.py").read_text()
    assert names and all(name in init for name in names)
