"""Normalisation layers that always compute in float32.

In half precision the statistics of a GroupNorm or LayerNorm lose digits, and CPU
kernels refuse a float32 input with half-precision parameters; these layers cast
input and parameters to float32, normalise, and return the input's dtype. In a
float32 network every cast is a no-op. On a CPU in bf16, torch's own kernels take the
bf16 input and bf16 parameters and compute the statistics and the normalisation in float32
themselves (the same numbers as with the parameters cast): there no activation or parameter
is copied, and a channel-last tensor is normalised in place of its layout (torch's
channels-last kernel) instead of through a float32 copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _float(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.float()


def _mixed_kernel(x: torch.Tensor) -> bool:
    """Whether torch's kernel normalises this input in float32 by itself (CPU, bf16)."""
    return x.device.type == "cpu" and x.dtype == torch.bfloat16


class GroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _mixed_kernel(x):
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        out = F.group_norm(x.float(), self.num_groups, _float(self.weight), _float(self.bias), self.eps)
        return out.to(x.dtype)


class LayerNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _mixed_kernel(x):
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        out = F.layer_norm(x.float(), self.normalized_shape, _float(self.weight), _float(self.bias), self.eps)
        return out.to(x.dtype)


def group_norm_channel_last(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """``norm`` applied to a channel-last tensor [b, ..., C] (groups, eps and affine of the
    module), in float32; returns the input's dtype."""
    if _mixed_kernel(x):  # channel-first view of the same memory: torch's channels-last kernel
        return F.group_norm(x.movedim(-1, 1), norm.num_groups, norm.weight, norm.bias, norm.eps).movedim(1, -1)
    b, channels = x.shape[0], x.shape[-1]
    grouped = x.float().reshape(b, -1, norm.num_groups, channels // norm.num_groups)
    var, mean = torch.var_mean(grouped, dim=(1, 3), keepdim=True, unbiased=False)
    normed = ((grouped - mean) * torch.rsqrt(var + norm.eps)).reshape(x.shape)
    return (normed * norm.weight.float() + norm.bias.float()).to(x.dtype)
