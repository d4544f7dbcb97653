"""The end-to-end pipeline with a small random checkpoint in the official layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from syncdreamer_core.files import EXAMPLES
from syncdreamer_core.pipeline import elevation_radians


def test_image_to_sixteen_views(tiny_pipeline):
    image = Image.open(EXAMPLES / "teapot.png")
    result = tiny_pipeline(image, elevation_deg=0.0, crop_size=180, steps=2, seed=1, sample_count=2)
    assert result.latents.shape == (2, 16, 4, 32, 32)
    assert result.views.shape == (2, 16, 256, 256, 3)
    assert result.views.min() >= 0 and result.views.max() <= 1
    assert not torch.equal(result.latents[0], result.latents[1])  # two different candidates


def test_pipeline_is_reproducible(tiny_pipeline):
    image = Image.open(EXAMPLES / "teapot.png")
    a = tiny_pipeline(image, 10.0, steps=1, seed=9)
    b = tiny_pipeline(image, 10.0, steps=1, seed=9)
    assert torch.equal(a.latents, b.latents)


def test_input_latent_is_a_posterior_sample(tiny_pipeline):
    pixels = torch.from_numpy(np.zeros((1, 3, 256, 256), np.float32))
    a = tiny_pipeline.condition(pixels, 30.0, 2, seed=0)
    b = tiny_pipeline.condition(pixels, 30.0, 2, seed=1)
    assert not torch.equal(a.input_latent[0], a.input_latent[1])
    assert not torch.equal(a.input_latent, b.input_latent)
    assert torch.equal(a.clip_embed, b.clip_embed)
    assert torch.allclose(a.elevation, torch.tensor([math.radians(30)] * 2))


@pytest.mark.parametrize("bad", ["30", None, float("nan"), True, {"deg": 30}])
def test_wrong_elevation_types_give_clear_errors(bad):
    with pytest.raises((TypeError, ValueError), match="elevation"):
        elevation_radians(bad)


def test_elevation_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="between -90 and 90"):
        elevation_radians(120)
