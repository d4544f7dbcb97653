"""Every node has a help page (web/docs/<node id>.md, which ComfyUI shows in its node
library), headed with the node's display name, naming its inputs, and whose pictures exist."""

from __future__ import annotations

import re
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import workflow_tools as W  # noqa: E402

DEFINITIONS = W.pack_definitions()


@pytest.mark.parametrize("node_id", sorted(DEFINITIONS))
def test_every_node_has_a_help_page(node_id):
    page = ROOT / "web" / "docs" / f"{node_id}.md"
    text = page.read_text()
    assert text.startswith(f"# {DEFINITIONS[node_id]['display_name']}\n")
    inputs = [name for section in DEFINITIONS[node_id]["input"].values() for name in section]
    if len(inputs) > 2:  # pages of the small nodes say it in prose
        assert all(name in text for name in inputs), [n for n in inputs if n not in text]
    for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (page.parent / picture).is_file(), picture


def test_the_pack_points_comfyui_at_its_web_folder():
    assert 'WEB_DIRECTORY = "./web"' in (ROOT / "__init__.py").read_text()
