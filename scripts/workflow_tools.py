"""Building, converting and checking ComfyUI workflows without a running ComfyUI.

- ``node_definitions(host)``: /object_info-style definitions of this pack's nodes (from
  their schemas) and of the stock nodes the workflows use, as recorded from each tested
  ComfyUI (``tests/data/stock_nodes_<version>.json``, see ``record_stock_nodes.py``).
- ``build_ui(graph)``: a UI-format workflow (what the ComfyUI canvas saves and loads),
  with the nodes laid out in titled groups and the view on the start of the graph.
- ``ui_to_api(ui)``: its API-format twin (what ``POST /prompt`` takes).
- ``validate_ui(ui)``: every node type known, every link type-consistent, every widget
  value valid; ``overlaps(ui)``: node rectangles that intersect.
"""

from __future__ import annotations

import json
import sys
import types
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
#: The ComfyUI versions the pack is tested with; the last is the current one.
HOSTS = ("0.3.64", "0.27.0")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
#: Frontend-only nodes: in UI workflows, never sent to the server.
FRONTEND_ONLY = {"Note", "MarkdownNote"}
#: Combo inputs listing the user's files: any file name is valid.
FILE_COMBOS = {("LoadImage", "image"), ("CheckpointLoaderSimple", "ckpt_name"),
               ("SyncDreamerCheckpointLoader", "ckpt_name"), ("CLIPVisionLoader", "clip_name"),
               ("LoadBackgroundRemovalModel", "bg_removal_name")}
#: Nodes whose canvas widgets add a trailing value (the 3D viewer).
VIEWER_NODES = {"Preview3D"}


def stock_definitions(host: str = HOSTS[-1]) -> dict:
    data = json.loads((DATA / f"stock_nodes_{host}.json").read_text())
    data.pop("_comfyui_version", None)
    return data


def _ensure_host(stock: dict) -> None:
    """Outside ComfyUI, give our nodes the host pieces their schemas read: the test
    stand-ins (node schema, folders in a scratch directory) and the recorded
    sampler/scheduler lists."""
    sys.path.insert(0, str(ROOT / "tests"))
    import comfy_stubs

    try:
        import comfy_api.latest  # noqa: F401 - a real host (or the stand-ins) is importable
    except ImportError:
        comfy_stubs.install_api()
    if "comfy.samplers" not in sys.modules or not hasattr(sys.modules["comfy.samplers"], "SAMPLER_NAMES"):
        ksampler = stock["KSampler"]["input"]["required"]
        samplers = types.ModuleType("comfy.samplers")
        samplers.SAMPLER_NAMES = list(options_of(ksampler["sampler_name"]))
        samplers.SCHEDULER_NAMES = list(options_of(ksampler["scheduler"]))
        comfy = sys.modules.setdefault("comfy", types.ModuleType("comfy"))
        comfy.samplers = samplers
        sys.modules["comfy.samplers"] = samplers
    if "folder_paths" not in sys.modules:
        import tempfile

        sys.modules["folder_paths"] = comfy_stubs.make_folder_paths(Path(tempfile.mkdtemp(prefix="syncdreamer-")))


def pack_definitions(stock: dict | None = None, host_only_outputs: bool = False) -> dict:
    """/object_info entries of this pack's nodes, as the host derives them from their schemas.
    Templates are built without outputs only some hosts have (Save Mesh's File3D), so one
    file opens the same everywhere; ``host_only_outputs`` adds those the recorded host has."""
    stock = stock or stock_definitions()
    _ensure_host(stock)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import comfy_stubs

    from nodes import NODES

    io = sys.modules["comfy_api.latest"].io
    file_3d = host_only_outputs and "FILE_3D" in json.dumps(stock)  # the host's 3D nodes take FILE_3D
    with comfy_stubs.file_3d(io) if file_3d and getattr(io, "STAND_IN", False) else nullcontext():
        schemas = [cls.GET_SCHEMA() for cls in NODES]
    out = {}
    for schema in schemas:
        inputs: dict = {"required": {}}
        for item in schema.inputs:
            spec = item.as_dict()
            spec.pop("optional", None)
            inputs.setdefault("optional" if item.optional else "required", {})[item.id] = [str(item.io_type), spec]
        out[schema.node_id] = {
            "input": inputs,
            "input_order": {key: list(value) for key, value in inputs.items()},
            "output": [str(o.io_type) for o in schema.outputs],
            "output_name": [o.display_name or str(o.io_type) for o in schema.outputs],
            "output_node": bool(schema.is_output_node),
            "display_name": schema.display_name,
            "description": schema.description,
        }
    return out


