"""The two frozen encoders SyncDreamer carries in its checkpoint, built with
well-kept libraries from converted keys (nothing is fetched from a model hub):

- the Stable Diffusion 1.x VAE (``first_stage_model.*``, LDM layout) as a diffusers
  ``AutoencoderKL``;
- the OpenAI CLIP ViT-L/14 image tower (``clip_image_encoder.model.visual.*``) as a
  transformers ``CLIPVisionModelWithProjection``.
"""

from __future__ import annotations

import math

import kornia
import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..conditioning import posterior_from_moments
from ..constants import CLIP_IMAGE_SIZE, CLIP_MEAN, CLIP_STD, VAE_SCALE_FACTOR
from .keys import CheckpointError, key_mismatch, shapes_of

#: diffusers config of the SD 1.x VAE (ch 128, ch_mult 1,2,4,4, 2 res blocks, z 4).
SD_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
    "scaling_factor": VAE_SCALE_FACTOR,
}


class EncoderWeightsError(CheckpointError):
    """The VAE or CLIP weights in a checkpoint do not have the expected layout."""


def _materialize(module: torch.nn.Module, device) -> None:
    leftovers = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if leftovers and torch.device(device).type != "meta":
        raise EncoderWeightsError(f"weights missing after loading: {leftovers[:5]}")


# ---------------------------------------------------------------- VAE

def vae_config(vae_sd: dict[str, torch.Tensor]) -> dict:
    """The SD 1.x VAE config with channel counts and depth read off LDM-layout weights."""
    try:
        levels = 1 + max(int(k.split(".")[2]) for k in vae_sd if k.startswith("encoder.down."))
        channels = [vae_sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in range(levels)]
        per_level = 1 + max(int(k.split(".")[4]) for k in vae_sd if k.startswith("encoder.down.0.block."))
        latent = vae_sd["post_quant_conv.weight"].shape[0]
    except (KeyError, ValueError, IndexError) as error:
        raise EncoderWeightsError(
            f"the VAE weights (first_stage_model.*) are not in the LDM AutoencoderKL layout: missing {error}"
        ) from None
    return {**SD_VAE_CONFIG, "block_out_channels": channels, "layers_per_block": per_level,
            "latent_channels": latent, "down_block_types": ["DownEncoderBlock2D"] * levels,
            "up_block_types": ["UpDecoderBlock2D"] * levels}


def build_vae(vae_sd: dict[str, torch.Tensor], dtype=torch.float32, device="cpu") -> AutoencoderKL:
    """A diffusers AutoencoderKL from LDM-layout weights (prefix already removed)."""
    config = vae_config(vae_sd)
    converted = convert_ldm_vae_checkpoint(dict(vae_sd), config)
    with torch.device("meta"):
        vae = AutoencoderKL(**config)
    problem = key_mismatch(shapes_of(vae), converted)
    if problem:
        raise EncoderWeightsError(f"the VAE weights (first_stage_model.*) are not a Stable Diffusion 1.x VAE: {problem}")
    converted = {k: v.to(device=device, dtype=dtype) for k, v in converted.items()}
    vae.load_state_dict(converted, strict=True, assign=True)
    _materialize(vae, device)
    return vae.eval().requires_grad_(False)


