"""Adapters between ComfyUI's objects and ``syncdreamer_core``.

ComfyUI modules are imported lazily inside functions, so this file imports (and the
pack loads) even where parts of the host are missing.
"""

from __future__ import annotations

import torch
from syncdreamer_core.weights.checkpoint import LoadedCheckpoint
from syncdreamer_core.conditioning import Conditioning
from syncdreamer_core.diffusion.denoiser import SyncDenoiser
from syncdreamer_core.weights.encoders import clip_image_embedding, clip_pixels
from syncdreamer_core.diffusion.sigma_denoiser import DiscreteSigmas, SigmaDenoiser

from syncdreamer_core.constants import VAE_SCALE_FACTOR, VIEW_COUNT

SYNCDREAMER_MODEL = "SYNCDREAMER_MODEL"


class SyncDreamerComfyModel(torch.nn.Module):
    """What ComfyUI's model management and samplers see: the network plus the
    schedule and latent format they read."""

    def __init__(self, loaded: LoadedCheckpoint):
        super().__init__()
        import comfy.latent_formats

        self.network = loaded.model
        self.model_sampling = DiscreteSigmas(loaded.model.alphas_cumprod)
        self.latent_format = comfy.latent_formats.SD15()
        self.config = loaded.config

    def process_latent_in(self, latent):
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent):
        return self.latent_format.process_out(latent)

    def memory_required(self, input_shape, cond_shapes=None):
        # activations of one chunk of views with guidance, generously
        batch = input_shape[0] if input_shape else VIEW_COUNT
        return 2 * batch * self.config.model_channels * 32 * 32 * 48 * 4


class SyncDreamerModel:
    """The SYNCDREAMER_MODEL value: a ModelPatcher plus the encoders the checkpoint carries."""

    def __init__(self, loaded: LoadedCheckpoint, vae, clip_vision, name: str):
        import comfy.model_management as mm
        import comfy.model_patcher

        self.name = name
        self.loaded = loaded
        self.vae = vae
        self.clip_vision = clip_vision
        self.model = SyncDreamerComfyModel(loaded)
        self.patcher = comfy.model_patcher.ModelPatcher(self.model, load_device=mm.get_torch_device(),
                                                        offload_device=mm.unet_offload_device())

    @property
    def network(self):
        return self.model.network

    def load_to_device(self):
        import comfy.model_management as mm

        mm.load_models_gpu([self.patcher])
        return self.model


# ---------------------------------------------------------------- encoders

class CoreVAE:
    """A VAE value for checkpoints whose VAE ComfyUI cannot build (non-standard sizes):
    the stock VAEDecode/VAEEncode nodes call ``decode``/``encode`` as on ``comfy.sd.VAE``."""

    def __init__(self, vae):
        self.vae = vae

    def _device(self):
        import comfy.model_management as mm

        device = mm.get_torch_device()
        self.vae.to(device)
        return device

    def posterior(self, pixels: torch.Tensor):
        """pixels [B, H, W, 3] in 0..1 -> (mean, std) of the latent posterior (unscaled)."""
        x = (pixels.movedim(-1, 1) * 2 - 1).to(self._device(), self.vae.dtype)
        dist = self.vae.encode(x).latent_dist
        return dist.mean.float(), dist.std.float()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.posterior(pixels[..., :3])[0].cpu()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        device = self._device()
        out = []
        for chunk in latents.split(8):
            images = self.vae.decode(chunk.to(device, self.vae.dtype)).sample.float()
            out.append(((images.clamp(-1, 1) + 1) / 2).movedim(1, -1).cpu())
        return torch.cat(out)


class CoreClipVision:
    """A CLIP_VISION value for CLIP weights ComfyUI cannot build (non-ViT-L sizes)."""

    def __init__(self, clip):
        self.clip = clip

    def syncdreamer_embed(self, image: torch.Tensor) -> torch.Tensor:
        import comfy.model_management as mm

        self.clip.to(mm.get_torch_device())
        return clip_image_embedding(self.clip, image)

    def encode_image(self, image, crop=True):
        embeds = self.syncdreamer_embed(image.movedim(-1, 1)[:, :3] * 2 - 1)[:, 0].cpu()
        return {"image_embeds": embeds}


def build_vae(vae_sd: dict):
    """``comfy.sd.VAE`` for the standard SD VAE, else the core VAE behind the same calls."""
    import comfy.sd

    try:
        return comfy.sd.VAE(sd=dict(vae_sd))
    except Exception:  # noqa: BLE001 - a non-standard size: ComfyUI has no class for it
        from syncdreamer_core.weights.encoders import build_vae as build_core_vae

        return CoreVAE(build_core_vae(vae_sd))


def build_clip_vision(visual_sd: dict):
    """ComfyUI's CLIP vision model for ViT-L/14, else the core encoder behind the same calls."""
    import comfy.clip_vision
    from syncdreamer_core.weights.encoders import build_clip_vision as build_core_clip
    from syncdreamer_core.weights.encoders import openai_clip_visual_to_transformers

    try:
        clip = comfy.clip_vision.load_clipvision_from_sd(openai_clip_visual_to_transformers(visual_sd))
    except Exception:  # noqa: BLE001
        clip = None
    return clip if clip is not None else CoreClipVision(build_core_clip(visual_sd))


