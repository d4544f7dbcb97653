"""The ComfyUI nodes, with small stand-ins for the host (see comfy_stubs.py)."""

from __future__ import annotations

import importlib.util
import sys

import comfy_stubs
import numpy as np
import pytest
import torch
from helpers import ROOT
from PIL import Image
from safetensors.torch import save_file

from syncdreamer_core.files import EXAMPLES


@pytest.fixture(scope="module")
def host(tmp_path_factory, tiny_checkpoint):
    tmp = tmp_path_factory.mktemp("comfy")
    mm, folder_paths = comfy_stubs.install(tmp)
    spec = importlib.util.spec_from_file_location("ComfyUI_SyncDreamer", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["ComfyUI_SyncDreamer"] = pack
    spec.loader.exec_module(pack)
    save_file(tiny_checkpoint, str(tmp / "models" / "syncdreamer" / "tiny.safetensors"))
    loaded = pack.NODE_CLASS_MAPPINGS["SyncDreamerCheckpointLoader"]().load("tiny.safetensors", "fp32")
    return {"pack": pack, "nodes": pack.NODE_CLASS_MAPPINGS, "mm": mm, "folder_paths": folder_paths,
            "tmp": tmp, "loaded": loaded}


def node(host, name):
    return host["nodes"][name]()


def teapot_image():
    rgba = np.asarray(Image.open(EXAMPLES / "teapot.png")).astype(np.float32) / 255
    image = torch.from_numpy(rgba[..., :3])[None]
    mask = torch.from_numpy(1.0 - rgba[..., 3])[None]  # as LoadImage gives it: 1 on the background
    return image, mask


@pytest.fixture(scope="module")
def prepared(host):
    image, mask = teapot_image()
    return node(host, "SyncDreamerPrepareImage").prepare(image, 180, mask, True)


def test_every_node_declares_inputs_outputs_and_the_category(host):
    assert len(host["nodes"]) == len(host["pack"].NODE_DISPLAY_NAME_MAPPINGS) >= 14
    for name, cls in host["nodes"].items():
        spec = cls.INPUT_TYPES()
        assert "required" in spec and cls.CATEGORY == "SyncDreamer", name
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert isinstance(cls.RETURN_TYPES, tuple), name


def test_model_folder_is_registered_and_listed(host):
    assert "syncdreamer" in host["folder_paths"].folder_names_and_paths
    assert "tiny.safetensors" in host["nodes"]["SyncDreamerCheckpointLoader"].INPUT_TYPES()["required"]["ckpt_name"][0]


def test_loader_outputs_model_vae_and_clip_vision_and_caches(host):
    model, vae, clip_vision = host["loaded"]
    assert model.network.config.model_channels == 32
    assert hasattr(vae, "decode") and hasattr(vae, "encode")
    assert hasattr(clip_vision, "encode_image")
    again = node(host, "SyncDreamerCheckpointLoader").load("tiny.safetensors", "fp32")
    assert again[0] is model


def test_loader_can_store_fp16_weights_and_compute_in_fp32(host):
    loader = node(host, "SyncDreamerCheckpointLoader")
    model = loader.load("tiny.safetensors", "fp16 weights, fp32 compute")[0]
    assert model is not host["loaded"][0]
    assert {p.dtype for p in model.network.parameters()} == {torch.float16}
    assert model.network.dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        loader.load("tiny.safetensors", "fp8")


def test_missing_checkpoint_file_is_a_clear_error(host):
    with pytest.raises(ValueError, match="not found in models/syncdreamer"):
        node(host, "SyncDreamerCheckpointLoader").load("nope.ckpt", "fp32")


def test_prepare_gives_256_white_background_images(prepared):
    image, mask = prepared
    assert image.shape == (1, 256, 256, 3) and mask.shape == (1, 256, 256)
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert torch.allclose(image[0][mask[0] == 0], torch.ones(3))


def test_prepare_accepts_a_foreground_mask_with_the_toggle_off(host, prepared):
    image, mask = teapot_image()
    out, _ = node(host, "SyncDreamerPrepareImage").prepare(image, 180, 1.0 - mask, False)
    assert torch.allclose(out, prepared[0])


def test_prepare_explains_an_inverted_or_empty_mask(host):
    image, mask = teapot_image()
    with pytest.raises(ValueError, match="mask_is_background"):
        node(host, "SyncDreamerPrepareImage").prepare(image, 180, torch.ones_like(mask), True)


def test_prepare_rejects_wrong_channels(host):
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\|4\]"):
        node(host, "SyncDreamerPrepareImage").prepare(torch.zeros(1, 64, 64, 2), 200)


