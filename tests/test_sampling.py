"""The synchronized sampler: determinism, per-instance streams, the memory knob, any step
count, other samplers."""

from __future__ import annotations

import pytest
import torch

from syncdreamer_core.conditioning import Conditioning
from syncdreamer_core.diffusion.ddim import sample_ddim, seed_noise_sampler
from syncdreamer_core.diffusion.denoiser import SyncDenoiser
from syncdreamer_core.diffusion.noise import NoiseStream, instance_seed
from syncdreamer_core.diffusion.sampling import reference_sigmas, sample
from syncdreamer_core.diffusion.schedule import ddim_timesteps
from syncdreamer_core.diffusion.sigma_denoiser import SigmaDenoiser


@pytest.fixture(scope="module")
def denoiser(tiny_loaded):
    return SyncDenoiser(tiny_loaded.model, batch_view_num=8)


def two_instances(seed=1):
    g = torch.Generator().manual_seed(seed)
    return Conditioning(torch.randn(2, 1, 768, generator=g), torch.randn(2, 4, 32, 32, generator=g),
                        torch.tensor([0.2, -0.1]))


def test_same_seed_same_result_other_seed_other_result(denoiser, random_cond):
    run = lambda seed: sample(denoiser, random_cond, 2, 2.0, 1.0, seed=seed)  # noqa: E731
    a, b, c = run(5), run(5), run(6)
    assert a.shape == (1, 16, 4, 32, 32)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.1


def test_instance_k_of_a_batch_is_the_single_run_with_seed_plus_k(denoiser):
    cond = two_instances()
    together = sample(denoiser, cond, 2, 2.0, 1.0, seed=40)
    for k in range(2):
        alone = sample(denoiser, cond.instance(k), 2, 2.0, 1.0, seed=40 + k)
        assert torch.equal(together[k:k + 1], alone)


def test_the_largest_seed_wraps_to_zero_for_the_next_instance():
    assert instance_seed(2**64 - 1, 1) == 0
    with pytest.raises(ValueError, match="seed must be an integer in 0..2\\*\\*64-1"):
        instance_seed(2**64, 0)


