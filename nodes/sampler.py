"""SyncDreamer sampling: a KSampler variant, and the pieces for SamplerCustomAdvanced."""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from syncdreamer_core import defaults
from syncdreamer_core.constants import IMAGE_SIZE, VIEW_COUNT

from .common import (
    CATEGORY,
    NodeInputError,
    SyncDreamerModelType,
    core_errors,
    finite_number,
    image_batch,
    one_of,
    schema,
    whole_number,
)
from .host import SyncDreamerGuider, empty_latent, encoders_for, progress_text

MAX_CANDIDATES = 16


def cfg_input() -> io.Float.Input:
    return io.Float.Input("cfg", default=defaults.CFG, min=0.0, max=20.0, step=0.1, round=0.01, tooltip=(
        "Classifier-free guidance: how strongly the views follow the input image. 2.0 works for most inputs (the "
        "authors also use 1.5)."))


def batch_view_num_input() -> io.Int.Input:
    return io.Int.Input("batch_view_num", default=0, min=0, max=VIEW_COUNT, tooltip=(
        "Views run through the network at once (the result is the same). 0 = auto: the largest of 16, 8, 4, 2, 1 "
        "whose step fits in the device's free memory; a run that cannot fit stops before its first step, saying how "
        "much it needs."))


def elevation_input() -> io.Float.Input:
    return io.Float.Input("elevation", default=defaults.ELEVATION_DEG, min=-90.0, max=90.0, step=1.0, tooltip=(
        "Elevation of the input view in degrees (a rough value in [-10, 40] is enough); wire 'SyncDreamer "
        "Elevation' or 'Estimate Elevation' here."))


def common_inputs() -> list:
    return [
        SyncDreamerModelType.Input("syncdreamer_model", tooltip="From 'Load SyncDreamer Checkpoint'."),
        io.Vae.Input("vae", tooltip="Encodes the input view: the checkpoint's VAE (from the loader)."),
        io.Image.Input("image", tooltip="The 256x256 output of 'SyncDreamer Prepare Image'; every image of a batch "
                       "gets its own views."),
        elevation_input(),
    ]


def clip_vision_input() -> io.ClipVision.Input:
    return io.ClipVision.Input("clip_vision", optional=True, tooltip=(
        "CLIP ViT-L/14 image encoder; defaults to the checkpoint's own, which gives the reference's numbers."))


