"""Opens every shipped workflow the way a user does, through the real frontend's template
browser (headless Chromium, a 1600x900 window), and reports what they see: the zoom the
graph opens at, the dialogs and notifications shown, node types the frontend does not
know, nodes that overlap once the frontend has sized them, and templates listed on a host
that cannot run them. Saves a screenshot of each.

    python scripts/check_frontend.py --server 127.0.0.1:8188 --out output/frontend

Needs Playwright (``pip install playwright``) and a Chromium (``--chromium /usr/bin/chromium``).
Exits 1 when a workflow has a problem.
"""

from __future__ import annotations

import argparse
import contextlib
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


MESSAGES = """() => Array.from(document.querySelectorAll('.p-toast-message, .p-dialog, [role="alert"]'))
    .map(e => e.innerText.trim().replace(/\\s+/g, ' ').slice(0, 300)).filter(t => t)"""


def open_template(page, title: str) -> None:
    """Template browser -> search -> click the card, as a user does."""
    page.keyboard.press("Escape")
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    search = page.get_by_placeholder("Search").first
    try:
        search.wait_for(timeout=10000)
    except Exception:  # noqa: BLE001 - a frontend still starting drops the command: use the sidebar button
        page.keyboard.press("Escape")
        page.get_by_text("Templates", exact=True).first.click()
        search.wait_for(timeout=30000)
    page.wait_for_timeout(500)
    search.fill(title)
    page.wait_for_timeout(1500)
    page.get_by_text(title, exact=True).first.click()
    page.wait_for_timeout(3000)


def listed_templates(page, pack: str) -> list[str]:
    return page.evaluate("(pack) => fetch('/api/workflow_templates').then(r => r.json()).then(l => l[pack] || [])", pack)


def check(page, title: str, ui: dict, out: Path) -> list[str]:
    import workflow_tools as W

    open_template(page, title)
    state = page.evaluate(READ_GRAPH)
    messages = page.evaluate(MESSAGES)
    problems = [f"unknown node type {n['type']}" for n in state["nodes"] if not n["known"]]
    if len(state["nodes"]) != len(ui["nodes"]):
        problems.append(f"the canvas holds {len(state['nodes'])} nodes, the workflow {len(ui['nodes'])}")
    boxes = {n["id"]: (n["pos"][0], n["pos"][1] - W.TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in state["nodes"]}
    problems += [f"nodes {a} and {b} overlap" for a, b in W.overlaps(ui, boxes)]
    if state["scale"] < W.READABLE_ZOOM:
        problems.append(f"opens at {state['scale']:.0%} zoom, below the readable {W.READABLE_ZOOM:.0%}")
    # A missing model file is reported honestly (the user has not downloaded it yet); anything else is a problem.
    problems += [f"message: {m}" for m in messages if "missing" not in m.lower() or "allowed" in m.lower()]
    page.screenshot(path=str(out / f"{title}.png"))
    grown = [n["type"] for n in state["nodes"]
             if any(n["size"][i] > next(u for u in ui["nodes"] if u["id"] == n["id"])["size"][i] + 1 for i in (0, 1))]
    print(json.dumps({"workflow": title, "zoom": round(state["scale"], 3), "nodes": len(state["nodes"]),
                      "messages": messages, "grown_by_the_frontend": grown, "problems": problems}))
    return problems


@contextlib.contextmanager
def open_frontend(server: str, chromium: str = "/usr/bin/chromium"):
    """(page, ComfyUI version) of the frontend at ``server`` in headless Chromium, 1600x900."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"http://{server}/", wait_until="networkidle")
            page.wait_for_function("() => window.app && window.app.graph", timeout=60000)
            page.wait_for_timeout(3000)
            version = page.evaluate(
                "() => fetch('/system_stats').then(r => r.json()).then(s => s.system.comfyui_version)")
            yield page, version
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8188")
    parser.add_argument("--out", type=Path, default=Path("output/frontend"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--pack", default="ComfyUI-SyncDreamer", help="the pack's folder name in custom_nodes")
    args = parser.parse_args()
    import build_workflows as B

    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    with open_frontend(args.server, args.chromium) as (page, version):
        listed = listed_templates(page, args.pack)
        for title, _, hosts in B.WORKFLOWS.values():
            if version not in hosts:
                if title in listed:
                    print(json.dumps({"workflow": title, "problems": [f"listed on {version}, where it cannot run"]}))
                    failed = True
                continue
            if title not in listed:
                print(json.dumps({"workflow": title, "problems": [f"not listed on {version}"]}))
                failed = True
                continue
            ui = json.loads((ROOT / "example_workflows" / f"{title}.json").read_text())
            failed |= bool(check(page, title, ui, args.out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
