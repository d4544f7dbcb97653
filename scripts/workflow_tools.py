"""Building, converting and checking ComfyUI workflows without a running ComfyUI.

- ``node_definitions()``: object_info-style definitions of this pack's nodes (read from
  the node classes) and of the stock nodes the workflows use (``tests/data/stock_nodes.json``,
  recorded from ComfyUI's ``/object_info``).
- ``build_ui(graph)``: a UI-format workflow (what the ComfyUI canvas saves and loads).
- ``ui_to_api(ui)``: its API-format twin (what ``POST /prompt`` takes).
- ``validate_ui(ui)``: every node type known, every link type-consistent, every widget
  value valid; returns a list of problems.
- ``draw_diagram(ui, path)``: a thumbnail picture of the graph.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOCK_FILE = ROOT / "tests" / "data" / "stock_nodes.json"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
#: Frontend-only nodes: in UI workflows, never sent to the server.
FRONTEND_ONLY = {"Note", "MarkdownNote"}
#: Combo inputs listing the user's files: any file name is valid.
FILE_COMBOS = {("LoadImage", "image"), ("CheckpointLoaderSimple", "ckpt_name"),
               ("SyncDreamerCheckpointLoader", "ckpt_name"), ("CLIPVisionLoader", "clip_name")}
#: Nodes whose canvas widgets add a trailing value (the 3D viewer).
VIEWER_NODES = {"Preview3D", "SaveGLB"}


def stock_definitions() -> dict:
    data = json.loads(STOCK_FILE.read_text())
    data.pop("_comfyui_version", None)
    return data


def _ensure_host(stock: dict) -> None:
    """Outside ComfyUI, give our nodes the host pieces their schemas read: the node-schema
    stand-ins of the tests and the recorded sampler/scheduler lists."""
    try:
        import comfy_api.latest  # noqa: F401 - a real host (or the stand-ins) is importable
    except ImportError:
        sys.path.insert(0, str(ROOT / "tests"))
        import comfy_stubs

        comfy_stubs.install_api()
    if "comfy.samplers" not in sys.modules or not hasattr(sys.modules["comfy.samplers"], "SAMPLER_NAMES"):
        ksampler = stock["KSampler"]["input"]["required"]
        samplers = types.ModuleType("comfy.samplers")
        samplers.SAMPLER_NAMES = list(options_of(ksampler["sampler_name"]))
        samplers.SCHEDULER_NAMES = list(options_of(ksampler["scheduler"]))
        comfy = sys.modules.setdefault("comfy", types.ModuleType("comfy"))
        comfy.samplers = samplers
        sys.modules["comfy.samplers"] = samplers
    folder_paths = sys.modules.get("folder_paths") or types.ModuleType("folder_paths")
    if not hasattr(folder_paths, "get_filename_list"):
        folder_paths.get_filename_list = lambda name: []
    sys.modules["folder_paths"] = folder_paths


def pack_definitions(stock: dict | None = None) -> dict:
    """/object_info entries of this pack's nodes, as the host derives them from their schemas."""
    stock = stock or stock_definitions()
    _ensure_host(stock)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from nodes import NODES

    out = {}
    for cls in NODES:
        schema = cls.GET_SCHEMA()
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


def node_definitions() -> dict:
    stock = stock_definitions()
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


def is_combo(spec) -> bool:
    """A dropdown: a list of options (classic schema) or COMBO with "options" (node schema)."""
    return isinstance(spec[0], list) or spec[0] == "COMBO"


def options_of(spec) -> list:
    if isinstance(spec[0], list):
        return spec[0]
    return (spec[1] if len(spec) > 1 else {}).get("options", [])


def is_widget(spec) -> bool:
    return is_combo(spec) or spec[0] in WIDGET_TYPES


def widget_default(spec):
    options = spec[1] if len(spec) > 1 else {}
    if is_combo(spec):
        choices = options_of(spec)
        return options.get("default", choices[0] if choices else "")
    return options.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[spec[0]])


def accepts(input_type: str, output_type: str) -> bool:
    """Whether an input of ``input_type`` takes a link of ``output_type``: equal, a wildcard,
    or one of a multi-type input's comma-separated types (e.g. Preview3D's model_file)."""
    if "*" in (input_type, output_type) or input_type == output_type:
        return True
    return output_type in input_type.split(",")


def _extra_after(node_type: str, name: str, spec) -> list:
    """Values the frontend stores after a widget's own value."""
    options = spec[1] if len(spec) > 1 else {}
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
    pos: tuple[float, float]
    widgets: dict = field(default_factory=dict)
    title: str | None = None
    size: tuple[float, float] | None = None
    text: str | None = None  # for notes


@dataclass
class Graph:
    nodes: list[Node]
    #: (from node id, output index, to node id, input name)
    links: list[tuple[int, int, int, str]]
    notes: list[Node] = field(default_factory=list)


