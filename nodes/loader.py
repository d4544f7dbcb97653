"""Load SyncDreamer Checkpoint: the network, plus a stock-compatible VAE and CLIP_VISION."""

from __future__ import annotations

import logging
import os

import torch
from comfy_api.latest import io

from .common import CATEGORY, MODEL_FOLDER, NodeInputError, SyncDreamerModelType, core_errors, one_of, schema

FP16_STORAGE = "fp16 weights, fp32 compute"
DTYPES = ["auto", "fp32", "fp16", "bf16", FP16_STORAGE]
_CACHE: dict = {}


def resolve_dtypes(choice: str, device) -> tuple[torch.dtype, torch.dtype]:
    """The dtype choice -> (compute dtype, weight storage dtype)."""
    import comfy.model_management as mm

    from syncdreamer_core.weights.checkpoint import resolve_dtype

    one_of(choice, "dtype", DTYPES)
    if choice == "auto":
        if torch.device(device).type == "cpu":
            from syncdreamer_core.hardware import recommended_cpu_dtype

            dtype = resolve_dtype(recommended_cpu_dtype())  # bf16 where the CPU has the instructions, else fp32
        else:
            dtype = mm.unet_dtype(device=device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
        return dtype, dtype
    if choice == FP16_STORAGE:
        return torch.float32, torch.float16
    from syncdreamer_core.hardware import emulated_half_warning

    warning = emulated_half_warning(torch.device(device).type, choice)
    if warning:
        logging.warning("SyncDreamer: %s; 'fp16 weights, fp32 compute' saves the same memory at fp32 speed", warning)
    dtype = resolve_dtype(choice)
    return dtype, dtype


class SyncDreamerCheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import folder_paths

        return schema(
            node_id="SyncDreamerCheckpointLoader",
            display_name="Load SyncDreamer Checkpoint",
            category=CATEGORY,
            search_aliases=["syncdreamer model", "load syncdreamer", "multiview model", "image to 3d model"],
            description=(
                "Loads syncdreamer-pretrain.ckpt (or a .safetensors conversion) from models/syncdreamer, reading the "
                "pickle weights-only (no code runs). Besides the SyncDreamer network it outputs the checkpoint's own "
                "Stable Diffusion VAE and CLIP ViT-L/14 image encoder, usable with the stock VAE Decode / CLIP Vision "
                "nodes."),
            inputs=[
                io.Combo.Input("ckpt_name", options=folder_paths.get_filename_list(MODEL_FOLDER), tooltip=(
                    "A file in ComfyUI/models/syncdreamer: the official syncdreamer-pretrain.ckpt (read weights-only) "
                    "or its .safetensors conversion.")),
                io.Combo.Input("dtype", options=DTYPES, default="auto", tooltip=(
                    "Precision of the network. auto: on a GPU what ComfyUI picks for it (fp16/bf16); on a CPU bf16 "
                    "where the CPU has bf16 instructions (AVX512_BF16/AMX: recent Xeons, AMD Zen 4+; 1.7x faster "
                    "than fp32 there), else fp32. fp16 and bf16 compute are emulated on other CPUs, many times slower "
                    "than fp32: to save memory there pick 'fp16 weights, fp32 compute' (3.9 -> 1.9 GB, computes as an "
                    "fp16 conversion of the checkpoint would). fp32 also builds the CLIP_VISION output in fp32 "
                    "(ComfyUI would store it in fp16).")),
            ],
            outputs=[
                SyncDreamerModelType.Output("syncdreamer_model", display_name="syncdreamer_model",
                                            tooltip="The SyncDreamer network, for the SyncDreamer Sampler or Guider."),
                io.Vae.Output("vae", display_name="vae",
                              tooltip="The checkpoint's Stable Diffusion 1.x VAE (decode the sampler's LATENT with it)."),
                io.ClipVision.Output("clip_vision", display_name="clip_vision",
                                     tooltip="The checkpoint's CLIP ViT-L/14 image encoder."),
            ],
        )

    @classmethod
    def execute(cls, ckpt_name: str, dtype: str = "auto") -> io.NodeOutput:
        import comfy.model_management as mm
        import folder_paths

        try:
            path = folder_paths.get_full_path_or_raise(MODEL_FOLDER, ckpt_name)
        except FileNotFoundError:
            raise NodeInputError(
                f"checkpoint '{ckpt_name}' not found in models/{MODEL_FOLDER}; put syncdreamer-pretrain.ckpt "
                "there (see the pack's README) and refresh") from None
        key = (path, os.path.getmtime(path), dtype)
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = load(path, ckpt_name, dtype, mm.get_torch_device())
        model = _CACHE[key]
        from .checkpoint_download import DOWNLOAD

        DOWNLOAD.loaded()  # the button's failure, if any, no longer matters
        return io.NodeOutput(model, model.vae, model.clip_vision)


def load(path: str, name: str, dtype: str, device):
    from syncdreamer_core.weights.checkpoint import check_device, load_checkpoint
    from syncdreamer_core.weights.encoders import CheckpointEncoders, build_clip_vision, build_vae

    from .host import SyncDreamerModel
    from .host import build_clip_vision as build_host_clip
    from .host import build_vae as build_host_vae

    compute_dtype, weight_dtype = resolve_dtypes(dtype, device)
    core_errors(check_device, device, compute_dtype)
    logging.info("SyncDreamer: loading %s (compute %s, weights %s)", path, compute_dtype, weight_dtype)
    loaded = core_errors(load_checkpoint, path, dtype=compute_dtype, weight_dtype=weight_dtype, device="cpu",
                         compute_device=device, with_vae=False, with_clip=False, keep_parts=True)
    parts = loaded.parts
    # Conditioning reads the checkpoint's encoders in fp32, as the reference computes them,
    # whatever precision the network and ComfyUI's copies use.
    encoders = CheckpointEncoders(build_vae(parts.vae), build_clip_vision(parts.clip_visual))
    vae = build_host_vae(parts.vae)
    clip_vision = build_host_clip(parts.clip_visual, full_precision=compute_dtype == torch.float32)
    loaded.parts = None
    return SyncDreamerModel(loaded, encoders, vae, clip_vision, name)
