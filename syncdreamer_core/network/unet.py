"""The Zero123-style UNet with depth-wise attention (``model.diffusion_model.*``).

It is the LDM/Stable Diffusion UNet (8 input channels: noisy latent + input-view
latent) with cross-attention to a one-token CLIP context, plus DepthTransformer
blocks that read the frustum volume: one after the middle block and one after
every output block from the second-deepest level on (output blocks 3..11 of the
released model), each reading the frustum features whose width equals the
current feature map's width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SpatialTransformer
from .config import SyncDreamerConfig
from .depth_attention import DepthTransformer
from .embeddings import sinusoidal_embedding
from .norms import GroupNorm


def normalization(channels: int) -> GroupNorm:
    return GroupNorm(32, channels)


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            normalization(out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNetStage(nn.ModuleList):
    """One ``input_blocks.N`` / ``output_blocks.N`` entry: layers applied in order."""

    def forward(self, x, emb, context):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class DepthWiseAttentionUNet(nn.Module):
    """Noise-prediction UNet: forward(x [B, 8, h, w], t [B], context [B, 1, 768],
    volume_features {width: [B - zero_volume_rows, d, D, width, width]}, zero_volume_rows)
    -> eps [B, 4, h, w]. The last ``zero_volume_rows`` rows read an all-zero frustum volume
    (the unconditional branch of classifier-free guidance) without it being built."""

    def __init__(self, config: SyncDreamerConfig):
        super().__init__()
        mc = config.model_channels
        self.model_channels = mc
        emb_dim = mc * 4
        dims = config.frustum_volume_dims

        def transformer(ch: int) -> SpatialTransformer:
            return SpatialTransformer(ch, config.num_heads, ch // config.num_heads,
                                      config.transformer_depth, config.context_dim)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        self.input_blocks = nn.ModuleList([UNetStage([nn.Conv2d(config.in_channels, mc, 3, padding=1)])])
        skip_channels = [mc]
        ch, ds = mc, 1
        levels = len(config.channel_mult)
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc)]
                ch = mult * mc
                if ds in config.attention_resolutions:
                    layers.append(transformer(ch))
                self.input_blocks.append(UNetStage(layers))
                skip_channels.append(ch)
            if level != levels - 1:
                self.input_blocks.append(UNetStage([Downsample(ch)]))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = UNetStage([ResBlock(ch, emb_dim), transformer(ch), ResBlock(ch, emb_dim)])
        heads = config.depth_attention_heads
        self.middle_conditions = DepthTransformer(ch, dims[levels - 1], heads)

        self.output_blocks = nn.ModuleList()
        self.output_conditions = nn.ModuleList()
        self._condition_of_block: dict[int, int] = {}
        for level, mult in list(enumerate(config.channel_mult))[::-1]:
            for i in range(config.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mc * mult)]
                ch = mc * mult
                if ds in config.attention_resolutions:
                    layers.append(transformer(ch))
                block_level = level
                if level and i == config.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                    block_level = level - 1
                self.output_blocks.append(UNetStage(layers))
                if level < levels - 1:
                    self._condition_of_block[len(self.output_blocks) - 1] = len(self.output_conditions)
                    self.output_conditions.append(DepthTransformer(ch, dims[block_level], heads))

        self.out = nn.Sequential(normalization(ch), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                volume_features: dict[int, torch.Tensor], zero_volume_rows: int = 0) -> torch.Tensor:
        emb = self.time_embed(sinusoidal_embedding(timesteps, self.model_channels).to(x.dtype))
        skips = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        h = self.middle_conditions(h, volume_features[h.shape[-1]], zero_volume_rows)
        for index, block in enumerate(self.output_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context)
            condition = self._condition_of_block.get(index)
            if condition is not None:
                h = self.output_conditions[condition](h, volume_features[h.shape[-1]], zero_volume_rows)
        return self.out(h)
