"""Adapters between ComfyUI's objects and ``syncdreamer_core``: the model value the
loader outputs, the encoders conditioning reads, the GUIDER that drives ComfyUI's
samplers over whole 16-view instances, and the host's MESH class."""

from __future__ import annotations

import functools
import logging

import torch

from syncdreamer_core.constants import LATENT_CHANNELS, LATENT_SIZE, VIEW_COUNT

from .common import NodeInputError, check_cancel

# ---------------------------------------------------------------- the model value

class SyncDreamerComfyModel(torch.nn.Module):
    """What ComfyUI's model management and samplers see: the network plus the schedule
    and latent format they read."""

    def __init__(self, loaded):
        super().__init__()
        import comfy.latent_formats

        from syncdreamer_core.diffusion.noise_levels import DiscreteSigmas

        self.network = loaded.model
        self.model_sampling = DiscreteSigmas(loaded.model.alphas_cumprod)
        self.latent_format = comfy.latent_formats.SD15()
        self.config = loaded.config

    def process_latent_in(self, latent):
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent):
        return self.latent_format.process_out(latent)

    def scale_latent_inpaint(self, sigma, noise, latent_image, **kwargs):
        """The kept latent at noise level ``sigma``, for latents with a noise mask (ComfyUI's
        inpainting step, at every step: masked-out views stay, the others are regenerated
        around them). The kept views are a latent, never the empty one: no test of it here,
        which would read the device at every step."""
        return latent_image + noise * sigma.reshape([sigma.shape[0]] + [1] * (noise.ndim - 1))

    def memory_required(self, input_shape, cond_shapes=None):
        # activations of one chunk of views with guidance, generously
        batch = input_shape[0] if input_shape else VIEW_COUNT
        return 2 * batch * self.config.model_channels * 32 * 32 * 48 * 4


class SyncDreamerModel:
    """The SYNCDREAMER_MODEL value: the network behind a ModelPatcher, the checkpoint's own
    encoders (which conditioning uses, so every route computes the same numbers), and the
    VAE / CLIP_VISION values the loader hands to stock nodes."""

    def __init__(self, loaded, encoders, vae, clip_vision, name: str):
        import comfy.model_management as mm
        import comfy.model_patcher

        self.name = name
        self.loaded = loaded
        self.encoders = encoders
        self.vae = vae
        self.clip_vision = clip_vision
        self.model = SyncDreamerComfyModel(loaded)
        self.patcher = comfy.model_patcher.ModelPatcher(self.model, load_device=mm.get_torch_device(),
                                                        offload_device=mm.unet_offload_device())

    @property
    def network(self):
        return self.model.network

    def load_to_device(self) -> SyncDreamerComfyModel:
        import comfy.model_management as mm

        mm.load_models_gpu([self.patcher])
        return self.model


# ---------------------------------------------------------------- encoders

class CoreVAE:
    """A VAE value for checkpoints whose VAE ComfyUI cannot build (non-standard sizes):
    the stock VAEDecode/VAEEncode nodes call ``decode``/``encode`` as on ``comfy.sd.VAE``."""

    def __init__(self, vae):
        self.vae = vae

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        from syncdreamer_core.weights.encoders import vae_posterior

        return vae_posterior(self.vae, pixels[..., :3].movedim(-1, 1) * 2 - 1)[0].cpu()

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw (unscaled) latents, as in a LATENT -> images [B, H, W, 3] in 0..1."""
        images = [self.vae.decode(chunk.to(self.vae.device, self.vae.dtype)).sample.float().clamp(-1, 1).cpu()
                  for chunk in latents.split(8)]
        return ((torch.cat(images) + 1) / 2).movedim(1, -1)


class CoreClipVision:
    """A CLIP_VISION value for CLIP weights ComfyUI cannot build (non-ViT-L sizes)."""

    def __init__(self, clip):
        self.clip = clip

    def encode_image(self, image, crop=True):
        from syncdreamer_core.weights.encoders import clip_image_embedding

        return {"image_embeds": clip_image_embedding(self.clip, image.movedim(-1, 1)[:, :3] * 2 - 1)[:, 0].cpu()}


def build_vae(vae_sd: dict):
    """``comfy.sd.VAE`` for the standard SD VAE, else the core VAE behind the same calls."""
    import comfy.sd

    try:
        return comfy.sd.VAE(sd=dict(vae_sd))
    except Exception:  # noqa: BLE001 - a non-standard size: ComfyUI has no class for it
        from syncdreamer_core.weights.encoders import build_vae as build_core_vae

        return CoreVAE(build_core_vae(vae_sd))


def build_clip_vision(visual_sd: dict, full_precision: bool):
    """ComfyUI's CLIP vision model for ViT-L/14, else the core encoder behind the same calls.

    ComfyUI stores CLIP vision weights in fp16 even on a CPU; with ``full_precision`` the
    model is rebuilt in fp32, so its embedding matches the reference's."""
    import comfy.clip_vision

    from syncdreamer_core.weights.encoders import build_clip_vision as build_core_clip
    from syncdreamer_core.weights.encoders import openai_clip_visual_to_transformers

    state = openai_clip_visual_to_transformers(visual_sd)
    try:
        clip = comfy.clip_vision.load_clipvision_from_sd(dict(state))
    except Exception:  # noqa: BLE001 - a non-standard size
        clip = None
    if clip is None:
        return CoreClipVision(build_core_clip(visual_sd))
    if full_precision:
        clip.model.to(torch.float32)
        clip.dtype = torch.float32
        clip.load_sd(state)
    return clip


