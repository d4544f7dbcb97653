"""ComfyUI-SyncDreamer: single image -> 16 multiview-consistent views -> textured mesh."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)  # makes `syncdreamer_core` importable; appended so nothing is shadowed


def _register_model_folder() -> None:
    try:
        import folder_paths
    except ImportError:  # imported outside ComfyUI (tests, tools)
        return
    folder = os.path.join(folder_paths.models_dir, "syncdreamer")
    os.makedirs(folder, exist_ok=True)
    folder_paths.add_model_folder_path("syncdreamer", folder)
    known = folder_paths.folder_names_and_paths.get("syncdreamer")
    if known is not None:
        folder_paths.folder_names_and_paths["syncdreamer"] = (known[0], {".ckpt", ".safetensors", ".pt", ".pth"})


_register_model_folder()

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
