"""The synchronized sampler: determinism, the memory knob, any step count, other samplers."""

from __future__ import annotations

import pytest
import torch

from syncdreamer_core.denoiser import Conditioning, SyncDenoiser
from syncdreamer_core.k_diffusion import SigmaDenoiser, reference_noise_sampler, sample_sync_ddim
from syncdreamer_core.sampling import ddim_timesteps, sample


@pytest.fixture(scope="module")
def denoiser(tiny_loaded):
    return SyncDenoiser(tiny_loaded.model, batch_view_num=8)


def test_same_seed_same_result_other_seed_other_result(denoiser, random_cond):
    run = lambda seed: sample(denoiser, random_cond, 2, 2.0, 1.0, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(5), run(5), run(6)
    assert a.shape == (1, 16, 4, 32, 32)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.1


@pytest.mark.parametrize("batch_view_num", [1, 3, 16])
def test_batch_view_num_never_changes_the_noise_prediction(denoiser, random_cond, batch_view_num):
    x = torch.randn(1, 16, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([600])
    reference = denoiser(x, t, random_cond, 2.0, 8)
    assert torch.allclose(denoiser(x, t, random_cond, 2.0, batch_view_num), reference, atol=1e-5, rtol=1e-4)


def test_instances_in_one_batch_are_independent(denoiser):
    g = torch.Generator().manual_seed(1)
    cond = Conditioning(torch.randn(2, 1, 768, generator=g), torch.randn(2, 4, 32, 32, generator=g),
                        torch.tensor([0.2, -0.1]))
    x = torch.randn(2, 16, 4, 32, 32, generator=g)
    t = torch.tensor([400, 900])
    together = denoiser(x, t, cond, 2.0)
    for i in range(2):
        alone = denoiser(x[i:i + 1], t[i:i + 1],
                         Conditioning(cond.clip_embed[i:i + 1], cond.input_latent[i:i + 1], cond.elevation[i:i + 1]), 2.0)
        assert torch.allclose(together[i:i + 1], alone, atol=1e-5, rtol=1e-4)


def test_every_view_depends_on_every_other_view(denoiser, random_cond):
    """Synchronisation: changing the noisy latent of view 5 changes the prediction of view 0."""
    x = torch.randn(1, 16, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([500])
    base = denoiser(x, t, random_cond, 1.0)
    x2 = x.clone()
    x2[0, 5] += 1.0
    assert (denoiser(x2, t, random_cond, 1.0)[0, 0] - base[0, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("steps", [3, 7, 50])
def test_any_step_count_gives_that_many_timesteps(denoiser, steps):
    timesteps = ddim_timesteps(steps, denoiser.model.betas)
    assert len(timesteps) == steps and int(timesteps.max()) < 1000 and int(timesteps.min()) == 1
    assert torch.all(timesteps[:-1] > timesteps[1:])


def test_fifty_steps_are_the_reference_timesteps(denoiser):
    assert ddim_timesteps(50, denoiser.model.betas).flip(0).tolist() == list(range(1, 1000, 20))


def test_a_non_dividing_step_count_samples(denoiser, random_cond):
    result = sample(denoiser, random_cond, 3, 2.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(result).all()


def test_dpm_solver_runs(denoiser, random_cond):
    result = sample(denoiser, random_cond, 2, 2.0, scheduler="dpmpp_2m", generator=torch.Generator().manual_seed(0))
    assert result.shape == (1, 16, 4, 32, 32) and torch.isfinite(result).all()


def test_host_style_ddim_with_the_seed_equals_the_reference_sampler(denoiser, random_cond):
    """Driving the sigma-form DDIM with the seed's noise reproduces ``sample`` exactly."""
    seed, steps = 42, 3
    reference = sample(denoiser, random_cond, steps, 2.0, 1.0, generator=torch.Generator().manual_seed(seed))
    model = SigmaDenoiser(denoiser, random_cond, 2.0)
    sigmas = torch.cat([model.schedule.t_to_sigma(ddim_timesteps(steps, denoiser.model.betas)), torch.zeros(1)])
    shape = (16, 4, 32, 32)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    x = noise * (1 + sigmas[0] ** 2) ** 0.5
    result = sample_sync_ddim(model, x, sigmas, eta=1.0, noise_sampler=reference_noise_sampler(seed, shape),
                              terminal_sigma=model.schedule.sigma_min)
    assert torch.allclose(result.reshape(reference.shape), reference, atol=1e-4, rtol=1e-4)


def test_sigma_denoiser_checks_whole_instances(denoiser, random_cond):
    model = SigmaDenoiser(denoiser, random_cond, 2.0)
    with pytest.raises(ValueError, match="whole instances of 16 views"):
        model(torch.zeros(8, 4, 32, 32), torch.tensor([1.0]))


@pytest.mark.parametrize("steps", [0, 1001, 2.5])
def test_invalid_step_counts_are_errors(denoiser, random_cond, steps):
    with pytest.raises(ValueError, match="steps must be an integer"):
        sample(denoiser, random_cond, steps)


def test_wrong_elevation_type_is_an_error():
    with pytest.raises(TypeError, match="elevation must be a float tensor of radians"):
        Conditioning(torch.zeros(1, 1, 768), torch.zeros(1, 4, 32, 32), torch.tensor([30]))