class HostEncoders:
    """``conditioning.InputEncoders`` over a VAE and CLIP vision model from ComfyUI (used
    when the sampler is wired to encoders other than the checkpoint's own)."""

    def __init__(self, vae, clip_vision):
        self.vae = vae
        self.clip_vision = clip_vision

    @torch.inference_mode()
    def posterior(self, pixels: torch.Tensor):
        import comfy.model_management as mm

        from syncdreamer_core.conditioning import posterior_from_moments

        if isinstance(self.vae, CoreVAE):
            from syncdreamer_core.weights.encoders import vae_posterior

            return vae_posterior(self.vae.vae, pixels)
        engine = getattr(self.vae, "first_stage_model", None)
        encoder = getattr(engine, "encoder", None)
        if encoder is None:
            raise NodeInputError("this VAE cannot give the latent posterior SyncDreamer samples from: connect the "
                                 "VAE of 'Load SyncDreamer Checkpoint' (or of a Stable Diffusion 1.x checkpoint)")
        mm.load_models_gpu([self.vae.patcher])
        moments = encoder(pixels.to(self.vae.device, self.vae.vae_dtype))
        quant = getattr(engine, "quant_conv", None)
        if quant is not None:
            moments = quant(moments)
        return posterior_from_moments(moments)

    @torch.inference_mode()
    def clip_embedding(self, pixels: torch.Tensor) -> torch.Tensor:
        import comfy.model_management as mm

        from syncdreamer_core.weights.encoders import clip_image_embedding, clip_pixels

        if isinstance(self.clip_vision, CoreClipVision):
            return clip_image_embedding(self.clip_vision.clip, pixels)
        mm.load_models_gpu([self.clip_vision.patcher])
        values = clip_pixels(pixels).to(self.clip_vision.load_device, torch.float32)
        return self.clip_vision.model(pixel_values=values)[2].float().cpu()[:, None]


class MixedEncoders:
    """The VAE posterior from one encoder set and the CLIP embedding from another."""

    def __init__(self, posterior_from, clip_from):
        self.posterior = posterior_from.posterior
        self.clip_embedding = clip_from.clip_embedding


def encoders_for(model: SyncDreamerModel, vae, clip_vision):
    """The checkpoint's own encoders wherever the wired VAE / CLIP vision are the loader's
    (so node and command line give the same numbers), the wired host models otherwise."""
    own_vae = vae is model.vae
    own_clip = clip_vision is None or clip_vision is model.clip_vision
    if own_vae and own_clip:
        return model.encoders
    host = HostEncoders(vae, model.clip_vision if clip_vision is None else clip_vision)
    return MixedEncoders(model.encoders if own_vae else host, model.encoders if own_clip else host)


# ---------------------------------------------------------------- sampling

