"""The key layout of the official ``syncdreamer-pretrain.ckpt``, as shapes.

Used to check the loader against the full-size layout without 5 GB of memory
(meta tensors), and to write randomly initialised checkpoints in the official
format for demos and tests. The network part comes from our module (whose names
are checked against the parity fixtures made by the official code); the VAE part
is the LDM ``AutoencoderKL`` layout and the CLIP part the OpenAI ``clip.load``
layout, with the text transformer removed as the reference does (its other text
weights remain).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..network.config import SyncDreamerConfig
from ..network.model import SyncDreamer
from .checkpoint import CLIP_PREFIX, VAE_PREFIX, default_buffers

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class VAELayout:
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4


@dataclass(frozen=True)
class CLIPLayout:
    width: int = 1024
    layers: int = 24
    patch: int = 14
    image_size: int = 224
    embed_dim: int = 768
    text_width: int = 768
    text_layers: int = 12
    vocab: int = 49408
    context_length: int = 77


SMALL_VAE = VAELayout(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)
SMALL_CLIP = CLIPLayout(width=64, layers=2, text_width=64, text_layers=1, vocab=16)


def network_shapes(config: SyncDreamerConfig) -> Shapes:
    with torch.device("meta"):
        model = SyncDreamer(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _resnet(prefix: str, c_in: int, c_out: int) -> Shapes:
    shapes = {
        f"{prefix}.norm1.weight": (c_in,), f"{prefix}.norm1.bias": (c_in,),
        f"{prefix}.conv1.weight": (c_out, c_in, 3, 3), f"{prefix}.conv1.bias": (c_out,),
        f"{prefix}.norm2.weight": (c_out,), f"{prefix}.norm2.bias": (c_out,),
        f"{prefix}.conv2.weight": (c_out, c_out, 3, 3), f"{prefix}.conv2.bias": (c_out,),
    }
    if c_in != c_out:
        shapes[f"{prefix}.nin_shortcut.weight"] = (c_out, c_in, 1, 1)
        shapes[f"{prefix}.nin_shortcut.bias"] = (c_out,)
    return shapes


def _mid(prefix: str, c: int) -> Shapes:
    shapes = {**_resnet(f"{prefix}.block_1", c, c), **_resnet(f"{prefix}.block_2", c, c)}
    shapes[f"{prefix}.attn_1.norm.weight"] = (c,)
    shapes[f"{prefix}.attn_1.norm.bias"] = (c,)
    for name in ("q", "k", "v", "proj_out"):
        shapes[f"{prefix}.attn_1.{name}.weight"] = (c, c, 1, 1)
        shapes[f"{prefix}.attn_1.{name}.bias"] = (c,)
    return shapes


def vae_shapes(layout: VAELayout = VAELayout()) -> Shapes:
    """LDM AutoencoderKL keys (without the ``first_stage_model.`` prefix)."""
    ch, mult, nrb, z = layout.ch, layout.ch_mult, layout.num_res_blocks, layout.z_channels
    shapes: Shapes = {"encoder.conv_in.weight": (ch, 3, 3, 3), "encoder.conv_in.bias": (ch,)}
    block_in = ch
    for level, m in enumerate(mult):
        block_out = ch * m
        for j in range(nrb):
            shapes.update(_resnet(f"encoder.down.{level}.block.{j}", block_in, block_out))
            block_in = block_out
        if level != len(mult) - 1:
            shapes[f"encoder.down.{level}.downsample.conv.weight"] = (block_in, block_in, 3, 3)
            shapes[f"encoder.down.{level}.downsample.conv.bias"] = (block_in,)
    shapes.update(_mid("encoder.mid", block_in))
    shapes.update({"encoder.norm_out.weight": (block_in,), "encoder.norm_out.bias": (block_in,),
                   "encoder.conv_out.weight": (2 * z, block_in, 3, 3), "encoder.conv_out.bias": (2 * z,)})

    block_in = ch * mult[-1]
    shapes.update({"decoder.conv_in.weight": (block_in, z, 3, 3), "decoder.conv_in.bias": (block_in,)})
    shapes.update(_mid("decoder.mid", block_in))
    for level in reversed(range(len(mult))):
        block_out = ch * mult[level]
        for j in range(nrb + 1):
            shapes.update(_resnet(f"decoder.up.{level}.block.{j}", block_in, block_out))
            block_in = block_out
        if level != 0:
            shapes[f"decoder.up.{level}.upsample.conv.weight"] = (block_in, block_in, 3, 3)
            shapes[f"decoder.up.{level}.upsample.conv.bias"] = (block_in,)
    shapes.update({"decoder.norm_out.weight": (block_in,), "decoder.norm_out.bias": (block_in,),
                   "decoder.conv_out.weight": (3, block_in, 3, 3), "decoder.conv_out.bias": (3,)})
    shapes.update({"quant_conv.weight": (2 * z, 2 * z, 1, 1), "quant_conv.bias": (2 * z,),
                   "post_quant_conv.weight": (z, z, 1, 1), "post_quant_conv.bias": (z,)})
    return shapes


def _transformer(prefix: str, width: int, layers: int) -> Shapes:
    shapes: Shapes = {}
    for i in range(layers):
        p = f"{prefix}.resblocks.{i}"
        shapes.update({
            f"{p}.attn.in_proj_weight": (3 * width, width), f"{p}.attn.in_proj_bias": (3 * width,),
            f"{p}.attn.out_proj.weight": (width, width), f"{p}.attn.out_proj.bias": (width,),
            f"{p}.ln_1.weight": (width,), f"{p}.ln_1.bias": (width,),
            f"{p}.mlp.c_fc.weight": (4 * width, width), f"{p}.mlp.c_fc.bias": (4 * width,),
            f"{p}.mlp.c_proj.weight": (width, 4 * width), f"{p}.mlp.c_proj.bias": (width,),
            f"{p}.ln_2.weight": (width,), f"{p}.ln_2.bias": (width,),
        })
    return shapes


def clip_shapes(layout: CLIPLayout = CLIPLayout(), with_text_transformer: bool = False) -> Shapes:
    """OpenAI CLIP keys (without the ``clip_image_encoder.model.`` prefix)."""
    w, grid = layout.width, layout.image_size // layout.patch
    shapes: Shapes = {
        "visual.class_embedding": (w,),
        "visual.positional_embedding": (grid * grid + 1, w),
        "visual.proj": (w, layout.embed_dim),
        "visual.conv1.weight": (w, 3, layout.patch, layout.patch),
        "visual.ln_pre.weight": (w,), "visual.ln_pre.bias": (w,),
        "visual.ln_post.weight": (w,), "visual.ln_post.bias": (w,),
    }
    shapes.update(_transformer("visual.transformer", w, layout.layers))
    tw = layout.text_width
    shapes.update({
        "positional_embedding": (layout.context_length, tw),
        "text_projection": (tw, layout.embed_dim),
        "logit_scale": (),
        "token_embedding.weight": (layout.vocab, tw),
        "ln_final.weight": (tw,), "ln_final.bias": (tw,),
    })
    if with_text_transformer:
        shapes.update(_transformer("transformer", tw, layout.text_layers))
    return shapes


def official_shapes(config: SyncDreamerConfig | None = None, vae: VAELayout = VAELayout(),
                    clip: CLIPLayout = CLIPLayout(), with_text_transformer: bool = False) -> Shapes:
    """Every key of a SyncDreamer checkpoint in the official layout, with its shape."""
    shapes = dict(network_shapes(config or SyncDreamerConfig.official()))
    shapes.update({VAE_PREFIX + k: v for k, v in vae_shapes(vae).items()})
    shapes.update({CLIP_PREFIX + k: v for k, v in clip_shapes(clip, with_text_transformer).items()})
    return shapes


def _network_norm_scales(config: SyncDreamerConfig) -> set[str]:
    """Keys of the network's normalisation scales, found by layer type (many sit in
    ``nn.Sequential`` slots whose names say nothing, e.g. ``out.0.weight``)."""
    with torch.device("meta"):
        model = SyncDreamer(config)
    norms = (torch.nn.GroupNorm, torch.nn.LayerNorm)
    return {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, norms)}


def _is_norm_scale(key: str, network_norms: set[str]) -> bool:
    if key in network_norms:
        return True
    last = key.rsplit(".", 2)
    return key.endswith(".weight") and any(tag in last[-2] for tag in ("norm", "ln_"))


def random_checkpoint(config: SyncDreamerConfig | None = None, vae: VAELayout | None = SMALL_VAE,
                      clip: CLIPLayout | None = SMALL_CLIP, seed: int = 0,
                      dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A randomly initialised checkpoint in the official layout (untrained: its images are
    noise). Weights get fan-in scaled normal values, norm scales 1, biases 0; the camera and
    schedule buffers are the real ones (float32). ``vae``/``clip`` None leave the encoders
    out; weights are made one tensor at a time in ``dtype``, so a full-size network never
    exists twice in memory."""
    config = config or SyncDreamerConfig.small()
    generator = torch.Generator().manual_seed(seed)
    reference = default_buffers(config)
    shapes = dict(network_shapes(config))
    if vae is not None:
        shapes.update({VAE_PREFIX + k: v for k, v in vae_shapes(vae).items()})
    if clip is not None:
        shapes.update({CLIP_PREFIX + k: v for k, v in clip_shapes(clip).items()})
    network_norms = _network_norm_scales(config)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key in reference:
            state[key] = reference[key]
        elif key.endswith("logit_scale"):
            state[key] = torch.tensor(4.6052, dtype=dtype)
        elif _is_norm_scale(key, network_norms):
            state[key] = torch.ones(shape, dtype=dtype)
        elif key.endswith("bias") or len(shape) == 0:
            state[key] = torch.zeros(shape, dtype=dtype)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else shape[0])
            state[key] = (torch.randn(shape, generator=generator) / fan_in**0.5).to(dtype)
    return state


