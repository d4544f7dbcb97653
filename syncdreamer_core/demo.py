"""``python -m syncdreamer_core demo``: the whole pipeline on bundled examples.

With the real checkpoint (``$SYNCDREAMER_CHECKPOINT`` or ComfyUI's
``models/syncdreamer``) it generates 16 views of the bundled teapot. Without it,
the same pipeline runs end to end on a small randomly initialised model, whose
views are untrained noise. The mesh part reconstructs the bundled real
SyncDreamer output (16 views of a chicken) and needs no checkpoint.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image

from . import defaults
from .files import EXAMPLES, find_checkpoint, missing_checkpoint_message, progress_bar, write_views

#: The authors' settings for the bundled teapot (testset_parameters.tsv).
TEAPOT = {"file": "teapot.png", "elevation": 0.0, "crop_size": 180}
#: Steps of the random stand-in model: its output is noise either way.
STAND_IN_STEPS = 10


def _pipeline(device: str):
    from .pipeline import SyncDreamerPipeline
    from .weights.checkpoint import load_checkpoint
    from .weights.official_layout import random_checkpoint

    checkpoint = find_checkpoint()
    if checkpoint is not None:
        print(f"using the checkpoint {checkpoint}")
        return SyncDreamerPipeline.from_checkpoint(checkpoint, device=device), True
    print("NOTE: " + missing_checkpoint_message())
    print("NOTE: running the same pipeline with a small RANDOMLY INITIALISED model instead: its 16 views are "
          "untrained noise, not a real result.")
    return SyncDreamerPipeline(load_checkpoint(random_checkpoint(), device=device)), False


def run_demo(output: Path, steps: int | None = None, seed: int = defaults.SEED, device: str = "cpu",
             reconstruct: bool = True) -> int:
    output.mkdir(parents=True, exist_ok=True)
    pipe, real = _pipeline(device)
    if steps is None:
        steps = defaults.STEPS if real else STAND_IN_STEPS
    wait = pipe.cpu_wait(steps)
    if wait is not None:
        print(f"sampling on the CPU: {wait.describe()}")
    started = time.perf_counter()
    result = pipe(Image.open(EXAMPLES / TEAPOT["file"]), TEAPOT["elevation"], TEAPOT["crop_size"],
                  steps=steps, seed=seed, callback=progress_bar("SyncDreamer"))
    for path in write_views(result, output, prefix="teapot-"):
        print(path)
    print(f"16 views in {time.perf_counter() - started:.1f} s ({steps} steps"
          + ("" if real else ", random weights: noise") + ")")

    if reconstruct:
        from .files import load_views
        from .recon import make_asset, reconstruct_fast
        from .recon.export import export_asset

        views = load_views(EXAMPLES / "chicken-views.png")
        started = time.perf_counter()
        asset = make_asset(reconstruct_fast(views, return_details=True), texture_size=1024, max_faces=30000)
        path = output / "chicken.glb"
        export_asset(asset, path)
        print(f"{path}: textured mesh of the bundled real SyncDreamer output, {len(asset.faces)} faces, "
              f"1024x1024 texture, {time.perf_counter() - started:.1f} s")
    sys.stdout.flush()
    return 0
