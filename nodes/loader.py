"""Load SyncDreamer checkpoint: the network, plus a stock-compatible VAE and CLIP_VISION."""

from __future__ import annotations

import logging
import os

import torch
from syncdreamer_core.weights.checkpoint import load_checkpoint

from .common import CATEGORY, MODEL_FOLDER, NodeInputError
from .host import SYNCDREAMER_MODEL, SyncDreamerModel, build_clip_vision, build_vae

FP16_STORAGE = "fp16 weights, fp32 compute"
DTYPES = ["auto", "fp32", "fp16", "bf16", FP16_STORAGE]
_CACHE: dict = {}


def resolve_dtypes(choice: str) -> tuple[torch.dtype, torch.dtype]:
    """The dtype choice -> (compute dtype, weight storage dtype)."""
    import comfy.model_management as mm

    if choice == "auto":
        dtype = mm.unet_dtype(supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
        return dtype, dtype
    if choice == FP16_STORAGE:
        return torch.float32, torch.float16
    if choice not in DTYPES:
        raise NodeInputError(f"dtype must be one of {', '.join(DTYPES)}; got {choice!r}")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[choice]
    return dtype, dtype


class SyncDreamerCheckpointLoader:
    DESCRIPTION = ("Loads syncdreamer-pretrain.ckpt (or a .safetensors conversion) from models/syncdreamer. "
                   "Besides the SyncDreamer network it outputs the checkpoint's own Stable Diffusion VAE and "
                   "CLIP ViT-L/14 image encoder, usable with the stock VAE Decode / CLIP Vision nodes.")

    @classmethod
    def INPUT_TYPES(cls):
        import folder_paths

        return {"required": {
            "ckpt_name": (folder_paths.get_filename_list(MODEL_FOLDER), {
                "tooltip": "A file in ComfyUI/models/syncdreamer (.ckpt loaded weights-only, or .safetensors)."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": "Precision of the network. auto: what ComfyUI picks "
                               "for this device (fp32 on CPU). 'fp16 weights, fp32 compute' halves the "
                               "network's memory (3.9 -> 1.9 GB) and computes in fp32, as an fp16 "
                               "conversion of the checkpoint would."}),
        }}

    RETURN_TYPES = (SYNCDREAMER_MODEL, "VAE", "CLIP_VISION")
    RETURN_NAMES = ("syncdreamer_model", "vae", "clip_vision")
    OUTPUT_TOOLTIPS = ("The SyncDreamer network.", "The checkpoint's SD 1.x VAE.",
                       "The checkpoint's CLIP ViT-L/14 image encoder.")
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, ckpt_name: str, dtype: str = "auto"):
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
            compute_dtype, weight_dtype = resolve_dtypes(dtype)
            logging.info("SyncDreamer: loading %s (compute %s, weights %s)", path, compute_dtype, weight_dtype)
            loaded = load_checkpoint(path, dtype=compute_dtype, weight_dtype=weight_dtype, device="cpu",
                                     with_vae=False, with_clip=False, keep_parts=True)
            vae = build_vae(loaded.parts.vae)
            clip_vision = build_clip_vision(loaded.parts.clip_visual)
            loaded.parts = None  # the encoders now own their weights
            _CACHE[key] = (SyncDreamerModel(loaded, vae, clip_vision, ckpt_name), vae, clip_vision)
        return _CACHE[key]
