"""The spatial feature volume and the per-view frustum volumes (paper section 3.3).

At every denoising step the 16 noisy latents are encoded, unprojected into one
32^3 volume shared by all views and processed by a time-conditioned 3D U-Net.
Each target view then samples its own frustum out of that volume; a second 3D
network turns the frustum into features at latent widths 32/16/8/4 that the
UNet's depth-wise attention reads. Module and parameter names follow the
official checkpoint (``spatial_volume.*``).
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from ..cameras import CameraSet
from ..device_support import grid_sample
from .config import SyncDreamerConfig
from .norms import GroupNorm
from .volume_geometry import frustum_grid, unprojection_grid


def _version(t: torch.Tensor) -> int | None:
    """The in-place version of a tensor (None for an inference tensor, which has none)."""
    try:
        return t._version
    except RuntimeError:
        return None


def _norm(channels: int) -> GroupNorm:
    return GroupNorm(8, channels)


class ImageResBlockTV(nn.Module):
    """x + conv(x + time + view), conv = (GroupNorm-SiLU-Conv3x3) x 2."""

    def __init__(self, dim: int, time_dim: int, view_dim: int):
        super().__init__()
        self.time_embed = nn.Conv2d(time_dim, dim, 1)
        self.view_embed = nn.Conv2d(view_dim, dim, 1)
        self.conv = nn.Sequential(
            _norm(dim), nn.SiLU(), nn.Conv2d(dim, dim, 3, 1, 1),
            _norm(dim), nn.SiLU(), nn.Conv2d(dim, dim, 3, 1, 1),
        )

    def forward(self, x, t, v):
        return x + self.conv(x + self.time_embed(t) + self.view_embed(v))


class NoisyTargetViewEncoder(nn.Module):
    """Per-view encoder of a noisy target latent [BN, 4, h, w] -> [BN, 16, h, w]."""

    def __init__(self, time_dim: int, view_dim: int, output_dim: int, run_dim: int = 16):
        super().__init__()
        self.init_conv = nn.Conv2d(4, run_dim, 3, 1, 1)
        self.out_conv0 = ImageResBlockTV(run_dim, time_dim, view_dim)
        self.out_conv1 = ImageResBlockTV(run_dim, time_dim, view_dim)
        self.out_conv2 = ImageResBlockTV(run_dim, time_dim, view_dim)
        self.final_out = nn.Sequential(_norm(run_dim), nn.SiLU(), nn.Conv2d(run_dim, output_dim, 3, 1, 1))

    def forward(self, x, t_embed, v_embed):
        t = t_embed[:, :, None, None]
        v = v_embed[:, :, None, None]
        x = self.init_conv(x)
        x = self.out_conv0(x, t, v)
        x = self.out_conv1(x, t, v)
        x = self.out_conv2(x, t, v)
        return self.final_out(x)


class SpatialTimeBlock(nn.Module):
    """x + Conv1x1x1(t) -> GroupNorm -> SiLU -> Conv3d(3, stride)."""

    def __init__(self, in_dim: int, time_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.t_conv = nn.Conv3d(time_dim, in_dim, 1)
        self.bn = _norm(in_dim)
        self.silu = nn.SiLU()
        self.conv = nn.Conv3d(in_dim, out_dim, 3, stride=stride, padding=1)

    def forward(self, x, t):
        return self.conv(self.silu(self.bn(x + self.t_conv(t))))


class SpatialUpTimeBlock(nn.Module):
    """x + Conv1x1x1(t) -> GroupNorm -> SiLU -> ConvTranspose3d (x2)."""

    def __init__(self, in_dim: int, time_dim: int, out_dim: int):
        super().__init__()
        self.t_conv = nn.Conv3d(time_dim, in_dim, 1)
        self.norm = _norm(in_dim)
        self.silu = nn.SiLU()
        self.conv = nn.ConvTranspose3d(in_dim, out_dim, kernel_size=3, padding=1, output_padding=1, stride=2)

    def forward(self, x, t):
        return self.conv(self.silu(self.norm(x + self.t_conv(t))))


class SpatialTime3DNet(nn.Module):
    """Time-conditioned 3D U-Net over the spatial volume: [B, 16N, V^3] -> [B, d0, V^3]."""

    def __init__(self, time_dim: int, input_dim: int, dims: tuple[int, int, int, int]):
        super().__init__()
        d0, d1, d2, d3 = dims
        self.init_conv = nn.Conv3d(input_dim, d0, 3, 1, 1)
        self.conv0 = SpatialTimeBlock(d0, time_dim, d0, stride=1)
        self.conv1 = SpatialTimeBlock(d0, time_dim, d1, stride=2)
        self.conv2_0 = SpatialTimeBlock(d1, time_dim, d1, stride=1)
        self.conv2_1 = SpatialTimeBlock(d1, time_dim, d1, stride=1)
        self.conv3 = SpatialTimeBlock(d1, time_dim, d2, stride=2)
        self.conv4_0 = SpatialTimeBlock(d2, time_dim, d2, stride=1)
        self.conv4_1 = SpatialTimeBlock(d2, time_dim, d2, stride=1)
        self.conv5 = SpatialTimeBlock(d2, time_dim, d3, stride=2)
        self.conv6_0 = SpatialTimeBlock(d3, time_dim, d3, stride=1)
        self.conv6_1 = SpatialTimeBlock(d3, time_dim, d3, stride=1)
        self.conv7 = SpatialUpTimeBlock(d3, time_dim, d2)
        self.conv8 = SpatialUpTimeBlock(d2, time_dim, d1)
        self.conv9 = SpatialUpTimeBlock(d1, time_dim, d0)

    def forward(self, x, t_embed):
        t = t_embed[:, :, None, None, None]
        x = self.init_conv(x)
        skip0 = self.conv0(x, t)
        x = self.conv2_1(self.conv2_0(self.conv1(skip0, t), t), t)
        skip1 = x
        x = self.conv4_1(self.conv4_0(self.conv3(skip1, t), t), t)
        skip2 = x
        x = self.conv6_1(self.conv6_0(self.conv5(skip2, t), t), t)
        x = skip2 + self.conv7(x, t)
        x = skip1 + self.conv8(x, t)
        return skip0 + self.conv9(x, t)


class FrustumTVBlock(nn.Module):
    """x + Conv1x1x1(t) + Conv1x1x1(v) -> GroupNorm -> SiLU -> Conv3d(3, stride)."""

    def __init__(self, in_dim: int, time_dim: int, view_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.t_conv = nn.Conv3d(time_dim, in_dim, 1)
        self.v_conv = nn.Conv3d(view_dim, in_dim, 1)
        self.bn = _norm(in_dim)
        self.silu = nn.SiLU()
        self.conv = nn.Conv3d(in_dim, out_dim, 3, stride=stride, padding=1)

    def forward(self, x, t, v):
        return self.conv(self.silu(self.bn(x + self.t_conv(t) + self.v_conv(v))))


class FrustumTVUpBlock(nn.Module):
    """x + Conv1x1x1(t) + Conv1x1x1(v) -> GroupNorm -> SiLU -> ConvTranspose3d (x2)."""

    def __init__(self, in_dim: int, time_dim: int, view_dim: int, out_dim: int):
        super().__init__()
        self.t_conv = nn.Conv3d(time_dim, in_dim, 1)
        self.v_conv = nn.Conv3d(view_dim, in_dim, 1)
        self.norm = _norm(in_dim)
        self.silu = nn.SiLU()
        self.conv = nn.ConvTranspose3d(in_dim, out_dim, kernel_size=3, padding=1, output_padding=1, stride=2)

    def forward(self, x, t, v):
        return self.conv(self.silu(self.norm(x + self.t_conv(t) + self.v_conv(v))))


class FrustumTV3DNet(nn.Module):
    """3D U-Net over a frustum volume [BT, C, D, h, w] conditioned on time and viewpoint.

    Returns features keyed by spatial width: {w: d0, w/2: d1, w/4: d2, w/8: d3}.
    """

    def __init__(self, in_dim: int, time_dim: int, view_dim: int, dims: tuple[int, int, int, int]):
        super().__init__()
        d0, d1, d2, d3 = dims
        self.conv0 = nn.Conv3d(in_dim, d0, 3, 1, 1)
        self.conv1 = FrustumTVBlock(d0, time_dim, view_dim, d1, 2)
        self.conv2 = FrustumTVBlock(d1, time_dim, view_dim, d1, 1)
        self.conv3 = FrustumTVBlock(d1, time_dim, view_dim, d2, 2)
        self.conv4 = FrustumTVBlock(d2, time_dim, view_dim, d2, 1)
        self.conv5 = FrustumTVBlock(d2, time_dim, view_dim, d3, 2)
        self.conv6 = FrustumTVBlock(d3, time_dim, view_dim, d3, 1)
        self.up0 = FrustumTVUpBlock(d3, time_dim, view_dim, d2)
        self.up1 = FrustumTVUpBlock(d2, time_dim, view_dim, d1)
        self.up2 = FrustumTVUpBlock(d1, time_dim, view_dim, d0)

    def forward(self, x, t_embed, v_embed) -> dict[int, torch.Tensor]:
        t = t_embed[:, :, None, None, None]
        v = v_embed[:, :, None, None, None]
        w = x.shape[-1]
        x0 = self.conv0(x)
        x1 = self.conv2(self.conv1(x0, t, v), t, v)
        x2 = self.conv4(self.conv3(x1, t, v), t, v)
        x3 = self.conv6(self.conv5(x2, t, v), t, v)
        x2 = self.up0(x3, t, v) + x2
        x1 = self.up1(x2, t, v) + x1
        x0 = self.up2(x1, t, v) + x0
        return {w: x0, w // 2: x1, w // 4: x2, w // 8: x3}


class SpatialVolumeNet(nn.Module):
    """Builds the shared spatial volume and the per-view frustum features."""

    def __init__(self, config: SyncDreamerConfig):
        super().__init__()
        time_dim, view_dim = config.time_embed_dim, config.viewpoint_dim
        self.config = config
        self.target_encoder = NoisyTargetViewEncoder(time_dim, view_dim, config.target_encoder_channels)
        self.spatial_volume_feats = SpatialTime3DNet(
            time_dim, config.target_encoder_channels * config.view_count, config.spatial_volume_dims)
        self.frustum_volume_feats = FrustumTV3DNet(
            config.spatial_volume_dims[0], time_dim, view_dim, config.frustum_volume_dims)
        self._grid_cache: dict = {}

    def _grids(self, Ks: torch.Tensor, poses: torch.Tensor, feature_size: int):
        # Keyed on the camera tensors themselves (and their in-place version), never on their
        # values: reading values would stall an accelerator at every step.
        key = (feature_size, Ks.device, _version(Ks), _version(poses))
        cached = self._grid_cache
        if cached and cached["key"] == key and cached["Ks"]() is Ks and cached["poses"]() is poses:
            return cached["grids"]
        cameras = CameraSet(K=Ks, poses=poses).scaled(feature_size)
        grids = (unprojection_grid(cameras, self.config.spatial_volume_size),
                 frustum_grid(cameras, self.config.frustum_depth_samples, self.config.frustum_half_length))
        self._grid_cache = {"key": key, "Ks": weakref.ref(Ks), "poses": weakref.ref(poses), "grids": grids}
        return grids

    def construct_spatial_volume(self, x: torch.Tensor, t_embed: torch.Tensor, v_embed: torch.Tensor,
                                 poses: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
        """x: [B, N, 4, h, w] noisy latents, t_embed: [B, T], v_embed: [B, N, 4]
        -> spatial volume [B, d0, V, V, V]."""
        B, N, C, H, W = x.shape
        V = self.config.spatial_volume_size
        unproject, _ = self._grids(Ks, poses, W)
        t_views = t_embed[:, None].expand(B, N, t_embed.shape[-1]).reshape(B * N, -1)
        features = self.target_encoder(x.reshape(B * N, C, H, W), t_views, v_embed.reshape(B * N, -1))
        grid = unproject[None].expand(B, *unproject.shape).reshape(B * N, V, V * V, 2)
        volume = grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        volume = volume.reshape(B, N * features.shape[1], V, V, V)
        return self.spatial_volume_feats(volume, t_embed)

    def frustum_features(self, spatial_volume: torch.Tensor, t_embed: torch.Tensor, v_embed: torch.Tensor,
                         poses: torch.Tensor, Ks: torch.Tensor, view_indices: torch.Tensor,
                         feature_size: int) -> dict[int, torch.Tensor]:
        """Frustum features of the views ``view_indices`` [TN] of every instance.

        spatial_volume: [B, C, V, V, V]; t_embed: [B, T]; v_embed: [B, N, 4].
        Returns {width: [B*TN, d, D', width, width]}, instance-major.
        """
        B, C = spatial_volume.shape[:2]
        TN = view_indices.shape[0]
        D = self.config.frustum_depth_samples
        _, frustum = self._grids(Ks, poses, feature_size)
        grid = frustum[view_indices]  # TN,D,h,w,3
        h, w = grid.shape[2:4]
        # All views of an instance read the same volume: fold them into the depth axis
        # instead of copying the volume once per view.
        grid = grid.reshape(1, TN * D, h, w, 3).expand(B, TN * D, h, w, 3)
        sampled = grid_sample(spatial_volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        sampled = sampled.reshape(B, C, TN, D, h, w).transpose(1, 2).reshape(B * TN, C, D, h, w)
        t_views = t_embed[:, None].expand(B, TN, t_embed.shape[-1]).reshape(B * TN, -1)
        v_views = v_embed[:, view_indices].reshape(B * TN, -1)
        return self.frustum_volume_feats(sampled, t_views, v_views)