def build_ui(graph: Graph, definitions: dict) -> dict:
    link_rows, node_links_out, node_links_in = [], {}, {}
    for index, (src, slot, dst, name) in enumerate(graph.links, start=1):
        src_node = next(n for n in graph.nodes if n.id == src)
        out_type = definitions[src_node.type]["output"][slot]
        dst_node = next(n for n in graph.nodes if n.id == dst)
        dst_position = [i for i, (n, _, _) in enumerate(_inputs(definitions[dst_node.type])) if n == name]
        if not dst_position:
            raise ValueError(f"{dst_node.type} has no input {name!r}")
        link_rows.append([index, src, slot, dst, name, out_type])
        node_links_out.setdefault((src, slot), []).append(index)
        node_links_in[(dst, name)] = index

    order = _topological_order(graph)
    ui_nodes = []
    for node in graph.nodes:
        definition = definitions[node.type]
        inputs, values = [], []
        for name, spec, required in _inputs(definition):
            link = node_links_in.get((node.id, name))
            if is_widget(spec):
                value = node.widgets.get(name, widget_default(spec))
                values.append(value)
                values.extend(_extra_after(node.type, name, spec))
                if link is not None:
                    inputs.append({"name": name, "type": "COMBO" if is_combo(spec) else spec[0],
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
        # link rows store the input slot index, not the name
        widget_count = sum(1 for _, s, _ in _inputs(definition) if is_widget(s))
        ui_nodes.append({
            "id": node.id, "type": node.type, "pos": list(node.pos),
            "size": list(node.size or (320, 60 + 26 * (widget_count + max(len(inputs), len(outputs))))),
            "flags": {}, "order": order[node.id], "mode": 0, "inputs": inputs, "outputs": outputs,
            "properties": {"Node name for S&R": node.type}, "widgets_values": values,
            **({"title": node.title} if node.title else {}),
        })
    for note in graph.notes:
        ui_nodes.append({"id": note.id, "type": "MarkdownNote", "pos": list(note.pos), "size": list(note.size or (360, 200)),
                         "flags": {}, "order": len(order) + note.id, "mode": 0, "inputs": [], "outputs": [],
                         "properties": {}, "widgets_values": [note.text or ""], "color": "#432", "bgcolor": "#653",
                         **({"title": note.title} if note.title else {})})
    for row in link_rows:
        dst_node = next(n for n in ui_nodes if n["id"] == row[3])
        row[4] = next(i for i, entry in enumerate(dst_node["inputs"]) if entry["name"] == row[4])
    all_ids = [n["id"] for n in ui_nodes]
    return {"last_node_id": max(all_ids), "last_link_id": len(link_rows), "nodes": ui_nodes, "links": link_rows,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.75, "offset": [0, 0]}}, "version": 0.4}


def _topological_order(graph: Graph) -> dict[int, int]:
    pending = {n.id for n in graph.nodes}
    deps = {n.id: {src for src, _, dst, _ in graph.links if dst == n.id} for n in graph.nodes}
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
    kind = spec[0]
    options = spec[1] if len(spec) > 1 else {}
    if is_combo(spec):
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
            if entry["name"] not in declared:
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


# ---------------------------------------------------------------- thumbnails

def draw_diagram(ui: dict, path: Path, width: int = 960, height: int = 540) -> None:
    """A picture of the graph: node boxes where the canvas puts them, links between them."""
    from PIL import Image, ImageDraw

    nodes = {n["id"]: n for n in ui["nodes"]}
    xs = [n["pos"][0] for n in ui["nodes"]] + [n["pos"][0] + n["size"][0] for n in ui["nodes"]]
    ys = [n["pos"][1] for n in ui["nodes"]] + [n["pos"][1] + n["size"][1] for n in ui["nodes"]]
    scale = min((width - 40) / (max(xs) - min(xs)), (height - 40) / (max(ys) - min(ys)))

    def at(x, y):
        return 20 + (x - min(xs)) * scale, 20 + (y - min(ys)) * scale

    from PIL import ImageFont

    from nodes import NODE_DISPLAY_NAME_MAPPINGS

    titles = {k: v.replace("SyncDreamer ", "") for k, v in NODE_DISPLAY_NAME_MAPPINGS.items()}

    image = Image.new("RGB", (width, height), (32, 34, 38))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    for _, src, _, dst, _, link_type in ui["links"]:
        a, b = nodes[src], nodes[dst]
        start = at(a["pos"][0] + a["size"][0], a["pos"][1] + 20)
        end = at(b["pos"][0], b["pos"][1] + 20)
        color = {"IMAGE": (100, 180, 255), "LATENT": (255, 150, 200), "MESH": (120, 220, 120),
                 "FLOAT": (200, 200, 120)}.get(link_type, (170, 170, 170))
        draw.line([start, end], fill=color, width=2)
    for node in ui["nodes"]:
        x0, y0 = at(*node["pos"])
        x1, y1 = at(node["pos"][0] + node["size"][0], node["pos"][1] + node["size"][1])
        ours = node["type"].startswith("SyncDreamer")
        fill = (60, 70, 110) if ours else ((90, 70, 40) if node["type"] in FRONTEND_ONLY else (58, 60, 66))
        draw.rounded_rectangle([x0, y0, x1, y1], radius=6, fill=fill, outline=(150, 150, 160))
        label = (node.get("title") or titles.get(node["type"], node["type"])).replace(" (", "\n(")
        draw.multiline_text((x0 + 6, y0 + 5), label, fill=(235, 235, 235), font=font)
    image.save(path, quality=90)
