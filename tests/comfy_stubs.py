"""Small stand-ins for the parts of ComfyUI the nodes call, so node functions can be
tested where the host is not installed. They follow the host's documented behaviour
(noise scaling, the ddim_uniform schedule, the sampler calling convention); the
integration tests check the same nodes against a real ComfyUI."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import torch


class Interrupted(Exception):
    pass


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


class SD15:
    scale_factor = 0.18215
    latent_channels = 4
    latent_dimensions = 2
    latent_rgb_factors = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                          [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]

    def process_in(self, latent):
        return latent * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor


class ModelPatcher:
    def __init__(self, model, load_device, offload_device):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.model_options = {"transformer_options": {}}

    def get_model_object(self, name):
        return getattr(self.model, name)


class ProgressBar:
    updates: list = []

    def __init__(self, total):
        self.total = total

    def update_absolute(self, value, total=None, preview=None):
        ProgressBar.updates.append((value, total or self.total, preview))


class KSAMPLER:
    def __init__(self, sampler_function, extra_options=None, inpaint_options=None):
        self.sampler_function, self.extra_options = sampler_function, extra_options or {}

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        ms = model_wrap.inner_model.model_sampling
        max_denoise = math.isclose(float(ms.sigma_max), float(sigmas[0]), rel_tol=1e-5) or float(sigmas[0]) > float(ms.sigma_max)
        model_k = lambda x, sigma, **kw: model_wrap(x, sigma, model_options=kw.get("model_options", {}), seed=kw.get("seed"))  # noqa: E731
        x = ms.noise_scaling(sigmas[0], noise, latent_image, max_denoise)
        total = len(sigmas) - 1
        k_callback = (lambda d: callback(d["i"], d["denoised"], d["x"], total)) if callback else None
        samples = self.sampler_function(model_k, x, sigmas, extra_args=extra_args, callback=k_callback,
                                        disable=disable_pbar, **self.extra_options)
        return ms.inverse_noise_scaling(sigmas[-1], samples)


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def ddim_uniform(model_sampling, steps):
    sigmas = model_sampling.sigmas
    stride = max(len(sigmas) // steps, 1)
    chosen = [float(sigmas[x]) for x in range(1, len(sigmas), stride)]
    return torch.FloatTensor(chosen[::-1] + [0.0])


def karras(model_sampling, steps, rho=7.0):
    lo, hi = float(model_sampling.sigma_min), float(model_sampling.sigma_max)
    ramp = torch.linspace(0, 1, steps)
    sigmas = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1)])


SCHEDULERS = {"ddim_uniform": ddim_uniform, "karras": karras}


def install(tmp_path: Path):
    """Put the stand-ins into sys.modules; returns (model_management module, folder_paths module)."""
    state = {"interrupt_after": None, "checks": 0}

    def throw_exception_if_processing_interrupted():
        state["checks"] += 1
        if state["interrupt_after"] is not None and state["checks"] > state["interrupt_after"]:
            raise Interrupted("processing interrupted")

    mm = _module(
        "comfy.model_management", get_torch_device=lambda: torch.device("cpu"),
        unet_offload_device=lambda: torch.device("cpu"), load_models_gpu=lambda models, **kw: None,
        load_model_gpu=lambda model: None, soft_empty_cache=lambda *a, **k: None,
        throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted,
        unet_dtype=lambda **kw: torch.float32, intermediate_device=lambda: torch.device("cpu"), state=state,
    )

    def calculate_sigmas(model_sampling, scheduler, steps):
        return SCHEDULERS[scheduler](model_sampling, steps)

    samplers = _module(
        "comfy.samplers", SAMPLER_NAMES=["euler", "dpmpp_2m", "ddim"], SCHEDULER_NAMES=list(SCHEDULERS),
        KSAMPLER=KSAMPLER, calculate_sigmas=calculate_sigmas,
        sampler_object=lambda name: KSAMPLER(sample_euler),
        KSampler=type("KSampler", (), {"DISCARD_PENULTIMATE_SIGMA_SAMPLERS": set()}),
    )

    def prepare_noise(latent, seed, noise_inds=None):
        return torch.randn(latent.size(), generator=torch.manual_seed(seed), dtype=latent.dtype)

    def no_comfy_vae(sd=None, **kw):
        raise RuntimeError("stand-in: no ComfyUI VAE class")

    models_dir = tmp_path / "models"
    output_dir = tmp_path / "output"
    registry: dict = {}

    def add_model_folder_path(name, path, is_default=False):
        registry.setdefault(name, ([], set()))[0].append(path)

    def get_filename_list(name):
        return sorted(p.name for d in registry.get(name, ([], set()))[0] if Path(d).is_dir() for p in Path(d).iterdir())

    def get_full_path_or_raise(name, filename):
        for folder in registry.get(name, ([], set()))[0]:
            if (Path(folder) / filename).is_file():
                return str(Path(folder) / filename)
        raise FileNotFoundError(f"Model in folder '{name}' with filename '{filename}' not found.")

    def get_save_image_path(prefix, out_dir, width=0, height=0):
        subfolder, name = (prefix.rsplit("/", 1) if "/" in prefix else ("", prefix))
        folder = Path(out_dir) / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder), name, 1, subfolder, prefix

    folder_paths = _module(
        "folder_paths", models_dir=str(models_dir), folder_names_and_paths=registry,
        add_model_folder_path=add_model_folder_path, get_filename_list=get_filename_list,
        get_full_path_or_raise=get_full_path_or_raise, get_output_directory=lambda: str(output_dir),
        get_save_image_path=get_save_image_path,
    )
    comfy = _module("comfy")
    modules = {
        "comfy": comfy,
        "comfy.model_management": mm,
        "comfy.samplers": samplers,
        "comfy.sample": _module("comfy.sample", prepare_noise=prepare_noise),
        "comfy.utils": _module("comfy.utils", ProgressBar=ProgressBar),
        "comfy.model_patcher": _module("comfy.model_patcher", ModelPatcher=ModelPatcher),
        "comfy.latent_formats": _module("comfy.latent_formats", SD15=SD15),
        "comfy.sd": _module("comfy.sd", VAE=no_comfy_vae),
        "comfy.clip_vision": _module("comfy.clip_vision", load_clipvision_from_sd=lambda sd, **kw: None),
        "folder_paths": folder_paths,
    }
    for name, module in modules.items():
        sys.modules[name] = module
        if "." in name:
            setattr(comfy, name.split(".", 1)[1], module)
    return mm, folder_paths
