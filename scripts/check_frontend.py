"""Opens every shipped workflow the way a user does, through the real frontend's template
browser (headless Chromium, a 1600x900 window), and reports what they see: the zoom the
graph opens at, the dialogs and notifications shown, node types the frontend does not
know, nodes that overlap once the frontend has sized them, and templates listed on a host
that cannot run them. Saves a screenshot of each.

    python scripts/check_frontend.py --server 127.0.0.1:8188 --out output/frontend [--failed-download]

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
  const nodes = app.graph._nodes.map(n => ({id: isNaN(Number(n.id)) ? n.id : Number(n.id), type: n.type, title: n.title,
      pos: [n.pos[0], n.pos[1]], size: [n.size[0], n.size[1]],
      known: !!known[n.type], missing: !!(n.has_errors || (n.constructor && n.constructor.nodeData === undefined
                                                     && !['Note', 'MarkdownNote'].includes(n.type)))}));
  const ds = app.canvas.ds;
  return {nodes, scale: ds.scale, offset: [ds.offset[0], ds.offset[1]],
          width: app.canvas.canvas.width / (window.devicePixelRatio || 1),
          height: app.canvas.canvas.height / (window.devicePixelRatio || 1)};
}"""


#: What the issue of readability asks, measured on the canvas as drawn: the start note's text
#: size against the node titles', titles the frontend cuts, the "SyncDreamer" badges and the
#: wires over group titles, and notifications over groups.
MEASURE = """() => {
  const LG = window.LiteGraph, canvas = app.canvas, ds = canvas.ds, graph = canvas.graph;
  const scale = ds.scale, titleHeight = LG.NODE_TITLE_HEIGHT || 30;
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = (LG.NODE_TEXT_SIZE || 14) + 'px ' + (LG.NODE_FONT || 'Arial');
  const cut = graph._nodes.filter(n => !['MarkdownNote', 'Note'].includes(n.type))
    .filter(n => ctx.measureText(n.title).width + 72 > n.size[0]).map(n => n.title);
  let noteText = null;
  for (const el of document.querySelectorAll('.ProseMirror p, .ProseMirror h1, .ProseMirror h2, .ProseMirror h3, '
                                               + '.ProseMirror li, .ProseMirror h4')) {
    const r = el.getBoundingClientRect();
    if (!r.height || !el.innerText.trim() || !el.offsetHeight) continue;
    const px = parseFloat(getComputedStyle(el).fontSize) * r.height / el.offsetHeight;
    noteText = noteText === null ? px : Math.min(noteText, px);
  }
  const groups = (graph._groups || graph.groups || []).map(g => {
    const [x, y, w] = [g.pos ? g.pos[0] : g._pos[0], g.pos ? g.pos[1] : g._pos[1], g.size ? g.size[0] : g._size[0]];
    const h = g.size ? g.size[1] : g._size[1];
    const size = g.font_size || 24;
    ctx.font = size + 'px Arial';
    const text = ctx.measureText(g.title).width + size;  // the title as drawn, with its margin
    ctx.font = (LG.NODE_TEXT_SIZE || 14) + 'px ' + (LG.NODE_FONT || 'Arial');
    return {title: g.title, box: [x, y, x + w, y + h], band: [x, y, x + Math.min(w, text), y + size * 1.4]};
  });
  const hit = (a, b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
  const badge = 22, overGroupTitles = [];
  for (const n of graph._nodes) {
    if (!String(n.type).startsWith('SyncDreamer')) continue;
    const box = [n.pos[0] + n.size[0] - 110, n.pos[1] - titleHeight - badge, n.pos[0] + n.size[0], n.pos[1] - titleHeight];
    for (const g of groups) if (hit(box, g.band)) overGroupTitles.push(`badge of ${n.title} over group '${g.title}'`);
  }
  const links = graph.links instanceof Map ? [...graph.links.values()] : Object.values(graph.links || {});
  for (const l of links) {
    if (!l) continue;
    const a = graph.getNodeById(l.origin_id), b = graph.getNodeById(l.target_id);
    if (!a || !b) continue;
    const p = a.getConnectionPos(false, l.origin_slot), q = b.getConnectionPos(true, l.target_slot);
    // the spline LiteGraph draws: control points a quarter of the distance out along x
    const reach = Math.hypot(q[0] - p[0], q[1] - p[1]) * 0.25, c1 = [p[0] + reach, p[1]], c2 = [q[0] - reach, q[1]];
    const crossed = new Set();
    for (let i = 0; i <= 64; i++) {
      const t = i / 64, u = 1 - t;
      const x = u*u*u*p[0] + 3*u*u*t*c1[0] + 3*u*t*t*c2[0] + t*t*t*q[0];
      const y = u*u*u*p[1] + 3*u*u*t*c1[1] + 3*u*t*t*c2[1] + t*t*t*q[1];
      for (const g of groups) if (hit([x - 1, y - 1, x + 1, y + 1], g.band)) crossed.add(g.title);
    }
    for (const g of crossed) overGroupTitles.push(`wire ${a.title} -> ${b.title} over group '${g}'`);
  }
  const rect = canvas.canvas.getBoundingClientRect();
  const toScreen = (b) => [(b[0] + ds.offset[0]) * scale + rect.left, (b[1] + ds.offset[1]) * scale + rect.top,
                           (b[2] + ds.offset[0]) * scale + rect.left, (b[3] + ds.offset[1]) * scale + rect.top];
  const covered = [];
  for (const el of document.querySelectorAll('.p-toast-message, [role="alert"], [role="status"]')) {
    if (el.closest('.p-dialog, [role="dialog"]')) continue;  // a modal dialog is closed before work starts
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
    for (const g of groups) if (hit([r.left, r.top, r.right, r.bottom], toScreen(g.box)))
      covered.push(`'${el.innerText.trim().replace(/\\s+/g, ' ').slice(0, 60)}' over group '${g.title}'`);
  }
  const loader = graph._nodes.find(n => n.type === 'SyncDreamerCheckpointLoader');
  const button = loader && (loader.widgets || []).find(w => w.name === 'syncdreamer_download');
  return {noteText, titleText: (LG.NODE_TEXT_SIZE || 14) * scale, cut, overGroupTitles, covered,
          nodeDownload: button ? (button.label || button.name) : null};
}"""

