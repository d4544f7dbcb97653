"""Strips, grids and view selection."""

from __future__ import annotations

import pytest
import torch

from syncdreamer_core.layout import (
    ViewLayoutError,
    compose_grid,
    compose_strip,
    detect_layout,
    parse_indices,
    select,
    split_grid,
    split_strip,
)


def numbered_views(instances=1, size=4):
    return torch.arange(instances * 16, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, size, size, 3).clone()


def test_strip_puts_view_i_at_columns_i():
    strip = compose_strip(numbered_views())
    assert strip.shape == (1, 4, 64, 3)
    assert [int(strip[0, 0, 4 * i, 0]) for i in range(16)] == list(range(16))


def test_grid_is_row_major():
    grid = compose_grid(numbered_views(2))
    assert grid.shape == (2, 16, 16, 3)
    assert int(grid[0, 4, 0, 0]) == 4 and int(grid[1, 12, 12, 0]) == 31


@pytest.mark.parametrize("compose,split", [(compose_strip, split_strip), (compose_grid, split_grid)])
def test_compose_and_split_round_trip(compose, split):
    views = torch.rand(32, 8, 8, 3)
    assert torch.equal(split(compose(views)), views)


def test_strip_of_wrong_aspect_is_an_error():
    with pytest.raises(ViewLayoutError, match="width = 16 x height"):
        split_strip(torch.zeros(1, 10, 150, 3))


def test_detect_layout():
    assert detect_layout(torch.zeros(1, 8, 128, 3)) == "strip"
    assert detect_layout(torch.zeros(1, 32, 32, 3)) == "grid"
    with pytest.raises(ViewLayoutError, match="neither"):
        detect_layout(torch.zeros(1, 30, 40, 3))


def test_view_count_must_be_whole_instances():
    with pytest.raises(ViewLayoutError, match="multiple of 16"):
        compose_grid(torch.zeros(15, 4, 4, 3))


def test_select_picks_from_every_instance():
    picked = select(numbered_views(2), [0, 4, 8])
    assert picked[:, 0, 0, 0].tolist() == [0, 4, 8, 16, 20, 24]


def test_parse_indices():
    assert parse_indices("0, 4,8") == [0, 4, 8]
    assert parse_indices("0-3,12") == [0, 1, 2, 3, 12]
    with pytest.raises(ViewLayoutError, match="0..15"):
        parse_indices("3,16")
    with pytest.raises(ViewLayoutError, match="cannot read"):
        parse_indices("a")