def node_definitions(host: str = HOSTS[-1]) -> dict:
    stock = stock_definitions(host)
    return {**stock, **pack_definitions(stock)}


def _inputs(definition: dict) -> list[tuple[str, list, bool]]:
    """(name, spec, required) in declaration order."""
    out = []
    order = definition.get("input_order", {})
    for section in ("required", "optional"):
        specs = definition["input"].get(section, {})
        names = order.get(section) or list(specs)
        for name in names:
            if name in specs:
                out.append((name, specs[name], section == "required"))
    return out


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def is_combo(spec) -> bool:
    """A dropdown: a list of options (classic schema) or COMBO with "options" (node schema)."""
    return isinstance(spec[0], list) or spec[0] == "COMBO"


def options_of(spec) -> list:
    return spec[0] if isinstance(spec[0], list) else _options(spec).get("options", [])


def widget_kind(spec) -> str | None:
    """COMBO/INT/FLOAT/STRING/BOOLEAN for inputs shown as a widget, else None (a socket).
    A multi-type input (Preview3D's model_file in 0.27) names its widget in "widgetType"."""
    if is_combo(spec):
        return "COMBO"
    kind = _options(spec).get("widgetType", spec[0])
    return kind if kind in WIDGET_TYPES else None


def is_widget(spec) -> bool:
    return widget_kind(spec) is not None


def widget_default(spec):
    options = _options(spec)
    if is_combo(spec):
        choices = options_of(spec)
        return options.get("default", choices[0] if choices else "")
    return options.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[widget_kind(spec)])


def accepts(input_type: str, output_type: str) -> bool:
    """Whether an input of ``input_type`` takes a link of ``output_type``: equal, a wildcard,
    or one of a multi-type input's comma-separated types (e.g. Preview3D's model_file)."""
    if "*" in (input_type, output_type) or input_type == output_type:
        return True
    return output_type in input_type.split(",")


def _extra_after(node_type: str, name: str, spec) -> list:
    """Values the frontend stores after a widget's own value."""
    options = _options(spec)
    if options.get("control_after_generate") or (spec[0] == "INT" and name in ("seed", "noise_seed")):
        return ["fixed"]
    if options.get("image_upload"):
        return ["image"]
    return []


# ---------------------------------------------------------------- building

@dataclass
class Node:
    id: int
    type: str
    widgets: dict = field(default_factory=dict)
    title: str | None = None
    size: tuple[float, float] | None = None
    text: str | None = None  # for notes
    pos: tuple[float, float] = (0.0, 0.0)
    #: Model files the node names ({name, url, directory}): the frontend offers them for download.
    models: list[dict] | None = None


@dataclass
class Group:
    """Nodes in columns (each a top-to-bottom list) under one title."""

    title: str
    columns: list[list[Node]]
    color: str = "#3f789e"


@dataclass
class Graph:
    groups: list[Group]
    #: (from node id, output index, to node id, input name)
    links: list[tuple[int, int, int, str]]

    @property
    def nodes(self) -> list[Node]:
        return [n for g in self.groups for column in g.columns for n in column]


#: Sizes of nodes that show a picture or a viewer (the frontend lets them be any size).
VIEW_SIZES = {"LoadImage": (290, 320), "PreviewImage": (300, 320), "SaveImage": (300, 320), "Preview3D": (320, 320),
              "SaveAnimatedWEBP": (290, 300), "SaveGLB": (300, 320)}
#: Space between nodes: vertically it holds the next node's title bar.
GAP_X, GAP_Y = 20, 38
TITLE_HEIGHT = 30
# x, and y from the group's top to the first node: the group title, the badge the frontend
# draws above a node's title bar ("SyncDreamer", about 22 units), then the node's title bar
GROUP_PAD = (12, 86)
GROUP_GAP = 24
#: The window a template is opened in, and the share of it the frontend fits the graph into.
WINDOW = (1600, 900)
FIT_SHARE = 0.75
#: Below this zoom the frontend draws nodes without text (its level of detail: a minimum
#: font size of 8 px for 14 px node text).
READABLE_ZOOM = 8 / 14


