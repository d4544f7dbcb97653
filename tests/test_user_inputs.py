"""Inputs as users have them: JPEGs and other images without alpha, phone photos with an
EXIF orientation, RGBA photos that are opaque everywhere, 16-bit greys, huge scans."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image
from test_nodes import host, run, teapot_image  # noqa: F401 - the host fixture

from syncdreamer_core.files import EXAMPLES, read_image
from syncdreamer_core.preprocess import InputImageError, NoObjectMaskError, prepare_input


def teapot_on(background: np.ndarray) -> np.ndarray:
    """The bundled teapot (centred on a 256x256 canvas) over ``background`` [256, 256, 3] uint8, as RGB."""
    teapot = np.asarray(Image.open(EXAMPLES / "teapot.png")).astype(np.float32) / 255
    rgba = np.zeros((256, 256, 4), np.float32)
    top, left = (256 - teapot.shape[0]) // 2, (256 - teapot.shape[1]) // 2
    rgba[top:top + teapot.shape[0], left:left + teapot.shape[1]] = teapot
    alpha = rgba[..., 3:]
    return np.round((rgba[..., :3] * alpha + background / 255 * (1 - alpha)) * 255).astype(np.uint8)


def on_white() -> np.ndarray:
    return teapot_on(np.full((256, 256, 3), 255, np.uint8))


def on_busy_background() -> np.ndarray:
    rng = np.random.default_rng(0)
    return teapot_on(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))


def load_image_like_comfyui(path) -> tuple[torch.Tensor, torch.Tensor]:
    """What ComfyUI's LoadImage outputs for a file: IMAGE from RGB, MASK = 1 - alpha, and
    for an image without alpha a 64x64 MASK of zeros."""
    with Image.open(path) as handle:
        from PIL import ImageOps

        image = ImageOps.exif_transpose(handle)
        rgb = torch.from_numpy(np.asarray(image.convert("RGB")).astype(np.float32) / 255)[None]
        if "A" in image.getbands():
            mask = 1.0 - torch.from_numpy(np.asarray(image.getchannel("A")).astype(np.float32) / 255)[None]
        else:
            mask = torch.zeros(1, 64, 64)
    return rgb, mask


# ---------------------------------------------------------------- images without alpha

def test_a_jpeg_of_an_object_on_white_goes_through_prepare_with_loadimages_mask(host, tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.kron(on_white(), np.ones((2, 2, 1), np.uint8))).save(path, quality=95)  # 512x512
    image, mask = load_image_like_comfyui(path)
    assert mask.shape == (1, 64, 64) and image.shape == (1, 512, 512, 3)
    out, object_mask = run(host, "SyncDreamerPrepareImage", image=image, crop_size=200, mask=mask,
                           mask_is_background=True).args
    alone, _ = run(host, "SyncDreamerPrepareImage", image=image, crop_size=200).args
    assert torch.equal(out, alone)
    assert 0.1 < float((object_mask > 0.5).float().mean()) < 0.9


@pytest.mark.parametrize("mode", ["L", "CMYK", "P"])
def test_grey_cmyk_and_palette_images_without_alpha_are_prepared(tmp_path, mode):
    path = tmp_path / f"object-{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.fromarray(on_white()).convert(mode).save(path)
    prepared = prepare_input(read_image(path), crop_size=200)
    assert 0.1 < float((prepared.mask > 0.5).mean()) < 0.9


def test_a_busy_background_without_mask_says_which_node_to_connect(host):
    image = torch.from_numpy(on_busy_background().astype(np.float32) / 255)[None]
    with pytest.raises(ValueError, match="Remove Background.*White Background Mask"):
        run(host, "SyncDreamerPrepareImage", image=image, crop_size=200, mask=torch.zeros(1, 64, 64),
            mask_is_background=True)


def test_an_all_zero_mask_with_the_toggle_off_selects_nothing_and_says_so(host):
    image = torch.from_numpy(on_white().astype(np.float32) / 255)[None]
    with pytest.raises(ValueError, match="selects no object pixel.*turn 'mask_is_background' on"):
        run(host, "SyncDreamerPrepareImage", image=image, crop_size=200, mask=torch.zeros(1, 64, 64),
            mask_is_background=False)


# ---------------------------------------------------------------- opaque alpha, whole-frame masks

def test_an_opaque_rgba_photo_is_treated_like_rgb():
    rgb = on_white()
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    a, b = prepare_input(opaque, crop_size=200), prepare_input(rgb, crop_size=200)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert float((a.mask > 0.5).mean()) < 0.9  # not the whole frame


def test_an_opaque_rgba_photo_on_a_busy_background_is_refused_with_the_reason():
    busy = on_busy_background()
    opaque = np.dstack([busy, np.full(busy.shape[:2], 255, np.uint8)])
    with pytest.raises(NoObjectMaskError, match="alpha channel is opaque everywhere"):
        prepare_input(opaque, crop_size=200)


def test_a_foreground_mask_of_the_whole_frame_is_not_taken_as_the_object(host):
    white = torch.from_numpy(on_white().astype(np.float32) / 255)[None]
    full = torch.ones(1, 256, 256)
    out, _ = run(host, "SyncDreamerPrepareImage", image=white, crop_size=200, mask=full, mask_is_background=False).args
    alone, _ = run(host, "SyncDreamerPrepareImage", image=white, crop_size=200).args
    assert torch.equal(out, alone)
    busy = torch.from_numpy(on_busy_background().astype(np.float32) / 255)[None]
    with pytest.raises(ValueError, match="Remove Background"):
        run(host, "SyncDreamerPrepareImage", image=busy, crop_size=200, mask=full, mask_is_background=False)
    with pytest.raises(InputImageError, match="mask covers the whole image"):
        prepare_input(busy[0].numpy(), np.ones((256, 256), np.float32), 200)


# ---------------------------------------------------------------- files as phones write them

def test_the_command_line_stands_a_phone_photo_upright_like_loadimage(tmp_path):
    from syncdreamer_core.cli import _load_input

    lying = np.ascontiguousarray(np.rot90(on_white()))  # the sensor's orientation
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(lying).save(path, exif=exif, quality=95)
    cli_image = _load_input(str(path), 200)
    node_image, _ = load_image_like_comfyui(path)
    upright = np.asarray(cli_image.convert("RGB"))
    assert upright.shape[:2] == node_image.shape[1:3]
    assert np.array_equal(upright, np.round(node_image[0].numpy() * 255).astype(np.uint8))
    assert np.abs(upright.astype(int) - on_white()).mean() < 3  # the teapot as it was shot, not on its side


def test_a_16_bit_grey_image_keeps_its_levels(tmp_path):
    grey = np.asarray(Image.fromarray(on_white()).convert("L")).astype(np.uint16) * 257
    path = tmp_path / "scan16.png"
    Image.fromarray(grey).save(path)
    image = read_image(path)
    assert image.mode.startswith("I")
    prepared = prepare_input(image, crop_size=200)
    assert 0.1 < float((prepared.mask > 0.5).mean()) < 0.9


def test_an_image_above_pillows_safety_limit_gets_a_message(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.fromarray(on_white()).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 256x256 is then far above twice the limit
    with pytest.raises(ValueError, match="too large to open safely.*downscale"):
        read_image(path, "--input")


# ---------------------------------------------------------------- huge images

def test_preparing_a_huge_image_costs_less_than_the_image_itself():
    """A 24-megapixel float image (288 MB as ComfyUI's IMAGE) is prepared with less working
    memory than the image: converted and resized in bands, never copied to float64 whole."""
    height, width = 4000, 6000
    image = np.ones((height, width, 3), np.float32)
    image[1000:3000, 2000:4500] = (0.8, 0.2, 0.1)
    foreground = np.zeros((height, width), np.float32)
    foreground[1000:3000, 2000:4500] = 1
    tracemalloc.start()
    try:
        prepared = prepare_input(image, foreground, crop_size=200)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"prepare, {width}x{height} float32 ({image.nbytes / 2**20:.0f} MiB): peak {peak / 2**20:.0f} MiB")
    assert peak < 0.8 * image.nbytes
    assert abs(float((prepared.mask > 0.5).sum()) - 200 * 160) < 800
