"""Elevation estimation, validated on the ground-truth chicken at known elevations."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from helpers import DATA, ROOT

from syncdreamer_core.elevation import ElevationError, estimate_elevation

ELEVATIONS = (-10, 0, 10, 20, 30, 40)
LIMITS = {"chicken-gt": 5.0, "chicken-pr": 8.0}


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_elevation", ROOT / "bench" / "bench_elevation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gt_mesh(bench):
    E = bench.E
    return E.normalize_gt(E.load_mesh(DATA / "eval_examples" / "chicken-mesh" / "meshes" / "model.obj"), 270.0)


@pytest.mark.parametrize("views_name", list(LIMITS))
def test_estimates_are_within_the_target_at_every_elevation(bench, gt_mesh, views_name):
    views = bench.load_views(views_name)
    errors = {}
    for truth in ELEVATIONS:
        estimate = estimate_elevation(bench.input_mask(gt_mesh, truth), views)
        errors[truth] = abs(estimate.elevation_deg - truth)
    assert max(errors.values()) <= LIMITS[views_name], errors


def test_preview_outlines_the_best_silhouette(bench, gt_mesh):
    mask = bench.input_mask(gt_mesh, 20)
    estimate = estimate_elevation(mask, bench.load_views("chicken-gt"))
    overlay = estimate.overlay(np.ones((256, 256, 3), np.float32))
    red = (overlay[..., 0] == 1) & (overlay[..., 1] == 0)
    assert 100 < red.sum() < 5000 and 0 <= estimate.confidence <= 1


def test_unusable_masks_are_clear_errors(bench):
    views = bench.load_views("chicken-pr")
    with pytest.raises(ElevationError, match="has no object"):
        estimate_elevation(np.zeros((256, 256)), views)
    with pytest.raises(ElevationError, match="covers the whole image"):
        estimate_elevation(np.ones((256, 256)), views)