def paint_square_decoder(state: dict, prefix: str = "first_stage_model.") -> dict:
    """Set a VAE decoder (LDM layout) so that, whatever the latent, it draws a dark square
    on a white background (about 190 of 256 pixels wide): views an untrained network makes
    then hold an object on white, so the steps after sampling (masks, ranking, carving,
    meshing, baking) have something to work on in tests and benchmarks without weights.

    conv_in gives a constant; every later 3x3 convolution is a per-channel box filter, whose
    zero padding darkens a band along the border at each layer (a wide band at the 32x32
    level, 8 output pixels a latent pixel); normalisations turn that into a high centre and
    a low border, attention and shortcuts pass it on, and conv_out inverts it."""
    for key in list(state):
        if not key.startswith((prefix + "decoder.", prefix + "post_quant_conv.")):
            continue
        value = torch.zeros_like(state[key])
        if value.ndim == 4 and key.split(".")[-2] not in ("q", "k", "v", "proj_out"):
            for channel in range(min(value.shape[0], value.shape[1])):
                value[channel, channel] = 1.0 / value[0, 0].numel()
        elif key.endswith("weight") and "norm" in key:
            value = torch.ones_like(value)
        state[key] = value
    state[prefix + "post_quant_conv.weight"].zero_()
    state[prefix + "decoder.conv_in.bias"].fill_(1.0)
    state[prefix + "decoder.conv_out.weight"].mul_(-2.0)
    state[prefix + "decoder.conv_out.bias"].fill_(0.6)
    return state
