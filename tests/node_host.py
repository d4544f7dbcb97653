"""The pack loaded into ComfyUI stand-ins (``comfy_stubs``) with a tiny checkpoint, for
the node tests: ``host`` is a fixture (conftest), ``run`` executes a node."""

from __future__ import annotations

import importlib.util
import sys

import comfy_stubs
from helpers import ROOT
from safetensors.torch import save_file


def load_pack(tmp, tiny_checkpoint, dtype: str = "fp32", device=None) -> dict:
    """``device``: ComfyUI's torch device (default: the CPU); model management moves the
    network there when it is loaded for sampling, as ComfyUI's does."""
    mm, folder_paths = comfy_stubs.install(tmp, device)
    spec = importlib.util.spec_from_file_location("ComfyUI_SyncDreamer", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["ComfyUI_SyncDreamer"] = pack
    spec.loader.exec_module(pack)
    save_file(tiny_checkpoint, str(tmp / "models" / "syncdreamer" / "tiny.safetensors"))
    nodes = {cls.GET_SCHEMA().node_id: cls for cls in sys.modules["ComfyUI_SyncDreamer.nodes"].NODES}
    state = {"pack": pack, "nodes": nodes, "mm": mm, "folder_paths": folder_paths, "tmp": tmp}
    state["loaded"] = run(state, "SyncDreamerCheckpointLoader", ckpt_name="tiny.safetensors", dtype=dtype).args
    return state


def run(host, node_id, **inputs):
    return host["nodes"][node_id].execute(**inputs)
