"""In a real ComfyUI: the shipped workflows with a JPEG (LoadImage gives a 64x64 empty
MASK), every sampler the host lists, and a LATENT with a noise mask."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from test_comfyui import assert_success, errors_of, run, sampler_graph, saved_latents, shipped

pytestmark = pytest.mark.integration

#: Samplers that draw fresh noise at every step (their 2-step result is one draw, not a limit).
STOCHASTIC = ("ancestral", "sde", "ddpm", "lcm", "seeds_", "sa_solver", "er_sde")


@pytest.fixture(scope="module")
def jpeg(comfy):
    """The bundled teapot photographed on white and saved as a JPEG in ComfyUI's input folder."""
    teapot = np.asarray(Image.open(comfy.base / "input" / "syncdreamer_teapot.png")).astype(np.float32) / 255
    canvas = np.ones((300, 300, 3), np.float32)
    top, left = (300 - teapot.shape[0]) // 2, (300 - teapot.shape[1]) // 2
    alpha = teapot[..., 3:]
    canvas[top:top + teapot.shape[0], left:left + teapot.shape[1]] = teapot[..., :3] * alpha + (1 - alpha)
    name = "teapot_on_white.jpg"
    Image.fromarray(np.round(canvas * 255).astype(np.uint8)).save(comfy.base / "input" / name, quality=92)
    return name


def with_input(workflow: dict, image: str) -> dict:
    workflow = copy.deepcopy(workflow)
    for node in workflow.values():
        if node["class_type"] == "LoadImage" and node["inputs"]["image"] == "syncdreamer_teapot.png":
            node["inputs"]["image"] = image
    return workflow


@pytest.mark.parametrize("name", ["image_to_3d", "candidates", "elevation_refinement"])
def test_the_shipped_workflows_take_a_jpeg(comfy, jpeg, name):
    workflow = with_input(shipped(name), jpeg)
    assert any(n["inputs"].get("image") == jpeg for n in workflow.values()), "the workflow loads no example image"
    entry = run(comfy, workflow)
    assert_success(entry)


def test_a_jpeg_on_a_busy_background_says_what_to_connect(comfy):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(comfy.base / "input" / "busy.jpg")
    graph = sampler_graph(1, 1)
    graph["1"]["inputs"]["image"] = "busy.jpg"
    entry = run(comfy, graph)
    assert entry["status"]["status_str"] == "error"
    assert any("Remove Background" in (e or "") for e in errors_of(entry)), errors_of(entry)


def test_a_cmyk_jpeg_through_loadimage_finds_the_object_as_its_rgb_twin(comfy, jpeg):
    """0.27's LoadImage decodes through PyAV, which gives a CMYK JPEG a constant alpha; the
    object Prepare Image finds must be the one of the same picture saved as RGB."""
    rgb = Image.open(comfy.base / "input" / jpeg)
    rgb.convert("CMYK").save(comfy.base / "input" / "teapot_cmyk.jpg", quality=95)
    shares = {}
    for name, kind in ((jpeg, "rgb"), ("teapot_cmyk.jpg", "cmyk")):
        graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": name}},
            "2": {"class_type": "SyncDreamerPrepareImage",
                  "inputs": {"image": ["1", 0], "mask": ["1", 1], "mask_is_background": True, "crop_size": 200}},
            "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": f"object_{kind}"}},
        }
        entry = run(comfy, graph)
        assert_success(entry)
        saved = entry["outputs"]["4"]["images"][0]
        mask = np.asarray(Image.open(comfy.base / "output" / saved["subfolder"] / saved["filename"]).convert("L")) / 255
        shares[kind] = float((mask > 0.5).mean())
    print(f"object share of the prepared input, {comfy.version}: {shares}")
    assert 0.15 < shares["rgb"] < 0.5
    assert abs(shares["cmyk"] - shares["rgb"]) < 0.01, shares


def test_every_sampler_the_host_lists_runs_two_steps(comfy):
    names = comfy.get("/object_info/SyncDreamerSampler")["SyncDreamerSampler"]["input"]["required"]["sampler_name"]
    names = names[1]["options"] if isinstance(names[1], dict) and "options" in names[1] else names[0]
    assert "euler_cfg_pp" in names and "ddim" in names and len(names) > 30
    reference = sampler_graph(21, 50, "ddim", "ddim_uniform", prefix="ddim50")
    reference["4"]["inputs"]["eta"] = 0.0
    assert_success(run(comfy, reference))
    target = saved_latents(comfy, "ddim50")
    rows, failures = [], []
    for name in names:
        graph = sampler_graph(21, 2, name, "karras", prefix=f"every_{name}")
        graph["4"]["inputs"]["eta"] = 0.0
        entry = run(comfy, graph)
        if entry["status"]["status_str"] != "success":
            failures.append(f"{name}: {errors_of(entry)}")
            continue
        latents = saved_latents(comfy, f"every_{name}_")
        finite = bool(torch.isfinite(latents).all())
        stochastic = any(mark in name for mark in STOCHASTIC)
        distance = float((latents - target).norm() / target.norm())
        rows.append((name, finite, "stochastic" if stochastic else f"{distance:.3f}"))
        if not finite:
            failures.append(f"{name}: non-finite latents")
    print(f"\n{comfy.version}: 2 steps (karras), relative L2 distance to 50-step DDIM (eta 0)")
    for name, finite, distance in rows:
        print(f"  {name:32s} finite={finite}  {distance}")
    assert not failures, failures


def test_a_latent_with_a_noise_mask_keeps_the_masked_views(comfy):
    graph = sampler_graph(5, 2, prefix="masked_source")
    graph.update({
        "20": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 256, "height": 256}},
        "21": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["4", 0], "mask": ["20", 0]}},
        "22": {"class_type": "SyncDreamerGuider", "inputs": {"syncdreamer_model": ["2", 0], "vae": ["2", 1],
                                                             "image": ["3", 0], "elevation": 0.0, "cfg": 2.0,
                                                             "batch_view_num": 8}},
        "23": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "24": {"class_type": "KarrasScheduler", "inputs": {"steps": 2, "sigma_max": 2.0, "sigma_min": 0.0291675,
                                                           "rho": 7.0}},
        "26": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
        "27": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["26", 0], "guider": ["22", 0],
                                                                 "sampler": ["23", 0], "sigmas": ["24", 0],
                                                                 "latent_image": ["21", 0]}},
        "28": {"class_type": "SaveLatent", "inputs": {"samples": ["27", 0], "filename_prefix": "latents/masked_kept"}},
    })
    entry = run(comfy, graph)
    assert_success(entry)
    kept, source = saved_latents(comfy, "masked_kept"), saved_latents(comfy, "masked_source")
    assert torch.allclose(kept, source, atol=1e-5)
    graph["20"]["inputs"]["value"] = 1.0  # regenerate every view around nothing kept
    graph["28"]["inputs"]["filename_prefix"] = "latents/masked_redone"
    assert_success(run(comfy, graph))
    redone = saved_latents(comfy, "masked_redone")
    assert torch.isfinite(redone).all() and not torch.allclose(redone, source, atol=1e-3)