class SyncDreamerGuider:
    """A GUIDER for SamplerCustomAdvanced (and the SyncDreamer Sampler node): denoises
    whole 16-view instances with SyncDreamer's own classifier-free guidance.

    Instances are sampled one after another, each with the seed ``seed + n`` for every
    random draw of the sampler, so an instance never depends on the batch around it."""

    def __init__(self, model: SyncDreamerModel, encoders, pixels: torch.Tensor, elevation: float, cfg: float,
                 batch_view_num: int):
        self.syncdreamer = model
        self.model_patcher = model.patcher
        self.model_options = model.patcher.model_options
        self.inner_model = model.model
        self.encoders = encoders
        self.pixels = pixels
        self.elevation = elevation
        self.cfg = cfg
        self.batch_view_num = batch_view_num
        self.sigma_model = None

    def __call__(self, x, timestep, model_options=None, seed=None):
        """The denoised prediction, as ComfyUI's samplers call a guider. Samplers that need
        both predictions (the CFG++ family registers ``sampler_post_cfg_function``) and
        ``sampler_cfg_function`` patches get them as ComfyUI defines the arguments."""
        options = model_options or {}
        post = options.get("sampler_post_cfg_function", [])
        custom = options.get("sampler_cfg_function")
        if not post and custom is None:
            return self.sigma_model(x, timestep)
        from syncdreamer_core.diffusion.denoiser import classifier_free_guidance

        cond, uncond = self.sigma_model.denoise_both(x, timestep)
        if custom is not None:
            denoised = x - custom({"cond": x - cond, "uncond": x - uncond, "cond_scale": self.cfg, "timestep": timestep,
                                   "input": x, "sigma": timestep, "cond_denoised": cond, "uncond_denoised": uncond,
                                   "model": self.inner_model, "model_options": options, "input_cond": None,
                                   "input_uncond": None})
        else:
            denoised = classifier_free_guidance(cond, uncond, self.cfg)
        for function in post:
            denoised = function({"denoised": denoised, "cond": None, "uncond": None, "cond_scale": self.cfg,
                                 "model": self.inner_model, "uncond_denoised": uncond, "cond_denoised": cond,
                                 "sigma": timestep, "model_options": options, "input": x})
        return denoised

    def conditioning(self, instances: int, seed: int):
        from syncdreamer_core.conditioning import encode_conditioning

        images = self.pixels.shape[0]
        if instances % images:
            raise NodeInputError(
                f"the latent holds {instances} sets of {VIEW_COUNT} views but there are {images} input images: make "
                f"it a multiple of {images} (candidates per image x {images}) with 'SyncDreamer Empty Latent'")
        return encode_conditioning(self.encoders, self.pixels, self.elevation, seed, instances // images)

    def views_that_fit(self, network) -> int:
        """batch_view_num for this run: the one asked for, or with 0 (auto) the largest whose
        step fits in the memory ComfyUI reports free on the device; a run that cannot fit
        stops here, before its first step."""
        import comfy.model_management as mm

        from syncdreamer_core.memory import MemoryShortage, views_that_fit

        try:
            return views_that_fit(network, self.batch_view_num, int(mm.get_free_memory(network.device)))
        except MemoryShortage as error:
            raise NodeInputError(str(error)) from None

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
               disable_pbar=False, seed=None):
        import comfy.model_management as mm

        from syncdreamer_core.diffusion.denoiser import SyncDenoiser
        from syncdreamer_core.diffusion.noise import instance_seed
        from syncdreamer_core.diffusion.sampling import check_finite_latents
        from syncdreamer_core.diffusion.sigma_denoiser import SigmaDenoiser

        if sigmas.shape[-1] == 0:
            return latent_image
        if noise.shape[0] % VIEW_COUNT or noise.shape[0] == 0:
            raise NodeInputError(
                f"SyncDreamer samples whole sets of {VIEW_COUNT} views: the latent batch must be a multiple of "
                f"{VIEW_COUNT}, got {noise.shape[0]}. Use 'SyncDreamer Empty Latent'.")
        seed = 0 if seed is None else int(seed)
        instances = noise.shape[0] // VIEW_COUNT
        if denoise_mask is not None:
            import comfy.sampler_helpers

            # A LATENT's noise_mask: 1 where views are regenerated, 0 where the latent is kept.
            denoise_mask = comfy.sampler_helpers.prepare_mask(denoise_mask, noise.shape, torch.device("cpu")).float()
        cond = self.conditioning(instances, seed)
        model = self.syncdreamer.load_to_device()
        device = model.network.device
        views = self.views_that_fit(model.network)
        denoiser = SyncDenoiser(model.network, views, between_chunks=check_cancel)
        steps = sigmas.shape[-1] - 1
        countdown = announce_wait(model.network, views, self.cfg, steps, instances, evaluations_per_step(sampler))
        results = []
        try:
            for n in range(instances):
                rows = slice(n * VIEW_COUNT, (n + 1) * VIEW_COUNT)
                self.sigma_model = SigmaDenoiser(denoiser, cond.instance(n), self.cfg)
                latent = latent_image[rows].to(device)
                if torch.count_nonzero(latent):
                    latent = model.process_latent_in(latent)
                extra_args = {"model_options": dict(self.model_options), "seed": instance_seed(seed, n)}
                def step_callback(i, x0, x, total, n=n):
                    if countdown is not None:
                        progress_text(countdown.describe(n * steps + i + 1))
                    if callback is not None:
                        callback(n * steps + i, x0, x, instances * steps)
                mask = denoise_mask[rows].to(device) if denoise_mask is not None else None
                samples = sampler.sample(self, sigmas.to(device), extra_args, step_callback, noise[rows].to(device),
                                         latent, mask, disable_pbar)
                if mask is not None:  # kept exactly, also by samplers that stop short of sigma 0 (DDIM)
                    samples = samples * mask + latent * (1 - mask)
                results.append(samples.float().cpu())
        finally:
            self.sigma_model = None
            mm.soft_empty_cache()
        samples = torch.cat(results)
        check_finite_latents(samples.reshape(instances, VIEW_COUNT, *samples.shape[1:]))
        return model.process_latent_out(samples)