def frontend_sizes() -> dict[str, tuple[int, int]]:
    """The size each tested frontend gives a new node of each type (the larger of them)."""
    sizes: dict[str, tuple[int, int]] = {}
    for path in sorted(DATA.glob("frontend_sizes_*.json")):
        for node_type, (w, h) in json.loads(path.read_text())["sizes"].items():
            old = sizes.get(node_type, (0, 0))
            sizes[node_type] = (max(old[0], w), max(old[1], h))
    return sizes


def estimate_size(node: Node, definition: dict | None = None) -> tuple[float, float]:
    """The node's size: its own, a picture node's chosen one, else the frontend's minimum."""
    if node.size:
        return node.size
    if node.type in VIEW_SIZES:
        width, height = VIEW_SIZES[node.type]
    else:
        sizes = frontend_sizes()
        if node.type not in sizes:
            raise KeyError(f"no recorded frontend size for {node.type}: run scripts/record_frontend_sizes.py")
        width, height = sizes[node.type]
    height += EXTRA_HEIGHT.get(node.type, 0)
    # Room for the whole title: the frontend cuts a title it cannot fit beside the node's
    # dot and icons (measured: 8.5 units a character of 14 px Inter, plus 72).
    title = node.title or (definition or {}).get("display_name") or node.type
    return max(width, TITLE_CHAR * len(title) + TITLE_ROOM), height


#: Height a node grows by after it loads: Load SyncDreamer Checkpoint shows a Download
#: checkpoint button (one widget row) while the checkpoint is missing.
EXTRA_HEIGHT = {"SyncDreamerCheckpointLoader": 26}
TITLE_CHAR, TITLE_ROOM = 8.5, 72

#: What the frontend's node bounds add around the nodes (measured: 20 units on each axis).
BOUNDS_MARGIN = 20


def fitted_zoom(width: float, height: float, window: tuple[int, int] = WINDOW) -> float:
    """The zoom the frontend opens a template at: it fits the nodes' bounding box into
    ``FIT_SHARE`` of the window (``LGraphCanvas.ds.fitToBounds``)."""
    width, height = width + BOUNDS_MARGIN, height + BOUNDS_MARGIN
    return FIT_SHARE * min(window[0] / max(width, 300), window[1] / max(height, 300))


def _columns(nodes: list[Node], count: int) -> list[list[Node]]:
    """``nodes`` in order, cut into ``count`` columns with the shortest tallest column."""
    heights = [n.size[1] for n in nodes]

    def cut(limit: float) -> list[list[Node]] | None:
        columns, height = [[]], 0.0
        for node, h in zip(nodes, heights, strict=True):
            if columns[-1] and height + GAP_Y + h > limit:
                columns.append([])
                height = 0.0
            height += h + (GAP_Y if len(columns[-1]) else 0)
            columns[-1].append(node)
        return columns if len(columns) <= count else None

    candidates = sorted({sum(heights[i:j]) + GAP_Y * (j - i - 1) for i in range(len(nodes))
                         for j in range(i + 1, len(nodes) + 1)})
    return next(c for c in (cut(limit) for limit in candidates) if c is not None)


def _extent(columns: list[list[Node]]) -> tuple[float, float]:
    width = sum(max(n.size[0] for n in column) for column in columns) + GAP_X * (len(columns) - 1)
    height = max(sum(n.size[1] for n in column) + GAP_Y * (len(column) - 1) for column in columns)
    return width + 2 * GROUP_PAD[0], height + GROUP_PAD[1] + GROUP_PAD[0]


def _arrangements(group: Group) -> list[list[list[Node]]]:
    """Ways to stand a group's nodes (in reading order) in 1..n columns, the author's first."""
    nodes = [n for column in group.columns for n in column]
    found = [group.columns] + [_columns(nodes, k) for k in range(1, len(nodes) + 1)]
    unique, seen = [], set()
    for columns in found:
        key = tuple(len(c) for c in columns)
        if key not in seen:
            seen.add(key)
            unique.append(columns)
    return unique


