"""Reconstruction speed, memory and quality on the chicken example.

    python bench/bench_recon.py                 # fast and quality paths, chicken-pr and chicken-gt
    python bench/bench_recon.py --paths fast --inputs chicken-pr
    python bench/bench_recon.py --colour        # also the texture against vertex colours
    python bench/bench_recon.py --colour --faces 5000 --paths fast --inputs chicken-gt

With ``--colour`` each line adds, for the mesh decimated to ``--faces`` (30000) faces and coloured
by a baked 1024x1024 texture and by vertex colours: the masked PSNR of the mesh rendered
at the 16 cameras against the views it was coloured from, a held-out PSNR and SSIM
(colour from 15 views, rendered at the 16th, each camera in turn, mean) and the bake time.

For each (input, path) a fresh subprocess reconstructs the mesh from the 16 views
and prints one JSON line: wall time, peak RSS, Chamfer distance (the paper's, and
on a common voxel grid: see ``eval_mesh.py``) and volume IoU against the
ground-truth mesh, the colour fidelity (PSNR of the mesh re-rendered at the 16
cameras against the input views, over the union of the input and rendered object
masks) and how its silhouettes agree with the input views and with the
ground-truth renders, beside how the input views themselves agree with those.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DATA = ROOT / "reference" / "eval_examples"


def load_input(name: str) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(DATA / name / f"{i:03d}.png")) for i in range(16)])


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def view_agreement(mesh, views, recentring, reference_masks) -> dict:
    """How the mesh re-rendered at the 16 cameras agrees with its input views and with the truth.

    ``masked_psnr_dB``: colours against the input views over the union of both object masks.
    ``silhouette_iou_inputs``: mean mask IoU against the input views (the mesh moved back into the
    frame they were rendered in). ``silhouette_iou_gt`` / ``inputs_silhouette_iou_gt``: the mesh as
    output, and the input views themselves, against the ground-truth renders' masks.
    """
    from syncdreamer_core.cameras import target_cameras
    from syncdreamer_core.recon.asset import from_trimesh
    from syncdreamer_core.recon.raycast import cast, shade_asset

    in_view_frame = mesh.copy()
    in_view_frame.apply_translation(-np.asarray(recentring))
    coloured = from_trimesh(in_view_frame)
    cameras = target_cameras()
    errors, count, to_inputs, to_gt, inputs_to_gt = 0.0, 0, [], [], []
    for i in range(16):
        hits = cast(in_view_frame, cameras, i)
        rendered = shade_asset(coloured, hits)
        region = hits.mask | views.masks[i]
        errors += float(((rendered[region] - views.colors[i][region]) ** 2).sum())
        count += int(region.sum()) * 3
        to_inputs.append(_mask_iou(hits.mask, views.masks[i]))
        to_gt.append(_mask_iou(cast(mesh, cameras, i).mask, reference_masks[i]))
        inputs_to_gt.append(_mask_iou(views.masks[i], reference_masks[i]))
    return {"masked_psnr_dB": round(float(10 * np.log10(1.0 / (errors / count))), 2),
            "silhouette_iou_inputs": round(float(np.mean(to_inputs)), 4),
            "silhouette_iou_gt": round(float(np.mean(to_gt)), 4),
            "inputs_silhouette_iou_gt": round(float(np.mean(inputs_to_gt)), 4)}


def _psnr(rendered, target, region) -> float:
    return float(10 * np.log10(1.0 / max(((rendered[region] - target[region]) ** 2).mean(), 1e-12)))


def colour_scores(result, faces: int = 30000, size: int = 1024) -> dict:
    """Texture against vertex colours on the same decimated mesh (see the module doc)."""
    from skimage.metrics import structural_similarity

    from syncdreamer_core.cameras import target_cameras
    from syncdreamer_core.recon.asset import from_trimesh
    from syncdreamer_core.recon.coloring import paint, vertex_colors
    from syncdreamer_core.recon.mesh_tools import decimate
    from syncdreamer_core.recon.raycast import cast, shade_asset
    from syncdreamer_core.recon.texture import bake_texture, unwrap
    from syncdreamer_core.recon.views import ViewSet

    cameras = target_cameras()
    mesh = result.mesh.copy()
    mesh.apply_translation(-np.asarray(result.recentring))  # the views' frame
    mesh = decimate(mesh, faces)
    views = result.views
    started = time.perf_counter()
    atlas = unwrap(mesh, size)
    textured = bake_texture(mesh, views, cameras, size, atlas=atlas)
    bake_seconds = time.perf_counter() - started
    coloured = from_trimesh(paint(mesh.copy(), vertex_colors(mesh, views.colors, views.masks, cameras)))
    scores = {}
    for label, asset in (("texture", textured), ("vertex_colours", coloured)):
        shape = asset.to_trimesh()
        psnr = [_psnr(shade_asset(asset, hits := cast(shape, cameras, i)), views.colors[i], hits.mask | views.masks[i])
                for i in range(16)]
        scores[f"{label}_psnr_dB"] = round(float(np.mean(psnr)), 2)
    held_out = {"texture": ([], []), "vertex_colours": ([], [])}
    for k in range(16):
        keep = [i for i in range(16) if i != k]
        subset = ViewSet(views.colors[keep], views.masks[keep])
        candidates = {
            "texture": bake_texture(mesh, subset, cameras.subset(keep), size, atlas=atlas),
            "vertex_colours": from_trimesh(paint(mesh.copy(), vertex_colors(mesh, subset.colors, subset.masks,
                                                                              cameras.subset(keep)))),
        }
        for label, asset in candidates.items():
            hits = cast(asset.to_trimesh(), cameras, k)
            rendered = shade_asset(asset, hits)
            held_out[label][0].append(_psnr(rendered, views.colors[k], hits.mask | views.masks[k]))
            held_out[label][1].append(structural_similarity(rendered, views.colors[k].astype(np.float64),
                                                            channel_axis=-1, data_range=1.0))
    for label, (psnr, ssim) in held_out.items():
        scores[f"{label}_held_out_psnr_dB"] = round(float(np.mean(psnr)), 2)
        scores[f"{label}_held_out_ssim"] = round(float(np.mean(ssim)), 4)
    scores["bake_1024_seconds"] = round(bake_seconds, 1)
    return scores


def run_one(name: str, path: str, steps: int, colour: bool = False, faces: int = 30000) -> dict:
    import eval_mesh as E

    from syncdreamer_core.recon import reconstruct_fast, reconstruct_quality
    from syncdreamer_core.recon.views import prepare_views

    views = load_input(name)
    started = time.perf_counter()
    if path == "fast":
        result = reconstruct_fast(views, return_details=True)
    else:
        result = reconstruct_quality(views, steps=steps, return_details=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gt = E.normalize_gt(E.load_mesh(DATA / "chicken-mesh" / "meshes" / "model.obj"), E.GT_ROTATION_DEG["chicken"])
    scores = E.evaluate(result.mesh, gt, DATA / "chicken-gt")
    return {"input": name, "path": path, **({"steps": steps} if path == "quality" else {}),
            "seconds": round(seconds, 1), "peak_rss_MB": round(peak), "chamfer": round(scores["chamfer"], 5),
            "chamfer_common_grid": round(scores["chamfer_common_grid"], 5), "iou": round(scores["iou"], 4),
            **view_agreement(result.mesh, result.views, result.recentring, prepare_views(load_input("chicken-gt")).masks),
            "vertices": len(result.mesh.vertices), "trusted_views": len(result.trusted_views),
            **({"faces": faces, **colour_scores(result, faces)} if colour else {}),
            "peak_rss_MB_all": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+", default=["chicken-pr", "chicken-gt"])
    parser.add_argument("--paths", nargs="+", default=["fast", "quality"], choices=("fast", "quality"))
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--colour", action="store_true", help="also bake the texture and score it against vertex colours")
    parser.add_argument("--faces", type=int, default=30000, help="face count of the mesh that --colour scores")
    parser.add_argument("--worker", nargs=2, metavar=("INPUT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"reference data not found at {DATA}")
    if args.worker:
        print(json.dumps(run_one(args.worker[0], args.worker[1], args.steps, args.colour, args.faces)))
        return
    for name in args.inputs:
        for path in args.paths:
            done = subprocess.run([sys.executable, __file__, "--worker", name, path, "--steps", str(args.steps),
                                   "--faces", str(args.faces)]
                                  + (["--colour"] if args.colour else []), capture_output=True, text=True)
            line = done.stdout.strip().splitlines()[-1] if done.returncode == 0 else json.dumps(
                {"input": name, "path": path, "error": done.stderr.strip()[-1500:]})
            print(line, flush=True)


if __name__ == "__main__":
    main()