#: k-diffusion samplers (as ComfyUI names their functions) that evaluate the model more than once a step.
EVALUATIONS_PER_STEP = {"sample_heun": 2, "sample_dpm_2": 2, "sample_dpm_2_ancestral": 2, "sample_dpmpp_sde": 2,
                        "sample_dpmpp_sde_gpu": 2, "sample_dpmpp_2s_ancestral": 2, "sample_heunpp2": 3}


def evaluations_per_step(sampler) -> int:
    function = getattr(sampler, "sampler_function", None)
    return EVALUATIONS_PER_STEP.get(getattr(function, "__name__", ""), 1)


def announce_wait(network, views: int, cfg: float, steps: int, instances: int, per_step: int = 1):
    """On a CPU, the run's expected length in the log and on the running node, before its
    first step; a countdown that keeps the node's text up to date (None elsewhere)."""
    from syncdreamer_core.wait import Countdown, cpu_wait

    estimate = cpu_wait(network, views, cfg, steps, instances, per_step)
    if estimate is None:
        return None
    text = f"SyncDreamer on the CPU: {estimate.describe()}"
    logging.info(text)
    progress_text(text)
    return Countdown(estimate)


def progress_text(text: str) -> None:
    """Text under the running node's progress bar (ComfyUI's progress text)."""
    try:
        import server
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return
    context = get_executing_context()
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if context is not None and instance is not None and hasattr(instance, "send_progress_text"):
        instance.send_progress_text(text, context.node_id)


def empty_latent(instances: int) -> torch.Tensor:
    return torch.zeros(instances * VIEW_COUNT, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE)


# ---------------------------------------------------------------- meshes

#: Every field current ComfyUI's MESH carries (read directly by its core mesh nodes), with
#: the value meaning "absent".
MESH_FIELDS = {"uvs": None, "vertex_colors": None, "texture": None, "vertex_counts": None, "face_counts": None,
               "unlit": False, "normals": None, "tangents": None, "metallic_roughness": None, "normal_map": None,
               "emissive": None, "occlusion_in_mr": False, "material": None}


@functools.cache
def host_mesh_class():
    """The host's MESH class and the fields its constructor accepts (ComfyUI 0.27+), or
    (None, ()) where the host's MESH carries no textures (0.3.x)."""
    try:
        from comfy_api.latest import Types
    except ImportError:
        return None, ()
    mesh = getattr(Types, "MESH", None)
    if mesh is None:
        return None, ()
    import inspect

    accepted = tuple(inspect.signature(mesh).parameters)
    return (mesh, accepted) if "texture" in accepted else (None, ())


class SyncDreamerMeshValue:
    """The MESH value on hosts whose MESH has no texture fields: every field of current
    ComfyUI's MESH, so stock and newer core mesh nodes read it like their own."""

    def __init__(self, vertices, faces, **fields):
        self.vertices, self.faces = vertices, faces
        for name, absent in MESH_FIELDS.items():
            setattr(self, name, fields.get(name, absent))


def make_mesh_value(vertices, faces, **fields):
    """The host's MESH (or ours, with every field) from batched tensors: each field the
    host's class accepts is passed (feature-detected from its signature, e.g. normals)."""
    cls, accepted = host_mesh_class()
    if cls is None:
        return SyncDreamerMeshValue(vertices, faces, **fields)
    value = cls(vertices=vertices, faces=faces, **{k: v for k, v in fields.items() if k in accepted})
    for name, absent in MESH_FIELDS.items():  # fields an older class lacks read as absent
        if not hasattr(value, name):
            setattr(value, name, absent)
    return value
