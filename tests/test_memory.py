"""Memory told before a run: the estimate (a step run on the meta device, shapes only)
against the peak a real run allocates on the CPU and on the simulated GPU; batch_view_num
auto picks the largest that fits; a run that cannot fit stops before its first step."""

from __future__ import annotations

import pytest
import torch
from helpers import fast_tiny_config

from syncdreamer_core.conditioning import Conditioning
from syncdreamer_core.diffusion.denoiser import SyncDenoiser
from syncdreamer_core.files import EXAMPLES, read_image
from syncdreamer_core.memory import (
    VIEW_CHOICES,
    MemoryShortage,
    choose_batch_view_num,
    measured_peak,
    sampling_peak,
)
from syncdreamer_core.network.config import SyncDreamerConfig
from syncdreamer_core.network.model import SyncDreamer


def one_step(model, views: int):
    device = model.device
    cond = Conditioning(torch.zeros(1, 1, model.config.context_dim), torch.zeros(1, 4, 32, 32), torch.zeros(1))
    x = torch.zeros(1, 16, 4, 32, 32, device=device)
    return lambda: SyncDenoiser(model, views)(x, torch.zeros(1, dtype=torch.long, device=device), cond, 2.0)


@pytest.mark.parametrize("views", [16, 8])
def test_the_estimate_is_the_peak_a_real_cpu_run_allocates(views):
    config = SyncDreamerConfig.small()
    with torch.inference_mode():
        model = SyncDreamer(config).eval()
        measured = measured_peak(one_step(model, views), "cpu")
    estimate = sampling_peak(config, "fp32", None, views)
    print(f"small network, fp32, batch_view_num {views}: estimated {estimate.activations / 2**20:.1f} MiB of "
          f"activations, measured {measured / 2**20:.1f} MiB")
    assert estimate.activations == pytest.approx(measured, rel=0.05)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_the_estimate_is_the_peak_of_the_simulated_gpu(dtype):
    """The meta-device estimate against fake CUDA tensors (torch's GPU kernels' shapes,
    the attention GPUs run), weights included."""
    from simulated_cuda import SimulatedCuda

    config = fast_tiny_config()
    with SimulatedCuda() as sim:
        with torch.inference_mode():
            model = SyncDreamer(config).to("cuda", dtype=torch.float16 if dtype == "fp16" else torch.bfloat16).eval()
            sim.count_module(model)
            one_step(model, 8)()
    estimate = sampling_peak(config, dtype, None, 8)
    simulated = sim.ledger.peak["cuda"]
    print(f"tiny network, {dtype}: estimated {estimate.peak / 2**20:.2f} MiB, simulated GPU {simulated / 2**20:.2f} MiB")
    assert estimate.peak == pytest.approx(sim.ledger.peak["cuda"], rel=0.1)


def test_fewer_views_at_a_time_need_less_and_half_precision_half_the_weights():
    config = SyncDreamerConfig.small()
    peaks = [sampling_peak(config, "fp16", None, v).peak for v in VIEW_CHOICES]
    assert peaks == sorted(peaks, reverse=True) and peaks[0] > 1.5 * peaks[-1]
    full, half = sampling_peak(config, "fp32", None, 8), sampling_peak(config, "fp16", None, 8)
    assert half.weights == pytest.approx(full.weights / 2, rel=0.02)
    narrow = sampling_peak(config, "fp32", "fp16", 8)  # fp16 weights, fp32 compute
    assert narrow.weights == pytest.approx(half.weights, rel=0.02)


def test_auto_takes_the_largest_that_fits_and_a_run_that_cannot_fit_is_refused_with_figures():
    config = SyncDreamerConfig.small()
    needs = {v: sampling_peak(config, "fp16", None, v).activations * 1.15 for v in VIEW_CHOICES}
    assert choose_batch_view_num(config, "fp16", int(needs[16]) + 1) == 16
    assert choose_batch_view_num(config, "fp16", int(needs[8]) + 1) == 8
    assert choose_batch_view_num(config, "fp16", int(needs[2]) + 1) == 2
    with pytest.raises(MemoryShortage, match=r"needs 0\.\d GB for a denoising step at batch_view_num 1 .* GB is free"):
        choose_batch_view_num(config, "fp16", int(needs[1] * 0.5))
    with pytest.raises(MemoryShortage, match="lower batch_view_num"):
        choose_batch_view_num(config, "fp16", int(needs[8]) + 1, asked=16)


def test_the_sampler_node_picks_views_by_free_memory_and_stops_before_sampling(host, monkeypatch):
    import comfy_stubs
    from node_host import run

    from syncdreamer_core.preprocess import prepare_input

    model, vae, _ = host["loaded"]
    image = torch.from_numpy(prepare_input(read_image(EXAMPLES / "teapot.png"), crop_size=200).image)[None]
    network = model.network
    needs = {v: sampling_peak(network.config, network.dtype, None, v).activations for v in VIEW_CHOICES}
    chosen = []
    real_denoiser = SyncDenoiser.__init__

    def spy(self, model, batch_view_num=8, between_chunks=None):
        if model.device.type != "meta":  # not the estimate's own runs
            chosen.append(batch_view_num)
        real_denoiser(self, model, batch_view_num, between_chunks)

    monkeypatch.setattr(SyncDenoiser, "__init__", spy)
    monkeypatch.setattr(host["mm"], "get_free_memory", lambda *a, **k: int(needs[4]) + 1)
    run(host, "SyncDreamerSampler", syncdreamer_model=model, vae=vae, image=image, elevation=20.0, seed=1, steps=1,
        cfg=2.0, sampler_name="ddim", scheduler="ddim_uniform", eta=1.0, batch_size=1, batch_view_num=0)
    assert chosen == [4]
    comfy_stubs.ProgressBar.updates.clear()
    monkeypatch.setattr(host["mm"], "get_free_memory", lambda *a, **k: int(needs[1] / 2))
    with pytest.raises(ValueError, match=r"needs .* GB for a denoising step at batch_view_num 1 .* GB is free"):
        run(host, "SyncDreamerSampler", syncdreamer_model=model, vae=vae, image=image, elevation=20.0, seed=1, steps=1,
            cfg=2.0, sampler_name="ddim", scheduler="ddim_uniform", eta=1.0, batch_size=1, batch_view_num=0)
    assert comfy_stubs.ProgressBar.updates == []  # not one step was taken
