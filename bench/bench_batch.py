"""Batch throughput: the Ray Data job against a plain sequential loop over the same items.

    python bench/bench_batch.py                     # tiny network, 8 items, this machine
    python bench/bench_batch.py --items 16 --steps 5

With the tiny random network (its VAE draws a square, so there is an object to rank,
carve and bake) on the bundled example images, prints one JSON line per run and a table:

- sequential: prepare -> sample -> reconstruct, one item after the other, in this process
  (the same stage functions the Ray job runs);
- Ray's start-up (a local Ray, as the batch command starts it);
- the Ray job with 1 and with 2 sampler actors (the CPU's cores split between them):
  sampling of one item overlaps reconstruction of the previous one.

Nothing is asserted: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_inputs(folder: Path, count: int) -> list:
    from PIL import Image

    from syncdreamer_core.batch.items import BatchItem
    from syncdreamer_core.files import EXAMPLES

    teapot = Image.open(EXAMPLES / "teapot.png")
    items = []
    for i in range(count):
        path = folder / f"object-{i:02d}.png"
        teapot.rotate(i * 7, expand=True).save(path)  # distinct files, distinct keys
        items.append(BatchItem(str(path), elevation=0.0))
    return items


def settings_for(checkpoint: Path, args):
    from syncdreamer_core.batch.items import BatchSettings

    return BatchSettings(checkpoint=str(checkpoint), steps=args.steps, candidates=args.candidates,
                         resolution=args.resolution, max_faces=10000, texture=args.texture)


def sequential(items, settings, output: Path) -> float:
    from syncdreamer_core.batch import work
    from syncdreamer_core.batch.engine import plan

    rows, _ = plan(items, settings, output)
    started = time.perf_counter()
    sampler = work.Sampler(settings)
    for row in rows:
        work.finish(sampler(work.prepare(row)), str(output))
    return time.perf_counter() - started


def main() -> None:
    import ray
    import torch
    from safetensors.torch import save_file

    from syncdreamer_core.batch.engine import EngineOptions, run_batch
    from syncdreamer_core.network.config import SyncDreamerConfig
    from syncdreamer_core.weights.official_layout import paint_square_decoder, random_checkpoint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--texture", type=int, default=512)
    args = parser.parse_args()

    work_dir = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        checkpoint = work_dir / "tiny-square.safetensors"
        save_file(paint_square_decoder(random_checkpoint(SyncDreamerConfig.tiny(), seed=3)), str(checkpoint))
        (work_dir / "inputs").mkdir()
        items = make_inputs(work_dir / "inputs", args.items)
        settings = settings_for(checkpoint, args)
        rows = []

        seconds = sequential(items, settings, work_dir / "sequential")
        rows.append({"run": "sequential loop", "seconds": round(seconds, 1),
                     "objects_per_hour": round(args.items / seconds * 3600, 1)})
        print(json.dumps(rows[-1]), flush=True)

        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=512 * 2**20,
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        rows.append({"run": "ray start-up", "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(rows[-1]), flush=True)
        try:
            for actors in (1, 2):
                started = time.perf_counter()
                report = run_batch(items, settings, work_dir / f"ray-{actors}", EngineOptions(
                    sampler_actors=actors, progress=False))
                seconds = time.perf_counter() - started
                assert report.count("done") == args.items, report.summary()
                rows.append({"run": f"ray, {actors} sampler actor{'s' if actors > 1 else ''}",
                             "seconds": round(seconds, 1), "objects_per_hour": round(args.items / seconds * 3600, 1),
                             "stage_means_s": {k: round(v, 2) for k, v in report.stage_means().items()}})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    base = rows[0]["objects_per_hour"]
    print(f"\n{args.items} items, tiny network, {args.steps} steps, {args.candidates} candidate(s), "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")
    print("| run | seconds | objects per hour | vs sequential |\n| --- | --- | --- | --- |")
    for row in rows:
        speed = row.get("objects_per_hour")
        ratio = f"{speed / base:.2f}x" if speed else "-"
        print(f"| {row['run']} | {row['seconds']} | {speed if speed else '-'} | {ratio} |")


if __name__ == "__main__":
    main()
