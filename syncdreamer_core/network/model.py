"""SyncDreamer's denoising network as one module with the official key layout.

Submodules and buffers are named as in the released checkpoint: ``time_embed``,
``cc_projection``, ``spatial_volume``, ``model.diffusion_model``, the camera
buffers ``poses``/``Ks``/``azimuth`` and the schedule buffers. The VAE and the
CLIP image encoder live beside it (``weights/encoders.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..cameras import CameraSet, target_cameras, viewpoint_embedding, wrap_to_pi
from ..diffusion.schedule import scaled_linear_betas, schedule_buffers
from .config import SyncDreamerConfig
from .embeddings import TimestepMLP
from .spatial_volume import SpatialVolumeNet
from .unet import DepthWiseAttentionUNet

SCHEDULE_BUFFERS = (
    "betas", "alphas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped",
)
CAMERA_BUFFERS = ("poses", "Ks", "azimuth")


class UNetWrapper(nn.Module):
    """Holds the UNet under the ``model.diffusion_model`` prefix."""

    def __init__(self, config: SyncDreamerConfig):
        super().__init__()
        self.diffusion_model = DepthWiseAttentionUNet(config)


class SyncDreamer(nn.Module):
    def __init__(self, config: SyncDreamerConfig):
        super().__init__()
        self.config = config
        self.time_embed = TimestepMLP(config.time_embed_dim, config.time_embed_dim)
        self.cc_projection = nn.Linear(config.context_dim + config.viewpoint_dim, config.context_dim)
        self.spatial_volume = SpatialVolumeNet(config)
        self.model = UNetWrapper(config)

        cameras = target_cameras(config.view_count)
        self.register_buffer("poses", cameras.poses)
        self.register_buffer("Ks", cameras.K)
        self.register_buffer("azimuth", wrap_to_pi(cameras.azimuths))
        for name, value in schedule_buffers(scaled_linear_betas()).items():
            self.register_buffer(name, value)

    @property
    def unet(self) -> DepthWiseAttentionUNet:
        return self.model.diffusion_model

    @property
    def cameras(self) -> CameraSet:
        """The target cameras stored in the checkpoint (for 256 px views)."""
        return CameraSet(K=self.Ks, poses=self.poses)

    @property
    def dtype(self) -> torch.dtype:
        return self.cc_projection.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.cc_projection.weight.device

    def _apply(self, fn, recurse=True):
        # Camera and schedule buffers are exact constants: keep them float32 when the
        # network is cast to half precision.
        super()._apply(fn, recurse)
        for name in CAMERA_BUFFERS + SCHEDULE_BUFFERS:
            value = getattr(self, name)
            if value.is_floating_point() and value.dtype != torch.float32:
                setattr(self, name, value.float())
        return self

    def viewpoint_embedding(self, elevation: torch.Tensor) -> torch.Tensor:
        """[B] input elevations (radians) -> [B, N, 4]."""
        return viewpoint_embedding(elevation.to(self.azimuth.device), self.azimuth)

    def embed_time(self, timesteps: torch.Tensor) -> torch.Tensor:
        """[B] timesteps -> [B, 256]."""
        return self.time_embed.embed(timesteps)

    def context(self, clip_embed: torch.Tensor, v_embed: torch.Tensor) -> torch.Tensor:
        """CLIP embedding [B, 1, 768] + viewpoints [B, TN, 4] -> per-view context [B*TN, 1, 768]."""
        B, TN = v_embed.shape[:2]
        clip = clip_embed[:, None].expand(B, TN, *clip_embed.shape[1:]).reshape(B * TN, 1, -1)
        return self.cc_projection(torch.cat([clip, v_embed.reshape(B * TN, 1, -1)], -1))
