"""The quality path: a signed distance field refined against the 16 images by
NeuS-style differentiable volume rendering (Wang et al. 2021), in pure torch.

The SDF and a diffuse colour field live on dense grids read by trilinear
interpolation, which trains in minutes on a CPU (an MLP like the reference's
NeuS would take hours there). The SDF starts as the signed distance of the fast
path's visual hull. Each iteration renders a batch of rays from random views:
NeuS's discrete opacity alpha_i = max((Phi_s(f_i) - Phi_s(f_{i+1})) / Phi_s(f_i), 0)
with a learned sharpness s, composited over white. Losses: L1 colour, mask
(accumulated opacity vs silhouette), eikonal (|grad f| = 1 near the surface) and
a small smoothness term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..cameras import CameraSet
from ..device_support import grid_sample_3d
from .fields import DEFAULT_BOUND, VolumeGrid, grid_points, resample_grid
from .views import sample_view_maps

#: Called after every iteration with (iterations done, total); may raise to stop.
IterationCallback = Callable[[int, int], None]


@dataclass
class RefineSettings:
    steps: int = 800
    resolution: int = 96
    color_resolution: int = 64
    rays_per_batch: int = 2048
    samples_per_ray: int = 96
    learning_rate: float = 0.03
    color_weight: float = 1.0
    mask_weight: float = 0.3
    eikonal_weight: float = 0.05
    smooth_weight: float = 0.002
    init_sharpness: float = 60.0
    seed: int = 0


def hull_to_sdf(hull: VolumeGrid, resolution: int, bound: float) -> torch.Tensor:
    """Signed distance (negative inside, world units) of the hull, resampled to ``resolution``^3."""
    resampled = resample_grid(hull.values, resolution)
    inside = resampled > 0
    spacing = 2 * bound / (resolution - 1)
    distance = ndimage.distance_transform_edt(~inside) - ndimage.distance_transform_edt(inside)
    # The surface lies between the last inside and the first outside voxel.
    return torch.from_numpy((distance + np.where(inside, 0.5, -0.5)) * spacing).float()


def _grid_lookup(grid: torch.Tensor, points: torch.Tensor, bound: float) -> torch.Tensor:
    """Trilinear samples of grid [C, R, R, R] (indexed x, y, z) at points [P, 3] -> [P, C]."""
    normalized = (points / bound).flip(-1)  # grid_sample reads (x, y, z) as (W, H, D)
    sampled = grid_sample_3d(grid[None], normalized.view(1, -1, 1, 1, 3), mode="bilinear",
                            padding_mode="border", align_corners=True)
    return sampled.view(grid.shape[0], -1).t()


def _ray_batch(colors: torch.Tensor, masks: torch.Tensor, cameras: CameraSet, count: int,
               generator: torch.Generator):
    """Random pixels of random views -> origins, unit directions, target colours and masks."""
    views, size = colors.shape[0], colors.shape[1]
    view = torch.randint(0, views, (count,), generator=generator)
    # Half the rays on the object (where the detail is), half anywhere.
    rows = torch.randint(0, size, (count,), generator=generator)
    cols = torch.randint(0, size, (count,), generator=generator)
    fg = torch.nonzero(masks)
    pick = fg[torch.randint(0, len(fg), (count // 2,), generator=generator)]
    view[: count // 2], rows[: count // 2], cols[: count // 2] = pick[:, 0], pick[:, 1], pick[:, 2]
    pixel = torch.stack([cols + torch.rand(count, generator=generator), rows + torch.rand(count, generator=generator)], -1)
    origin, direction = cameras.scaled(size).rays(view, pixel)
    return origin, direction, colors[view, rows, cols], masks[view, rows, cols].float()


def _cube_interval(origin: torch.Tensor, direction: torch.Tensor, bound: float):
    inverse = 1.0 / torch.where(direction.abs() < 1e-9, torch.full_like(direction, 1e-9), direction)
    t0, t1 = (-bound - origin) * inverse, (bound - origin) * inverse
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0.05)
    far = torch.maximum(t0, t1).amin(-1)
    return near, torch.maximum(far, near + 1e-3)


def _render(sdf: torch.Tensor, color: torch.Tensor, sharpness: torch.Tensor, origin, direction, samples: int,
            bound: float, generator: torch.Generator):
    near, far = _cube_interval(origin, direction, bound)
    jitter = torch.rand(samples + 1, generator=generator).to(sdf.device)
    steps = (torch.arange(samples + 1, dtype=torch.float32, device=sdf.device) + jitter * 0.5) / samples
    t = near[:, None] + (far - near)[:, None] * steps[None].clamp(max=1.0)  # rays, samples+1
    points = origin[:, None] + direction[:, None] * t[..., None]
    f = _grid_lookup(sdf[None], points.reshape(-1, 3), bound).view(t.shape)
    cdf = torch.sigmoid(f * sharpness)
    alpha = ((cdf[:, :-1] - cdf[:, 1:]) / (cdf[:, :-1] + 1e-6)).clamp(0, 1)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-7], 1), 1)[:, :-1]
    weights = alpha * transmittance
    middle = (points[:, :-1] + points[:, 1:]) / 2
    rgb = torch.sigmoid(_grid_lookup(color, middle.reshape(-1, 3), bound)).view(*alpha.shape, 3)
    opacity = weights.sum(1)
    rendered = (weights[..., None] * rgb).sum(1) + (1 - opacity[:, None])  # white background
    return rendered, opacity


def _gradient(sdf: torch.Tensor, spacing: float) -> torch.Tensor:
    gx = (sdf[2:, 1:-1, 1:-1] - sdf[:-2, 1:-1, 1:-1]) / (2 * spacing)
    gy = (sdf[1:-1, 2:, 1:-1] - sdf[1:-1, :-2, 1:-1]) / (2 * spacing)
    gz = (sdf[1:-1, 1:-1, 2:] - sdf[1:-1, 1:-1, :-2]) / (2 * spacing)
    return torch.stack([gx, gy, gz], -1)


def _initial_colors(colors: np.ndarray, cameras: CameraSet, resolution: int, bound: float) -> torch.Tensor:
    """Colour grid initialised with the mean of the views' colours at each point (logits)."""
    points = grid_points(resolution, bound)
    pixels, _ = cameras.scaled(colors.shape[1]).project(points)
    sampled = sample_view_maps(torch.from_numpy(colors).permute(0, 3, 1, 2).float(), pixels).mean(0)
    return torch.logit(sampled.clamp(0.02, 0.98)).t().reshape(3, resolution, resolution, resolution)


