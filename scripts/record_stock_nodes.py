"""Records the stock node definitions the shipped workflows use, from a running ComfyUI,
so workflows can be checked without a host:

    python scripts/record_stock_nodes.py --server 127.0.0.1:8188

writes tests/data/stock_nodes_<version>.json.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Stock nodes the workflows use (frontend-only notes aside).
STOCK_TYPES = ("LoadImage", "VAEDecode", "VAEEncode", "PreviewImage", "SaveImage", "Preview3D", "SaveGLB",
               "SaveAnimatedWEBP", "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
               "LoadBackgroundRemovalModel", "RemoveBackground", "SaveLatent", "SamplerCustomAdvanced",
               "RandomNoise", "BasicScheduler")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8188")
    args = parser.parse_args()
    with urllib.request.urlopen(f"http://{args.server}/object_info", timeout=60) as response:
        info = json.load(response)
    with urllib.request.urlopen(f"http://{args.server}/system_stats", timeout=60) as response:
        version = json.load(response)["system"]["comfyui_version"]
    data = {"_comfyui_version": version}
    for name in STOCK_TYPES:
        if name in info:
            entry = info[name]
            kept = ("input", "input_order", "output", "output_name", "output_node", "display_name")
            data[name] = {key: entry[key] for key in kept if key in entry}
    out = ROOT / "tests" / "data" / f"stock_nodes_{version}.json"
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(data) - 1} node types")


if __name__ == "__main__":
    main()
