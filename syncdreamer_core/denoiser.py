"""The synchronized multiview noise predictor (paper section 3.2, eq. 5).

One call predicts the noise of all 16 views of every instance: the spatial
volume is built once from all noisy views, then views are processed in chunks of
``batch_view_num`` (a memory knob that never changes the result).
Classifier-free guidance follows the reference: the unconditional branch gets a
zero CLIP context, zero frustum features and a zero input-view latent, while the
spatial volume (which has no input-image conditioning) is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .constants import VAE_SCALE_FACTOR
from .model import SyncDreamer


@dataclass
class Conditioning:
    """What the input image contributes. ``clip_embed`` [B, 1, 768] CLIP ViT-L/14 image
    embedding; ``input_latent`` [B, 4, 32, 32] VAE latent already multiplied by 0.18215;
    ``elevation`` [B] input-view elevation in radians."""

    clip_embed: torch.Tensor
    input_latent: torch.Tensor
    elevation: torch.Tensor

    def __post_init__(self):
        if self.clip_embed.ndim == 2:
            self.clip_embed = self.clip_embed[:, None]
        B = self.clip_embed.shape[0]
        if self.input_latent.ndim != 4 or self.input_latent.shape[0] != B:
            raise ValueError(
                f"input_latent must be [B, 4, h, w] with B={B} like clip_embed, got {tuple(self.input_latent.shape)}"
            )
        if not torch.is_tensor(self.elevation) or not self.elevation.is_floating_point():
            raise TypeError(
                "elevation must be a float tensor of radians with one value per instance, "
                f"got {type(self.elevation).__name__}"
                + (f" of dtype {self.elevation.dtype}" if torch.is_tensor(self.elevation) else "")
            )
        if self.elevation.shape != (B,):
            raise ValueError(f"elevation must have shape [{B}] (one per instance), got {tuple(self.elevation.shape)}")

    @property
    def batch_size(self) -> int:
        return self.clip_embed.shape[0]

    def repeat(self, times: int) -> Conditioning:
        """Each instance repeated ``times`` times (instance-major), e.g. several candidates per input."""
        return Conditioning(
            self.clip_embed.repeat_interleave(times, 0),
            self.input_latent.repeat_interleave(times, 0),
            self.elevation.repeat_interleave(times, 0),
        )


class SyncDenoiser:
    """eps-prediction for B instances x N views at integer DDPM timesteps."""

    def __init__(self, model: SyncDreamer, batch_view_num: int = 8):
        self.model = model
        self.batch_view_num = batch_view_num

    @property
    def view_count(self) -> int:
        return self.model.config.view_count

    def _check(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning) -> None:
        N = self.view_count
        if x.ndim != 5 or x.shape[1] != N or x.shape[2] != 4:
            raise ValueError(f"noisy latents must be [B, {N}, 4, h, w], got {tuple(x.shape)}")
        if x.shape[0] != cond.batch_size:
            raise ValueError(f"{x.shape[0]} instances of noisy latents but conditioning for {cond.batch_size}")
        if timesteps.shape != (x.shape[0],):
            raise ValueError(f"timesteps must have shape [{x.shape[0]}], got {tuple(timesteps.shape)}")

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning,
                 cfg_scale: float = 1.0, batch_view_num: int | None = None) -> torch.Tensor:
        """x: [B, N, 4, h, w] noisy latents at ``timesteps`` [B] -> eps [B, N, 4, h, w]."""
        self._check(x, timesteps, cond)
        model = self.model
        dtype, device = model.dtype, model.device
        chunk = batch_view_num or self.batch_view_num
        if chunk < 1:
            raise ValueError(f"batch_view_num must be >= 1, got {chunk}")
        B, N, C, H, W = x.shape
        x = x.to(device=device, dtype=dtype)
        timesteps = timesteps.to(device)
        v_embed = model.viewpoint_embedding(cond.elevation.to(device)).to(dtype)  # B,N,4
        t_embed = model.embed_time(timesteps)  # B,256
        volume = model.spatial_volume.construct_spatial_volume(x, t_embed, v_embed, model.poses, model.Ks)
        clip_embed = cond.clip_embed.to(device=device, dtype=dtype)
        concat_latent = cond.input_latent.to(device=device, dtype=dtype) / VAE_SCALE_FACTOR

        eps_chunks = []
        for start in range(0, N, chunk):
            views = torch.arange(start, min(start + chunk, N), device=device)
            TN = views.shape[0]
            features = model.spatial_volume.frustum_features(
                volume, t_embed, v_embed, model.poses, model.Ks, views, W
            )
            context = model.context(clip_embed, v_embed[:, views])
            x_views = x[:, views].reshape(B * TN, C, H, W)
            concat = concat_latent[:, None].expand(B, TN, *concat_latent.shape[1:]).reshape(B * TN, -1, H, W)
            t_views = timesteps[:, None].expand(B, TN).reshape(B * TN)
            eps = self._guided_unet(x_views, concat, t_views, context, features, cfg_scale)
            eps_chunks.append(eps.reshape(B, TN, C, H, W))
        return torch.cat(eps_chunks, 1)

    def _guided_unet(self, x, concat, t, context, features, cfg_scale: float) -> torch.Tensor:
        unet = self.model.unet
        if cfg_scale == 1.0:
            return unet(torch.cat([x, concat], 1), t, context, features)
        # Conditional and unconditional halves in one batch. The unconditional half has zero
        # context, zero input latent and zero volume features; the UNet's depth-wise attention
        # treats rows beyond the features' batch as reading a zero volume, so those zeros are
        # never built.
        x_in = torch.cat([torch.cat([x, concat], 1), torch.cat([x, torch.zeros_like(concat)], 1)])
        context_in = torch.cat([context, torch.zeros_like(context)])
        eps_cond, eps_uncond = unet(x_in, torch.cat([t, t]), context_in, features).chunk(2)
        return eps_uncond + cfg_scale * (eps_cond - eps_uncond)
