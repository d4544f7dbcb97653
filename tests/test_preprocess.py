"""Input preparation: crop size, centring, white background, masks and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DATA, require_shared
from PIL import Image

from syncdreamer_core.preprocess import InputImageError, prepare_input, white_background_mask


def rgba_square(size=100, box=(30, 20, 70, 60), color=(200, 30, 30)):
    image = np.zeros((size, size, 4), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1, :3] = color
    image[y0:y1, x0:x1, 3] = 255
    return image


def bbox(mask, level=0.5):
    ys, xs = np.nonzero(mask > level)
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_crop_size_scales_the_object_and_centres_it():
    prepared = prepare_input(rgba_square(box=(10, 20, 90, 60)), crop_size=200)
    x0, y0, x1, y1 = bbox(prepared.mask)
    assert prepared.image.shape == (256, 256, 3) and prepared.mask.shape == (256, 256)
    assert abs((x1 - x0 + 1) - 200) <= 3  # longer side -> 200 px
    assert abs((x0 + x1) / 2 - 127.5) <= 2 and abs((y0 + y1) / 2 - 127.5) <= 2


def test_crop_size_minus_one_keeps_the_framing():
    image = rgba_square(size=100, box=(0, 0, 50, 100))  # object fills the left half
    prepared = prepare_input(image, crop_size=-1)
    x0, _, x1, _ = bbox(prepared.mask)
    assert x0 <= 1 and abs(x1 - 127) <= 2


def test_background_is_white_and_values_in_range():
    prepared = prepare_input(rgba_square(), crop_size=150)
    assert prepared.image.min() >= 0 and prepared.image.max() <= 1
    background = prepared.mask == 0
    assert np.allclose(prepared.image[background], 1.0)
    assert np.allclose(prepared.model_input()[background], 1.0)
    centre = prepared.image[128, 128]
    assert np.allclose(centre, np.array([200, 30, 30]) / 255, atol=0.02)


def test_a_separate_foreground_mask_replaces_alpha():
    image = rgba_square()[..., :3]
    mask = np.zeros((100, 100), np.float32)
    mask[40:60, 40:60] = 1.0
    prepared = prepare_input(image, mask=mask, crop_size=100)
    x0, y0, x1, y1 = bbox(prepared.mask)
    assert abs((x1 - x0 + 1) - 100) <= 2 and abs((y1 - y0 + 1) - 100) <= 2


def test_an_rgb_image_on_white_is_accepted_without_mask():
    image = np.full((120, 120, 3), 255, np.uint8)
    image[30:90, 40:80] = (10, 120, 10)
    prepared = prepare_input(image, crop_size=200)
    x0, y0, x1, y1 = bbox(prepared.mask)
    assert abs((y1 - y0 + 1) - 200) <= 3
    assert white_background_mask(image).sum() == 60 * 40 * 255


def test_an_rgb_image_on_a_busy_background_asks_for_background_removal():
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(InputImageError, match="background-removal"):
        prepare_input(image)


def test_an_empty_mask_is_an_error():
    with pytest.raises(InputImageError, match="mask is empty"):
        prepare_input(rgba_square()[..., :3], mask=np.zeros((100, 100), np.float32))


@pytest.mark.parametrize("shape", [(64, 64), (64, 64, 2), (64, 64, 5)])
def test_wrong_channel_counts_are_errors(shape):
    with pytest.raises(InputImageError, match=r"\[H, W, 3\]"):
        prepare_input(np.zeros(shape, np.uint8))


def test_mask_of_another_size_is_an_error():
    with pytest.raises(InputImageError, match="same size"):
        prepare_input(rgba_square()[..., :3], mask=np.ones((50, 50)))


@pytest.mark.parametrize("crop_size", [0, -2, 300, 2.5, "200"])
def test_invalid_crop_size_is_an_error(crop_size):
    with pytest.raises(InputImageError, match="crop_size"):
        prepare_input(rgba_square(), crop_size=crop_size)


def test_reference_test_image_prepares_like_the_reference_settings():
    image = Image.open(require_shared(DATA) / "testset" / "aircraft.png")
    prepared = prepare_input(image, crop_size=200)
    x0, y0, x1, y1 = bbox(prepared.mask, level=0)
    assert max(x1 - x0, y1 - y0) + 1 in (199, 200)  # the reference truncates sizes