def make_guider(model, vae, image, elevation, cfg, batch_view_num, clip_vision=None) -> SyncDreamerGuider:
    from syncdreamer_core.conditioning import model_pixels

    image_batch(image)
    if tuple(image.shape[1:3]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise NodeInputError(f"image must be the {IMAGE_SIZE}x{IMAGE_SIZE} output of 'SyncDreamer Prepare Image', got "
                             f"{image.shape[2]}x{image.shape[1]}")
    elevation = finite_number(elevation, "elevation", -90.0, 90.0)
    cfg = finite_number(cfg, "cfg", 0.0, 100.0)
    batch_view_num = whole_number(batch_view_num, "batch_view_num", 0, VIEW_COUNT)
    if vae is None:
        raise NodeInputError("connect a VAE: the checkpoint's own, from 'Load SyncDreamer Checkpoint'")
    return SyncDreamerGuider(model, encoders_for(model, vae, clip_vision), model_pixels(image), elevation, cfg,
                             batch_view_num)


def sync_ddim_sampler(model_sampling, eta: float):
    """The reference DDIM as a ComfyUI SAMPLER: lands on t=0 like the reference and draws each
    step's noise from the instance's seed, like the command line."""
    import comfy.samplers

    from syncdreamer_core.diffusion.ddim import sample_ddim

    options = {"eta": finite_number(eta, "eta", 0.0, 1.0), "terminal_sigma": float(model_sampling.sigma_min)}
    return comfy.samplers.KSAMPLER(sample_ddim, extra_options=options)


def preview_callback(model, total_steps: int):
    """Progress bar with a 4x4 preview of the current instance's views (ComfyUI's own
    previewer on the views laid out as one grid latent)."""
    import comfy.utils
    import latent_preview

    from syncdreamer_core.layout import compose_latent_grid

    bar = comfy.utils.ProgressBar(total_steps)
    previewer = latent_preview.get_previewer(model.patcher.load_device, model.model.latent_format)

    def callback(step, x0, x, total):
        preview = None
        if previewer is not None and x0 is not None and x0.shape[0] % VIEW_COUNT == 0:
            preview = previewer.decode_latent_to_preview_image("JPEG", compose_latent_grid(x0[:VIEW_COUNT].float()))
        bar.update_absolute(step + 1, total, preview)

    return callback


class SyncDreamerSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import comfy.samplers

        return schema(
            node_id="SyncDreamerSampler",
            display_name="SyncDreamer Sampler",
            category=CATEGORY,
            search_aliases=["syncdreamer ksampler", "multiview sampler", "novel view synthesis", "16 views"],
            description=("Generates the 16 views (elevation 30, azimuth 22.5 x i) of the object in each input image "
                         "with any of ComfyUI's samplers and schedulers; decode the LATENT with the stock VAE Decode. "
                         "ddim + ddim_uniform + 50 steps + eta 1 is the reference sampler. Candidate k of a batch "
                         "is exactly the single run with seed + k."),
            inputs=[
                *common_inputs(),
                io.Int.Input("seed", default=defaults.SEED, min=0, max=defaults.MAX_SEED, control_after_generate=True,
                             tooltip="Random seed. Candidate k uses seed + k, so it can be re-generated alone."),
                io.Int.Input("steps", default=defaults.STEPS, min=1, max=1000, tooltip=(
                    "Denoising steps: 50 as the reference; dpmpp_2m gets close in about 20.")),
                cfg_input(),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, default="ddim", tooltip=(
                    "Any ComfyUI sampler. 'ddim' is the reference's DDIM with the eta below.")),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="ddim_uniform", tooltip=(
                    "Any ComfyUI scheduler. 'ddim_uniform' gives the reference's timesteps.")),
                io.Float.Input("eta", default=defaults.ETA, min=0.0, max=1.0, step=0.01, tooltip=(
                    "DDIM noise (sampler 'ddim' only): 1.0 as the reference, 0 deterministic.")),
                io.Int.Input("batch_size", default=1, min=1, max=MAX_CANDIDATES, tooltip=(
                    "Candidates per input image: independent 16-view sets (the LATENT holds 16 x this x images).")),
                batch_view_num_input(),
                clip_vision_input(),
            ],
            outputs=[io.Latent.Output("LATENT", display_name="LATENT",
                                      tooltip="16 latents per candidate, views in camera order (instance-major).")],
        )

    @classmethod
    def execute(cls, syncdreamer_model, vae, image, elevation, seed, steps, cfg, sampler_name, scheduler,
                eta=defaults.ETA, batch_size=1, batch_view_num=0, clip_vision=None):
        import comfy.samplers

        from syncdreamer_core.diffusion.noise import NoiseStream, check_seed, instance_seed

        one_of(sampler_name, "sampler_name", comfy.samplers.SAMPLER_NAMES)
        one_of(scheduler, "scheduler", comfy.samplers.SCHEDULER_NAMES)
        core_errors(check_seed, seed)
        steps = whole_number(steps, "steps", 1, 1000)
        batch_size = whole_number(batch_size, "batch_size", 1, MAX_CANDIDATES)
        eta = finite_number(eta, "eta", 0.0, 1.0)
        guider = make_guider(syncdreamer_model, vae, image, elevation, cfg, batch_view_num, clip_vision)
        model_sampling = syncdreamer_model.model.model_sampling
        discard_penultimate = sampler_name in getattr(comfy.samplers.KSampler, "DISCARD_PENULTIMATE_SIGMA_SAMPLERS", ())
        sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps + int(discard_penultimate))
        if discard_penultimate:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        if len(sigmas) - 1 != steps:  # ddim_uniform runs the official DDIM timesteps: 31 for 30 steps
            note = (f"{scheduler} runs {len(sigmas) - 1} steps for steps {steps}"
                    + (" (the official DDIM timesteps)" if scheduler == "ddim_uniform" else ""))
            logging.info("SyncDreamer Sampler: %s", note)
            progress_text(note)
        if sampler_name == "ddim":
            sampler = sync_ddim_sampler(model_sampling, eta)
        else:
            sampler = comfy.samplers.sampler_object(sampler_name)
        instances = image.shape[0] * batch_size
        latent = empty_latent(instances)
        shape = (VIEW_COUNT, *latent.shape[1:])
        noise = torch.cat([NoiseStream(instance_seed(seed, n), shape)() for n in range(instances)])
        callback = preview_callback(syncdreamer_model, instances * (len(sigmas) - 1))
        samples = guider.sample(noise, latent, sampler, sigmas, callback=callback, seed=seed)
        return io.NodeOutput({"samples": samples.cpu()})


class SyncDreamerGuiderNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerGuider",
            display_name="SyncDreamer Guider",
            category=CATEGORY,
            search_aliases=["syncdreamer guider", "multiview guider"],
            description=("A GUIDER for SamplerCustomAdvanced: SyncDreamer's synchronized 16-view denoiser with its own "
                         "classifier-free guidance. Pair with 'SyncDreamer Empty Latent' and any NOISE/SAMPLER/SIGMAS. "
                         "Each set of 16 views is sampled with seed + its index."),
            inputs=[*common_inputs(), cfg_input(), batch_view_num_input(), clip_vision_input()],
            outputs=[io.Guider.Output("GUIDER", display_name="GUIDER", tooltip="For SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, syncdreamer_model, vae, image, elevation, cfg, batch_view_num=0, clip_vision=None):
        return io.NodeOutput(make_guider(syncdreamer_model, vae, image, elevation, cfg, batch_view_num, clip_vision))


class SyncDreamerDDIMSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerDDIMSampler",
            display_name="SyncDreamer DDIM Sampler",
            category=CATEGORY,
            search_aliases=["ddim eta", "reference sampler"],
            description="The reference DDIM sampler (with eta) as a SAMPLER for SamplerCustomAdvanced.",
            inputs=[
                SyncDreamerModelType.Input("syncdreamer_model", tooltip="From 'Load SyncDreamer Checkpoint' (for its "
                                           "noise schedule)."),
                io.Float.Input("eta", default=defaults.ETA, min=0.0, max=1.0, step=0.01,
                               tooltip="DDIM noise: 1.0 as the reference, 0 deterministic."),
            ],
            outputs=[io.Sampler.Output("SAMPLER", display_name="SAMPLER", tooltip="For SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, syncdreamer_model, eta):
        return io.NodeOutput(sync_ddim_sampler(syncdreamer_model.model.model_sampling, eta))


class SyncDreamerEmptyLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerEmptyLatent",
            display_name="SyncDreamer Empty Latent",
            category=CATEGORY,
            search_aliases=["empty multiview latent"],
            description="An empty latent of batch_size x 16 views at 32x32, for SamplerCustomAdvanced.",
            inputs=[io.Int.Input("batch_size", default=1, min=1, max=64, tooltip=(
                "Sets of 16 views (input images x candidates per image)."))],
            outputs=[io.Latent.Output("LATENT", display_name="LATENT", tooltip="Zeros [batch_size x 16, 4, 32, 32].")],
        )

    @classmethod
    def execute(cls, batch_size):
        return io.NodeOutput({"samples": empty_latent(whole_number(batch_size, "batch_size", 1, 64))})