def vae_posterior(vae: AutoencoderKL, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """image [B, 3, H, W] in [-1, 1] -> mean and std of the latent posterior (raw scale, float32)."""
    x = image.to(device=vae.device, dtype=vae.dtype)
    moments = vae.quant_conv(vae.encoder(x)) if vae.quant_conv is not None else vae.encoder(x)
    return posterior_from_moments(moments)


def decode_latents(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """latents [B, 4, h, w] (scaled by 0.18215) -> images [B, 3, 8h, 8w] clamped to [-1, 1]."""
    images = vae.decode(latents.to(device=vae.device, dtype=vae.dtype) / VAE_SCALE_FACTOR).sample
    return images.float().clamp(-1, 1)


# ---------------------------------------------------------------- CLIP

def openai_clip_config(visual_sd: dict[str, torch.Tensor]) -> CLIPVisionConfig:
    """Read the vision tower's hyper-parameters off an OpenAI-layout state dict
    (keys without the ``visual.`` prefix). Heads follow OpenAI's width/64 rule."""
    try:
        width, _, patch, _ = visual_sd["conv1.weight"].shape
        positions = visual_sd["positional_embedding"].shape[0]
        layers = 1 + max(int(k.split(".")[2]) for k in visual_sd if k.startswith("transformer.resblocks."))
        mlp = visual_sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
        projection = visual_sd["proj"].shape[1]
        if width % 64 or positions < 2:
            raise ValueError(f"a vision width of {width} and {positions} positions")
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise EncoderWeightsError(
            f"the CLIP weights (clip_image_encoder.model.visual.*) are not an OpenAI CLIP vision tower: {error}"
        ) from None
    grid = int(round(math.sqrt(positions - 1)))
    return CLIPVisionConfig(
        hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers, num_attention_heads=width // 64,
        image_size=grid * patch, patch_size=patch, projection_dim=projection,
        hidden_act="quick_gelu", layer_norm_eps=1e-5,
    )


def openai_clip_visual_to_transformers(visual_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI CLIP vision keys (no ``visual.`` prefix) -> transformers CLIPVisionModelWithProjection keys."""
    out: dict[str, torch.Tensor] = {}
    renames = {
        "class_embedding": "vision_model.embeddings.class_embedding",
        "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "ln_post.weight": "vision_model.post_layernorm.weight",
        "ln_post.bias": "vision_model.post_layernorm.bias",
    }
    block_renames = {
        "ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
        "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
    }
    for key, value in visual_sd.items():
        if key in renames:
            out[renames[key]] = value
        elif key == "proj":
            out["visual_projection.weight"] = value.t()
        elif key.startswith("transformer.resblocks."):
            _, _, index, rest = key.split(".", 3)
            prefix = f"vision_model.encoder.layers.{index}."
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = "weight" if rest.endswith("weight") else "bias"
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                    out[f"{prefix}self_attn.{name}.{kind}"] = part
                continue
            module, kind = rest.rsplit(".", 1)
            if module not in block_renames:
                raise EncoderWeightsError(f"unexpected CLIP vision key visual.{key}")
            out[f"{prefix}{block_renames[module]}.{kind}"] = value
        else:
            raise EncoderWeightsError(f"unexpected CLIP vision key visual.{key}")
    return out


def build_clip_vision(visual_sd: dict[str, torch.Tensor], dtype=torch.float32,
                      device="cpu") -> CLIPVisionModelWithProjection:
    config = openai_clip_config(visual_sd)
    converted = openai_clip_visual_to_transformers(visual_sd)
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    problem = key_mismatch(shapes_of(model), converted)
    if problem:
        raise EncoderWeightsError(
            f"the CLIP vision weights (clip_image_encoder.model.visual.*) do not fit a ViT of width "
            f"{config.hidden_size} and {config.num_hidden_layers} layers: {problem}")
    model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in converted.items()},
                          strict=True, assign=True)
    embeddings = model.vision_model.embeddings
    if embeddings.position_ids.is_meta:  # a non-persistent buffer, not in any state dict
        positions = embeddings.position_embedding.weight.shape[0]
        embeddings.register_buffer("position_ids", torch.arange(positions, device=device)[None], persistent=False)
    _materialize(model, device)
    return model.eval().requires_grad_(False)


def clip_pixels(image: torch.Tensor) -> torch.Tensor:
    """image [B, 3, H, W] in [-1, 1] -> CLIP input [B, 3, 224, 224], resized as the
    reference does it (kornia bicubic, align_corners=True, no antialiasing)."""
    x = kornia.geometry.transform.resize(
        image.float(), (CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE), interpolation="bicubic", align_corners=True,
        antialias=False,
    )
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=x.device)
    std = torch.tensor(CLIP_STD, device=x.device)
    return kornia.enhance.normalize(x, mean, std)


def clip_image_embedding(clip: CLIPVisionModelWithProjection, image: torch.Tensor) -> torch.Tensor:
    """image [B, 3, H, W] in [-1, 1] -> projected CLIP embedding [B, 1, 768] (float32)."""
    pixels = clip_pixels(image).to(device=clip.device, dtype=clip.dtype)
    return clip(pixel_values=pixels).image_embeds.float()[:, None]


class CheckpointEncoders:
    """The checkpoint's own VAE and CLIP image encoder (``conditioning.InputEncoders``),
    computing in their dtype on their device."""

    def __init__(self, vae: AutoencoderKL, clip: CLIPVisionModelWithProjection):
        self.vae = vae
        self.clip = clip

    @torch.inference_mode()
    def posterior(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return vae_posterior(self.vae, pixels)

    @torch.inference_mode()
    def clip_embedding(self, pixels: torch.Tensor) -> torch.Tensor:
        return clip_image_embedding(self.clip, pixels)
