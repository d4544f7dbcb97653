"""Numerical parity with the official implementation (fixtures made by running it).

Every ``../shared/fixtures/parity-*`` set present is checked, loading its weights
through the public loader, so nothing can be specialised to one configuration.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import REFERENCE, fixture_sets
from safetensors.torch import load_file

FIXTURE_SETS = fixture_sets()
REL_TOL = 1e-4


def assert_close(ours: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    ours, expected = ours.detach().float().cpu(), expected.float()
    assert ours.shape == expected.shape, f"{name}: shape {tuple(ours.shape)} != {tuple(expected.shape)}"
    rel = float((ours - expected).norm() / expected.norm())
    max_abs = float((ours - expected).abs().max())
    limit = 1e-3 * float(expected.abs().max()) + 1e-5
    assert rel <= REL_TOL and max_abs <= limit, f"{name}: relative L2 {rel:.2e}, max abs {max_abs:.2e} (limit {limit:.2e})"


class FixtureSet:
    def __init__(self, name: str, weights_file: str = "weights.safetensors"):
        self.name = name
        from syncdreamer_core.conditioning import Conditioning
        from syncdreamer_core.diffusion.denoiser import SyncDenoiser
        from syncdreamer_core.weights.checkpoint import load_checkpoint

        root = FIXTURE_SETS[name]
        self.config = json.loads((root / "config.json").read_text())
        self.inputs = load_file(str(root / "inputs.safetensors"))
        self.expected = load_file(str(root / "expected.safetensors"))
        self.loaded = load_checkpoint(root / weights_file, dtype="fp32", num_heads=self.config["num_heads"],
                                      with_vae=False, with_clip=False)
        self.model = self.loaded.model
        self.denoiser = SyncDenoiser(self.model, batch_view_num=8)
        self.cond = Conditioning(self.inputs["clip_embed"], self.inputs["x_input"], self.inputs["elevation_rad"])


def test_the_repository_carries_a_fixture_set_made_by_the_official_code():
    assert FIXTURE_SETS["parity-t"] == REFERENCE / "fixtures" / "parity-t"


@pytest.fixture(scope="module", params=sorted(FIXTURE_SETS))
def fixture_set(request):
    return FixtureSet(request.param)


def test_loader_infers_the_fixture_configuration(fixture_set):
    cfg, config = fixture_set.config, fixture_set.loaded.config
    assert config.model_channels == cfg["model_channels"]
    assert list(config.channel_mult) == cfg["channel_mult"]
    assert config.num_res_blocks == cfg["num_res_blocks"]
    assert sorted(config.attention_resolutions) == sorted(cfg["attention_resolutions"])
    assert config.transformer_depth == cfg["transformer_depth"]
    assert list(config.spatial_volume_dims) == cfg["volume_dims"]
    assert list(config.frustum_volume_dims) == cfg["volume_dims"]
    assert sum(t.numel() for t in fixture_set.model.state_dict().values()) == cfg["n_params"]


def test_embeddings_match(fixture_set):
    model, inputs, expected = fixture_set.model, fixture_set.inputs, fixture_set.expected
    assert_close(model.viewpoint_embedding(inputs["elevation_rad"]), expected["viewpoint_embedding"], "viewpoint")
    assert_close(model.embed_time(inputs["timestep"]), expected["time_embedding"], "time embedding")


def test_spatial_volume_matches(fixture_set):
    model, inputs = fixture_set.model, fixture_set.inputs
    with torch.inference_mode():
        v_embed = model.viewpoint_embedding(inputs["elevation_rad"])
        t_embed = model.embed_time(inputs["timestep"])
        volume = model.spatial_volume.construct_spatial_volume(inputs["x_t"], t_embed, v_embed, model.poses, model.Ks)
    assert_close(volume, fixture_set.expected["spatial_volume"], "spatial volume")


@pytest.mark.parametrize("batch_view_num", [16, 5])
def test_noise_prediction_matches_without_guidance(fixture_set, batch_view_num):
    eps = fixture_set.denoiser(fixture_set.inputs["x_t"], fixture_set.inputs["timestep"], fixture_set.cond, 1.0,
                               batch_view_num)
    assert_close(eps, fixture_set.expected["eps_no_guidance"], "eps without guidance")


def test_noise_prediction_matches_with_guidance(fixture_set):
    eps = fixture_set.denoiser(fixture_set.inputs["x_t"], fixture_set.inputs["timestep"], fixture_set.cond,
                               fixture_set.config["cfg_scale"])
    assert_close(eps, fixture_set.expected["eps_cfg"], "eps with guidance")


def test_ddim_timesteps_match(fixture_set):
    from syncdreamer_core.diffusion.schedule import ddim_timesteps

    ours = ddim_timesteps(fixture_set.config["ddim_steps"])
    assert ours.flip(0).tolist() == fixture_set.expected["ddim_timesteps"].tolist()


def run_ddim(fixture_set, x_vp: torch.Tensor, timesteps: torch.Tensor, eta: float, noise, land: bool) -> torch.Tensor:
    """The sampler every route uses (``diffusion.ddim.sample_ddim``) from the variance-preserving
    latents ``x_vp`` at ``timesteps[0]`` through ``timesteps`` (then t = 0 when ``land``)."""
    from syncdreamer_core.diffusion.ddim import sample_ddim
    from syncdreamer_core.diffusion.sigma_denoiser import SigmaDenoiser

    model = SigmaDenoiser(fixture_set.denoiser, fixture_set.cond, fixture_set.config["cfg_scale"])
    sigmas = model.schedule.t_to_sigma(timesteps)
    if land:
        sigmas = torch.cat([sigmas, torch.zeros(1)])
    x = x_vp.reshape(-1, *x_vp.shape[2:]) * (1 + sigmas[0] ** 2) ** 0.5
    draws = iter(noise) if noise is not None else None
    out = sample_ddim(model, x, sigmas, eta=eta, noise_sampler=(lambda s, sn: next(draws)) if draws else None,
                      terminal_sigma=float(model.schedule.sigma_min))
    if not land:
        out = out / (1 + sigmas[-1] ** 2) ** 0.5
    return out.reshape(x_vp.shape)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_one_ddim_step_matches(fixture_set, eta):
    from syncdreamer_core.diffusion.schedule import ddim_timesteps

    timesteps = ddim_timesteps(fixture_set.config["ddim_steps"])[:2]
    noise = [fixture_set.inputs["step_noise"]] if eta else None
    x_prev = run_ddim(fixture_set, fixture_set.inputs["x_t"], timesteps, eta, noise, land=False)
    assert_close(x_prev, fixture_set.expected[f"ddim_step_eta{int(eta)}"], f"DDIM step eta={eta}")


def test_ddim_run_matches(fixture_set):
    """A whole run, with eta 1 and 0 on alternate sets (one step is checked with both on every set)."""
    from syncdreamer_core.diffusion.schedule import ddim_timesteps

    eta = 1.0 - sorted(FIXTURE_SETS).index(fixture_set.name) % 2

    timesteps = ddim_timesteps(fixture_set.config["ddim_steps"])
    noise = list(fixture_set.inputs["run_noise"]) if eta else None
    result = run_ddim(fixture_set, fixture_set.inputs["x_T"], timesteps, eta, noise, land=True)
    assert_close(result, fixture_set.expected[f"ddim_run_eta{int(eta)}"], f"DDIM run eta={eta}")


def test_lightning_checkpoints_load_the_same_weights(fixture_set, tmp_path):
    """A Lightning checkpoint ({"state_dict": ...}, read weights-only) holding a set's weights
    loads the same network as its safetensors file; the official code's own .ckpt too,
    where the set has one."""
    from safetensors.torch import load_file

    from syncdreamer_core.weights.checkpoint import load_checkpoint

    root = FIXTURE_SETS[fixture_set.name]
    made = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": load_file(str(root / "weights.safetensors")), "global_step": 0, "epoch": 0}, made)
    ours = fixture_set.model.state_dict()
    for path in [made] + ([root / "weights.ckpt"] if (root / "weights.ckpt").exists() else []):
        theirs = load_checkpoint(path, num_heads=fixture_set.config["num_heads"], with_vae=False,
                                 with_clip=False).model.state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), path
