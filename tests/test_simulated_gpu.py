"""Every route that puts tensors on a GPU, run on a simulated CUDA device (simulated_cuda.py:
torch's fake CUDA tensors, each with a CPU shadow of its values) in fp32, fp16 and bf16.
Each test fails on a device mismatch (torch's own rules raise), a float64 tensor on the
device, a read of a device value by the host inside the denoising loop, or network
compute that silently runs in float32.

This tier needs a CUDA build of torch (the default Linux wheel; the README's setup installs
one). It fails, never skips, without one."""

from __future__ import annotations

import comfy_stubs
import numpy as np
import pytest
import torch
from helpers import fast_tiny_config
from simulated_cuda import SimulatedCuda, require_cuda_build

from syncdreamer_core.accounting import in_pack
from syncdreamer_core.files import EXAMPLES, read_image

DTYPES = ("fp32", "fp16", "bf16")
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: Share of the FLOPs on the device that may run in float32 when the network computes in
#: half precision: the camera geometry of the volumes (once per model, by design).
FP32_ALLOWANCE = 0.001


def test_the_tier_runs_on_a_cuda_build_of_torch():
    require_cuda_build()  # a CPU-only torch fails here with what to install
    assert torch.version.cuda is not None


@pytest.fixture(scope="module")
def checkpoint():
    from syncdreamer_core.weights.official_layout import paint_square_decoder, random_checkpoint

    return paint_square_decoder(random_checkpoint(fast_tiny_config(), seed=3))


@pytest.fixture(scope="module")
def teapot():
    return read_image(EXAMPLES / "teapot.png")


def loop_reads(sim: SimulatedCuda, marks: list[int]) -> list:
    """The pack's reads of device values between the first and the last step callback."""
    return [read for read in sim.ledger.reads[marks[0]:marks[-1]] if in_pack(read[2])]


def check_device_work(sim: SimulatedCuda, dtype: str, marks: list[int]) -> None:
    assert not sim.float64, f"float64 tensors on the device: {sim.float64[:5]}"
    assert not sim.no_shadow, sim.no_shadow[:5]
    assert len(marks) >= 2, "the run reported fewer than two steps"
    reads = loop_reads(sim, marks)
    assert not reads, f"the host read device values inside the denoising loop: {reads[:6]}"
    share = sim.ledger.flop_share("cuda")
    compute = TORCH_DTYPES[dtype]
    assert share.get(compute, 0) >= 1 - FP32_ALLOWANCE, f"device FLOPs by dtype {share} (network in {compute})"


@pytest.mark.parametrize(("dtype", "sampler", "candidates"), [
    ("fp32", "ddim", 2), ("fp16", "dpmpp_2m", 1), ("bf16", "ddim", 1)])
def test_the_core_pipeline_runs_on_the_device(checkpoint, teapot, dtype, sampler, candidates):
    """Conditioning (VAE encoder, CLIP vision), the sampler loop and the VAE decoding."""
    from syncdreamer_core.pipeline import SyncDreamerPipeline
    from syncdreamer_core.weights.checkpoint import load_checkpoint

    with SimulatedCuda() as sim:
        pipe = SyncDreamerPipeline(load_checkpoint(checkpoint, dtype=dtype, device="cuda"), batch_view_num=8)
        marks = []
        result = pipe(teapot, 30, 200, sample_count=candidates, steps=2, seed=5, sampler=sampler,
                      callback=lambda done, total: marks.append(len(sim.ledger.reads)))
    check_device_work(sim, dtype, marks)
    assert result.latents.device.type == "cpu" and result.latents.shape == (candidates, 16, 4, 32, 32)
    assert torch.isfinite(result.latents).all() and result.views.shape == (candidates, 16, 256, 256, 3)
    if dtype == "fp32":  # the shadows compute what the CPU computes
        cpu = SyncDreamerPipeline(load_checkpoint(checkpoint), batch_view_num=8)(
            teapot, 30, 200, sample_count=candidates, steps=2, seed=5, sampler=sampler)
        assert torch.allclose(result.latents, cpu.latents, atol=1e-3, rtol=1e-3)
    print(f"{dtype} {sampler}: device peak {sim.ledger.peak['cuda'] / 2**20:.0f} MiB, "
          f"FLOPs {sim.ledger.flop_share('cuda')}, reads outside the loop {len(sim.ledger.reads)}")