def refine_sdf(hull: VolumeGrid, colors: np.ndarray, masks: np.ndarray, cameras: CameraSet,
               settings: RefineSettings | None = None, bound: float = DEFAULT_BOUND,
               callback: IterationCallback | None = None, device: str | torch.device = "cpu") -> VolumeGrid:
    """Optimise the SDF on ``device``; returns it as a field positive inside (like the hull).

    Random rays come from a CPU generator, so a seed gives the same rays on every device.
    """
    settings = settings or RefineSettings()
    device = torch.device(device)
    generator = torch.Generator().manual_seed(settings.seed)
    R = settings.resolution
    spacing = 2 * bound / (R - 1)
    sdf = hull_to_sdf(hull, R, bound).to(device).requires_grad_(True)
    color = _initial_colors(colors, cameras, settings.color_resolution, bound).to(device).requires_grad_(True)
    log_sharpness = torch.tensor(float(np.log(settings.init_sharpness)), device=device, requires_grad=True)
    optimizer = torch.optim.Adam([
        {"params": [sdf], "lr": settings.learning_rate * spacing},
        {"params": [color], "lr": settings.learning_rate * 5},
        {"params": [log_sharpness], "lr": settings.learning_rate},
    ])
    # Cosine decay: large steps shape the surface, small ones settle it without chasing the
    # views' small inconsistencies.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(i / max(settings.steps, 1), 1.0))))
    target_colors = torch.from_numpy(colors).float()
    target_masks = torch.from_numpy(masks)
    for step in range(settings.steps):
        origin, direction, rgb_target, mask_target = (x.to(device) for x in _ray_batch(
            target_colors, target_masks, cameras, settings.rays_per_batch, generator))
        rendered, opacity = _render(sdf, color, log_sharpness.exp(), origin, direction, settings.samples_per_ray,
                                    bound, generator)
        gradient = _gradient(sdf, spacing)
        # Means over the band near the surface as weighted sums: selecting the band would make
        # every step wait for the device to count it.
        band = (sdf[1:-1, 1:-1, 1:-1].detach().abs() < 6 * spacing).to(sdf.dtype)
        in_band = band.sum().clamp(min=1)
        eikonal = (((gradient.norm(dim=-1) - 1) ** 2) * band).sum() / in_band
        laplacian = (sdf[2:, 1:-1, 1:-1] + sdf[:-2, 1:-1, 1:-1] + sdf[1:-1, 2:, 1:-1] + sdf[1:-1, :-2, 1:-1]
                     + sdf[1:-1, 1:-1, 2:] + sdf[1:-1, 1:-1, :-2] - 6 * sdf[1:-1, 1:-1, 1:-1]) / spacing
        loss = (settings.color_weight * (rendered - rgb_target).abs().mean()
                + settings.mask_weight * F.binary_cross_entropy(opacity.clamp(1e-4, 1 - 1e-4), mask_target)
                + settings.eikonal_weight * eikonal
                + settings.smooth_weight * (laplacian.abs() * band).sum() / in_band)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if callback is not None:
            callback(step + 1, settings.steps)
    values = -sdf.detach().cpu().numpy()
    return VolumeGrid(values.astype(np.float32), -bound, spacing)
