"""Plain-data description of a SyncDreamer network: the one place its widths, depths and
volume sizes are written. ``weights.checkpoint.infer_config`` reads them off a checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..constants import LATENT_CHANNELS, VIEW_COUNT

Dims4 = tuple[int, int, int, int]


@dataclass(frozen=True)
class SyncDreamerConfig:
    """Hyper-parameters of the denoising network (VAE and CLIP are separate).

    The weight shapes determine everything but ``num_heads`` and the volume sampling
    (``spatial_volume_size``, ``frustum_depth_samples``, ``frustum_half_length``,
    ``depth_attention_heads``), which are the released model's.
    """

    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    #: Downsampling factors (1, 2, 4, ...) whose levels carry a SpatialTransformer.
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_heads: int = 8
    transformer_depth: int = 1
    #: CLIP ViT-L/14 image embedding width (the cross-attention context).
    context_dim: int = 768
    #: Noisy target latent + input-view latent.
    in_channels: int = 2 * LATENT_CHANNELS
    out_channels: int = LATENT_CHANNELS
    #: Channels of the spatial-volume 3D U-Net at 32/16/8/4 voxels.
    spatial_volume_dims: Dims4 = (64, 128, 256, 512)
    #: Channels of the frustum 3D U-Net, read by the depth-wise attention blocks.
    frustum_volume_dims: Dims4 = (64, 128, 256, 512)
    view_count: int = VIEW_COUNT
    #: Width of SyncDreamer's own time embedding (separate from the UNet's).
    time_embed_dim: int = 256
    #: [d_elevation, sin d_azimuth, cos d_azimuth, 0].
    viewpoint_dim: int = 4
    #: Channels each view contributes to the spatial volume.
    target_encoder_channels: int = 16
    #: Voxels per side of the spatial feature volume.
    spatial_volume_size: int = 32
    #: Depth samples of each view's frustum volume.
    frustum_depth_samples: int = 48
    #: Half length of the frustum along the viewing ray (the reference's rounding of sqrt(3)/2).
    frustum_half_length: float = 0.86603
    #: Heads of every depth-wise attention block (head width: half the volume channels).
    depth_attention_heads: int = 4

    def __post_init__(self):
        # order-free: the reference lists (4, 2, 1)
        object.__setattr__(self, "attention_resolutions", tuple(sorted(self.attention_resolutions, reverse=True)))
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if len(self.channel_mult) != 4:
            raise ValueError(
                "SyncDreamer's UNet has four levels (latent 32 -> 16 -> 8 -> 4) so that every level "
                f"meets a frustum-feature resolution; got channel_mult={self.channel_mult}"
            )
        if self.in_channels != 2 * LATENT_CHANNELS or self.out_channels != LATENT_CHANNELS:
            raise ValueError(
                f"the UNet must take {2 * LATENT_CHANNELS} input channels (noisy latent + input-view latent) and "
                f"predict {LATENT_CHANNELS}; got {self.in_channels} in, {self.out_channels} out"
            )
        for name in ("spatial_volume_dims", "frustum_volume_dims"):
            dims = getattr(self, name)
            if len(dims) != 4 or any(d % 8 for d in dims):
                raise ValueError(f"{name} must be four channel counts divisible by 8 (GroupNorm(8)), got {dims}")
        widths = [self.model_channels * m for m in self.channel_mult]
        if any(w % 32 for w in widths):
            raise ValueError(f"UNet widths {widths} must be divisible by 32 (GroupNorm(32))")
        if not isinstance(self.num_heads, int) or self.num_heads < 1 or any(w % self.num_heads for w in widths):
            raise ValueError(f"num_heads must be a positive divisor of the UNet widths {widths}, got {self.num_heads}")

    @classmethod
    def official(cls) -> SyncDreamerConfig:
        """The released ``configs/syncdreamer.yaml`` network (966 M parameters)."""
        return cls()

    @classmethod
    def small(cls) -> SyncDreamerConfig:
        """A ~10 M parameter network with the official structure, for tests and demos."""
        return cls(model_channels=32, channel_mult=(1, 2, 2, 2), num_heads=4,
                   spatial_volume_dims=(16, 32, 64, 128), frustum_volume_dims=(16, 32, 64, 128))

    @classmethod
    def tiny(cls) -> SyncDreamerConfig:
        """The smallest network with the official structure (a few M parameters)."""
        return cls(model_channels=32, channel_mult=(1, 1, 1, 1), num_heads=2,
                   spatial_volume_dims=(8, 8, 16, 16), frustum_volume_dims=(8, 8, 16, 16))

    def replace(self, **changes) -> SyncDreamerConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SyncDreamerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown SyncDreamer config keys: {sorted(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)
