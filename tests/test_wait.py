"""The wait told before a CPU run: the step's FLOPs counted on the meta device are the FLOPs
a real step computes, the estimate composes them with this CPU's rates, steps, candidates
and the sampler's evaluations per step, and the Sampler node tells it (log and progress
text) before its first step, then counts down. And the loader's dtype ``auto`` takes bf16
on a CPU with bf16 instructions, fp32 where bf16 would be emulated."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import fake_cpu, fast_tiny_config

from syncdreamer_core import wait
from syncdreamer_core.accounting import Accounting


def counted_on_the_cpu(config, cfg: float) -> int:
    """FLOPs of one real denoising step on the CPU."""
    from syncdreamer_core.conditioning import Conditioning
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser
    from syncdreamer_core.network.model import SyncDreamer

    torch.manual_seed(0)
    model = SyncDreamer(config).eval().requires_grad_(False)
    x = torch.randn(1, config.view_count, 4, 32, 32)
    cond = Conditioning(torch.randn(1, 1, config.context_dim), torch.randn(1, 4, 32, 32), torch.zeros(1))
    accounting = Accounting(devices=("cpu",))
    with torch.inference_mode(), accounting:
        SyncDenoiser(model, 8)(x, torch.full((1,), 500, dtype=torch.long), cond, cfg)
    return sum(accounting.ledger.flops.values())


@pytest.mark.parametrize("cfg", [2.0, 1.0])
def test_the_meta_count_is_what_a_real_step_computes(cfg):
    config = fast_tiny_config()
    assert wait.step_flops(config, "fp32", None, 8, cfg != 1) == pytest.approx(counted_on_the_cpu(config, cfg), rel=1e-6)


def test_the_estimate_is_flops_over_the_measured_rate_times_steps_and_candidates(monkeypatch):
    from syncdreamer_core.network.model import SyncDreamer

    config = fast_tiny_config()
    asked = []
    monkeypatch.setattr(wait, "probe_rate", lambda config, dtype, batch, threads: asked.append((dtype, batch)) or 2e9)
    step = wait.REST * wait.step_flops(config, "fp32", None, 8, True) / 2e9
    network = SyncDreamer(config).eval()
    told = wait.cpu_wait(network, 8, 2.0, steps=51, instances=4)
    assert asked == [(torch.float32, 16)]  # the probe runs the step's batch: 8 views, twice for guidance
    assert told.step_seconds == pytest.approx(step) and told.evaluations == 204
    assert told.seconds == pytest.approx(204 * step)
    assert "51 steps x 4 candidates" in told.describe() and "a step in fp32" in told.describe()
    assert wait.cpu_wait(network, 8, 2.0, 51, 4, evaluations_per_step=2).seconds == pytest.approx(2 * told.seconds)
    assert wait.cpu_wait(network.to("meta"), 8, 2.0, 51, 4) is None  # only a CPU run is told


def test_the_probe_measures_this_cpu_on_the_networks_own_blocks():
    config = fast_tiny_config()
    rate = wait.probe_rate(config, torch.float32, 16, torch.get_num_threads())
    assert 1e6 < rate < 1e14
    assert wait.probe_rate(config, torch.float32, 16, torch.get_num_threads()) == rate  # measured once


def test_the_countdown_follows_the_measured_pace(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(wait.time, "monotonic", lambda: clock[0])
    countdown = wait.Countdown(wait.WaitEstimate(30.0, 10, 10, 1, "float32"))
    assert countdown.left(0) == 300
    clock[0] += 20  # two steps took 20 s: 8 more take 80 s
    assert countdown.left(2) == pytest.approx(80) and countdown.describe(2) == "step 2/10: about 80 s left"
    assert wait.duration(47 * 60) == "47 min" and wait.duration(5400) == "1.5 h"


def test_the_sampler_node_tells_the_wait_before_its_first_step_and_counts_down(host, monkeypatch, caplog):
    import sys

    import comfy_stubs
    from node_host import run
    from test_nodes import teapot_image

    host_module = sys.modules["ComfyUI_SyncDreamer.nodes.host"]
    shown = []
    monkeypatch.setattr(host_module, "progress_text", shown.append)
    comfy_stubs.ProgressBar.updates.clear()
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser

    calls = []
    real_call = SyncDenoiser.__call__

    def counted(self, x, *args, **kwargs):
        if x.device.type != "meta":  # the memory estimate runs a step on the meta device first
            calls.append(len(shown))  # how many texts were shown when the network ran
        return real_call(self, x, *args, **kwargs)

    monkeypatch.setattr(SyncDenoiser, "__call__", counted)
    image, mask = teapot_image()
    prepared = run(host, "SyncDreamerPrepareImage", image=image, crop_size=180, mask=mask, mask_is_background=True)[0]
    model, vae, _ = host["loaded"]
    with caplog.at_level(logging.INFO):
        run(host, "SyncDreamerSampler", syncdreamer_model=model, vae=vae, image=prepared, elevation=0.0, seed=1,
            steps=3, cfg=2.0, sampler_name="ddim", scheduler="ddim_uniform", eta=1.0, batch_size=2, batch_view_num=8)
    assert shown[0].startswith("SyncDreamer on the CPU: about ") and "(3 steps x 2 candidates" in shown[0]
    assert any(r.getMessage() == shown[0] for r in caplog.records)  # in the log too
    assert calls[0] == 1  # told before the network's first evaluation
    assert [text.split(":")[0] for text in shown[1:]] == [f"step {k}/6" for k in range(1, 7)]


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, torch.bfloat16),  # Zen 4, Cooper Lake and later Xeons
    ({"avx2", "amx_bf16", "amx_tile"}, torch.bfloat16),  # Sapphire Rapids
    ({"avx2", "fma"}, torch.float32),  # bf16 would be emulated, many times slower
])
def test_auto_takes_bf16_on_a_cpu_with_bf16_instructions_and_fp32_elsewhere(host, monkeypatch, flags, expected):
    import sys

    fake_cpu(monkeypatch, flags)
    loader = sys.modules["ComfyUI_SyncDreamer.nodes.loader"]
    assert loader.resolve_dtypes("auto", torch.device("cpu")) == (expected, expected)