@pytest.fixture
def device_host(tmp_path, checkpoint, monkeypatch):
    """The pack in ComfyUI stand-ins whose torch device is the simulated GPU (model
    management moves the network there, as ComfyUI's does)."""
    from node_host import load_pack

    def make(dtype: str, cpu: bool = False):
        return load_pack(tmp_path, checkpoint, dtype="fp32" if cpu else dtype,
                         device=None if cpu else torch.device("cuda", 0))

    yield make
    comfy_stubs.ProgressBar.hook = None
    comfy_stubs.install(tmp_path)  # back to the CPU stand-ins for the next test


@pytest.mark.parametrize(("dtype", "sampler_name", "scheduler"), [
    ("fp32", "ddim", "ddim_uniform"), ("fp16", "euler", "karras"), ("bf16", "dpmpp_2m", "karras"),
    ("fp16", "euler_cfg_pp", "karras")])
def test_the_sampler_node_runs_on_the_device(device_host, teapot, dtype, sampler_name, scheduler):
    from node_host import run

    from syncdreamer_core.preprocess import prepare_input

    prepared = torch.from_numpy(prepare_input(teapot, crop_size=200).image)[None]
    with SimulatedCuda() as sim:
        host = device_host(dtype)
        model, vae, _ = host["loaded"]
        marks = []
        comfy_stubs.ProgressBar.hook = lambda: marks.append(len(sim.ledger.reads))
        (latent,) = run(host, "SyncDreamerSampler", syncdreamer_model=model, vae=vae, image=prepared, elevation=20.0,
                        seed=3, steps=2, cfg=2.0, sampler_name=sampler_name, scheduler=scheduler, eta=1.0, batch_size=1,
                        batch_view_num=8).args
        assert next(model.network.parameters()).device.type == "cuda"
    check_device_work(sim, dtype, marks)
    samples = latent["samples"]
    assert samples.device.type == "cpu" and samples.shape == (16, 4, 32, 32) and torch.isfinite(samples).all()


