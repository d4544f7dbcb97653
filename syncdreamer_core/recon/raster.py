"""First hits of pinhole-camera pixel rays by rasterization, in vectorised numpy: what
Embree gives (``raycast.cast``) where Embree has no wheel (ARM Linux).

A pixel-centre ray of a pinhole camera hits a triangle exactly where the triangle's
projection covers the pixel centre, at the depth its perspective-correct barycentric
coordinates give; the nearest such triangle is the first hit. Every (triangle, pixel in
its bounding box) pair is tested at once, in chunks, and a depth sort keeps the nearest.
"""

from __future__ import annotations

import numpy as np

#: (triangle, pixel) candidate pairs tested at once (bounds the memory: ~100 bytes each).
PAIRS_PER_CHUNK = 2_000_000
#: Triangles closer to the camera than this are skipped (none are, for the orbit cameras).
NEAR = 1e-6


def first_hits(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, pose: np.ndarray, size: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (camera z, inf where empty) [size*size], triangle index (-1) [size*size] and world
    hit points [size*size, 3] of the rays through the pixel centres of a ``size`` x ``size``
    image seen by camera ``K`` [3, 3], world-to-camera ``pose`` [3, 4] (float64)."""
    camera = vertices @ pose[:, :3].T + pose[:, 3]  # V,3
    z = camera[:, 2]
    image = camera @ K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = image[:, :2] / z[:, None]  # continuous (x, y); pixel (r, c) has its centre at (c + .5, r + .5)
    depth = np.full(size * size, np.inf)
    face = np.full(size * size, -1, dtype=np.int64)
    points = np.zeros((size * size, 3))
    tri = faces[(z[faces] > NEAR).all(1)] if len(faces) else faces
    if not len(tri):
        return depth, face, points
    index = np.flatnonzero((z[faces] > NEAR).all(1))
    corners = pixels[tri]  # T,3,2
    low = np.clip(np.floor(corners.min(1) - 0.5), 0, size - 1).astype(np.int64)
    high = np.clip(np.ceil(corners.max(1) - 0.5), 0, size - 1).astype(np.int64)
    visible = (corners.max(1) >= 0).all(1) & (corners.min(1) <= size).all(1)
    spans = np.where(visible[:, None], high - low + 1, 0)  # T,2 (x, y)
    counts = spans[:, 0] * spans[:, 1]
    start = 0
    while start < len(tri):
        stop = start + max(1, int(np.searchsorted(np.cumsum(counts[start:]), PAIRS_PER_CHUNK)))
        _chunk(tri[start:stop], index[start:stop], low[start:stop], spans[start:stop], counts[start:stop],
               pixels, z, vertices, size, depth, face, points)
        start = stop
    return depth, face, points


def _chunk(tri, index, low, spans, counts, pixels, z, vertices, size, depth, face, points) -> None:
    total = int(counts.sum())
    if not total:
        return
    owner = np.repeat(np.arange(len(tri)), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    width = spans[owner, 0]
    col = low[owner, 0] + offset % width
    row = low[owner, 1] + offset // width
    centre = np.stack([col + 0.5, row + 0.5], -1)
    a, b, c = (pixels[tri[owner, k]] for k in range(3))
    # screen-space barycentric coordinates of the pixel centre
    v0, v1, v2 = b - a, c - a, centre - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
        v = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
    w = 1.0 - u - v
    eps = -1e-9
    inside = (np.abs(det) > 1e-12) & (u >= eps) & (v >= eps) & (w >= eps)
    if not inside.any():
        return
    owner, row, col = owner[inside], row[inside], col[inside]
    bary = np.stack([w[inside], u[inside], v[inside]], -1)  # weights of a, b, c
    inverse_z = bary / z[tri[owner]]  # perspective-correct: interpolate 1/z
    hit_depth = 1.0 / inverse_z.sum(1)
    weights = inverse_z * hit_depth[:, None]
    pixel = row * size + col
    # the nearest candidate of each pixel, against what earlier chunks found
    order = np.lexsort((hit_depth, pixel))
    pixel, hit_depth, owner, weights = pixel[order], hit_depth[order], owner[order], weights[order]
    first = np.ones(len(pixel), dtype=bool)
    first[1:] = pixel[1:] != pixel[:-1]
    pixel, hit_depth, owner, weights = pixel[first], hit_depth[first], owner[first], weights[first]
    nearer = hit_depth < depth[pixel]
    pixel, owner, weights = pixel[nearer], owner[nearer], weights[nearer]
    depth[pixel] = hit_depth[nearer]
    face[pixel] = index[owner]
    points[pixel] = np.einsum("pk,pkc->pc", weights, vertices[tri[owner]])
