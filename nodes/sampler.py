"""SyncDreamer sampling: a KSampler variant, and the pieces for SamplerCustomAdvanced."""

from __future__ import annotations

import torch
from PIL import Image
from syncdreamer_core.layout import compose_grid
from syncdreamer_core.diffusion.ddim import sample_ddim as sample_sync_ddim
from syncdreamer_core.diffusion.ddim import seed_noise_sampler as reference_noise_sampler

from syncdreamer_core.defaults import BATCH_VIEW_NUM as DEFAULT_BATCH_VIEW_NUM
from syncdreamer_core.defaults import CFG as DEFAULT_CFG
from syncdreamer_core.defaults import ETA as DEFAULT_ETA
from syncdreamer_core.constants import (
    IMAGE_SIZE,
    LATENT_CHANNELS,
    LATENT_SIZE,
    VIEW_COUNT,
)

from .common import CATEGORY, NodeInputError, image_batch
from .host import SYNCDREAMER_MODEL, SyncDreamerGuider, input_conditioning

CFG_OPTIONS = {"default": DEFAULT_CFG, "min": 0.0, "max": 20.0, "step": 0.1, "round": 0.01,
               "tooltip": "Classifier-free guidance; 2.0 works for most inputs (the authors also try 1.5)."}
BVN_OPTIONS = {"default": DEFAULT_BATCH_VIEW_NUM, "min": 1, "max": VIEW_COUNT,
               "tooltip": "Views run through the UNet at once. Lower it to save memory; results are identical."}


def _check_prepared(image) -> None:
    image_batch(image)
    if image.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        raise NodeInputError(f"image must be the 256x256 output of 'SyncDreamer Prepare Image', got "
                             f"{image.shape[2]}x{image.shape[1]}")


def _check_elevation(elevation) -> float:
    if isinstance(elevation, bool) or not isinstance(elevation, (int, float)):
        raise NodeInputError(f"elevation must be a number of degrees (FLOAT), got {type(elevation).__name__}")
    if not -90 <= elevation <= 90:
        raise NodeInputError(f"elevation must be between -90 and 90 degrees, got {elevation}")
    return float(elevation)


def make_guider(model, vae, image, elevation, cfg, batch_view_num, clip_vision=None) -> SyncDreamerGuider:
    _check_prepared(image)
    elevation = _check_elevation(elevation)
    clip_vision = clip_vision if clip_vision is not None else model.clip_vision
    if clip_vision is None:
        raise NodeInputError("no CLIP vision model: connect one (CLIP ViT-L/14) or load the SyncDreamer checkpoint")
    return SyncDreamerGuider(model, input_conditioning(model, vae, clip_vision, image, elevation), cfg,
                             batch_view_num)


def sync_ddim_sampler(model_sampling, eta: float, seed: int | None = None, shape=None):
    """The reference DDIM as a ComfyUI SAMPLER: lands on t=0 like the reference and, given the
    seed, draws the same per-step noise as the core sampler."""
    import comfy.samplers

    options = {"eta": float(eta), "terminal_sigma": float(model_sampling.sigma_min)}
    if seed is not None and shape is not None:
        options["noise_sampler"] = reference_noise_sampler(int(seed), tuple(shape))
    return comfy.samplers.KSAMPLER(sample_sync_ddim, extra_options=options)


def preview_callback(model, steps: int):
    """Progress bar with a 4x4 preview of the first instance's views; checks for Cancel."""
    import comfy.model_management as mm
    import comfy.utils

    bar = comfy.utils.ProgressBar(steps)
    latent_format = model.model.latent_format
    factors = getattr(latent_format, "latent_rgb_factors", None)

    def callback(step, x0, x, total_steps):
        preview = None
        if factors is not None and x0 is not None and x0.shape[0] >= VIEW_COUNT:
            weights = torch.tensor(factors, dtype=torch.float32, device=x0.device)
            rgb = torch.einsum("nchw,cr->nhwr", x0[:VIEW_COUNT].float(), weights)
            bias = getattr(latent_format, "latent_rgb_factors_bias", None)
            if bias is not None:
                rgb = rgb + torch.tensor(bias, device=rgb.device)
            grid = ((compose_grid(rgb.cpu())[0] + 1) / 2).clamp(0, 1)
            preview = ("JPEG", Image.fromarray((grid.numpy() * 255).astype("uint8")).resize((512, 512)), 512)
        bar.update_absolute(step + 1, total_steps, preview)
        mm.throw_exception_if_processing_interrupted()

    return callback


def run_sampling(guider: SyncDreamerGuider, sampler, sigmas, seed: int, batch_size: int, steps: int):
    import comfy.sample

    latent = torch.zeros(batch_size * VIEW_COUNT, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)
    noise = comfy.sample.prepare_noise(latent, seed)
    callback = preview_callback(guider.syncdreamer, steps)
    samples = guider.sample(noise, latent, sampler, sigmas, callback=callback, seed=seed)
    return {"samples": samples.cpu()}


