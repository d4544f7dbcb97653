"""Image-space transformer of the Zero123/SD UNet: self-attention over pixels and
cross-attention to the CLIP context, both through fused scaled-dot-product attention.

Parameter names follow the LDM layout of the official checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .norms import GroupNorm, LayerNorm


def attention_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype attention on ``x`` runs in: float32 for bf16 on a CPU without AMX, whose fused
    attention kernel computes bf16 at half its float32 rate (AVX512_BF16 alone, e.g. AMD Zen 4;
    with AMX bf16 attention is twice as fast as float32); the input's dtype elsewhere."""
    if x.device.type == "cpu" and x.dtype == torch.bfloat16 and not cpu_has_amx():
        return torch.float32
    return x.dtype


def cpu_has_amx() -> bool:
    from ..hardware import cpu_flags

    return "amx_bf16" in cpu_flags()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Fused scaled-dot-product attention in ``attention_dtype`` (the casts are no-ops where it
    is the input's); the output in the input's dtype."""
    dtype = attention_dtype(q)
    return F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype)).to(q.dtype)


class CrossAttention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None."""

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, n, query_dim], context: [B, m, context_dim] -> [B, n, query_dim]."""
        B, n, _ = x.shape
        if context is not None and context.shape[1] == 1:
            # One key: the softmax weight is exactly 1, so the output is the projected value.
            return self.to_out(self.to_v(context)).expand(B, n, -1)
        dtype = attention_dtype(x)
        if dtype != x.dtype:
            # the projections packed (q, k, v of self-attention; k, v of cross-attention): each
            # pack cast once for the attention, not each of its parts
            if context is None:
                qkv = F.linear(x, torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight])).to(dtype)
                q, k, v = qkv.view(B, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            else:
                q = self.to_q(x).to(dtype).view(B, n, self.heads, -1).transpose(1, 2)
                kv = F.linear(context, torch.cat([self.to_k.weight, self.to_v.weight])).to(dtype)
                k, v = kv.view(B, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v).to(x.dtype)
            return self.to_out(out.transpose(1, 2).reshape(B, n, -1))
        context = x if context is None else context
        m = context.shape[1]
        q = self.to_q(x).view(B, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(context).view(B, m, self.heads, -1).transpose(1, 2)
        v = self.to_v(context).view(B, m, self.heads, -1).transpose(1, 2)
        out = attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(B, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        # Two half-width matmuls instead of one and a chunk: contiguous halves, no copies.
        half = self.proj.weight.shape[0] // 2
        value = F.linear(x, self.proj.weight[:half], self.proj.bias[:half])
        gate = F.linear(x, self.proj.weight[half:], self.proj.bias[half:])
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner_dim = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner_dim), nn.Dropout(0.0), nn.Linear(inner_dim, dim))

    def forward(self, x):
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, d_head: int, context_dim: int):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads=n_heads, dim_head=d_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim=context_dim, heads=n_heads, dim_head=d_head)
        self.norm1 = LayerNorm(dim)
        self.norm2 = LayerNorm(dim)
        self.norm3 = LayerNorm(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """GroupNorm -> Conv1x1 -> transformer blocks over h*w tokens -> Conv1x1, residual."""

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int, context_dim: int):
        super().__init__()
        inner_dim = n_heads * d_head
        self.norm = GroupNorm(32, in_channels, eps=1e-6)
        self.proj_in = nn.Conv2d(in_channels, inner_dim, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner_dim, n_heads, d_head, context_dim) for _ in range(depth)]
        )
        self.proj_out = nn.Conv2d(inner_dim, in_channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))
        h = h.flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            h = block(h, context)
        h = h.transpose(1, 2).reshape(B, -1, H, W)
        return self.proj_out(h) + x
