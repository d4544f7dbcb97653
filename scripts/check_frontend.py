"""Opens every shipped workflow in the real ComfyUI frontend (headless Chromium) and
reports what a user would see: node types the frontend does not know, nodes that overlap
once the frontend has sized them, and whether the saved view shows the start of the graph.
Saves a screenshot of each.

    python scripts/check_frontend.py --server 127.0.0.1:8188 --out output/frontend

Needs Playwright (``pip install playwright``) and a Chromium (``--chromium /usr/bin/chromium``).
Exits 1 when a workflow has a problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

READ_GRAPH = """() => {
  const app = window.app;
  const known = window.LiteGraph ? window.LiteGraph.registered_node_types : {};
  const nodes = app.graph._nodes.map(n => ({id: n.id, type: n.type, title: n.title,
      pos: [n.pos[0], n.pos[1]], size: [n.size[0], n.size[1]],
      known: !!known[n.type], missing: !!(n.has_errors || (n.constructor && n.constructor.nodeData === undefined
                                                     && !['Note', 'MarkdownNote'].includes(n.type)))}));
  const ds = app.canvas.ds;
  return {nodes, scale: ds.scale, offset: [ds.offset[0], ds.offset[1]],
          width: app.canvas.canvas.width / (window.devicePixelRatio || 1),
          height: app.canvas.canvas.height / (window.devicePixelRatio || 1)};
}"""


def check(page, title: str, ui: dict, out: Path) -> list[str]:
    import workflow_tools as W

    page.evaluate("async (graph) => { await window.app.loadGraphData(graph, true, true, 'check'); }", ui)
    page.wait_for_timeout(1500)
    state = page.evaluate(READ_GRAPH)
    problems = [f"unknown node type {n['type']}" for n in state["nodes"] if not n["known"]]
    boxes = {n["id"]: (n["pos"][0], n["pos"][1] - 30, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in state["nodes"]}
    problems += [f"nodes {a} and {b} overlap" for a, b in W.overlaps(ui, boxes)]
    start = [n for n in state["nodes"] if n["type"] in ("MarkdownNote", "LoadImage", "CheckpointLoaderSimple")]
    for node in start[:2]:
        x = (node["pos"][0] + state["offset"][0]) * state["scale"]
        y = (node["pos"][1] + state["offset"][1]) * state["scale"]
        if not (0 <= x < state["width"] and 0 <= y < state["height"]):
            problems.append(f"{node['type']} is off screen at start ({x:.0f}, {y:.0f})")
    page.screenshot(path=str(out / f"{title}.png"))
    grown = [n["type"] for n in state["nodes"]
             if any(n["size"][i] > next(u for u in ui["nodes"] if u["id"] == n["id"])["size"][i] + 1 for i in (0, 1))]
    print(json.dumps({"workflow": title, "nodes": len(state["nodes"]), "grown_by_the_frontend": grown,
                      "problems": problems}))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8188")
    parser.add_argument("--out", type=Path, default=Path("output/frontend"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    import build_workflows as B
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(f"http://{args.server}/", wait_until="networkidle")
        page.wait_for_function("() => window.app && window.app.graph", timeout=60000)
        page.wait_for_timeout(3000)
        page.keyboard.press("Escape")  # the template browser a new user is greeted with
        version = page.evaluate("() => fetch('/system_stats').then(r => r.json()).then(s => s.system.comfyui_version)")
        for title, _, hosts in B.WORKFLOWS.values():
            if version not in hosts:
                continue
            ui = json.loads((ROOT / "example_workflows" / f"{title}.json").read_text())
            failed |= bool(check(page, title, ui, args.out))
        browser.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