#: The frontend's own missing-model list: on 0.27 behind "Show missing models" (1.58: "View
#: details"), on 0.3.x a dialog.
MISSING_MODELS = """() => Array.from(document.querySelectorAll('button, [role=button]'))
    .filter(b => /download/i.test(b.innerText) && b.offsetParent !== null)
    .map(b => ({text: b.innerText.trim(), disabled: b.disabled || b.getAttribute('aria-disabled') === 'true',
                near: (b.closest('li, [role=option], div')?.parentElement?.innerText || '')
                  .replace(/\\s+/g, ' ').slice(0, 200)}))"""

# A message once: not again for an element inside one already read (a dialog's own status
# line, e.g. the "No selected item" a list announces to screen readers).
MESSAGES = """() => {
  const all = Array.from(document.querySelectorAll('.p-toast-message, .p-dialog, [role="alert"], [role="status"]'));
  return all.filter(e => !all.some(o => o !== e && o.contains(e)))
    .map(e => e.innerText.trim().replace(/\\s+/g, ' ').slice(0, 300)).filter(t => t);
}"""


def open_template(page, title: str, tries: int = 3) -> None:
    """Template browser -> search -> click the card, as a user does (again if a frontend
    still starting dropped a step)."""
    for attempt in range(tries):
        try:
            _open_template_once(page, title)
            page.wait_for_function("(t) => document.title.includes(t) || (window.app.graph._nodes || []).some("
                                   "n => String(n.type).startsWith('SyncDreamer'))", arg=title, timeout=15000)
            page.wait_for_timeout(2000)
            return
        except Exception:  # noqa: BLE001 - retried, then raised
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
            page.wait_for_timeout(2000)


def _open_template_once(page, title: str) -> None:
    page.keyboard.press("Escape")
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    # the template dialog's own search box (a side panel may have one too)
    search = page.locator(".p-dialog, [role=dialog]").get_by_placeholder("Search").first
    try:
        search.wait_for(timeout=10000)
    except Exception:  # noqa: BLE001 - a frontend still starting drops the command: use the sidebar button
        page.keyboard.press("Escape")
        page.get_by_text("Templates", exact=True).first.click()
        search.wait_for(timeout=30000)
    page.wait_for_timeout(500)
    search.fill(title)
    page.wait_for_timeout(1500)
    page.get_by_text(title, exact=True).first.click(timeout=15000)
    page.wait_for_timeout(1000)


def listed_templates(page, pack: str) -> list[str]:
    return page.evaluate("(pack) => fetch('/api/workflow_templates').then(r => r.json()).then(l => l[pack] || [])", pack)


