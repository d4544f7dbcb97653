"""The guider as ComfyUI's samplers use it: the CFG++ family's post-CFG functions (which
need the unconditional prediction), sampler_cfg_function patches, and latents with a
noise mask (kept views, the others regenerated)."""

from __future__ import annotations

import comfy_stubs
import pytest
import torch
from node_host import run
from test_nodes import sample


@pytest.fixture(scope="module")
def prepared(host):
    from test_nodes import teapot_image

    image, mask = teapot_image()
    return run(host, "SyncDreamerPrepareImage", image=image, crop_size=180, mask=mask, mask_is_background=True).args


def make_guider(host, prepared, cfg=2.0):
    model, vae, _ = host["loaded"]
    (guider,) = run(host, "SyncDreamerGuider", syncdreamer_model=model, vae=vae, image=prepared[0], elevation=10.0,
                    cfg=cfg, batch_view_num=8).args
    return guider


def one_step_setup(host, prepared, cfg=2.0):
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser
    from syncdreamer_core.diffusion.sigma_denoiser import SigmaDenoiser

    guider = make_guider(host, prepared, cfg)
    cond = guider.conditioning(1, 5)
    guider.sigma_model = SigmaDenoiser(SyncDenoiser(guider.inner_model.network, 8), cond.instance(0), cfg)
    x = torch.randn(16, 4, 32, 32, generator=torch.manual_seed(3)) * 3
    sigma = torch.full((16,), 3.0)
    return guider, x, sigma


@pytest.mark.parametrize("cfg", [2.0, 1.0])
def test_post_cfg_functions_get_both_predictions_and_their_result_is_used(host, prepared, cfg):
    guider, x, sigma = one_step_setup(host, prepared, cfg)
    plain = guider(x, sigma)
    seen = {}

    def post(args):
        seen.update(args)
        return args["denoised"] * 0.5

    out = guider(x, sigma, model_options={"sampler_post_cfg_function": [post], "disable_cfg1_optimization": True})
    cond, uncond = seen["cond_denoised"], seen["uncond_denoised"]
    assert cond.shape == uncond.shape == x.shape and not torch.allclose(cond, uncond)
    assert torch.allclose(seen["denoised"], uncond + cfg * (cond - uncond), atol=1e-5)
    assert torch.allclose(seen["denoised"], plain, atol=1e-4, rtol=1e-4)
    assert torch.equal(out, seen["denoised"] * 0.5) and seen["input"] is x and torch.equal(seen["sigma"], sigma)
    assert seen["model"].model_sampling is guider.inner_model.model_sampling


def test_a_sampler_cfg_function_replaces_the_guidance(host, prepared):
    guider, x, sigma = one_step_setup(host, prepared)

    def rescaled(args):  # what a CFG patch returns: the noise, x - denoised
        return args["uncond"] + 3.0 * (args["cond"] - args["uncond"])

    out = guider(x, sigma, model_options={"sampler_cfg_function": rescaled})
    cond, uncond = guider.sigma_model.denoise_both(x, sigma)
    assert torch.allclose(out, uncond + 3.0 * (cond - uncond), atol=1e-5)


def sample_euler_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """ComfyUI's euler_cfg_pp, as it is written: the step direction from the unconditional
    prediction, which a post-CFG function hands over."""
    extra_args = dict(extra_args or {})
    temp = [None]

    def post_cfg_function(args):
        temp[0] = args["uncond_denoised"]
        return args["denoised"]

    options = dict(extra_args.get("model_options", {}))
    options["sampler_post_cfg_function"] = options.get("sampler_post_cfg_function", []) + [post_cfg_function]
    options["disable_cfg1_optimization"] = True
    extra_args["model_options"] = options
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = (x - temp[0]) / sigmas[i]
        x = denoised + d * sigmas[i + 1]
    return x


def test_a_cfg_pp_sampler_runs_through_the_sampler_node(host, prepared, monkeypatch):
    samplers = comfy_stubs.sys.modules["comfy.samplers"]
    monkeypatch.setattr(samplers, "SAMPLER_NAMES", [*samplers.SAMPLER_NAMES, "euler_cfg_pp"])
    monkeypatch.setattr(samplers, "sampler_object", lambda name: comfy_stubs.KSAMPLER(
        sample_euler_cfg_pp if name == "euler_cfg_pp" else comfy_stubs.sample_euler_ancestral))
    latent = sample(host, prepared[0], sampler_name="euler_cfg_pp", scheduler="karras", steps=2)
    assert latent.shape == (16, 4, 32, 32) and torch.isfinite(latent).all()
    assert not torch.allclose(latent, sample(host, prepared[0], sampler_name="euler_ancestral", scheduler="karras",
                                             steps=2))


def test_a_noise_mask_keeps_its_views_and_regenerates_the_others(host, prepared):
    model, _, _ = host["loaded"]
    guider = make_guider(host, prepared)
    (sampler,) = run(host, "SyncDreamerDDIMSampler", syncdreamer_model=model, eta=0.0).args
    first = sample(host, prepared[0], steps=2, seed=1)  # a LATENT of 16 views from an earlier run
    mask = torch.ones(16, 256, 256)
    mask[:4] = 0  # keep views 0-3 (SetLatentNoiseMask's MASK: 1 = regenerate)
    sigmas = comfy_stubs.ddim_uniform(model.model.model_sampling, 3)
    noise = torch.randn(first.shape, generator=torch.manual_seed(9))
    out = guider.sample(noise, first, sampler, sigmas, denoise_mask=mask, seed=9)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:4], first[:4], atol=1e-4)
    assert (out[4:] - first[4:]).abs().mean() > 0.05
