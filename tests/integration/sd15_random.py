"""Writes a randomly initialised checkpoint in the Stable Diffusion 1.5 layout, built with
the host's own model classes (run it with the host's Python):

    cd $COMFYUI_ROOT && python /path/to/pack/tests/integration/sd15_random.py OUT.safetensors /path/to/pack

UNet and CLIP text encoder are random (fan-in scaled); the VAE decoder is set so that it
draws, whatever the latent, a dark square with a one-pixel white frame: the graphs that
follow Stable Diffusion with a white-background mask then have an object to find. The
images mean nothing; they prove that the graph executes.
"""

from __future__ import annotations

import sys

import torch


def random_tensor(key: str, shape, generator) -> torch.Tensor:
    if key.endswith("position_ids"):
        return torch.arange(shape[-1]).expand(shape).clone()
    if len(shape) <= 1:
        is_scale = key.endswith(".weight") and ("norm" in key or "ln" in key.split(".")[-2])
        return torch.ones(shape) if is_scale else torch.zeros(shape)
    fan_in = 1
    for n in shape[1:]:
        fan_in *= n
    return torch.randn(shape, generator=generator) / fan_in**0.5


def unet_shapes() -> dict:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
                  channel_mult=[1, 2, 4, 4], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
                  transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], num_heads=8, num_head_channels=-1,
                  context_dim=768, use_spatial_transformer=True, use_linear_in_transformer=False, legacy=False,
                  adm_in_channels=None, use_temporal_attention=False, use_temporal_resblock=False)
    with torch.device("meta"):
        model = UNetModel(**config, operations=comfy.ops.disable_weight_init, device="meta")
    return {f"model.diffusion_model.{k}": v.shape for k, v in model.state_dict().items()}


def clip_text_shapes() -> dict:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
    with torch.device("meta"):
        model = CLIPTextModel(config)
    return {f"cond_stage_model.transformer.{k}": v.shape for k, v in model.state_dict().items()}


def vae_state(generator) -> dict:
    """An LDM AutoencoderKL: random encoder; a decoder that paints a dark square on white."""
    from syncdreamer_core.weights.official_layout import vae_shapes

    state = {}
    for key, shape in vae_shapes().items():
        if key.startswith("encoder.") or key.startswith("quant_conv"):
            state[key] = random_tensor(key, shape, generator)
        else:
            state[key] = torch.zeros(shape)
    # Every decoder feature map is constant, so norm_out gives its bias everywhere: SiLU(2) = 1.76.
    state["decoder.norm_out.bias"] = torch.full(state["decoder.norm_out.bias"].shape, 2.0)
    # conv_out sees that constant through zero padding: the centre tap minus the ring is dark
    # inside the image (-0.6 -> 0.2 after decoding) and white on the border, where ring taps fall off.
    c, ring = 1.7616, 1.6 / (3 * 1.7616)
    kernel = torch.full((3, 3), -ring)
    kernel[1, 1] = -0.6 / c + 8 * ring
    state["decoder.conv_out.weight"][:, 0] = kernel
    return {f"first_stage_model.{k}": v for k, v in state.items()}


def main() -> None:
    import os

    from safetensors.torch import save_file

    sys.path.insert(0, os.getcwd())  # the host (run from its folder), on the CPU
    out, pack = sys.argv[1], sys.argv[2]
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    sys.path.insert(0, pack)  # the pack, for its description of the VAE's key layout

    generator = torch.Generator().manual_seed(0)
    state = {k: random_tensor(k, s, generator).half() for k, s in {**unet_shapes(), **clip_text_shapes()}.items()}
    state.update({k: v.half() for k, v in vae_state(generator).items()})
    save_file(state, out)
    print(f"wrote {out}: {len(state)} tensors, {sum(t.numel() for t in state.values()) / 1e6:.0f} M parameters")


if __name__ == "__main__":
    main()
