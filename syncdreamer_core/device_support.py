"""What some accelerators lack, and the explicit way around it.

- 3D ``grid_sample`` (the spatial volume's frustum reads, the SDF lookups of quality
  reconstruction) has no kernel on Apple's MPS before torch 2.11: where a device refuses
  it, it runs on the CPU and comes back, and the user is told once.
- MPS has no float64 at all: nothing in this package puts float64 on a device (the camera
  and mesh code that needs float64 keeps it on the CPU); the simulated-device tests hold it.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

_FALLBACKS: set[str] = set()
logger = logging.getLogger("syncdreamer")


def grid_sample(values: torch.Tensor, grid: torch.Tensor, **options) -> torch.Tensor:
    """``F.grid_sample`` in the dtype fastest for it: on a CPU, float32 for half-precision
    values (torch's CPU kernels sample bf16 at half the float32 rate, casts included), the
    values' own elsewhere; 5D volumes on the CPU where their device has no kernel."""
    if values.device.type == "cpu" and values.dtype in (torch.bfloat16, torch.float16):
        return _grid_sample(values.float(), grid.float(), **options).to(values.dtype)
    return _grid_sample(values, grid.to(values.dtype), **options)


def _grid_sample(values: torch.Tensor, grid: torch.Tensor, **options) -> torch.Tensor:
    return grid_sample_3d(values, grid, **options) if values.ndim == 5 else F.grid_sample(values, grid, **options)


def grid_sample_3d(volume: torch.Tensor, grid: torch.Tensor, **options) -> torch.Tensor:
    """``F.grid_sample`` of a 5D volume, on the CPU where the volume's device has no kernel."""
    device = volume.device
    if device.type not in _FALLBACKS:
        try:
            return F.grid_sample(volume, grid, **options)
        except (NotImplementedError, RuntimeError) as error:
            if device.type == "cpu" or not _missing_kernel(error):
                raise
            _FALLBACKS.add(device.type)
            logger.warning("SyncDreamer: 3D grid_sample is not available on %s with torch %s; it runs on the CPU "
                           "(slower; torch 2.11 or newer runs it on the device).", device.type, torch.__version__)
    return F.grid_sample(volume.cpu(), grid.cpu(), **options).to(device)


def _missing_kernel(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, NotImplementedError) or "not implemented" in text or "not supported" in text


def fallback_devices() -> set[str]:
    """Device types that had to fall back to the CPU in this process (for reports and tests)."""
    return set(_FALLBACKS)