#: Screen areas (in the 1600x900 window) the frontend covers when a template opens with a
#: model missing, at the top right: ComfyUI 0.27's error box (frontend 1.45.20), then frontend
#: 1.58.1's "is missing" notice, wider and lower. A layout keeps its groups out of both when it
#: can do so at a readable zoom, and out of the first at least.
KEEP_CLEAR = ((1265, 85, 1600, 262), (1174, 85, 1600, 215))
#: A group's title as the frontend draws it: 24 px Arial (at most 13 units a character)
#: plus a margin of one font size, on a band 1.4 font sizes high.
GROUP_FONT = 24
GROUP_TITLE_CHAR = 13
#: Where LiteGraph puts a node's sockets: outputs and linkable inputs in 20-unit rows, the
#: widgets below them in 24-unit rows (measured in both frontends).
SLOT_ROW, SLOT_FIRST, WIDGET_ROW, WIDGET_FIRST = 20, 14, 24, 16


@dataclass
class _Placed:
    """A group at its place: its columns, its top-left corner and its size."""

    index: int
    columns: list[list[Node]]
    left: float
    top: float
    width: float
    height: float


def _pareto(members: list[int], options: list, across: int) -> list[tuple[float, float, list]]:
    """Pareto-best (width, height, choice) of groups side by side (``across`` 0, a row) or
    stacked (1): for each cap on the axis they share (a row's height, a stack's width), every
    group takes its arrangement smallest across under the cap."""
    along = 1 - across
    found = []
    for cap in sorted({e[along] for i in members for _, e in options[i]}):
        choice = []
        for i in members:
            fitting = [o for o in options[i] if o[1][along] <= cap]
            if not fitting:
                break
            choice.append((i, min(fitting, key=lambda o: (o[1][across], o[1][along]))))
        else:
            sizes = [o[1] for _, o in choice]
            spread = sum(e[across] for e in sizes) + GROUP_GAP * (len(members) - 1)
            shared = max(e[along] for e in sizes)
            extent = (spread, shared) if across == 0 else (shared, spread)
            found.append((*extent, [(i, o[0]) for i, o in choice]))
    return [f for f in found if not any(g[0] <= f[0] and g[1] <= f[1] and g != f for g in found)]


def _splits(count: int):
    """Every way to cut groups 0..count-1, in order, into consecutive runs."""
    for mask in range(1 << (count - 1)):
        runs, current = [], [0]
        for i in range(1, count):
            if mask >> (i - 1) & 1:
                runs.append(current)
                current = []
            current.append(i)
        yield [*runs, current]


def _candidates(groups: list[Group]):
    """(zoom, placed groups) of every layout: groups in reading order, either in rows (left
    to right, rows top to bottom) or in stacks (top to bottom, stacks left to right), each
    row or stack aligned to its start or its end (the first group always at the top left)."""
    import itertools

    options = [[(columns, _extent(columns)) for columns in _arrangements(g)] for g in groups]
    for runs in _splits(len(groups)):
        for across in (0, 1):
            if across == 1 and len(runs) == 1:
                continue  # one stack: the same as one group per row
            for combination in itertools.product(*(_pareto(run, options, across) for run in runs)):
                if across == 0:
                    width = max(c[0] for c in combination)
                    height = sum(c[1] for c in combination) + GROUP_GAP * (len(runs) - 1)
                else:
                    width = sum(c[0] for c in combination) + GROUP_GAP * (len(runs) - 1)
                    height = max(c[1] for c in combination)
                zoom = _nodes_zoom(width, height)
                for ends in itertools.product((False, True), repeat=len(runs)):
                    placed = _place_runs(combination, across, ends)
                    if placed is not None:
                        yield zoom, placed


def _nodes_zoom(width: float, height: float) -> float:
    """The zoom the frontend fits groups spanning width x height at: it fits the nodes, which
    stand inside the outer groups' padding (the first group's title above them)."""
    return fitted_zoom(width - 2 * GROUP_PAD[0], height - (GROUP_PAD[1] - TITLE_HEIGHT) - GROUP_PAD[0])


