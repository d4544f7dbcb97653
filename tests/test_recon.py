"""Mesh reconstruction: masks, carving, colours, errors, and the metrics it is scored with."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import trimesh
from helpers import DATA, ROOT
from PIL import Image

from syncdreamer_core.cameras import target_cameras
from syncdreamer_core.recon import ReconstructionInputError, prepare_views, reconstruct_fast, reconstruct_quality
from syncdreamer_core.recon.asset import from_trimesh
from syncdreamer_core.recon.raycast import cast, shade_asset


def load_eval_mesh():
    spec = importlib.util.spec_from_file_location("eval_mesh", ROOT / "bench" / "eval_mesh.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_mesh"] = module
    spec.loader.exec_module(module)
    return module


def render_views(mesh: trimesh.Trimesh, size: int = 128) -> np.ndarray:
    """Mesh with vertex colours rendered on white at the 16 cameras, uint8."""
    cameras = target_cameras().scaled(size)
    asset = from_trimesh(mesh)
    return np.stack([(shade_asset(asset, cast(mesh, cameras, i)) * 255).astype(np.uint8) for i in range(16)])


@pytest.fixture(scope="module")
def ball_views():
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
    ball.visual = trimesh.visual.ColorVisuals(ball, vertex_colors=np.tile([200, 40, 40, 255], (len(ball.vertices), 1)))
    return ball, render_views(ball)


def test_fast_path_recovers_a_ball_with_its_colour(ball_views):
    ball, views = ball_views
    mesh = reconstruct_fast(views, resolution=64)
    assert np.allclose(mesh.bounding_box.extents, 0.6, atol=0.04), mesh.bounding_box.extents
    assert mesh.is_watertight and abs(mesh.volume - ball.volume) < 0.05 * ball.volume
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(float)
    assert np.abs(colors.mean(0) - (200, 40, 40)).max() < 25


def test_an_off_centre_object_is_recentred_horizontally_only_when_asked():
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
    ball.apply_translation([0.04, -0.03, 0.0])
    ball.visual = trimesh.visual.ColorVisuals(ball, vertex_colors=np.tile([40, 160, 40, 255], (len(ball.vertices), 1)))
    views = render_views(ball)
    kept = reconstruct_fast(views, resolution=64, recentre=False, return_details=True)
    centred = reconstruct_fast(views, resolution=64, return_details=True)
    assert np.allclose(kept.mesh.bounds.mean(0)[:2], [0.04, -0.03], atol=0.01)
    assert np.allclose(kept.recentring, 0)
    assert np.allclose(centred.mesh.bounds.mean(0)[:2], 0, atol=1e-6)
    assert np.allclose(centred.recentring[:2], -kept.mesh.bounds.mean(0)[:2], atol=1e-6) and centred.recentring[2] == 0
    # Colours were taken before the shift, in the views' frame.
    colors = np.asarray(centred.mesh.visual.vertex_colors)[:, :3].astype(float)
    assert np.abs(colors.mean(0) - (40, 160, 40)).max() < 25


def test_one_broken_mask_does_not_punch_a_hole(ball_views):
    _, views = ball_views
    broken = views.copy()
    broken[3, :, :64] = 255  # half of view 3's object erased
    mesh = reconstruct_fast(broken, resolution=64, color=False)
    assert np.allclose(mesh.bounding_box.extents, 0.6, atol=0.04)


def test_rgba_views_use_alpha_as_mask(ball_views):
    _, views = ball_views
    alpha = np.where(views.min(-1) < 250, 255, 0).astype(np.uint8)
    rgba = np.concatenate([np.where(alpha[..., None] > 0, views, 0), alpha[..., None]], -1)
    viewset = prepare_views(rgba)
    assert np.array_equal(viewset.masks, alpha > 127)
    assert np.allclose(viewset.colors[~viewset.masks], 1.0)  # black background composited to white


@pytest.mark.parametrize("count", [15, 17])
def test_wrong_view_count_is_an_error(ball_views, count):
    _, views = ball_views
    stack = np.concatenate([views, views])[:count]
    with pytest.raises(ReconstructionInputError, match="exactly 16 views"):
        reconstruct_fast(stack)


def test_non_square_views_are_an_error():
    with pytest.raises(ReconstructionInputError, match="square"):
        reconstruct_fast(np.full((16, 64, 80, 3), 255, np.uint8))


def test_all_white_views_are_an_error():
    with pytest.raises(ReconstructionInputError, match="plain white"):
        reconstruct_fast(np.full((16, 64, 64, 3), 255, np.uint8))


def test_all_object_views_are_an_error():
    with pytest.raises(ReconstructionInputError, match="no white background"):
        reconstruct_fast(np.full((16, 64, 64, 3), 90, np.uint8))


def test_quality_path_runs_reports_progress_and_can_be_stopped(ball_views):
    _, views = ball_views
    seen = []
    mesh = reconstruct_quality(views, steps=3, resolution=32, mesh_resolution=64, callback=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(mesh.faces) > 0

    class Stop(Exception):
        pass

    def stop(i, n):
        raise Stop

    with pytest.raises(Stop):
        reconstruct_quality(views, steps=50, resolution=32, callback=stop)


def test_metric_scores_ground_truth_perfectly_and_a_sphere_badly():
    root = DATA / "eval_examples"
    E = load_eval_mesh()
    gt = E.normalize_gt(E.load_mesh(root / "chicken-mesh" / "meshes" / "model.obj"), E.GT_ROTATION_DEG["chicken"])
    cache = {}
    own = E.evaluate(gt, gt, root / "chicken-gt", cache)
    sphere = E.evaluate(trimesh.creation.icosphere(subdivisions=3, radius=0.3), gt, root / "chicken-gt", cache)
    assert own["chamfer"] < 5e-4 and own["chamfer_common_grid"] < 5e-4 and own["iou"] > 0.999
    assert sphere["chamfer"] > 0.05 and sphere["chamfer_common_grid"] > 0.05 and sphere["iou"] < 0.5


def test_common_grid_chamfer_follows_a_small_shift_of_the_surface():
    """Shifting the ground truth by 0.2 and 0.4 voxels: the common-grid score grows with
    the shift and stays near it (the per-cloud grid anchors make the official one jump)."""
    root = DATA / "eval_examples"
    E = load_eval_mesh()
    gt = E.normalize_gt(E.load_mesh(root / "chicken-mesh" / "meshes" / "model.obj"), E.GT_ROTATION_DEG["chicken"])
    cache = {}
    scores = [E.evaluate(gt.copy().apply_translation([shift, 0, 0]), gt, root / "chicken-gt", cache)["chamfer_common_grid"]
              for shift in (0.002, 0.004)]
    assert 0.0005 < scores[0] < scores[1] < 0.004, scores


def test_fast_path_on_real_syncdreamer_output_beats_naive_carving():
    """Anchor: naive unanimous carving gives Chamfer 0.0074 / IoU 0.83 on chicken-pr."""
    root = DATA / "eval_examples"
    E = load_eval_mesh()
    views = np.stack([np.asarray(Image.open(root / "chicken-pr" / f"{i:03d}.png")) for i in range(16)])
    mesh = reconstruct_fast(views)
    gt = E.normalize_gt(E.load_mesh(root / "chicken-mesh" / "meshes" / "model.obj"), 270.0)
    scores = E.evaluate(mesh, gt, root / "chicken-gt")
    assert scores["chamfer"] <= 0.0074 and scores["iou"] >= 0.83, scores
    assert mesh.visual.kind == "vertex"
