"""Arranging the 16 views: the 1x16 strip the reference writes and 4x4 grids.

All functions take and return channel-last image tensors ([..., H, W, C]).
"""

from __future__ import annotations

import re

import torch
from einops import rearrange

from .constants import VIEW_COUNT

#: One entry of a view list: an index or a range "low-high".
INDEX_PART = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?")


class ViewLayoutError(ValueError):
    """An image whose shape is not a valid strip or grid of views."""


def expected_views(view_count: int = VIEW_COUNT) -> str:
    rows, columns = grid_shape(view_count)
    return (f"SyncDreamer's views (a 1x{view_count} strip or a {rows}x{columns} grid of square views, 256 px each, "
            "as the sampler and VAE Decode make them)")


def _check_views(views: torch.Tensor, view_count: int) -> None:
    if views.ndim != 4:
        raise ViewLayoutError(f"expects {expected_views(view_count)}; got a tensor of shape {tuple(views.shape)}")
    if views.shape[0] % view_count:
        raise ViewLayoutError(
            f"expects {view_count} views per object (a batch of {view_count}, {expected_views(view_count)}); got "
            f"{views.shape[0]} image(s) of {views.shape[2]}x{views.shape[1]} pixels, not a multiple of {view_count}"
        )


def grid_shape(view_count: int = VIEW_COUNT, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a grid; default: as square as possible (4x4 for 16)."""
    if columns is None:
        columns = int(round(view_count**0.5))
        while view_count % columns:
            columns += 1
    if columns < 1 or view_count % columns:
        raise ViewLayoutError(f"{view_count} views cannot fill rows of {columns}")
    return view_count // columns, columns


def compose(views: torch.Tensor, columns: int, view_count: int = VIEW_COUNT) -> torch.Tensor:
    """[B*N, H, W, C] -> [B, rows*H, columns*W, C], views in row-major camera order."""
    _check_views(views, view_count)
    rows, columns = grid_shape(view_count, columns)
    return rearrange(views, "(b r c) h w ch -> b (r h) (c w) ch", r=rows, c=columns)


def compose_strip(views: torch.Tensor, view_count: int = VIEW_COUNT) -> torch.Tensor:
    """[B*N, H, W, C] -> [B, H, N*W, C]: view i at columns W*i..W*i+W-1 (as generate.py writes)."""
    return compose(views, view_count, view_count)


def compose_grid(views: torch.Tensor, view_count: int = VIEW_COUNT) -> torch.Tensor:
    """[B*N, H, W, C] -> [B, 4H, 4W, C] for 16 views."""
    return compose(views, grid_shape(view_count)[1], view_count)


def split(images: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """[B, rows*H, columns*W, C] -> [B*rows*columns, H, W, C] (row-major)."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ViewLayoutError(f"expected images [B, H, W, C], got shape {tuple(images.shape)}")
    _, height, width, _ = images.shape
    name = f"a 1x{columns} strip" if rows == 1 else f"a {rows}x{columns} grid"
    if width * rows != height * columns or height % rows or width % columns:
        shape = (f"width = {columns // rows} x height" if width * rows != height * columns else
                 f"a width and height divisible by {columns} and {rows}")
        raise ViewLayoutError(f"expects {expected_views(rows * columns)}; got an image of {width}x{height} pixels, "
                              f"which is not {name} of square views ({shape}): is it SyncDreamer's views?")
    return rearrange(images, "b (r h) (c w) ch -> (b r c) h w ch", r=rows, c=columns)


def split_strip(images: torch.Tensor, view_count: int = VIEW_COUNT) -> torch.Tensor:
    """[B, H, N*H, C] strips -> [B*N, H, H, C]."""
    return split(images, 1, view_count)


def split_grid(images: torch.Tensor, view_count: int = VIEW_COUNT) -> torch.Tensor:
    """[B, 4H, 4H, C] grids -> [B*16, H, H, C]."""
    rows, columns = grid_shape(view_count)
    return split(images, rows, columns)


def unlike_views(views: torch.Tensor, view_count: int = VIEW_COUNT) -> str | None:
    """What makes ``views`` [B*N, H, W, C] unlike SyncDreamer's, set by set (most views of a
    set without a white border: SyncDreamer draws objects on white), or None. Views with alpha
    are not judged: the alpha is their background."""
    if views.shape[-1] != 3 or views.shape[0] % view_count:
        return None
    from .background import views_without_white_border

    images = views.detach().float().cpu().numpy()
    for start in range(0, len(images), view_count):
        unlike = views_without_white_border(images[start:start + view_count])
        if len(unlike) > view_count // 2:
            where = f"set {start // view_count}: " if len(images) > view_count else ""
            return (f"{where}{len(unlike)} of its {view_count} views have no white border, and SyncDreamer draws "
                    f"every object on white: these do not look like {expected_views(view_count)}")
    return None


def detect_layout(images: torch.Tensor, view_count: int = VIEW_COUNT) -> str:
    """'strip' or 'grid' from the aspect ratio of [B, H, W, C] images."""
    height, width = images.shape[-3:-1]
    rows, columns = grid_shape(view_count)
    if width == view_count * height:
        return "strip"
    if width * rows == height * columns:
        return "grid"
    raise ViewLayoutError(
        f"expects {expected_views(view_count)}; got an image of {width}x{height} pixels, neither a 1x{view_count} "
        f"strip (width = {view_count} x height) nor a {rows}x{columns} grid (square): is it SyncDreamer's views?"
    )


def select(views: torch.Tensor, indices: list[int], view_count: int = VIEW_COUNT) -> torch.Tensor:
    """Pick views by camera index from every instance of [B*N, ...] -> [B*len(indices), ...]."""
    if views.shape[0] % view_count:
        raise ViewLayoutError(f"got {views.shape[0]} views, not a multiple of {view_count}")
    bad = [i for i in indices if not 0 <= i < view_count]
    if bad or not indices:
        raise ViewLayoutError(f"view indices must be in 0..{view_count - 1}, got {bad[:5] or 'none'}")
    grouped = views.reshape(views.shape[0] // view_count, view_count, *views.shape[1:])
    picked = grouped[:, list(indices)]
    return picked.reshape(-1, *views.shape[1:])


#: Most view indices Select Views takes (repeats allowed): 16 sets of all 16 views.
MAX_SELECTED = 256


def parse_indices(text: str, view_count: int = VIEW_COUNT) -> list[int]:
    """'0,4,8' or '0-3, 8' -> [0, 4, 8] / [0, 1, 2, 3, 8]. Ranges are checked against the
    view count before they are expanded."""
    if not isinstance(text, str):
        raise ViewLayoutError(f"view indices must be text like '0,4,8' or '0-3', got {type(text).__name__}")
    indices: list[int] = []
    bad: list[str] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        match = INDEX_PART.fullmatch(part)
        if match is None:
            raise ViewLayoutError(f"cannot read view index {part[:20]!r}; use numbers like '0,4,8' or '0-3'")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if not (0 <= first <= last < view_count):
            bad.append(part)
            continue
        indices.extend(range(first, last + 1))
        if len(indices) > MAX_SELECTED:
            raise ViewLayoutError(f"at most {MAX_SELECTED} view indices per set (each one copies a whole image); the "
                                  f"text asks for more than that ({len(text)} characters)")
    if bad:
        shown = ", ".join(repr(b[:20]) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ViewLayoutError(f"view indices must be in 0..{view_count - 1} (ranges low-high), got {shown}")
    if not indices:
        raise ViewLayoutError("no view index given; use numbers like '0,4,8' or '0-3'")
    return indices


def compose_latent_grid(latents: torch.Tensor, view_count: int = VIEW_COUNT) -> torch.Tensor:
    """Latents of whole instances [B*N, C, h, w] -> one grid latent per instance [B, C, 4h, 4w]."""
    return compose_grid(latents.movedim(1, -1), view_count).movedim(-1, 1)