def test_white_background_mask_node(host):
    image = torch.ones(1, 64, 64, 3)
    image[:, 20:40, 10:30] = 0.2
    (mask,) = node(host, "SyncDreamerWhiteBackgroundMask").mask(image)
    assert mask.shape == (1, 64, 64) and float(mask.sum()) == 400
    with pytest.raises(ValueError, match="white background"):
        node(host, "SyncDreamerWhiteBackgroundMask").mask(torch.rand(1, 64, 64, 3) * 0.5)


def sample(host, prepared, sampler_name="ddim", scheduler="ddim_uniform", seed=5, steps=2, batch_size=1, **kw):
    model, vae, clip_vision = host["loaded"]
    return node(host, "SyncDreamerSampler").sample(model, vae, prepared[0], 0.0, seed, steps, 2.0, sampler_name,
                                                   scheduler, kw.pop("eta", 1.0), batch_size, kw.pop("bvn", 8), **kw)


def test_sampler_outputs_sixteen_raw_latents_per_candidate_deterministically(host, prepared):
    comfy_stubs.ProgressBar.updates.clear()
    (a,) = sample(host, prepared, batch_size=2)
    (b,) = sample(host, prepared, batch_size=2)
    assert a["samples"].shape == (32, 4, 32, 32)
    assert torch.equal(a["samples"], b["samples"])
    assert not torch.allclose(a["samples"][:16], a["samples"][16:])
    assert [u[0] for u in comfy_stubs.ProgressBar.updates[:2]] == [1, 2]
    assert comfy_stubs.ProgressBar.updates[0][2][1].size == (512, 512)  # a 4x4 preview of the views