def _place_runs(combination, across: int, ends: tuple[bool, ...]) -> list[_Placed] | None:
    """Groups placed run by run; ``ends`` aligns a run's groups to its bottom (rows) or its
    stack to the bottom of the tallest (stacks). None where aligning changes nothing."""
    placed, start = [], 0.0
    full = max(c[1] for c in combination) if across == 1 else 0.0
    for (run_width, run_height, choice), to_end in zip(combination, ends, strict=True):
        shift_any = False
        offset = 0.0
        for i, columns in choice:
            width, height = _extent(columns)
            if across == 0:
                top = start + (run_height - height if to_end and i != 0 else 0.0)
                shift_any |= top != start
                placed.append(_Placed(i, columns, offset, top, width, height))
                offset += width + GROUP_GAP
            else:
                drop = full - run_height if to_end and choice[0][0] != 0 else 0.0
                shift_any |= drop > 0
                placed.append(_Placed(i, columns, start, offset + drop, width, height))
                offset += height + GROUP_GAP
        if to_end and not shift_any:
            return None
        start += (run_height if across == 0 else run_width) + GROUP_GAP
    return placed


def _place_nodes(placed: list[_Placed]) -> None:
    for box in placed:
        column_x = box.left + GROUP_PAD[0]
        for column in box.columns:
            y = box.top + GROUP_PAD[1]
            for node in column:
                node.pos = (column_x, y)
                y += node.size[1] + GAP_Y
            column_x += max(n.size[0] for n in column) + GAP_X