def check(page, title: str, ui: dict, out: Path) -> list[str]:
    import workflow_tools as W

    # each template as a user first meets it: a fresh page (no panel left open by the last one)
    page.reload(wait_until="networkidle")
    page.wait_for_function("() => window.app && window.app.graph", timeout=60000)
    page.wait_for_timeout(3000)
    open_template(page, title)
    state = page.evaluate(READ_GRAPH)
    messages = page.evaluate(MESSAGES)
    problems = [f"unknown node type {n['type']}" for n in state["nodes"] if not n["known"]]
    if len(state["nodes"]) != len(ui["nodes"]):
        problems.append(f"the canvas holds {len(state['nodes'])} nodes, the workflow {len(ui['nodes'])}")
    boxes = {n["id"]: W.node_box(n["pos"], n["size"]) for n in state["nodes"]}
    problems += [f"nodes {a} and {b} overlap" for a, b in W.overlaps(ui, boxes)]
    if state["scale"] < W.READABLE_ZOOM:
        problems.append(f"opens at {state['scale']:.0%} zoom, below the readable {W.READABLE_ZOOM:.0%}")
    measured = page.evaluate(MEASURE)
    page.screenshot(path=str(out / f"{title}.png"))
    if measured["noteText"] is None or measured["noteText"] < measured["titleText"] - 0.05:
        problems.append(f"start note text {measured['noteText']} px on screen, node titles {measured['titleText']:.1f}")
    problems += [f"title cut: {t}" for t in measured["cut"]]
    problems += measured["overGroupTitles"] + [f"notification {c}" for c in measured["covered"]]
    # the missing checkpoint: the frontend's own list, and the loader's button
    panel = "Comfy.RightSidePanel.IsOpen"  # the list opens a side panel, remembered by the server: put it back
    was_open = page.evaluate("(id) => fetch('/api/settings/' + id).then(r => r.json())", panel)
    for opener in ("Show missing models", "View details"):  # 0.27's frontend; 1.58
        with contextlib.suppress(Exception):
            page.get_by_text(opener).first.click(timeout=3000)
            page.wait_for_timeout(1500)
            break
    downloads = page.evaluate(MISSING_MODELS)
    page.evaluate("([id, value]) => fetch('/api/settings/' + id, {method: 'POST', body: JSON.stringify(value)})",
                  [panel, bool(was_open)])
    frontend_download = any(not d["disabled"] and "syncdreamer" in d["near"].lower() for d in downloads)
    if not (frontend_download or (measured["nodeDownload"] or "").startswith("Download checkpoint")):
        problems.append("no Download for the missing SyncDreamer checkpoint")
    # the notice itself is honest (the checkpoint is not there yet); anything else is a problem, and
    # so is an entry the frontend can only refuse (it reads as a wrong file format)
    # (1.58 sums several missing models up as "N issues found")
    problems += [f"message: {m}" for m in messages if not any(w in m.lower() for w in ("missing", "issues found"))]
    problems += [f"red warning: {m}" for m in messages + [d["near"] for d in downloads] if "only allowed" in m.lower()]
    page.screenshot(path=str(out / f"{title} - missing models.png"))
    grown = [n["type"] for n in state["nodes"]
             if any(n["size"][i] > next(u for u in ui["nodes"] if u["id"] == n["id"])["size"][i] + 1 for i in (0, 1))]
    print(json.dumps({"workflow": title, "zoom": round(state["scale"], 3), "nodes": len(state["nodes"]),
                      "note_text_px": round(measured["noteText"] or 0, 1),
                      "title_text_px": round(measured["titleText"], 1), "frontend_download": frontend_download,
                      "node_download": measured["nodeDownload"], "messages": messages,
                      "grown_by_the_frontend": grown, "problems": problems}))
    return problems


PRESS_DOWNLOAD = """() => {
  const loader = app.graph._nodes.find(n => n.type === 'SyncDreamerCheckpointLoader');
  const button = loader && (loader.widgets || []).find(w => w.name === 'syncdreamer_download');
  if (!button) return false;
  button.callback(button.value, app.canvas, loader, [0, 0], null);
  return true;
}"""

FAILURE_SHOWN = """() => {
  const loader = app.graph._nodes.find(n => n.type === 'SyncDreamerCheckpointLoader');
  const button = loader && (loader.widgets || []).find(w => w.name === 'syncdreamer_download');
  const notices = Array.from(document.querySelectorAll('.p-toast-message, li[role="alert"]'))
    .map(e => e.innerText.trim().replace(/\\s+/g, ' ')).filter(t => t);
  return {button: button ? button.label : null, tooltip: button ? button.tooltip : null, notices};
}"""


