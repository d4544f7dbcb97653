"""The synchronized multiview noise predictor (paper section 3.2, eq. 5).

One call predicts the noise of all 16 views of every instance: the spatial
volume is built once from all noisy views, then views are processed in chunks of
``batch_view_num`` (a memory knob that never changes the result).
Classifier-free guidance follows the reference: the unconditional branch gets a
zero CLIP context, zero frustum features and a zero input-view latent, while the
spatial volume (which has no input-image conditioning) is shared.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..conditioning import Conditioning
from ..constants import VAE_SCALE_FACTOR
from ..defaults import BATCH_VIEW_NUM
from ..network.model import SyncDreamer


class SyncDenoiser:
    """eps-prediction for B instances x N views at integer DDPM timesteps.

    ``between_chunks`` is called before every chunk of views (a Cancel check: one
    step of the full network takes a minute on a CPU)."""

    def __init__(self, model: SyncDreamer, batch_view_num: int = BATCH_VIEW_NUM,
                 between_chunks: Callable[[], None] | None = None):
        self.model = model
        self.batch_view_num = check_batch_view_num(batch_view_num, model.config.view_count)
        self.between_chunks = between_chunks

    @property
    def view_count(self) -> int:
        return self.model.config.view_count

    @property
    def schedule(self):
        """The model's noise levels (``DiscreteSigmas``), read off the device once per denoiser."""
        if getattr(self, "_schedule", None) is None:
            from .noise_levels import DiscreteSigmas

            self._schedule = DiscreteSigmas(self.model.alphas_cumprod)
        return self._schedule

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
                 cfg_scale: float = 1.0, batch_view_num: int | None = None, both: bool = False):
        """x: [B, N, 4, h, w] noisy latents at ``timesteps`` [B] -> eps [B, N, 4, h, w], guided
        with ``cfg_scale``; with ``both``, the (conditional, unconditional) pair instead
        (whatever the scale), for hosts that combine them themselves."""
        self._check(x, timesteps, cond)
        model = self.model
        dtype, device = model.dtype, model.device
        chunk = self.batch_view_num if batch_view_num is None else check_batch_view_num(batch_view_num, self.view_count)
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
            if self.between_chunks is not None:
                self.between_chunks()
            views = torch.arange(start, min(start + chunk, N), device=device)
            TN = views.shape[0]
            features = model.spatial_volume.frustum_features(
                volume, t_embed, v_embed, model.poses, model.Ks, views, W
            )
            context = model.context(clip_embed, v_embed[:, views])
            x_views = x[:, views].reshape(B * TN, C, H, W)
            concat = concat_latent[:, None].expand(B, TN, *concat_latent.shape[1:]).reshape(B * TN, -1, H, W)
            t_views = timesteps[:, None].expand(B, TN).reshape(B * TN)
            if both:
                pair = self._unet_pair(x_views, concat, t_views, context, features)
                eps_chunks.append(tuple(eps.reshape(B, TN, C, H, W) for eps in pair))
            else:
                eps = self._guided_unet(x_views, concat, t_views, context, features, cfg_scale)
                eps_chunks.append(eps.reshape(B, TN, C, H, W))
        if both:
            return tuple(torch.cat(half, 1) for half in zip(*eps_chunks, strict=True))
        return torch.cat(eps_chunks, 1)

    def _unet_pair(self, x, concat, t, context, features) -> tuple[torch.Tensor, torch.Tensor]:
        # Conditional and unconditional halves in one batch. The unconditional half has zero
        # context and zero input latent, and reads a zero volume, which is never built.
        x_in = torch.cat([torch.cat([x, concat], 1), torch.cat([x, torch.zeros_like(concat)], 1)])
        context_in = torch.cat([context, torch.zeros_like(context)])
        eps_cond, eps_uncond = self.model.unet(x_in, torch.cat([t, t]), context_in, features,
                                               zero_volume_rows=x.shape[0]).chunk(2)
        return eps_cond, eps_uncond

    def _guided_unet(self, x, concat, t, context, features, cfg_scale: float) -> torch.Tensor:
        if cfg_scale == 1.0:
            return self.model.unet(torch.cat([x, concat], 1), t, context, features)
        return classifier_free_guidance(*self._unet_pair(x, concat, t, context, features), cfg_scale)


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """The guided prediction (paper eq. 5's sampling form): uncond + scale * (cond - uncond)."""
    return uncond + scale * (cond - uncond)


def check_batch_view_num(value, view_count: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= view_count:
        raise ValueError(f"batch_view_num must be an integer in 1..{view_count}, got {value!r}")
    return value
