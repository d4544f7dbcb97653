"""What every node of the pack shares: the category, the model type, the schema helper,
input checks that fail before any work with a message naming the input, and progress
with Cancel."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from comfy_api.latest import io

CATEGORY = "SyncDreamer"
MODEL_FOLDER = "syncdreamer"
#: The SyncDreamer network and the encoders its checkpoint carries (see ``host.SyncDreamerModel``).
SyncDreamerModelType = io.Custom("SYNCDREAMER_MODEL")


class NodeInputError(ValueError):
    """A node input with the wrong shape or value; the message says which and what was expected."""


# ComfyUI names an error by its class's module and name; the pack's module path would show a
# filesystem path ("/.../custom_nodes/ComfyUI-SyncDreamer.nodes.common.NodeInputError").
NodeInputError.__module__ = "SyncDreamer"


def schema(**fields) -> io.Schema:
    """``io.Schema`` without the fields this host's schema does not know yet (search
    aliases arrived after 0.3.x)."""
    known = {f.name for f in dataclasses.fields(io.Schema)}
    return io.Schema(**{k: v for k, v in fields.items() if k in known})


# ---------------------------------------------------------------- input checks

def image_batch(image, name: str = "image", channels: tuple[int, ...] = (3, 4)) -> torch.Tensor:
    """An IMAGE [B, H, W, C] with finite values in 0..1."""
    if not torch.is_tensor(image) or image.ndim != 4 or image.shape[-1] not in channels or image.shape[0] < 1:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise NodeInputError(f"{name} must be an IMAGE batch [B, H, W, {'|'.join(map(str, channels))}], got {shape}")
    _check_unit_range(image, name)
    return image


def mask_batch(mask, name: str, height: int, width: int) -> torch.Tensor:
    """A MASK [B, H, W] (or [H, W]) of the given size with finite values in 0..1, as [B, H, W]."""
    if torch.is_tensor(mask) and mask.ndim == 2:
        mask = mask[None]
    if not torch.is_tensor(mask) or mask.ndim != 3:
        shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
        raise NodeInputError(f"{name} must be a MASK [B, H, W], got {shape}")
    if tuple(mask.shape[1:]) != (height, width):
        raise NodeInputError(f"{name} is {mask.shape[2]}x{mask.shape[1]} but the image is {width}x{height}; "
                             "they must be the same size")
    _check_unit_range(mask, name)
    return mask


def _check_unit_range(tensor: torch.Tensor, name: str) -> None:
    if not torch.isfinite(tensor).all():
        raise NodeInputError(f"{name} contains NaN or infinite values")
    low, high = float(tensor.min()), float(tensor.max())
    if low < -1e-3 or high > 1 + 1e-3:
        hint = " (0..255 values: divide by 255)" if high > 1.5 else ""
        raise NodeInputError(f"{name} must hold values in 0..1, got {low:g}..{high:g}{hint}")


def finite_number(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NodeInputError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise NodeInputError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def whole_number(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise NodeInputError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise NodeInputError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def one_of(value, name: str, options) -> str:
    options = list(options)
    if value not in options:
        shown = ", ".join(map(str, options[:8])) + (", ..." if len(options) > 8 else "")
        raise NodeInputError(f"{name} must be one of {shown}; got {value!r}")
    return value


def name_errors(node: type[io.ComfyNode]) -> type[io.ComfyNode]:
    """Every input error of ``node`` starts with its display name: ComfyUI 0.3.x titles the
    error dialog with the node's class id, and a message in a long queue should say which
    node it is about."""
    execute = node.__dict__["execute"].__func__

    @functools.wraps(execute)
    def named(cls, *args, **kwargs):
        try:
            return execute(cls, *args, **kwargs)
        except NodeInputError as error:
            display = cls.define_schema().display_name or cls.__name__
            if str(error).startswith(f"{display}: "):
                raise
            raise NodeInputError(f"{display}: {error}") from None

    node.execute = classmethod(named)
    return node


def core_errors(function: Callable, *args, **kwargs):
    """Run core code, turning its input errors (ValueError with a message for the user)
    into node input errors that ComfyUI shows without a traceback."""
    try:
        return function(*args, **kwargs)
    except NodeInputError:
        raise
    except ValueError as error:
        raise NodeInputError(str(error)) from None


# ---------------------------------------------------------------- tensors

def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a float32 numpy array on the CPU."""
    return tensor.detach().cpu().float().numpy()


def to_image(array: np.ndarray) -> torch.Tensor:
    """[H, W, C] or [B, H, W, C] float array in 0..1 -> IMAGE batch."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor[None] if tensor.ndim == 3 else tensor


# ---------------------------------------------------------------- progress and Cancel

def check_cancel() -> None:
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()


def progress(total: int) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback that drives the node's progress bar and stops on Cancel."""
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def report(done: int, of: int) -> None:
        bar.update_absolute(done, of)
        check_cancel()

    return report
