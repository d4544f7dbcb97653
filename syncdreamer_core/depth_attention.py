"""Depth-wise attention (paper section 3.4): every pixel of a view's feature map
attends over the depth samples of its own frustum column, so the UNet reads the
3D-consistent volume along each viewing ray.

Parameter names follow the official checkpoint (``middle_conditions``,
``output_conditions.N``): ``proj_in``, ``proj_context``, ``depth_attn.to_{q,k,v,out}``,
``proj_out``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import DEPTH_ATTENTION_HEADS


class DepthAttention(nn.Module):
    """Query per pixel [b, c, h, w]; keys/values per depth sample [b, d, D, h, w]."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int):
        super().__init__()
        inner_dim = heads * dim_head
        self.heads = heads
        self.to_q = nn.Conv2d(query_dim, inner_dim, 1, bias=False)
        self.to_k = nn.Conv3d(context_dim, inner_dim, 1, bias=False)
        self.to_v = nn.Conv3d(context_dim, inner_dim, 1, bias=False)
        self.to_out = nn.Conv2d(inner_dim, query_dim, 1, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        depth = context.shape[2]
        inner = self.to_q.weight.shape[0]
        # 1x1 convolutions as matmuls in channel-last layout, which is the layout the
        # per-pixel attention needs: one sequence of `depth` keys per pixel.
        x_last = x.permute(0, 2, 3, 1)  # b,h,w,c
        q = F.linear(x_last, self.to_q.weight.flatten(1))  # b,h,w,inner
        ctx_last = context.permute(0, 3, 4, 2, 1)  # b,h,w,D,d
        kv_weight = torch.cat([self.to_k.weight.flatten(1), self.to_v.weight.flatten(1)], 0)
        kv = F.linear(ctx_last, kv_weight)  # b,h,w,D,2*inner

        pixels = b * h * w
        q = q.reshape(pixels, 1, self.heads, -1).transpose(1, 2)  # P,heads,1,hd
        kv = kv.reshape(pixels, depth, 2, self.heads, inner // self.heads)
        k = kv[:, :, 0].transpose(1, 2)  # P,heads,D,hd
        v = kv[:, :, 1].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # P,heads,1,hd
        out = F.linear(out.reshape(b, h, w, inner), self.to_out.weight.flatten(1))
        return out.permute(0, 3, 1, 2).contiguous()


class DepthTransformer(nn.Module):
    """Residual block injecting frustum-volume features into a UNet feature map."""

    def __init__(self, dim: int, context_dim: int, n_heads: int = DEPTH_ATTENTION_HEADS):
        super().__init__()
        d_head = context_dim // 2
        inner_dim = n_heads * d_head
        self.proj_in = nn.Sequential(nn.Conv2d(dim, inner_dim, 1), nn.GroupNorm(8, inner_dim), nn.SiLU())
        self.proj_context = nn.Sequential(
            nn.Conv3d(context_dim, context_dim, 1, bias=False), nn.GroupNorm(8, context_dim), nn.ReLU()
        )
        self.depth_attn = DepthAttention(inner_dim, context_dim, n_heads, d_head)
        self.proj_out = nn.Sequential(
            nn.GroupNorm(8, inner_dim), nn.ReLU(), nn.Conv2d(inner_dim, inner_dim, 3, 1, 1, bias=False),
            nn.GroupNorm(8, inner_dim), nn.ReLU(), nn.Conv2d(inner_dim, dim, 3, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x: [b, dim, h, w], context: [b, context_dim, D, h, w] -> [b, dim, h, w]."""
        h = self.proj_in(x)
        h = self.depth_attn(h, self.proj_context(context))
        return self.proj_out(h) + x