def test_a_latent_with_a_noise_mask_is_sampled_on_the_device(device_host, teapot):
    from node_host import run

    from syncdreamer_core.preprocess import prepare_input

    prepared = torch.from_numpy(prepare_input(teapot, crop_size=200).image)[None]
    kept = torch.randn(16, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(16, 32, 32)
    mask[8:] = 1.0  # regenerate the last 8 views around the first 8
    with SimulatedCuda() as sim:
        host = device_host("bf16")
        model, vae, _ = host["loaded"]
        (guider,) = run(host, "SyncDreamerGuider", syncdreamer_model=model, vae=vae, image=prepared, elevation=20.0,
                        cfg=2.0, batch_view_num=8).args
        sigmas = comfy_stubs.karras(guider.inner_model.model_sampling, 2)
        marks = []
        noise = torch.randn(16, 4, 32, 32, generator=torch.Generator().manual_seed(2))
        sampler = comfy_stubs.KSAMPLER(comfy_stubs.sample_euler)
        out = guider.sample(noise, kept, sampler, sigmas, denoise_mask=mask,
                            callback=lambda *a: marks.append(len(sim.ledger.reads)), seed=4)
    check_device_work(sim, "bf16", marks)
    assert out.device.type == "cpu" and torch.allclose(out[:8], kept[:8], atol=1e-4)
    assert not torch.allclose(out[8:], kept[8:])


# ---------------------------------------------------------------- the nodes after sampling

@pytest.fixture(scope="module")
def chicken_views() -> torch.Tensor:
    """The bundled real SyncDreamer views [16, 256, 256, 3] as an IMAGE batch."""
    from syncdreamer_core.files import load_views

    return torch.from_numpy(load_views(EXAMPLES / "chicken-views.png").astype(np.float32) / 255)


def test_the_nodes_after_sampling_take_images_on_the_device(device_host, chicken_views, teapot):
    """With ComfyUI's --gpu-only, IMAGE and MASK values live on the GPU: Estimate Elevation,
    Rank Candidates, Reconstruct Mesh (fast, and quality on the device) and Turntable take
    them there and give the same results as from the CPU. (Quality reconstruction's
    backward passes cannot run on the simulated device: its leaves get zero gradients
    there, so its mesh is checked for shape, device and validity, not compared.)"""
    from node_host import run

    from syncdreamer_core.preprocess import prepare_input

    prepared = prepare_input(teapot, crop_size=200)
    image, mask = torch.from_numpy(prepared.image)[None], torch.from_numpy(prepared.mask)[None]
    two_sets = torch.cat([chicken_views, chicken_views.flip(2)])
    outputs = {}

    def nodes(host, on):
        elevation = run(host, "SyncDreamerEstimateElevation", image=on(image), object_mask=on(mask),
                        views=on(chicken_views)).args
        ranked = run(host, "SyncDreamerRankCandidates", views=on(two_sets)).args
        fast = run(host, "SyncDreamerReconstruct", views=on(chicken_views), method="fast", resolution=48,
                   texture="none", max_faces=3000).args[0]
        quality = run(host, "SyncDreamerReconstruct", views=on(chicken_views), method="quality", resolution=48,
                      quality_steps=8, quality_resolution=32, texture="none", max_faces=3000).args[0]
        frames = run(host, "SyncDreamerTurntable", mesh=fast, frames=2, resolution=64).args[0]
        return elevation, ranked, fast, quality, frames

    with SimulatedCuda() as sim:
        outputs["cuda"] = nodes(device_host("fp16"), lambda t: t.to("cuda"))
    assert not sim.float64, sim.float64[:5]
    assert not sim.no_shadow, sim.no_shadow[:5]
    outputs["cpu"] = nodes(device_host("fp16", cpu=True), lambda t: t)
    cpu, gpu = outputs["cpu"], outputs["cuda"]
    assert gpu[0][0] == pytest.approx(cpu[0][0], abs=1e-3) and gpu[0][2] == pytest.approx(cpu[0][2], abs=1e-3)
    assert gpu[1][2] == cpu[1][2] and gpu[1][3] == cpu[1][3]
    assert gpu[2].vertices.device.type == "cpu" and torch.allclose(gpu[2].vertices, cpu[2].vertices, atol=1e-4)
    quality = gpu[3]
    assert quality.vertices.device.type == "cpu" and quality.vertices.shape[-2] > 100 and quality.faces.shape[-2] > 100
    assert torch.isfinite(quality.vertices).all()
    assert torch.allclose(gpu[4], cpu[4], atol=1e-4)


# ---------------------------------------------------------------- Apple Silicon (MPS) rules

@pytest.fixture
def fresh_fallbacks(monkeypatch):
    from syncdreamer_core import device_support

    monkeypatch.setattr(device_support, "_FALLBACKS", set())
    return device_support


def test_the_routes_keep_to_what_mps_can_do(checkpoint, teapot, chicken_views, fresh_fallbacks, caplog):
    """On a device with MPS's limits (no float64 at all, no 3D grid_sample before torch 2.11)
    the pipeline and quality reconstruction run: nothing float64 reaches the device, and the
    3D grid_sample falls back to the CPU, said once."""
    import logging

    from syncdreamer_core.pipeline import SyncDreamerPipeline
    from syncdreamer_core.recon import reconstruct_quality
    from syncdreamer_core.weights.checkpoint import load_checkpoint

    caplog.set_level(logging.WARNING, logger="syncdreamer")
    with SimulatedCuda(mps_rules=True) as sim:
        pipe = SyncDreamerPipeline(load_checkpoint(checkpoint, dtype="fp16", device="cuda"), batch_view_num=8)
        result = pipe(teapot, 30, 200, steps=2, seed=5)
        views = (chicken_views.numpy() * 255).astype(np.uint8)
        mesh = reconstruct_quality(views, steps=4, resolution=32, mesh_resolution=48, device="cuda")
    assert not sim.float64
    assert torch.isfinite(result.latents).all() and len(mesh.vertices) > 100
    assert fresh_fallbacks.fallback_devices() == {"cuda"}
    said = [r for r in caplog.records if "3D grid_sample is not available" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]


# ---------------------------------------------------------------- the batch's sampler actor

def test_the_batch_sampler_actor_samples_on_the_device(checkpoint, tmp_path):
    """The stage Ray runs on a GPU (one actor per GPU), called as Ray Data calls it."""
    import json

    from safetensors.torch import save_file

    from syncdreamer_core.batch.items import BatchItem, BatchSettings
    from syncdreamer_core.batch.work import Sampler, prepare

    path = tmp_path / "tiny.safetensors"
    save_file(checkpoint, str(path))
    settings = BatchSettings(checkpoint=str(path), elevation=20.0, steps=1, candidates=1, dtype="fp16", device="cuda")
    item = BatchItem(str(EXAMPLES / "teapot.png"))
    row = prepare({"key": "teapot", "path": item.path, "content_hash": item.hash_content(), "error": "",
                   "settings": json.dumps(settings.for_item(item)), "failed_stage": "", "times": "{}"})
    with SimulatedCuda() as sim:
        sampler = Sampler(settings)
        assert next(sampler.pipe.model.parameters()).device.type == "cuda"
        out = sampler(row)
    assert not out.get("error"), out.get("error")
    assert out["views"].shape == (1, 16, 256, 256, 3) and out["views"].dtype == np.uint8
    assert not sim.float64 and sim.ledger.flop_share("cuda").get("float16", 0) > 1 - FP32_ALLOWANCE