def title_band(title: str, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The part of a group (x0, y0, x1, y1) its title is drawn on."""
    x0, y0, x1, _ = box
    return (x0, y0, x0 + min(x1 - x0, GROUP_TITLE_CHAR * len(title) + GROUP_FONT), y0 + GROUP_FONT * 1.4)


def slot_positions(node: Node, definition: dict) -> tuple[dict[str, tuple[float, float]], list[tuple[float, float]]]:
    """Where the frontend draws the node's input sockets (by name) and outputs, relative to
    its position: linkable inputs and outputs in rows from the top, a widget's socket on the
    widget's own row below them."""
    sockets = [name for name, spec, _ in _inputs(definition) if not is_widget(spec)]
    outputs = [(node.size[0] - 9, SLOT_FIRST + SLOT_ROW * j) for j in range(len(definition["output"]))]
    inputs = {name: (10.0, SLOT_FIRST + SLOT_ROW * k) for k, name in enumerate(sockets)}
    row = WIDGET_FIRST + SLOT_ROW * max(len(sockets), len(outputs))
    for name, spec, _ in _inputs(definition):
        if is_widget(spec):
            inputs[name] = (10.0, row)
            row += WIDGET_ROW * (2 if "fixed" in _extra_after(node.type, name, spec) else 1)  # + control_after_generate
    return inputs, outputs


def _wire(p, q, samples: int = 64):
    """The spline LiteGraph draws from output ``p`` to input ``q``: its control points a
    quarter of the distance out along x."""
    reach = 0.25 * float(np.hypot(q[0] - p[0], q[1] - p[1]))
    c1, c2 = (p[0] + reach, p[1]), (q[0] - reach, q[1])
    t = np.linspace(0.0, 1.0, samples + 1)[:, None]
    u = 1 - t
    return u ** 3 * np.array(p) + 3 * u * u * t * np.array(c1) + 3 * u * t * t * np.array(c2) + t ** 3 * np.array(q)


def layout_problems(groups: list[tuple[str, tuple]], nodes: list[Node], links: list, definitions: dict) -> list[str]:
    """What a user would see wrong once the frontend has opened the layout: a wire over a
    group's title, a KEEP_CLEAR area over a group."""
    by_id = {n.id: n for n in nodes}
    bands = [(title, title_band(title, box)) for title, box in groups]
    problems = []
    slots = {n.id: slot_positions(n, definitions[n.type]) for n in nodes if n.type not in FRONTEND_ONLY}
    for src, slot, dst, name in links:
        a, b = by_id[src], by_id[dst]
        out, inp = slots[src][1][slot], slots[dst][0][name]
        curve = _wire((a.pos[0] + out[0], a.pos[1] + out[1]), (b.pos[0] + inp[0], b.pos[1] + inp[1]))
        for title, (x0, y0, x1, y1) in bands:
            inside = ((curve[:, 0] > x0 - 1) & (curve[:, 0] < x1 + 1) & (curve[:, 1] > y0 - 1) & (curve[:, 1] < y1 + 1))
            if inside.any():
                problems.append(f"wire {a.title or a.type} -> {b.title or b.type} over group {title!r}")
    x0, y0, x1, y1 = bounds(node_box(n.pos, n.size) for n in nodes)
    zoom = fitted_zoom(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for title, (gx0, gy0, gx1, gy1) in groups:
        screen = ((gx0 - cx) * zoom + WINDOW[0] / 2, (gy0 - cy) * zoom + WINDOW[1] / 2,
                  (gx1 - cx) * zoom + WINDOW[0] / 2, (gy1 - cy) * zoom + WINDOW[1] / 2)
        for area in KEEP_CLEAR:
            if screen[0] < area[2] and area[0] < screen[2] and screen[1] < area[3] and area[1] < screen[3]:
                problems.append(f"group {title!r} under the notice at {area}")
    return problems


def ui_layout_problems(ui: dict, definitions: dict) -> list[str]:
    """``layout_problems`` of a UI workflow as saved."""
    nodes = [Node(n["id"], n["type"], title=n.get("title"), size=tuple(n["size"]), pos=tuple(n["pos"]))
             for n in ui["nodes"]]
    by_id = {n["id"]: n for n in ui["nodes"]}
    links = [(src, slot, dst, by_id[dst]["inputs"][dst_slot]["name"]) for _, src, slot, dst, dst_slot, _ in ui["links"]]
    groups = [(g["title"], (g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
                            g["bounding"][1] + g["bounding"][3])) for g in ui["groups"]]
    return layout_problems(groups, nodes, links, definitions)


#: How many of the best-fitting layouts are checked for wires and notices before settling.
LAYOUTS_CHECKED = 4000


def _plan(graph: Graph, definitions: dict) -> list[_Placed]:
    """The layout the frontend fits at the largest zoom among those with nothing over a group
    title and no group under a KEEP_CLEAR area; failing that, the readable one with the fewest
    such problems (the largest zoom first)."""
    found = sorted(_candidates(graph.groups), key=lambda c: -c[0])
    best, best_key = found[0][1], None
    for zoom, placed in found[:LAYOUTS_CHECKED]:
        if zoom < READABLE_ZOOM + 0.001:
            break
        problems = _problems(graph, placed, definitions)
        key = (len(problems), -zoom)
        if best_key is None or key < best_key:
            best, best_key = placed, key
        if not problems:
            break
    return best


def _size_nodes(graph: Graph, definitions: dict) -> None:
    for node in graph.nodes:
        node.size = estimate_size(node, definitions.get(node.type))


def _problems(graph: Graph, placed: list[_Placed], definitions: dict) -> list[str]:
    _place_nodes(placed)
    groups = [(graph.groups[b.index].title, (b.left, b.top, b.left + b.width, b.top + b.height)) for b in placed]
    return layout_problems(groups, graph.nodes, graph.links, definitions)


def layout(graph: Graph, definitions: dict) -> list[dict]:
    """Groups read left to right and top to bottom: the arrangement of the groups and of each
    group's columns is chosen so the whole graph fits the window at the largest zoom with
    nothing over a group's title (nodes keep their reading order). Returns the UI group
    entries."""
    _size_nodes(graph, definitions)
    placed = _plan(graph, definitions)
    _place_nodes(placed)
    entries = []
    for box in sorted(placed, key=lambda b: b.index):
        group = graph.groups[box.index]
        group.columns = box.columns
        entries.append({"title": group.title, "bounding": [box.left, box.top, box.width, box.height],
                        "color": group.color, "font_size": GROUP_FONT, "flags": {}})
    return entries


def bounds(boxes) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around boxes."""
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def node_bounds(ui: dict) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around every node, title bars included: what the frontend fits."""
    return bounds(rectangles(ui).values())


def template_zoom(ui: dict) -> float:
    x0, y0, x1, y1 = node_bounds(ui)
    return fitted_zoom(x1 - x0, y1 - y0)


def build_ui(graph: Graph, definitions: dict) -> dict:
    ui_groups = layout(graph, definitions)
    nodes = graph.nodes
    by_id = {n.id: n for n in nodes}
    link_rows, node_links_out, node_links_in = [], {}, {}
    for index, (src, slot, dst, name) in enumerate(graph.links, start=1):
        out_type = definitions[by_id[src].type]["output"][slot]
        if not any(n == name for n, _, _ in _inputs(definitions[by_id[dst].type])):
            raise ValueError(f"{by_id[dst].type} has no input {name!r}")
        link_rows.append([index, src, slot, dst, name, out_type])
        node_links_out.setdefault((src, slot), []).append(index)
        node_links_in[(dst, name)] = index

    order = _topological_order(graph)
    ui_nodes = []
    for node in nodes:
        if node.type in FRONTEND_ONLY:
            ui_nodes.append({"id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size),
                             "flags": {}, "order": len(order) + node.id, "mode": 0, "inputs": [], "outputs": [],
                             "properties": {}, "widgets_values": [node.text or ""], "color": "#432", "bgcolor": "#653",
                             **({"title": node.title} if node.title else {})})
            continue
        definition = definitions[node.type]
        inputs, values = [], []
        for name, spec, required in _inputs(definition):
            link = node_links_in.get((node.id, name))
            if is_widget(spec):
                values.append(node.widgets.get(name, widget_default(spec)))
                values.extend(_extra_after(node.type, name, spec))
                if link is not None:
                    inputs.append({"name": name, "type": widget_kind(spec) if is_combo(spec) else spec[0],
                                   "widget": {"name": name}, "link": link})
            else:
                entry = {"name": name, "type": spec[0], "link": link}
                if not required:
                    entry["shape"] = 7
                inputs.append(entry)
        if node.type in VIEWER_NODES:
            values.append("")
        unknown = set(node.widgets) - {n for n, s, _ in _inputs(definition) if is_widget(s)}
        if unknown:
            raise ValueError(f"{node.type} has no widgets {sorted(unknown)}")
        outputs = [{"name": definition["output_name"][i], "type": t, "slot_index": i,
                    "links": node_links_out.get((node.id, i), [])} for i, t in enumerate(definition["output"])]
        ui_nodes.append({
            "id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size),
            "flags": {}, "order": order[node.id], "mode": 0, "inputs": inputs, "outputs": outputs,
            "properties": {"Node name for S&R": node.type, **({"models": node.models} if node.models else {})},
            "widgets_values": values,
            **({"title": node.title} if node.title else {}),
        })
    for row in link_rows:
        dst_node = next(n for n in ui_nodes if n["id"] == row[3])
        row[4] = next(i for i, entry in enumerate(dst_node["inputs"]) if entry["name"] == row[4])
    # The view a template opens with where the frontend keeps saved views: the whole graph.
    ui = {"nodes": ui_nodes}
    x0, y0, x1, y1 = node_bounds(ui)
    scale = fitted_zoom(x1 - x0, y1 - y0)
    view = {"scale": round(scale, 4),
            "offset": [round(-x0 - (x1 - x0) / 2 + WINDOW[0] / scale / 2, 1),
                       round(-y0 - (y1 - y0) / 2 + WINDOW[1] / scale / 2, 1)]}
    return {"last_node_id": max(n["id"] for n in ui_nodes), "last_link_id": len(link_rows), "nodes": ui_nodes,
            "links": link_rows, "groups": ui_groups, "config": {}, "extra": {"ds": view}, "version": 0.4}


def _topological_order(graph: Graph) -> dict[int, int]:
    working = [n for n in graph.nodes if n.type not in FRONTEND_ONLY]
    pending = {n.id for n in working}
    deps = {n.id: {src for src, _, dst, _ in graph.links if dst == n.id} for n in working}
    order, rank = {}, 0
    while pending:
        ready = sorted(i for i in pending if not (deps[i] & pending))
        if not ready:
            raise ValueError("the graph has a cycle")
        for i in ready:
            order[i] = rank
            rank += 1
        pending -= set(ready)
    return order


# ---------------------------------------------------------------- converting

def widget_values_by_name(node: dict, definition: dict) -> dict:
    values = list(node.get("widgets_values", []))
    out = {}
    for name, spec, _ in _inputs(definition):
        if not is_widget(spec):
            continue
        if not values:
            break
        out[name] = values.pop(0)
        for _ in _extra_after(node["type"], name, spec):
            if values:
                values.pop(0)
    return out


def ui_to_api(ui: dict, definitions: dict) -> dict:
    links = {row[0]: row for row in ui["links"]}
    api = {}
    for node in sorted(ui["nodes"], key=lambda n: n["id"]):
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):
            continue
        definition = definitions[node["type"]]
        inputs = widget_values_by_name(node, definition)
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                row = links[entry["link"]]
                inputs[entry["name"]] = [str(row[1]), row[2]]
        entry = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        api[str(node["id"])] = entry
    return api


# ---------------------------------------------------------------- checking

def _value_problem(node_type: str, name: str, spec, value) -> str | None:
    kind = widget_kind(spec)
    options = _options(spec)
    if kind == "COMBO":
        if (node_type, name) in FILE_COMBOS:
            return None if isinstance(value, str) and value else f"{name}: expected a file name, got {value!r}"
        return None if value in options_of(spec) else f"{name}: {value!r} is not one of the options"
    if kind == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name}: expected an integer, got {value!r}"
    elif kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name}: expected a number, got {value!r}"
    elif kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{name}: expected true/false, got {value!r}"
    elif kind == "STRING":
        return None if isinstance(value, str) else f"{name}: expected text, got {value!r}"
    if kind in ("INT", "FLOAT"):
        if "min" in options and value < options["min"]:
            return f"{name}: {value} is below the minimum {options['min']}"
        if "max" in options and value > options["max"]:
            return f"{name}: {value} is above the maximum {options['max']}"
    return None