def vae_posterior(vae, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the VAE posterior of ``pixels`` [B, H, W, 3] in 0..1, raw latent scale."""
    if hasattr(vae, "posterior"):
        return vae.posterior(pixels)
    import comfy.model_management as mm

    engine = getattr(vae, "first_stage_model", None)
    encoder, quant = getattr(engine, "encoder", None), getattr(engine, "quant_conv", None)
    if encoder is None:
        # An unknown VAE class: its encode() gives the posterior mean.
        return vae.encode(pixels).float(), None
    mm.load_models_gpu([vae.patcher])
    x = (pixels.movedim(-1, 1) * 2 - 1).to(vae.device, vae.vae_dtype)
    with torch.inference_mode():
        moments = encoder(x)
        if quant is not None:
            moments = quant(moments)
    mean, logvar = moments.float().chunk(2, dim=1)
    return mean, torch.exp(0.5 * logvar.clamp(-30.0, 20.0))


def clip_embedding(clip_vision, image: torch.Tensor) -> torch.Tensor:
    """CLIP ViT-L/14 image embedding [B, 1, 768] of ``image`` [B, 3, 256, 256] in [-1, 1],
    preprocessed as the reference does."""
    if hasattr(clip_vision, "syncdreamer_embed"):
        return clip_vision.syncdreamer_embed(image).float().cpu()
    import comfy.model_management as mm

    mm.load_model_gpu(clip_vision.patcher)
    device = clip_vision.load_device
    pixels = clip_pixels(image).to(device=device, dtype=torch.float32)
    with torch.inference_mode():
        out = clip_vision.model(pixel_values=pixels)
    return out[2].float().cpu()[:, None]


# ---------------------------------------------------------------- sampling

class SyncDreamerGuider:
    """A GUIDER for SamplerCustomAdvanced (and our KSampler node): denoises whole
    16-view instances with SyncDreamer's own classifier-free guidance."""

    def __init__(self, model: SyncDreamerModel, conditioning_fn, cfg: float, batch_view_num: int):
        self.syncdreamer = model
        self.model_patcher = model.patcher
        self.model_options = model.patcher.model_options
        self.conditioning_fn = conditioning_fn
        self.cfg = cfg
        self.batch_view_num = batch_view_num
        self.inner_model = model.model
        self.sigma_model: SigmaDenoiser | None = None

    def __call__(self, x, timestep, model_options=None, seed=None):
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()
        return self.sigma_model(x, timestep)

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
               disable_pbar=False, seed=None):
        import comfy.model_management as mm

        if sigmas.shape[-1] == 0:
            return latent_image
        instances = noise.shape[0] // VIEW_COUNT
        if noise.shape[0] % VIEW_COUNT:
            raise ValueError(
                f"SyncDreamer samples whole sets of {VIEW_COUNT} views: the latent batch must be a multiple of "
                f"{VIEW_COUNT}, got {noise.shape[0]}. Use 'SyncDreamer Empty Latent'.")
        cond: Conditioning = self.conditioning_fn(instances, 0 if seed is None else int(seed))
        model = self.syncdreamer.load_to_device()
        device = model.network.device
        self.sigma_model = SigmaDenoiser(SyncDenoiser(model.network, self.batch_view_num), cond, self.cfg)
        latent = latent_image.to(device)
        if torch.count_nonzero(latent):
            latent = model.process_latent_in(latent)
        extra_args = {"model_options": dict(self.model_options), "seed": seed}
        try:
            samples = sampler.sample(self, sigmas.to(device), extra_args, callback, noise.to(device), latent,
                                     denoise_mask, disable_pbar)
        finally:
            self.sigma_model = None
            mm.soft_empty_cache()
        return model.process_latent_out(samples.to(torch.float32))


def input_conditioning(model: SyncDreamerModel, vae, clip_vision, image: torch.Tensor, elevation_deg: float):
    """A function (instances, seed) -> Conditioning for ``image`` [1, 256, 256, 3] in 0..1:
    the reference's CLIP embedding and a per-instance sample of the VAE posterior."""
    from syncdreamer_core.pipeline import elevation_radians, input_latent_generator, sample_posterior

    def conditioning(instances: int, seed: int) -> Conditioning:
        pixels = image[:1, :, :, :3].float()
        mean, std = vae_posterior(vae, pixels)
        mean = mean.cpu().expand(instances, -1, -1, -1)
        if std is None:
            latent = mean
        else:
            latent = sample_posterior(mean, std.cpu().expand(instances, -1, -1, -1), input_latent_generator(seed))
        embed = clip_embedding(clip_vision, pixels.movedim(-1, 1) * 2 - 1).expand(instances, -1, -1)
        return Conditioning(embed, latent * VAE_SCALE_FACTOR, elevation_radians(float(elevation_deg), instances))

    return conditioning