class SyncDreamerSampler:
    DESCRIPTION = ("Generates the 16 views (elevation 30, azimuth 22.5*i) of the object in the image with any of "
                   "ComfyUI's samplers and schedulers. Decode the LATENT with the stock VAE Decode. 'ddim' is the "
                   "reference sampler (with eta); ddim + ddim_uniform + 50 steps + eta 1 reproduces it.")

    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {
            "required": {
                "syncdreamer_model": (SYNCDREAMER_MODEL,),
                "vae": ("VAE", {"tooltip": "Encodes the input view (the checkpoint's VAE)."}),
                "image": ("IMAGE", {"tooltip": "The 256x256 output of 'SyncDreamer Prepare Image'."}),
                "elevation": ("FLOAT", {"default": 30.0, "min": -90.0, "max": 90.0, "step": 1.0,
                                        "tooltip": "Input view elevation in degrees."}),
                "seed": ("INT", {"default": 6033, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 1000}),
                "cfg": ("FLOAT", CFG_OPTIONS),
                "sampler_name": (comfy.samplers.SAMPLER_NAMES, {"default": "ddim"}),
                "scheduler": (comfy.samplers.SCHEDULER_NAMES, {"default": "ddim_uniform"}),
                "eta": ("FLOAT", {"default": DEFAULT_ETA, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "DDIM noise (sampler 'ddim' only): 1.0 as the reference, 0 deterministic."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 16,
                                       "tooltip": "Candidates: independent 16-view sets (latent batch = 16 x this)."}),
                "batch_view_num": ("INT", BVN_OPTIONS),
            },
            "optional": {"clip_vision": ("CLIP_VISION", {"tooltip": "Defaults to the checkpoint's own encoder."})},
        }

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("batch_size x 16 latents, views in camera order (instance-major).",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY

    def sample(self, syncdreamer_model, vae, image, elevation, seed, steps, cfg, sampler_name, scheduler,
               eta=DEFAULT_ETA, batch_size=1, batch_view_num=DEFAULT_BATCH_VIEW_NUM, clip_vision=None):
        import comfy.samplers

        if sampler_name not in comfy.samplers.SAMPLER_NAMES:
            raise NodeInputError(f"unknown sampler_name {sampler_name!r}; choose one of ComfyUI's samplers "
                                 f"({', '.join(comfy.samplers.SAMPLER_NAMES[:6])}, ...)")
        if scheduler not in comfy.samplers.SCHEDULER_NAMES:
            raise NodeInputError(f"unknown scheduler {scheduler!r}; choose one of "
                                 f"{', '.join(comfy.samplers.SCHEDULER_NAMES)}")
        guider = make_guider(syncdreamer_model, vae, image, elevation, cfg, batch_view_num, clip_vision)
        model_sampling = syncdreamer_model.model.model_sampling
        discard_penultimate = sampler_name in getattr(comfy.samplers.KSampler, "DISCARD_PENULTIMATE_SIGMA_SAMPLERS", ())
        sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps + int(discard_penultimate))
        if discard_penultimate:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        shape = (batch_size * VIEW_COUNT, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)
        if sampler_name == "ddim":
            sampler = sync_ddim_sampler(model_sampling, eta, seed, shape)
        else:
            sampler = comfy.samplers.sampler_object(sampler_name)
        return (run_sampling(guider, sampler, sigmas, seed, batch_size, len(sigmas) - 1),)


class SyncDreamerGuiderNode:
    DESCRIPTION = ("A GUIDER for SamplerCustomAdvanced: SyncDreamer's synchronized 16-view denoiser with its own "
                   "classifier-free guidance. Pair with 'SyncDreamer Empty Latent' and any NOISE/SAMPLER/SIGMAS.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "syncdreamer_model": (SYNCDREAMER_MODEL,),
                "vae": ("VAE",),
                "image": ("IMAGE",),
                "elevation": ("FLOAT", {"default": 30.0, "min": -90.0, "max": 90.0, "step": 1.0}),
                "cfg": ("FLOAT", CFG_OPTIONS),
                "batch_view_num": ("INT", BVN_OPTIONS),
            },
            "optional": {"clip_vision": ("CLIP_VISION",)},
        }

    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "guider"
    CATEGORY = CATEGORY

    def guider(self, syncdreamer_model, vae, image, elevation, cfg, batch_view_num=DEFAULT_BATCH_VIEW_NUM,
               clip_vision=None):
        return (make_guider(syncdreamer_model, vae, image, elevation, cfg, batch_view_num, clip_vision),)


class SyncDreamerDDIMSampler:
    DESCRIPTION = "The reference DDIM sampler (with eta) as a SAMPLER for SamplerCustomAdvanced."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"syncdreamer_model": (SYNCDREAMER_MODEL,),
                             "eta": ("FLOAT", {"default": DEFAULT_ETA, "min": 0.0, "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "sampler"
    CATEGORY = CATEGORY

    def sampler(self, syncdreamer_model, eta):
        return (sync_ddim_sampler(syncdreamer_model.model.model_sampling, eta),)


class SyncDreamerEmptyLatent:
    DESCRIPTION = "An empty latent of batch_size x 16 views at 32x32, for SamplerCustomAdvanced."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"batch_size": ("INT", {"default": 1, "min": 1, "max": 16})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "empty"
    CATEGORY = CATEGORY

    def empty(self, batch_size):
        return ({"samples": torch.zeros(batch_size * VIEW_COUNT, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)},)
