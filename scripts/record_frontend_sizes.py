"""Records the size the real ComfyUI frontend gives each node type the shipped workflows
use when it creates one (its minimum for the widgets and sockets), so the workflow layout
never places nodes smaller than the frontend draws them:

    python scripts/record_frontend_sizes.py --server 127.0.0.1:8188

writes tests/data/frontend_sizes_<version>.json (needs Playwright and Chromium, like
check_frontend.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

MEASURE = """(types) => {
  const sizes = {};
  for (const type of types) {
    const node = window.LiteGraph.createNode(type);
    if (!node) continue;
    window.app.graph.add(node);
    const minimum = node.computeSize();
    sizes[type] = [Math.ceil(Math.max(node.size[0], minimum[0])), Math.ceil(Math.max(node.size[1], minimum[1]))];
    window.app.graph.remove(node);
  }
  return {sizes, title_height: window.LiteGraph.NODE_TITLE_HEIGHT};
}"""


def main() -> None:
    import record_stock_nodes
    import workflow_tools as W
    from check_frontend import open_frontend

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8188")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    types = sorted(set(record_stock_nodes.STOCK_TYPES) | set(W.pack_definitions()) | {"MarkdownNote"})
    with open_frontend(args.server, args.chromium) as (page, version):
        measured = page.evaluate(MEASURE, types)
    out = ROOT / "tests" / "data" / f"frontend_sizes_{version}.json"
    out.write_text(json.dumps({"_comfyui_version": version, **measured}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(measured['sizes'])} node types")


if __name__ == "__main__":
    main()