def test_ddim_with_ddim_uniform_equals_the_core_reference_sampler(host, prepared):
    """Same seed -> the latents of syncdreamer_core.diffusion.sampling.sample (the reference DDIM, eta 1)."""
    from syncdreamer_core.constants import VAE_SCALE_FACTOR
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser
    from syncdreamer_core.diffusion.sampling import sample as core_sample

    seed, steps = 7, 3
    (latent,) = sample(host, prepared, seed=seed, steps=steps)
    model, vae, clip_vision = host["loaded"]
    pack_host = sys.modules["ComfyUI_SyncDreamer.nodes.host"]
    cond = pack_host.input_conditioning(model, vae, clip_vision, prepared[0], 0.0)(1, seed)
    reference = core_sample(SyncDenoiser(model.network, 8), cond, steps, 2.0, 1.0,
                            generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(latent["samples"] * VAE_SCALE_FACTOR, reference.reshape(16, 4, 32, 32), atol=1e-4, rtol=1e-4)


def test_other_samplers_and_schedulers_run(host, prepared):
    (latent,) = sample(host, prepared, sampler_name="euler", scheduler="karras")
    assert torch.isfinite(latent["samples"]).all()


def test_batch_view_num_does_not_change_the_result(host, prepared):
    (a,) = sample(host, prepared, bvn=16)
    (b,) = sample(host, prepared, bvn=3)
    assert torch.allclose(a["samples"], b["samples"], atol=1e-4, rtol=1e-4)


def test_unknown_sampler_name_is_a_clear_error(host, prepared):
    with pytest.raises(ValueError, match="unknown sampler_name 'warp'"):
        sample(host, prepared, sampler_name="warp")


def test_wrong_image_size_is_a_clear_error(host):
    with pytest.raises(ValueError, match="256x256 output of 'SyncDreamer Prepare Image'"):
        sample(host, (torch.zeros(1, 128, 128, 3),))


def test_interrupt_stops_sampling(host, prepared):
    host["mm"].state.update(interrupt_after=host["mm"].state["checks"] + 1)
    try:
        with pytest.raises(comfy_stubs.Interrupted):
            sample(host, prepared, steps=5)
    finally:
        host["mm"].state["interrupt_after"] = None


def test_guider_and_ddim_sampler_pieces_for_sampler_custom_advanced(host, prepared):
    model, vae, clip_vision = host["loaded"]
    (guider,) = node(host, "SyncDreamerGuider").guider(model, vae, prepared[0], 0.0, 2.0, 8)
    (sampler,) = node(host, "SyncDreamerDDIMSampler").sampler(model, 1.0)
    (empty,) = node(host, "SyncDreamerEmptyLatent").empty(1)
    sigmas = comfy_stubs.ddim_uniform(model.model.model_sampling, 3)
    noise = torch.randn(empty["samples"].shape, generator=torch.manual_seed(7))
    out = guider.sample(noise, empty["samples"], sampler, sigmas, seed=7)
    (expected,) = sample(host, prepared, seed=7, steps=3)
    assert torch.allclose(out, expected["samples"], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="multiple of 16"):
        guider.sample(noise[:8], empty["samples"][:8], sampler, sigmas, seed=7)


def test_decoded_views_are_in_camera_order(host, prepared):
    """View i of the LATENT decodes to image i: compose/split keep that order."""
    model, vae, _ = host["loaded"]
    (latent,) = sample(host, prepared, steps=1)
    views = vae.decode(latent["samples"])
    assert views.shape == (16, 256, 256, 3)
    (grid,) = node(host, "SyncDreamerComposeViews").compose(views, "grid")
    (strip,) = node(host, "SyncDreamerComposeViews").compose(views, "strip")
    assert torch.equal(grid[0, 256:512, 512:768], views[6]) and torch.equal(strip[0, :, 256 * 9:256 * 10], views[9])
    (back,) = node(host, "SyncDreamerSplitViews").split(strip, "auto")
    assert torch.equal(back, views)


def test_view_nodes_validate_shapes(host):
    with pytest.raises(ValueError, match="width/height = 16/1"):
        node(host, "SyncDreamerSplitViews").split(torch.zeros(1, 10, 100, 3), "strip")
    (picked,) = node(host, "SyncDreamerSelectViews").select(torch.arange(32.).view(32, 1, 1, 1).expand(32, 2, 2, 3), "0-1,15")
    assert picked[:, 0, 0, 0].tolist() == [0, 1, 15, 16, 17, 31]
    with pytest.raises(ValueError, match="candidate 2 does not exist"):
        node(host, "SyncDreamerPickCandidate").pick(torch.zeros(32, 4, 4, 3), 2)


def test_reconstruct_and_save_mesh(host):
    from syncdreamer_core.files import load_views

    views = torch.from_numpy(load_views(EXAMPLES / "chicken-views.png").astype(np.float32) / 255)
    (mesh,) = node(host, "SyncDreamerReconstruct").reconstruct(views, "fast", 64)
    assert mesh.vertices.shape[0] == 1 and mesh.faces.shape[-1] == 3 and mesh.vertex_colors.shape[-1] == 3
    for fmt in ("glb", "obj", "ply"):
        result = node(host, "SyncDreamerSaveMesh").save(mesh, "mesh/test", fmt, "y")
        path = host["tmp"] / "output" / result["result"][0]
        assert path.is_file() and path.stat().st_size > 1000
        assert result["ui"]["3d"][0]["filename"].endswith(fmt)
    with pytest.raises(ValueError, match="exactly 16 images"):
        node(host, "SyncDreamerReconstruct").reconstruct(views[:8], "fast", 64)


def test_quality_reconstruction_shows_progress_and_can_be_interrupted(host):
    from syncdreamer_core.files import load_views

    views = torch.from_numpy(load_views(EXAMPLES / "chicken-views.png").astype(np.float32) / 255)
    comfy_stubs.ProgressBar.updates.clear()
    (mesh,) = node(host, "SyncDreamerReconstruct").reconstruct(views, "quality", 64, quality_steps=3, quality_resolution=32)
    assert mesh.faces.shape[1] > 0 and mesh.vertex_colors is not None
    assert [u[:2] for u in comfy_stubs.ProgressBar.updates] == [(1, 3), (2, 3), (3, 3)]
    start = host["mm"].state["checks"]
    host["mm"].state.update(interrupt_after=start + 1)
    try:
        with pytest.raises(comfy_stubs.Interrupted):
            node(host, "SyncDreamerReconstruct").reconstruct(views, "quality", 64, quality_steps=50, quality_resolution=32)
    finally:
        host["mm"].state["interrupt_after"] = None
    assert host["mm"].state["checks"] == start + 2  # stopped in the second iteration


def test_elevation_node(host):
    assert node(host, "SyncDreamerElevation").elevation(12.5) == (12.5,)


def test_estimate_elevation_node_recovers_view_zero(host):
    """View 0 of a set is itself seen from azimuth 0 at elevation 30: used as the input."""
    from syncdreamer_core.files import load_views
    from syncdreamer_core.preprocess import prepare_input

    views = load_views(EXAMPLES / "chicken-views.png")
    prepared = prepare_input(views[0], crop_size=200)
    image = torch.from_numpy(prepared.image)[None]
    mask = torch.from_numpy(prepared.mask)[None]
    views_t = torch.from_numpy(views.astype(np.float32) / 255)
    elevation, preview, confidence = node(host, "SyncDreamerEstimateElevation").estimate(image, mask, views_t)
    assert abs(elevation - 30.0) <= 5.0 and preview.shape == (1, 256, 256, 3) and 0 <= confidence <= 1
    with pytest.raises(ValueError, match="16 views"):
        node(host, "SyncDreamerEstimateElevation").estimate(image, mask, views_t[:4])
