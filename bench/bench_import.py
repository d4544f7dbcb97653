"""What loading the pack costs ComfyUI at start-up: time and memory of importing it and
registering its nodes, measured inside a real host after the host's own modules.

    COMFYUI_ROOT=/path/to/ComfyUI $COMFYUI_ROOT/.venv/bin/python bench/bench_import.py

Prints one JSON line; "heavy_modules_loaded_by_the_pack" lists libraries the pack pulled in
that the host had not (it must be empty: diffusers, trimesh & co. load when a node runs).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("diffusers", "transformers", "trimesh", "xatlas", "pygltflib", "skimage", "kornia", "embreex", "scipy",
         "safetensors", "einops", "fast_simplification")


def main() -> None:
    host = Path(os.environ.get("COMFYUI_ROOT", "."))
    sys.path.insert(0, str(host))
    os.chdir(host)
    sys.argv = [str(host / "main.py"), "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import psutil

    import nodes  # noqa: F401 - the host's own modules, loaded before any custom node

    before = set(sys.modules)
    rss = psutil.Process().memory_info().rss
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("ComfyUI-SyncDreamer", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    spec.loader.exec_module(pack)
    imported = time.perf_counter() - started
    extension = asyncio.run(pack.comfy_entrypoint())
    for cls in asyncio.run(extension.get_node_list()):
        cls.GET_SCHEMA()
    registered = time.perf_counter() - started
    added = {name.split(".")[0] for name in set(sys.modules) - before}
    print(json.dumps({
        "comfyui": __import__("comfyui_version").__version__,
        "import_ms": round(imported * 1000, 1),
        "import_and_register_ms": round(registered * 1000, 1),
        "rss_added_mib": round((psutil.Process().memory_info().rss - rss) / 2**20, 1),
        "heavy_modules_loaded_by_the_pack": sorted(m for m in HEAVY if m in added),
    }))


if __name__ == "__main__":
    main()