def check_failed_download(page, out: Path) -> list[str]:
    """Press the loader's Download checkpoint button (of the workflow on the canvas) on a server
    whose Hub cannot be reached (HF_ENDPOINT): the reason must be on the node in a few words,
    and in full in a notice and the button's tooltip."""
    page.keyboard.press("Escape")
    if not page.evaluate(PRESS_DOWNLOAD):
        return ["no Download checkpoint button on the loader"]
    page.wait_for_function("() => { const n = app.graph._nodes.find(n => n.type === 'SyncDreamerCheckpointLoader');"
                           " const b = n && n.widgets.find(w => w.name === 'syncdreamer_download');"
                           " return b && String(b.label).startsWith('Retry'); }", timeout=90000)
    page.wait_for_timeout(1500)
    shown = page.evaluate(FAILURE_SHOWN)
    page.screenshot(path=str(out / "download failed.png"))
    print(json.dumps({"download_failed": shown}))
    problems = []
    if not (shown["button"] or "").startswith("Retry (can't reach"):
        problems.append(f"the button says {shown['button']!r} after a failure, not the reason")
    if not any("Nothing was downloaded" in n for n in shown["notices"]):
        problems.append(f"no notice tells the whole reason: {shown['notices']}")
    if "Nothing was downloaded" not in (shown["tooltip"] or ""):
        problems.append("the button's tooltip does not carry the whole reason")
    return problems


def preview_graph(file_format: str, version: str) -> dict:
    """The bundled chicken views -> Reconstruct Mesh -> Save Mesh as ``file_format`` -> Preview 3D."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "syncdreamer_chicken_views.png"}},
        "2": {"class_type": "SyncDreamerSplitViews", "inputs": {"image": ["1", 0], "layout": "auto"}},
        "3": {"class_type": "SyncDreamerReconstruct", "inputs": {
            "views": ["2", 0], "method": "fast", "resolution": 96, "quality_steps": 800, "quality_resolution": 96,
            "vote_tolerance": 2, "texture": "512", "max_faces": 8000, "cleanup": False}},
        "4": {"class_type": "SyncDreamerSaveMesh", "inputs": {"mesh": ["3", 0], "filename_prefix": f"preview/{file_format}",
                                                              "format": file_format, "up_axis": "y"}},
        "5": {"class_type": "Preview3D", "inputs": {"model_file": ["4", 1 if version != "0.3.64" else 0]}},
    }


def check_preview_3d(page, version: str, out: Path) -> list[str]:
    """Run Save Mesh as STL and as 3MF with Preview 3D after it, from the frontend, and
    screenshot what the viewer shows (the object should stand upright, in colour)."""
    problems = []
    for file_format in ("stl", "3mf"):
        page.keyboard.press("Escape")
        page.evaluate("(graph) => app.loadApiJson(graph, 'preview')", preview_graph(file_format, version))
        page.wait_for_timeout(2000)
        page.evaluate("() => app.queuePrompt(0, 1)")
        page.wait_for_function("() => { const n = app.graph._nodes.find(n => n.type === 'Preview3D');"
                               " const w = n && (n.widgets || []).find(w => w.name === 'model_file');"
                               " return w && String(w.value).includes('preview'); }", timeout=300000)
        page.evaluate("() => { const n = app.graph._nodes.find(n => n.type === 'Preview3D'), ds = app.canvas.ds;"
                      " ds.scale = 1; ds.offset = [-n.pos[0] + 200, -n.pos[1] + 120]; app.canvas.setDirty(true, true); }")
        page.wait_for_timeout(6000)  # the viewer loads the file and renders
        node = page.evaluate("() => { const n = app.graph._nodes.find(n => n.type === 'Preview3D');"
                             " const w = (n.widgets || []).find(w => w.name === 'model_file');"
                             " const ds = app.canvas.ds, r = app.canvas.canvas.getBoundingClientRect();"
                             " return {file: w.value, box: [(n.pos[0] + ds.offset[0]) * ds.scale + r.left,"
                             " (n.pos[1] + ds.offset[1]) * ds.scale + r.top, n.size[0] * ds.scale,"
                             " n.size[1] * ds.scale]}; }")
        x, y, w, h = node["box"]
        page.screenshot(path=str(out / f"preview 3d after {file_format}.png"),
                        clip={"x": max(x - 10, 0), "y": max(y - 40, 0), "width": w + 20, "height": h + 50})
        print(json.dumps({"preview_3d": file_format, "shows": node["file"]}))
        if not str(node["file"]).endswith(".glb"):  # 0.27 shows a copy of it under a name of its own
            problems.append(f"Preview 3D after {file_format} shows {node['file']}, not the GLB preview")
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
    parser.add_argument("--preview-3d", action="store_true", help="also run Save Mesh as STL and 3MF into Preview "
                        "3D and screenshot the viewer (the object should stand upright, in colour)")
    parser.add_argument("--failed-download", action="store_true", help="also press the loader's Download checkpoint "
                        "button and check the failure is told on the node (start the server with an unreachable "
                        "HF_ENDPOINT, e.g. http://127.0.0.1:9)")
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
        if args.preview_3d:
            problems = check_preview_3d(page, version, args.out)
            print(json.dumps({"preview_3d_problems": problems}))
            failed |= bool(problems)
        if args.failed_download:
            problems = check_failed_download(page, args.out)
            print(json.dumps({"failed_download": problems}))
            failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
