"""Inputs as users have them: JPEGs and other images without alpha, phone photos with an
EXIF orientation, RGBA photos that are opaque everywhere, 16-bit greys, huge scans."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest
import torch
from node_host import run
from PIL import Image

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
    with pytest.raises(NoObjectMaskError, match="alpha channel is the same everywhere"):
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


# ---------------------------------------------------------------- views, candidates and meshes from elsewhere

def chicken_views_uint8() -> np.ndarray:
    from syncdreamer_core.files import load_views

    return load_views(EXAMPLES / "chicken-views.png")


@pytest.mark.parametrize("blank", [[1, 4, 7, 10, 13], [0, 2, 4, 6, 8, 10, 12, 14]])
def test_blank_views_are_named_before_carving(blank):
    from syncdreamer_core.recon import ReconstructionInputError, reconstruct_fast

    views = chicken_views_uint8().copy()
    views[blank] = 255
    with pytest.raises(ReconstructionInputError, match=re.escape(f"views {blank} are blank") + ".*vote_tolerance"):
        reconstruct_fast(views, resolution=32)


def test_a_blank_candidate_is_ranked_last_with_its_reason(host):
    good = torch.from_numpy(chicken_views_uint8().astype(np.float32) / 255)
    broken = good.clone()
    broken[[3, 9]] = 1.0
    best, ranked, index, scores = run(host, "SyncDreamerRankCandidates", views=torch.cat([broken, good])).args
    assert index == 1 and torch.equal(best, good) and torch.equal(ranked[16:], broken)
    assert scores.splitlines()[-1].startswith("candidate 0: unusable") and "views [3, 9] are blank" in scores
    with pytest.raises(ValueError, match="no candidate can be meshed.*candidate 0.*candidate 1"):
        run(host, "SyncDreamerRankCandidates", views=torch.cat([broken, broken]))


@pytest.mark.parametrize("field", ["vertex_colors", "texture"])
def test_nan_colours_in_a_mesh_from_another_node_are_refused_before_writing(host, tmp_path, field):
    from comfy_stubs import MESH

    vertices = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    faces = torch.tensor([[[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]])
    fields = {"vertex_colors": torch.full((1, 4, 3), 0.5)}
    if field == "texture":
        fields = {"uvs": torch.rand(1, 4, 2), "texture": torch.full((1, 8, 8, 3), 0.5)}
    fields[field][0, 1] = float("nan")
    mesh = MESH(vertices, faces, **fields)
    with pytest.raises(ValueError, match=f"{field} hold NaN or infinite values"):
        run(host, "SyncDreamerSaveMesh", mesh=mesh, filename_prefix="mesh/nan", format="ply")
    assert not list((host["tmp"] / "output").rglob("nan*"))


def test_select_views_refuses_an_endless_list_before_allocating(host):
    import time

    views = torch.zeros(16, 8, 8, 3)
    started = time.perf_counter()
    with pytest.raises(ValueError, match="at most 256 view indices"):
        run(host, "SyncDreamerSelectViews", views=views, indices="0," * 20000)
    assert time.perf_counter() - started < 0.5
    (picked,) = run(host, "SyncDreamerSelectViews", views=views, indices="0-15," * 16).args
    assert picked.shape[0] == 256


def test_the_turntable_renders_into_the_batch_it_returns(host, monkeypatch):
    """No second copy of the frames: each asset's frames are rendered straight into the
    output IMAGE batch (the peak is the output, not twice it)."""
    import syncdreamer_core.recon.turntable as turntable_module

    buffers = []
    original = turntable_module.turntable

    def recording(*args, out=None, **kwargs):
        buffers.append(out)
        return original(*args, out=out, **kwargs)

    monkeypatch.setattr(turntable_module, "turntable", recording)
    from comfy_stubs import MESH

    vertices = torch.tensor([[[0.0, 0, 0], [0.4, 0, 0], [0, 0.4, 0], [0, 0, 0.4]]]).repeat(2, 1, 1)
    faces = torch.tensor([[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]]).repeat(2, 1, 1)
    (frames,) = run(host, "SyncDreamerTurntable", mesh=MESH(vertices, faces), frames=3, resolution=32).args
    assert frames.shape == (6, 32, 32, 3) and len(buffers) == 2
    assert all(np.shares_memory(buffer, frames.numpy()) for buffer in buffers)
    assert float(frames.min()) < 1.0  # the object was drawn into it


CARVING_PEAK = """
import resource, sys
import numpy as np
from syncdreamer_core.cameras import target_cameras
from syncdreamer_core.files import EXAMPLES, load_views
from syncdreamer_core.recon.carving import visual_hull
from syncdreamer_core.recon.views import prepare_views
viewset = prepare_views(load_views(EXAMPLES / "chicken-views.png"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
grid, trusted = visual_hull(viewset.masks, target_cameras(), int(sys.argv[1]), tolerance=2)
assert len(trusted) >= 14 and (grid.values > 0).mean() > 0.01
print(before * 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_carving_memory_is_the_grid_not_sixteen_grids():
    """The silhouette fields stream through in chunks: carving at resolution 256 peaks about
    a few float32 grids (64 MiB each) above what preparing the views took, not one grid per
    view (1 GiB)."""
    import subprocess
    import sys

    from helpers import ROOT

    resolution = 256
    before, after = map(int, subprocess.run([sys.executable, "-c", CARVING_PEAK, str(resolution)], cwd=ROOT,
                                            check=True, capture_output=True, text=True).stdout.split()[-2:])
    one_grid = resolution**3 * 4
    print(f"carving at {resolution}: peak RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB "
          f"(one grid {one_grid / 2**20:.0f} MiB)")
    assert after - before < 4 * one_grid


# ---------------------------------------------------------------- files and paths

@pytest.fixture
def tiny_file(tmp_path, tiny_checkpoint):
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file(tiny_checkpoint, str(path))
    return path


def test_a_torch_checkpoint_renamed_safetensors_loads(tmp_path, tiny_checkpoint):
    from syncdreamer_core.weights.checkpoint import load_checkpoint

    path = tmp_path / "renamed.safetensors"
    torch.save({"state_dict": tiny_checkpoint}, path)
    loaded = load_checkpoint(path, with_vae=False, with_clip=False)
    assert loaded.config.model_channels == 32


def test_a_legacy_checkpoint_that_needs_pickled_code_is_named_for_what_it_is(tmp_path, tiny_checkpoint):
    import argparse

    from syncdreamer_core.weights.checkpoint import CheckpointError, convert_checkpoint, load_checkpoint

    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": tiny_checkpoint, "hyper_parameters": argparse.Namespace(lr=1e-4)}, path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "argparse.Namespace" in message and "--trust-pickled-code" in message
    assert "truncated" not in message and "download" not in message.lower()
    converted = tmp_path / "legacy.safetensors"
    convert_checkpoint(path, converted, "fp32", trust_pickled_code=True)
    assert load_checkpoint(converted).config.model_channels == 32


def test_a_truncated_legacy_checkpoint_is_still_called_truncated(tmp_path, tiny_checkpoint):
    from syncdreamer_core.weights.checkpoint import CheckpointError, load_checkpoint

    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": tiny_checkpoint}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_malformed_config_metadata_is_a_clear_error(tmp_path, tiny_checkpoint):
    from safetensors.torch import save_file

    from syncdreamer_core.weights.checkpoint import CheckpointError, load_checkpoint

    for text, message in (("{not json", "malformed 'syncdreamer_config' metadata"),
                          ('{"num_heads": "eight"}', "bad num_heads")):
        path = tmp_path / "edited.safetensors"
        save_file(tiny_checkpoint, str(path), metadata={"syncdreamer_config": text})
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def test_convert_checks_where_it_writes_before_reading(tmp_path, tiny_file, monkeypatch):
    import syncdreamer_core.weights.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "read_state_dict", lambda *a: pytest.fail("read before checking the output"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="a-file is a file"):
        checkpoint.convert_checkpoint(tiny_file, blocker / "out.safetensors")
    with pytest.raises(ValueError, match="a-file is a file, not a folder"):
        checkpoint.convert_checkpoint(tiny_file, blocker / "deeper" / "out.safetensors")
    with pytest.raises(ValueError, match="255"):
        checkpoint.convert_checkpoint(tiny_file, tmp_path / ("x" * 300 + ".safetensors"))
    monkeypatch.setattr(checkpoint.os, "access", lambda *a: False)  # an unwritable folder (the tests run as root)
    with pytest.raises(ValueError, match="permission denied"):
        checkpoint.convert_checkpoint(tiny_file, tmp_path / "ro" / "out.safetensors")


def test_a_conversion_never_replaces_one_that_finished_meanwhile(tmp_path, tiny_file, monkeypatch):
    import safetensors.torch

    from syncdreamer_core.weights.checkpoint import convert_checkpoint

    target = tmp_path / "out.safetensors"
    real_save = safetensors.torch.save_file

    def racing_save(tensors, filename, metadata=None):
        target.write_bytes(b"the other run's file")  # another conversion finished first
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", racing_save)
    with pytest.raises(ValueError, match="another conversion"):
        convert_checkpoint(tiny_file, target)
    assert target.read_bytes() == b"the other run's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([tiny_file.name, target.name])  # no temporary left


def test_two_runs_cannot_claim_the_same_outputs(tmp_path):
    from syncdreamer_core.outputs import OutputClaim, OutputError

    paths = [tmp_path / "out" / "0.png", tmp_path / "out" / "input.png"]
    with OutputClaim(paths) as first:
        with pytest.raises(OutputError, match="already exists"), OutputClaim(paths):
            pass
        first.write(paths[0], lambda target: target.write_bytes(b"png"))
    assert paths[0].read_bytes() == b"png" and not paths[1].exists()  # never written: released


def test_generate_checks_ckpt_folders_and_output_parents(tmp_path, tiny_file, capsys):
    from syncdreamer_core.cli import main

    args = ["generate", "--input", str(EXAMPLES / "teapot.png"), "--elevation", "0"]
    assert main([*args, "--ckpt", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "is a folder; give the checkpoint file itself" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*args, "--ckpt", str(tiny_file), "--output", str(blocker / "sub")]) == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err


def test_a_second_generate_into_the_same_folder_fails_before_loading(tmp_path, tiny_file, capsys, monkeypatch):
    import syncdreamer_core.pipeline as pipeline
    from syncdreamer_core.cli import main
    from syncdreamer_core.outputs import OutputClaim

    output = tmp_path / "out"
    loads = []
    monkeypatch.setattr(pipeline.SyncDreamerPipeline, "from_checkpoint", lambda *a, **k: loads.append(1) or 1 / 0)
    names = [output / n for n in ("0.png", "0-grid.png", "input.png")]
    with OutputClaim(names):  # the first run holds its outputs
        code = main(["generate", "--input", str(EXAMPLES / "teapot.png"), "--elevation", "0", "--ckpt", str(tiny_file),
                     "--output", str(output)])
    assert code == 2 and not loads and "already exists" in capsys.readouterr().err


def test_save_mesh_refuses_a_prefix_too_long_for_a_file_name(host):
    from comfy_stubs import MESH

    vertices = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    faces = torch.tensor([[[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]])
    with pytest.raises(ValueError, match="255"):
        run(host, "SyncDreamerSaveMesh", mesh=MESH(vertices, faces), filename_prefix="mesh/" + "m" * 260, format="glb")


def test_every_generate_option_has_help_and_shows_its_default():
    from syncdreamer_core.cli import build_parser

    parser = build_parser()
    generate = parser._subparsers._group_actions[0].choices["generate"]
    text = generate.format_help()
    for action in generate._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        if not action.required:
            assert "default" in generate.formatter_class("x")._get_help_string(action), action.option_strings
    assert "(default: 50)" in text and "(default: 6033)" in text


# ---------------------------------------------------------------- a constant alpha (CMYK through PyAV)

def test_a_constant_alpha_says_nothing_and_the_white_background_is_found():
    """ComfyUI 0.27's LoadImage decodes through PyAV, which gives a CMYK JPEG an alpha of 254
    everywhere (its MASK is 1/255 everywhere): the object must come out as for the RGB file."""
    rgb = on_white()
    reference = prepare_input(rgb, crop_size=200)
    for level in (254, 253, 128):
        constant = np.dstack([rgb, np.full(rgb.shape[:2], level, np.uint8)])
        got = prepare_input(constant, crop_size=200)
        assert np.array_equal(got.mask, reference.mask) and np.array_equal(got.image, reference.image), level


def test_loadimage_mask_of_a_pyav_decoded_cmyk_jpeg_prepares_like_rgb(host):
    image = torch.from_numpy(on_white().astype(np.float32) / 255)[None]
    pyav_mask = torch.full((1, 256, 256), 1 - 254 / 255)  # 1 - alpha, alpha 0.996 everywhere
    out, mask = run(host, "SyncDreamerPrepareImage", image=image, crop_size=200, mask=pyav_mask,
                    mask_is_background=True).args
    alone, alone_mask = run(host, "SyncDreamerPrepareImage", image=image, crop_size=200).args
    assert torch.equal(out, alone) and torch.equal(mask, alone_mask)
    assert float((mask > 0.5).float().mean()) < 0.5  # the object, not the canvas


# ---------------------------------------------------------------- plain images, empty masks: said as they are

@pytest.mark.parametrize(("make", "colour"), [
    (lambda p: Image.new("RGB", (200, 160), "white").save(p.with_suffix(".jpg")), "plain white (one colour)"),
    (lambda p: Image.new("I;16", (200, 160), 65535).save(p), "plain white (one colour)"),
    (lambda p: Image.new("RGB", (200, 160), (0, 0, 0)).save(p.with_suffix(".jpg"), quality=90), "plain black (one colour)"),
    (lambda p: Image.new("RGB", (200, 160), (40, 90, 200)).save(p), "one plain colour (RGB 40, 90, 200)"),
])
def test_a_plain_image_is_called_plain_at_the_first_node_that_sees_it(host, tmp_path, make, colour):
    make(tmp_path / "plain.png")
    [path] = list(tmp_path.glob("plain.*"))
    colour = re.escape(colour)
    with pytest.raises(InputImageError, match=f"^no object: the image is {colour}$"):
        prepare_input(read_image(path), crop_size=200)
    image = torch.from_numpy(np.asarray(read_image(path).convert("RGB")).astype(np.float32) / 255)[None]
    for node, title, inputs in (("SyncDreamerPrepareImage", "SyncDreamer Prepare Image", {"crop_size": 200}),
                                ("SyncDreamerWhiteBackgroundMask", "SyncDreamer White Background Mask", {})):
        with pytest.raises(ValueError, match=f"^{title}: no object: the image is {colour}$"):
            run(host, node, image=image, **inputs)


def test_plain_views_and_empty_masks_given_on_purpose_are_called_that():
    from syncdreamer_core.recon.views import ReconstructionInputError, prepare_views

    white = np.full((16, 64, 64, 3), 255, np.uint8)
    with pytest.raises(ReconstructionInputError, match=r"^no object: views \[0, 1, .* 15\] are plain white \(one colour\)$"):
        prepare_views(white)
    with pytest.raises(ReconstructionInputError, match=r"the masks given for views \[0, .*\] are empty \(0 everywhere\)"):
        prepare_views(white, masks=np.zeros((16, 64, 64)))


def test_an_empty_mask_passed_on_purpose_is_called_empty(host):
    image = torch.from_numpy(on_white().astype(np.float32) / 255)[None]
    with pytest.raises(ValueError, match=r"^SyncDreamer Prepare Image: the mask is empty \(0 everywhere\): it selects "
                                         "no object pixel"):
        run(host, "SyncDreamerPrepareImage", image=image, crop_size=200, mask=torch.zeros(1, 256, 256),
            mask_is_background=False)
    with pytest.raises(InputImageError, match=r"^the mask is empty \(0 everywhere\)"):
        prepare_input(on_white(), np.zeros((256, 256), np.uint8), crop_size=200)


def test_files_that_are_not_what_their_name_says_are_named_for_what_they_are(tmp_path, tiny_checkpoint):
    import zipfile

    from safetensors.torch import save_file

    from syncdreamer_core.weights.checkpoint import CheckpointError, convert_checkpoint, read_state_dict

    model = tmp_path / "model.safetensors"
    save_file(tiny_checkpoint, str(model))
    archive = tmp_path / "syncdreamer-pretrain.ckpt"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(model, "download/syncdreamer.safetensors")
    with pytest.raises(CheckpointError, match="is a zip archive of other files .*unzip it and use "
                                              "download/syncdreamer.safetensors from inside"):
        read_state_dict(archive)
    folder = tmp_path / "out.safetensors"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a folder; give a file name ending in .safetensors"):
        convert_checkpoint(model, folder)


def chicken_masks() -> np.ndarray:
    from syncdreamer_core.recon.views import prepare_views

    return prepare_views(chicken_views_uint8()).masks


def test_empty_masks_given_for_half_the_views_are_called_empty_masks_not_blank_views():
    from syncdreamer_core.recon import ReconstructionInputError, reconstruct_fast

    masks = chicken_masks().copy()
    masks[:8] = False  # eight empty masks: not more than half, so the masks themselves pass
    with pytest.raises(ReconstructionInputError, match=re.escape("the masks given for views [0, 1, 2, 3, 4, 5, 6, 7] "
                                                                 "are empty (0 everywhere), more than the 2")):
        reconstruct_fast(chicken_views_uint8(), masks=masks, resolution=32)


def test_whole_frame_masks_given_are_called_that_not_a_missing_background():
    from syncdreamer_core.recon import ReconstructionInputError, reconstruct_fast

    with pytest.raises(ReconstructionInputError, match=r"the masks given for views \[0, 1, .*15\] cover the whole "
                                                       r"frame: each mask must mark only the object"):
        reconstruct_fast(chicken_views_uint8(), masks=np.ones((16, 256, 256), bool), resolution=32)


def test_estimate_elevation_names_the_blank_views(host):
    from syncdreamer_core.elevation import estimate_elevation

    views = chicken_views_uint8().copy()
    views[[2, 5, 8, 9, 12, 15]] = 255
    mask = np.zeros((256, 256), np.float32)
    mask[60:200, 70:190] = 1
    with pytest.raises(ValueError, match=re.escape("views [2, 5, 8, 9, 12, 15] are blank (all white, no object), more "
                                                   "than the 2 the elevation's visual hull can leave out")):
        estimate_elevation(mask, views)


def test_a_photo_given_to_split_views_is_named_there(host, caplog):
    import logging

    rng = np.random.default_rng(0)
    photo = torch.from_numpy(rng.uniform(0.1, 0.8, (1, 768, 768, 3)).astype(np.float32))  # a busy square photo
    with caplog.at_level(logging.WARNING):
        run(host, "SyncDreamerSplitViews", image=photo, layout="auto")
    assert any(r.getMessage().startswith("SyncDreamer Split Views: image: 16 of its 16 views have no white border, and "
                                         "SyncDreamer draws every object on white: these do not look like SyncDreamer's "
                                         "views") for r in caplog.records)
    caplog.clear()
    grid = torch.from_numpy(np.asarray(Image.open(EXAMPLES / "chicken-views.png").convert("RGB"), np.float32) / 255)
    with caplog.at_level(logging.WARNING):
        assert run(host, "SyncDreamerSplitViews", image=grid[None], layout="auto")[0].shape == (16, 256, 256, 3)
    assert not caplog.records  # SyncDreamer's own views pass without a word


def test_compose_views_composes_odd_views_and_says_so(host, caplog):
    import logging

    noise = torch.rand(16, 64, 64, 3)  # what an untrained network decodes to
    with caplog.at_level(logging.WARNING):
        (grid,) = run(host, "SyncDreamerComposeViews", views=noise, layout="grid").args
    assert grid.shape == (1, 256, 256, 3)
    assert any("16 of its 16 views have no white border" in r.getMessage() for r in caplog.records)
