"""Comparing a state dict with the keys and shapes a module expects."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with the reason and what to do."""


def key_mismatch(expected: dict[str, torch.Size | tuple], given: dict[str, torch.Tensor],
                 may_be_missing: Iterable[str] = ()) -> str | None:
    """What keeps ``given`` from loading into a module whose state dict has the keys and
    shapes ``expected``: a one-line description, or None when it fits."""
    optional = set(may_be_missing)
    missing = [k for k in expected if k not in given and k not in optional]
    unexpected = [k for k in given if k not in expected]
    mismatched = [f"{k}: file {tuple(given[k].shape)} vs expected {tuple(expected[k])}"
                  for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k])]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {', '.join(missing[:6])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {', '.join(unexpected[:6])}")
    if mismatched:
        parts.append(f"{len(mismatched)} with other shapes: {'; '.join(mismatched[:4])}")
    return " | ".join(parts) or None


def shapes_of(module: torch.nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}
