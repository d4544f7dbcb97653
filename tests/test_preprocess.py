"""Input preparation: crop size, centring, white background, masks and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import REFERENCE, ROOT, TESTSET, require
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


@pytest.mark.parametrize("crop_size", [0, -2, 1, 2, 15, 300, 2.5, "200"])
def test_invalid_crop_size_is_an_error(crop_size):
    with pytest.raises(InputImageError, match="crop_size"):
        prepare_input(rgba_square(), crop_size=crop_size)


def test_reference_test_image_prepares_like_the_reference_settings():
    image = Image.open(require(TESTSET, "the reference's test inputs") / "aircraft.png")
    prepared = prepare_input(image, crop_size=200)
    x0, y0, x1, y1 = bbox(prepared.mask, level=0)
    assert max(x1 - x0, y1 - y0) + 1 in (199, 200)  # the reference truncates sizes


# ---------------------------------------------------------------- bit-exact with the reference's Pillow

def _digest(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array, np.uint8).tobytes()).hexdigest()


def _reference_digests() -> dict:
    import json

    data = json.loads((REFERENCE / "preprocess" / "pillow10.json").read_text())
    assert data["pillow"] == "10.0.0"
    return data["digests"]


def test_preparation_reproduces_pillow_10_bit_for_bit_on_synthetic_and_bundled_inputs():
    """Digests of the reference's preparation made with Pillow 10.0.0 (the version it pins;
    scripts/make_preprocess_reference.py): tall and wide, hard and soft alpha, every crop size."""
    from preprocess_cases import CROP_SIZES, synthetic_cases

    digests = _reference_digests()
    cases = dict(synthetic_cases())
    cases["teapot"] = np.asarray(Image.open(ROOT / "syncdreamer_core" / "examples" / "teapot.png").convert("RGBA"))
    wrong = [f"{name}@{crop}" for name, image in cases.items() for crop in CROP_SIZES
             if _digest(prepare_input(image, crop_size=crop).rgba) != digests[f"{name}@{crop}"]]
    assert not wrong, wrong
    assert len(cases) * len(CROP_SIZES) == 125


def test_preparation_reproduces_pillow_10_on_the_reference_test_inputs():
    from preprocess_cases import CROP_SIZES

    digests = _reference_digests()
    paths = sorted(require(TESTSET, "the reference's test inputs").glob("*.png"))
    wrong = [f"{p.stem}@{crop}" for p in paths for crop in CROP_SIZES
             if _digest(prepare_input(Image.open(p).convert("RGBA"), crop_size=crop).rgba)
             != digests[f"testset/{p.stem}@{crop}"]]
    assert len(paths) == 49 and not wrong, wrong


def test_resampling_matches_the_installed_pillow_where_its_pass_order_is_the_reference_s():
    """Wide images are resized horizontally first by every Pillow: there the installed one
    must agree with ours exactly (a second, independent check of the kernel)."""
    from syncdreamer_core.resample import resize_rgba

    rng = np.random.default_rng(5)
    for _ in range(20):
        image = rng.integers(0, 256, (int(rng.integers(4, 60)), int(rng.integers(120, 300)), 4), dtype=np.uint8)
        image[..., 3] = 255
        width, height = int(rng.integers(60, 200)), int(rng.integers(2, 40))
        expected = np.asarray(Image.fromarray(image, "RGBA").resize((width, height), Image.BICUBIC))
        assert np.array_equal(resize_rgba(image, width, height), expected)


@pytest.mark.parametrize("image,message", [
    (np.full((64, 64, 4), 255, np.float32), "0..1 .* divide by 255"),
    (np.full((64, 64, 4), np.nan, np.float32), "NaN"),
])
def test_values_outside_0_to_1_or_not_finite_are_errors(image, message):
    with pytest.raises(InputImageError, match=message):
        prepare_input(image)
