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

from .attention import attention_dtype
from .memory_format import conv_memory_format
from .norms import GroupNorm, group_norm_channel_last


class DepthAttention(nn.Module):
    """Query per pixel [b, c, h, w]; keys/values per depth sample (channel-last context)."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int):
        super().__init__()
        inner_dim = heads * dim_head
        self.heads = heads
        self.to_q = nn.Conv2d(query_dim, inner_dim, 1, bias=False)
        self.to_k = nn.Conv3d(context_dim, inner_dim, 1, bias=False)
        self.to_v = nn.Conv3d(context_dim, inner_dim, 1, bias=False)
        self.to_out = nn.Conv2d(inner_dim, query_dim, 1, bias=False)

    def forward(self, x: torch.Tensor, context_last: torch.Tensor) -> torch.Tensor:
        """x: [b, c, h, w]; context_last: [b, h, w, D, d] -> channel-last [b, h, w, c]."""
        b, _, h, w = x.shape
        depth, d = context_last.shape[3:]
        inner = self.to_q.weight.shape[0]
        pixels = b * h * w
        # 1x1 convolutions as plain matmuls on flattened rows: one sequence of `depth`
        # keys per pixel, laid out as attention wants it.
        q = x.permute(0, 2, 3, 1).reshape(pixels, -1) @ self.to_q.weight.flatten(1).t()
        kv_weight = torch.cat([self.to_k.weight.flatten(1), self.to_v.weight.flatten(1)], 0)
        kv = context_last.reshape(pixels * depth, d) @ kv_weight.t()
        dtype = attention_dtype(q)  # keys and values cast together, once
        q = q.to(dtype).view(pixels, 1, self.heads, -1).transpose(1, 2)  # P,heads,1,hd
        kv = kv.to(dtype).view(pixels, depth, 2, self.heads, inner // self.heads)
        k = kv[:, :, 0].transpose(1, 2)  # P,heads,D,hd
        v = kv[:, :, 1].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).to(x.dtype).reshape(pixels, inner)
        out = out @ self.to_out.weight.flatten(1).t()
        return out.view(b, h, w, -1)


class DepthTransformer(nn.Module):
    """Residual block injecting frustum-volume features into a UNet feature map."""

    def __init__(self, dim: int, context_dim: int, n_heads: int):
        super().__init__()
        d_head = context_dim // 2
        inner_dim = n_heads * d_head
        self.proj_in = nn.Sequential(nn.Conv2d(dim, inner_dim, 1), GroupNorm(8, inner_dim), nn.SiLU())
        self.proj_context = nn.Sequential(
            nn.Conv3d(context_dim, context_dim, 1, bias=False), GroupNorm(8, context_dim), nn.ReLU()
        )
        self.depth_attn = DepthAttention(inner_dim, context_dim, n_heads, d_head)
        self.proj_out = nn.Sequential(
            GroupNorm(8, inner_dim), nn.ReLU(), nn.Conv2d(inner_dim, inner_dim, 3, 1, 1, bias=False),
            GroupNorm(8, inner_dim), nn.ReLU(), nn.Conv2d(inner_dim, dim, 3, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor, zero_volume_rows: int = 0) -> torch.Tensor:
        """x: [b, dim, h, w], context: [b - zero_volume_rows, context_dim, D, h, w] -> [b, dim, h, w].

        The last ``zero_volume_rows`` rows of ``x`` read an all-zero volume (the unconditional
        branch of classifier-free guidance), computed without materialising it.
        """
        with_volume = x.shape[0] - zero_volume_rows
        if context.shape[0] != with_volume:
            raise ValueError(f"{x.shape[0]} feature rows with {zero_volume_rows} reading a zero volume need "
                             f"{with_volume} volume rows, got {context.shape[0]}")
        h = self.proj_in(x)
        attended = self.depth_attn(h[:with_volume], self.project_context(context))  # channel-last
        if zero_volume_rows:
            constant = self.zero_volume_output().to(attended.dtype)
            attended = torch.cat([attended, constant.expand(zero_volume_rows, *attended.shape[1:])])
        # to the convolutions' layout: a view where they work channels-last, else one copy
        attended = attended.permute(0, 3, 1, 2).contiguous(memory_format=conv_memory_format(x))
        return self.proj_out(attended) + x

    def project_context(self, context: torch.Tensor) -> torch.Tensor:
        """proj_context (Conv1x1x1 - GroupNorm - ReLU) of [b, d, D, h, w], returned channel-last
        [b, h, w, D, d]: one layout change, then matmuls instead of 1x1x1 convolutions."""
        conv, norm, _ = self.proj_context
        last = context.permute(0, 3, 4, 2, 1)
        projected = last.reshape(-1, last.shape[-1]) @ conv.weight.flatten(1).t()
        return torch.relu(group_norm_channel_last(projected.view(last.shape[:-1] + (-1,)), norm))

    def zero_volume_output(self) -> torch.Tensor:
        """Attention output [inner] for an all-zero volume. The projected context is then
        ReLU(GroupNorm(0)) = ReLU(beta) at every depth sample, so keys and values are the
        same at every depth, the softmax is uniform and the output is W_out W_v ReLU(beta)."""
        context = torch.relu(self.proj_context[1].bias)
        value = self.depth_attn.to_v.weight.flatten(1) @ context
        return self.depth_attn.to_out.weight.flatten(1) @ value
