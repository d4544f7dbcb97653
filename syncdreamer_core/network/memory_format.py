"""The memory format of the network's 2D convolutions: channels-last for bf16/fp16 on a CPU.

torch's CPU convolutions in bf16 and fp16 (oneDNN) work on channels-last tensors: a
channel-first input is copied to channels-last and back on every call, and a channels-last
activation (the UNet's transformers hand them out: their token layout is one) meeting a
channel-first weight copies the weight. A full-size bf16 step made about 200 such copies.
With the weights stored channels-last once, the first convolution's output is channels-last,
every layer after it keeps that layout, and the rearranges between the image and the token
layout are free views. In float32, and on GPUs, they stay channel-first, as the checkpoint has them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

HALF = (torch.bfloat16, torch.float16)


def preferred_memory_format(device: torch.device | str, dtype: torch.dtype) -> torch.memory_format:
    """The layout convolutions on ``device`` computing in ``dtype`` work in."""
    return torch.channels_last if torch.device(device).type == "cpu" and dtype in HALF else torch.contiguous_format


def conv_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout the convolutions that read ``x`` work in."""
    return preferred_memory_format(x.device, x.dtype)


def use_preferred_memory_format(model: nn.Module, device: torch.device | str, dtype: torch.dtype) -> nn.Module:
    """Store ``model``'s 2D convolution weights in ``preferred_memory_format`` for the device
    they compute on (the stored parameter, also under a cast-on-access parametrization).
    Returns ``model``."""
    layout = preferred_memory_format(device, dtype)
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and not _stored_weight(module).is_contiguous(memory_format=layout):
            module.to(memory_format=layout)
    return model


def _stored_weight(module: nn.Module) -> torch.Tensor:
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight
