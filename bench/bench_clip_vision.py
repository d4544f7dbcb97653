"""How far ComfyUI's CLIP_VISION is from the reference's CLIP embedding, as the loader builds
it (fp32 when the user picks fp32) and as ComfyUI builds it by default (fp16 weights).
Random ViT-L/14 weights in the official checkpoint's layout; run with the host's Python:

    cd $COMFYUI_ROOT && python /path/to/pack/bench/bench_clip_vision.py

Prints one JSON line of relative L2 errors of the image embedding against the core's
(transformers) encoder, which computes the reference's numbers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    sys.path.insert(0, os.getcwd())
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import importlib.util

    import comfy.clip_vision

    # The pack as ComfyUI loads it (its `nodes` package would clash with ComfyUI's nodes.py).
    spec = importlib.util.spec_from_file_location("pack", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["pack"] = pack
    spec.loader.exec_module(pack)
    build_clip_vision = importlib.import_module("pack.nodes.host").build_clip_vision
    from syncdreamer_core.weights.encoders import build_clip_vision as build_core_clip
    from syncdreamer_core.weights.encoders import clip_image_embedding, clip_pixels, openai_clip_visual_to_transformers
    from syncdreamer_core.weights.official_layout import CLIPLayout, clip_shapes

    generator = torch.Generator().manual_seed(0)
    visual = {}
    for key, shape in clip_shapes(CLIPLayout()).items():
        if not key.startswith("visual."):
            continue
        name = key[len("visual."):]
        if len(shape) <= 1:
            visual[name] = torch.ones(shape) if "ln_" in name and name.endswith("weight") else torch.zeros(shape)
        else:
            fan_in = int(torch.tensor(shape[1:]).prod())
            visual[name] = torch.randn(shape, generator=generator) / fan_in**0.5
    visual["class_embedding"] = torch.randn(visual["class_embedding"].shape, generator=generator) * 0.1
    image = torch.rand(1, 3, 256, 256, generator=generator) * 2 - 1
    reference = clip_image_embedding(build_core_clip(visual), image)[:, 0]

    def host_embedding(clip) -> torch.Tensor:
        with torch.inference_mode():
            return clip.model(pixel_values=clip_pixels(image).float())[2].float()

    def error(embedding) -> float:
        return float((embedding - reference).norm() / reference.norm())

    default = comfy.clip_vision.load_clipvision_from_sd(openai_clip_visual_to_transformers(visual))
    loader_fp32 = build_clip_vision(visual, full_precision=True)
    print(json.dumps({
        "comfyui": __import__("comfyui_version").__version__,
        "comfyui_default_dtype": str(default.dtype),
        "rel_error_comfyui_default": round(error(host_embedding(default)), 7),
        "rel_error_loader_fp32": round(error(host_embedding(loader_fp32)), 9),
        "loader_fp32_dtype": str(next(loader_fp32.model.parameters()).dtype),
    }))


if __name__ == "__main__":
    main()