@pytest.mark.parametrize("batch_view_num", [1, 3, 16])
def test_batch_view_num_never_changes_the_noise_prediction(denoiser, random_cond, batch_view_num):
    x = torch.randn(1, 16, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([600])
    reference = denoiser(x, t, random_cond, 2.0, 8)
    assert torch.allclose(denoiser(x, t, random_cond, 2.0, batch_view_num), reference, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bad", [0, 17, 2.5, True])
def test_batch_view_num_out_of_range_is_an_error(tiny_loaded, bad):
    with pytest.raises(ValueError, match="batch_view_num must be an integer in 1..16"):
        SyncDenoiser(tiny_loaded.model, bad)


def test_instances_in_one_batch_are_independent(denoiser):
    cond = two_instances()
    x = torch.randn(2, 16, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([400, 900])
    together = denoiser(x, t, cond, 2.0)
    for i in range(2):
        alone = denoiser(x[i:i + 1], t[i:i + 1], cond.instance(i), 2.0)
        assert torch.allclose(together[i:i + 1], alone, atol=1e-5, rtol=1e-4)


def test_every_view_depends_on_every_other_view(denoiser, random_cond):
    """Synchronisation: changing the noisy latent of view 5 changes the prediction of view 0."""
    x = torch.randn(1, 16, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([500])
    base = denoiser(x, t, random_cond, 1.0)
    x2 = x.clone()
    x2[0, 5] += 1.0
    assert (denoiser(x2, t, random_cond, 1.0)[0, 0] - base[0, 0]).abs().max() > 1e-4


def test_the_denoiser_checks_for_cancel_between_view_chunks(tiny_loaded, random_cond):
    class Stop(Exception):
        pass

    calls = []

    def check():
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    denoiser = SyncDenoiser(tiny_loaded.model, 4, between_chunks=check)
    with pytest.raises(Stop):
        denoiser(torch.zeros(1, 16, 4, 32, 32), torch.tensor([500]), random_cond, 2.0)
    assert len(calls) == 2  # stopped before the second of four chunks


def official_timesteps(steps: int) -> list[int] | None:
    """The official sampler's list (``range(0, 1000, 1000 // steps) + 1``), or None where it
    reaches t = 1000 and the official code fails."""
    listed = [t + 1 for t in range(0, 1000, 1000 // steps)]
    return None if listed[-1] >= 1000 else listed


def test_every_step_count_runs_the_official_timesteps_and_a_stated_choice_where_the_official_fails():
    from syncdreamer_core.diffusion.schedule import official_fails_at, steps_run

    failing = []
    for steps in range(1, 1001):
        ours = ddim_timesteps(steps).flip(0).tolist()
        official = official_timesteps(steps)
        assert official_fails_at(steps) == (official is None), steps
        if official is None:
            failing.append(steps)
            assert ours == [t + 1 for t in range(0, 1000, 1000 // steps)][:-1], steps  # t = 1000 dropped
        else:
            assert ours == official, steps
        assert steps_run(steps) == len(ours) and int(ddim_timesteps(steps).max()) < 1000
    assert {3, 9, 27, 36, 37, *range(101, 112)} <= set(failing)
    assert (steps_run(30), steps_run(6), steps_run(15), steps_run(150)) == (31, 7, 16, 167)


def test_comfyuis_ddim_uniform_runs_the_same_timesteps_at_every_count():
    """The Sampler node's ddim + ddim_uniform (ComfyUI's scheduler, here its stand-in) runs what
    the command line runs."""
    import comfy_stubs

    from syncdreamer_core.diffusion.noise_levels import DiscreteSigmas
    from syncdreamer_core.diffusion.schedule import scaled_linear_betas, schedule_buffers

    sigmas = DiscreteSigmas(schedule_buffers(scaled_linear_betas())["alphas_cumprod"])
    model_sampling = type("MS", (), {"sigmas": sigmas.sigmas})()
    for steps in (6, 7, 15, 30, 36, 50, 75, 150, 1000):
        comfy = comfy_stubs.ddim_uniform(model_sampling, steps)[:-1]
        ours = sigmas.t_to_sigma(ddim_timesteps(steps)).cpu()
        assert torch.allclose(comfy, ours.float()), steps


def test_fifty_steps_are_the_reference_timesteps():
    assert ddim_timesteps(50).flip(0).tolist() == list(range(1, 1000, 20))


def test_a_non_dividing_step_count_samples(denoiser, random_cond):
    result = sample(denoiser, random_cond, 3, 2.0, seed=0)
    assert torch.isfinite(result).all()


def test_dpm_solver_runs(denoiser, random_cond):
    result = sample(denoiser, random_cond, 2, 2.0, sampler="dpmpp_2m", seed=0)
    assert result.shape == (1, 16, 4, 32, 32) and torch.isfinite(result).all()


def test_dpm_solver_at_many_steps_approaches_deterministic_ddim(denoiser, random_cond):
    """Both integrate the same ODE: with eta 0 and enough steps they meet."""
    # Without guidance (one network pass per step): the ODE is the same either way.
    ddim = sample(denoiser, random_cond, 12, 1.0, eta=0.0, seed=3)
    dpm = sample(denoiser, random_cond, 12, 1.0, sampler="dpmpp_2m", seed=3)
    few = sample(denoiser, random_cond, 3, 1.0, sampler="dpmpp_2m", seed=3)
    far = float((few - ddim).norm() / ddim.norm())
    near = float((dpm - ddim).norm() / ddim.norm())
    print(f"dpmpp_2m vs ddim(eta 0): 12 steps {near:.4f}, 3 steps {far:.4f}")
    assert near < far and near < 0.05, (near, far)


def test_host_style_driving_with_the_seed_equals_the_core_sampler(denoiser, random_cond):
    """A host that draws the starting noise from the seed and lets the DDIM sampler draw the
    rest from the same seed lands on the core sampler's latents exactly."""
    seed, steps = 42, 3
    reference = sample(denoiser, random_cond, steps, 2.0, 1.0, seed=seed)
    model = SigmaDenoiser(denoiser, random_cond, 2.0)
    sigmas = reference_sigmas(model, steps)
    shape = (16, 4, 32, 32)
    x = NoiseStream(seed, shape)() * (1 + sigmas[0] ** 2) ** 0.5
    result = sample_ddim(model, x, sigmas, eta=1.0, noise_sampler=seed_noise_sampler(seed, shape),
                         terminal_sigma=float(model.schedule.sigma_min))
    assert torch.equal(result.reshape(reference.shape), reference)


def test_sigma_denoiser_checks_whole_instances(denoiser, random_cond):
    model = SigmaDenoiser(denoiser, random_cond, 2.0)
    with pytest.raises(ValueError, match="whole instances of 16 views"):
        model(torch.zeros(8, 4, 32, 32), torch.tensor([1.0]))


@pytest.mark.parametrize("steps", [0, 1001, 2.5])
def test_invalid_step_counts_are_errors(denoiser, random_cond, steps):
    with pytest.raises(ValueError, match="steps must be an integer in 1..1000"):
        sample(denoiser, random_cond, steps)


@pytest.mark.parametrize("cfg,eta", [(float("nan"), 1.0), (2.0, float("nan")), (float("inf"), 1.0), (2.0, -1.0)])
def test_non_finite_guidance_or_eta_is_an_error(denoiser, random_cond, cfg, eta):
    with pytest.raises(ValueError, match="cfg|eta"):
        sample(denoiser, random_cond, 2, cfg, eta)


def test_non_finite_latents_are_an_error_not_black_views(tiny_checkpoint, random_cond):
    from syncdreamer_core.diffusion.sampling import SamplingError
    from syncdreamer_core.weights.checkpoint import load_checkpoint

    loaded = load_checkpoint(tiny_checkpoint, with_vae=False, with_clip=False)
    # A new parameter: the loaded network shares storage with the session's checkpoint.
    out = loaded.model.unet.out[2]
    out.bias = torch.nn.Parameter(torch.full_like(out.bias, float("inf")), requires_grad=False)
    with pytest.raises(SamplingError, match="NaN or infinite latents"):
        sample(SyncDenoiser(loaded.model), random_cond, 1, 2.0)


def test_wrong_elevation_type_is_an_error():
    with pytest.raises(TypeError, match="elevation must be a float tensor of radians"):
        Conditioning(torch.zeros(1, 1, 768), torch.zeros(1, 4, 32, 32), torch.tensor([30]))