def validate_ui(ui: dict, definitions: dict) -> list[str]:
    problems = []
    nodes = {n["id"]: n for n in ui["nodes"]}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        if node["type"] not in definitions:
            problems.append(f"node {node['id']}: unknown node type {node['type']}")
            continue
        definition = definitions[node["type"]]
        declared = {name: (spec, required) for name, spec, required in _inputs(definition)}
        connected = {e["name"] for e in node.get("inputs", []) if e.get("link") is not None}
        for name, (spec, required) in declared.items():
            if required and not is_widget(spec) and name not in connected:
                problems.append(f"node {node['id']} ({node['type']}): required input {name} is not connected")
        for name, value in widget_values_by_name(node, definition).items():
            problem = _value_problem(node["type"], name, declared[name][0], value)
            if problem and name not in connected:
                problems.append(f"node {node['id']} ({node['type']}): {problem}")
        for entry in node.get("inputs", []):
            # An unconnected slot another version declares is harmless; a link to it is not.
            if entry["name"] not in declared and entry.get("link") is not None:
                problems.append(f"node {node['id']} ({node['type']}): no input named {entry['name']}")
    for link_id, src, slot, dst, dst_slot, link_type in ui["links"]:
        if src not in nodes or dst not in nodes:
            problems.append(f"link {link_id}: missing node")
            continue
        src_def = definitions.get(nodes[src]["type"])
        dst_node = nodes[dst]
        dst_def = definitions.get(dst_node["type"])
        if not src_def or not dst_def:
            continue
        out_type = src_def["output"][slot] if slot < len(src_def["output"]) else None
        entry = dst_node["inputs"][dst_slot] if dst_slot < len(dst_node["inputs"]) else None
        if entry is None or entry.get("link") != link_id:
            problems.append(f"link {link_id}: target slot {dst_slot} of node {dst} does not hold it")
            continue
        spec = dict((n, s) for n, s, _ in _inputs(dst_def))[entry["name"]]
        in_type = "COMBO" if is_combo(spec) else spec[0]
        if out_type != link_type or not accepts(in_type, out_type):
            problems.append(f"link {link_id}: {nodes[src]['type']} output {out_type} -> "
                            f"{dst_node['type']}.{entry['name']} ({in_type}), link says {link_type}")
    return problems


def node_box(pos, size) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a node, the title bar (drawn above ``pos``) included."""
    return (pos[0], pos[1] - TITLE_HEIGHT, pos[0] + size[0], pos[1] + size[1])


def rectangles(ui: dict) -> dict[int, tuple[float, float, float, float]]:
    """Node id -> its node_box."""
    return {n["id"]: node_box(n["pos"], n["size"]) for n in ui["nodes"]}


def overlaps(ui: dict, boxes: dict | None = None) -> list[tuple[int, int]]:
    """Pairs of nodes whose rectangles intersect."""
    boxes = boxes or rectangles(ui)
    ids = sorted(boxes)
    found = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes[a], boxes[b]
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                found.append((a, b))
    return found
