"""Estimating the input view's elevation from SyncDreamer's own 16 views, model-free.

The 16 generated views have known cameras (elevation 30, azimuth 22.5*i; the input
is azimuth 0), so their silhouettes carve a visual hull of the object. The input
camera's elevation is then the one whose rendering of that hull best matches the
input's silhouette. The input was scaled and centred by its bounding box
(crop_size), so every rendered silhouette is normalised the same way before the
comparison: only the shape, not the size or position, decides.

This allows a refinement loop in a graph: generate with a first guess, estimate,
regenerate if the estimate is far from the guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .background import border_values
from .cameras import orbit_cameras, target_cameras
from .recon.carving import visual_hull
from .recon.fields import field_to_mesh
from .recon.raycast import cast
from .recon.views import prepare_views

#: Elevations searched (degrees) and the coarse step.
SEARCH_RANGE = (-30.0, 70.0)
COARSE_STEP = 2.0
#: IoU gap between the best elevation and any elevation >= this far from it, for full confidence.
CONFIDENT_MARGIN = 0.05
MARGIN_DISTANCE = 10.0
#: Views the visual hull may leave out (a view that disagrees, a blank one).
HULL_TOLERANCE = 2


class ElevationError(ValueError):
    """Masks or views from which no elevation can be estimated."""


@dataclass
class ElevationEstimate:
    elevation_deg: float
    confidence: float
    iou: float
    curve: list[tuple[float, float]] = field(default_factory=list)
    silhouette: np.ndarray | None = None  # best rendered silhouette in the input's frame [H, W] bool

    def overlay(self, image: np.ndarray) -> np.ndarray:
        """The input image [H, W, 3] in [0, 1] with the best silhouette's outline in red."""
        from scipy import ndimage

        out = np.array(image[..., :3], dtype=np.float32, copy=True)
        if self.silhouette is not None:
            edge = self.silhouette & ~ndimage.binary_erosion(self.silhouette, iterations=2)
            out[edge] = (1.0, 0.0, 0.0)
        return out


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def normalise_to(silhouette: np.ndarray, reference_box: tuple[int, int, int, int], shape) -> np.ndarray | None:
    """Scale ``silhouette`` so its bounding box's longer side equals the reference box's and
    centre it on the reference box's centre (the crop_size preprocessing, applied alike)."""
    box = _bbox(silhouette)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    rx0, ry0, rx1, ry1 = reference_box
    scale = max(rx1 - rx0, ry1 - ry0) / max(x1 - x0, y1 - y0)
    width, height = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    crop = Image.fromarray(silhouette[y0:y1, x0:x1].astype(np.uint8) * 255)
    resized = np.asarray(crop.resize((width, height), Image.BILINEAR)) > 127
    canvas = np.zeros(shape, bool)
    cx, cy = (rx0 + rx1) / 2, (ry0 + ry1) / 2
    left, top = int(round(cx - width / 2)), int(round(cy - height / 2))
    src_x0, src_y0 = max(0, -left), max(0, -top)
    dst_x0, dst_y0 = max(0, left), max(0, top)
    w = min(width - src_x0, shape[1] - dst_x0)
    h = min(height - src_y0, shape[0] - dst_y0)
    if w > 0 and h > 0:
        canvas[dst_y0:dst_y0 + h, dst_x0:dst_x0 + w] = resized[src_y0:src_y0 + h, src_x0:src_x0 + w]
    return canvas


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def silhouette_at(mesh, elevation_deg: float, size: int) -> np.ndarray:
    """The mesh's silhouette seen from azimuth 0 at ``elevation_deg`` in a ``size`` px image."""
    return cast(mesh, orbit_cameras([math.radians(elevation_deg)], [0.0], size), 0).mask


def estimate_elevation(input_mask: np.ndarray, views: np.ndarray, view_masks: np.ndarray | None = None,
                       search: tuple[float, float] = SEARCH_RANGE, step: float = COARSE_STEP,
                       hull_resolution: int = 128, callback=None) -> ElevationEstimate:
    """Elevation (degrees) of the input view whose object mask is ``input_mask`` [H, W]
    (1 = object), given the 16 views SyncDreamer generated for it [16, h, w, 3|4].

    ``callback(done, total)`` is called per candidate elevation (raise from it to stop).
    """
    mask = np.asarray(input_mask, dtype=np.float32) > 0.5
    if mask.ndim != 2:
        raise ElevationError(f"the input mask must be [H, W], got shape {mask.shape}")
    box = _bbox(mask)
    if box is None or mask.mean() < 0.002:
        raise ElevationError("the input mask has no object: give the prepared input's object mask (1 = object)")
    if mask.mean() > 0.95:
        raise ElevationError("the input mask covers the whole image: give the object mask, not the background")
    if border_values(mask).mean() > 0.5:
        raise ElevationError(
            "the input mask covers most of the image border, so it looks inverted (1 on the background): give the "
            "prepared input's object mask (1 = object), e.g. Prepare Image's object_mask output")
    viewset = prepare_views(views, view_masks)
    viewset.check_carvable(HULL_TOLERANCE, "the elevation's visual hull can leave out")
    hull, _ = visual_hull(viewset.masks, target_cameras(), hull_resolution, tolerance=HULL_TOLERANCE,
                          centred_bbox=True)
    mesh = field_to_mesh(hull)
    size = mask.shape[0]
    if mask.shape[0] != mask.shape[1]:
        raise ElevationError(f"the input mask must be square like the prepared input, got {mask.shape}")

    scores: dict[float, tuple[float, np.ndarray | None]] = {}

    def score(elevation: float) -> float:
        key = round(elevation, 3)
        if key not in scores:
            rendered = normalise_to(silhouette_at(mesh, elevation, size), box, mask.shape)
            scores[key] = (0.0 if rendered is None else _iou(rendered, mask), rendered)
        return scores[key][0]

    coarse = np.arange(search[0], search[1] + 1e-9, step)
    for i, elevation in enumerate(coarse):
        score(float(elevation))
        if callback is not None:
            callback(i + 1, len(coarse))
    best = max(scores, key=lambda e: scores[e][0])
    for offset in (-step / 2, step / 2, -step / 4, step / 4):
        score(best + offset)
    best = max(scores, key=lambda e: scores[e][0])
    best_iou, silhouette = scores[best]
    far = [s for e, (s, _) in scores.items() if abs(e - best) >= MARGIN_DISTANCE]
    margin = best_iou - max(far) if far else 0.0
    confidence = float(np.clip(best_iou, 0, 1) * np.clip(margin / CONFIDENT_MARGIN, 0, 1))
    curve = sorted((e, s) for e, (s, _) in scores.items())
    return ElevationEstimate(float(best), confidence, float(best_iou), curve, silhouette)
