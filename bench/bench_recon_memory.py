"""Time and peak memory of Reconstruct Mesh for every resolution its widget offers.

    python bench/bench_recon_memory.py                        # fast path, 64..320
    python bench/bench_recon_memory.py --method quality --resolutions 320 --quality-resolution 256 --steps 100

Each resolution runs in a fresh process (peak RSS is per process) on the bundled chicken
views, as the node runs it: reconstruct, then the asset (30000 faces, 1024^2 texture).
Prints one JSON line per resolution and a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker(method: str, resolution: int, texture: int, steps: int, quality_resolution: int) -> dict:
    import numpy as np

    from syncdreamer_core.files import EXAMPLES, load_views
    from syncdreamer_core.recon import make_asset, reconstruct_fast, reconstruct_quality

    views = load_views(EXAMPLES / "chicken-views.png").astype(np.float32) / 255
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    started = time.perf_counter()
    if method == "fast":
        result = reconstruct_fast(views, resolution=resolution, return_details=True)
    else:
        result = reconstruct_quality(views, steps=steps, resolution=quality_resolution,
                                     mesh_resolution=max(resolution, quality_resolution), return_details=True)
    reconstructed = time.perf_counter() - started
    asset = make_asset(result, texture or None, 30000)
    return {"method": method, "resolution": resolution,
            **({"quality_resolution": quality_resolution, "steps": steps} if method == "quality" else {}),
            "reconstruct_s": round(reconstructed, 1),
            "total_s": round(time.perf_counter() - started, 1), "faces_before_decimation": len(result.mesh.faces),
            "faces": len(asset.faces), "peak_rss_GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "rss_before_GB": round(baseline, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("fast", "quality"), default="fast")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 192, 256, 320])
    parser.add_argument("--texture", type=int, default=1024, help="texture size (0: vertex colours)")
    parser.add_argument("--steps", type=int, default=800, help="quality optimisation steps")
    parser.add_argument("--quality-resolution", type=int, default=96, help="the quality method's SDF grid")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.method, args.worker, args.texture, args.steps, args.quality_resolution)))
        return
    rows = []
    for resolution in args.resolutions:
        command = [sys.executable, __file__, "--method", args.method, "--texture", str(args.texture),
                   "--steps", str(args.steps), "--quality-resolution", str(args.quality_resolution),
                   "--worker", str(resolution)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(output, flush=True)
        rows.append(json.loads(output))
    print("\n| resolution | reconstruct | with texture + decimation | peak memory |\n| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['resolution']} | {row['reconstruct_s']} s | {row['total_s']} s | {row['peak_rss_GB']} GB |")


if __name__ == "__main__":
    main()
