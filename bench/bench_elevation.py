"""Elevation estimation on real geometry with known truth.

The ground-truth chicken mesh (normalised and rotated into the cameras' frame as in
eval_mesh.py) is rendered as a silhouette at azimuth 0 and elevations -10..40,
prepared exactly like an input (crop_size 200), and its elevation is estimated from
the 16 views of chicken-gt (ground-truth renders) and chicken-pr (SyncDreamer's own
output). Prints one JSON line per case and a summary.

    python bench/bench_elevation.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import eval_mesh as E  # noqa: E402

from syncdreamer_core.elevation import estimate_elevation, silhouette_at  # noqa: E402
from syncdreamer_core.preprocess import prepare_input  # noqa: E402

DATA = ROOT / "reference" / "eval_examples"
ELEVATIONS = (-10, 0, 10, 20, 30, 40)
CROP_SIZE = 200


def input_mask(gt_mesh, elevation: float, crop_size: int = CROP_SIZE) -> np.ndarray:
    silhouette = silhouette_at(gt_mesh, elevation, 256)
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., :3] = 128
    rgba[..., 3] = silhouette * 255
    return prepare_input(rgba, crop_size=crop_size).mask


def load_views(name: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(DATA / name / f"{i:03d}.png")) for i in range(16)])


def run(elevations=ELEVATIONS, sets=("chicken-gt", "chicken-pr")) -> list[dict]:
    gt = E.normalize_gt(E.load_mesh(DATA / "chicken-mesh" / "meshes" / "model.obj"), E.GT_ROTATION_DEG["chicken"])
    rows = []
    for name in sets:
        views = load_views(name)
        for truth in elevations:
            mask = input_mask(gt, truth)
            started = time.perf_counter()
            estimate = estimate_elevation(mask, views)
            rows.append({"views": name, "true_deg": truth, "estimate_deg": round(estimate.elevation_deg, 2),
                         "error_deg": round(abs(estimate.elevation_deg - truth), 2),
                         "iou": round(estimate.iou, 4), "confidence": round(estimate.confidence, 3),
                         "seconds": round(time.perf_counter() - started, 2)})
    return rows


def main() -> None:
    if not DATA.exists():
        sys.exit(f"reference data not found at {DATA}")
    rows = run()
    for row in rows:
        print(json.dumps(row), flush=True)
    for name in sorted({r["views"] for r in rows}):
        errors = [r["error_deg"] for r in rows if r["views"] == name]
        seconds = [r["seconds"] for r in rows if r["views"] == name]
        print(json.dumps({"views": name, "max_error_deg": max(errors), "mean_error_deg": round(float(np.mean(errors)), 2),
                          "mean_seconds": round(float(np.mean(seconds)), 2)}))


if __name__ == "__main__":
    main()
