"""Mesh reconstruction from the 16 views, and saving meshes."""

from __future__ import annotations

import os

import numpy as np
import torch

from syncdreamer_core.constants import VIEW_COUNT
from syncdreamer_core.recon import ReconstructionInputError, reconstruct_fast, reconstruct_quality
from syncdreamer_core.recon.export import MESH_FORMATS, export_mesh

from .common import CATEGORY, NodeInputError, image_batch


class SyncDreamerMesh:
    """The MESH value: batched ``vertices`` [1, V, 3] and ``faces`` [1, F, 3] like ComfyUI's own
    MESH (so SaveGLB/Preview nodes accept it), plus ``vertex_colors`` [1, V, 3] and the mesh."""

    def __init__(self, mesh):
        self.mesh = mesh
        self.vertices = torch.from_numpy(np.asarray(mesh.vertices, np.float32))[None]
        self.faces = torch.from_numpy(np.asarray(mesh.faces, np.int64))[None]
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0 if mesh.visual.kind == "vertex" else None
        self.vertex_colors = None if colors is None else torch.from_numpy(colors.astype(np.float32))[None]


class SyncDreamerReconstruct:
    DESCRIPTION = ("Builds a coloured mesh from the 16 views (SyncDreamer renders on white, so no matting model is "
                   "needed). fast: silhouette carving, seconds. quality: refines it by fitting a signed distance "
                   "field to the images (NeuS-style), minutes on a CPU.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "views": ("IMAGE", {"tooltip": "The 16 decoded views (one set; use 'Pick Candidate' for batches)."}),
                "method": (["fast", "quality"], {"default": "fast"}),
                "resolution": ("INT", {"default": 128, "min": 32, "max": 320, "step": 8,
                                       "tooltip": "Voxels per side of the carving grid (fast) / mesh grid."}),
                "quality_steps": ("INT", {"default": 800, "min": 1, "max": 20000,
                                          "tooltip": "Optimisation iterations of the quality method."}),
                "quality_resolution": ("INT", {"default": 96, "min": 32, "max": 256, "step": 8,
                                               "tooltip": "SDF grid of the quality method."}),
                "vote_tolerance": ("INT", {"default": 2, "min": 0, "max": 4,
                                           "tooltip": "Views whose silhouette may disagree with the rest (bad masks)."}),
            },
            "optional": {"masks": ("MASK", {"tooltip": "Object masks (1 = object) of the 16 views, if you have "
                                            "better ones than the white-background detection."})},
        }

    RETURN_TYPES = ("MESH",)
    FUNCTION = "reconstruct"
    CATEGORY = CATEGORY

    def reconstruct(self, views, method="fast", resolution=128, quality_steps=800, quality_resolution=96,
                    vote_tolerance=2, masks=None):
        import comfy.model_management as mm
        import comfy.utils

        image_batch(views, "views")
        if views.shape[0] != VIEW_COUNT:
            raise NodeInputError(f"views must be exactly {VIEW_COUNT} images (one set), got {views.shape[0]}; "
                                 "use 'SyncDreamer Pick Candidate' to take one set out of a batch")
        array = views.cpu().numpy()
        mask_array = masks.cpu().numpy() if masks is not None else None
        try:
            if method == "fast":
                mesh = reconstruct_fast(array, mask_array, resolution=resolution, vote_tolerance=vote_tolerance)
            else:
                bar = comfy.utils.ProgressBar(quality_steps)

                def progress(i, total):
                    bar.update_absolute(i + 1, total)
                    mm.throw_exception_if_processing_interrupted()

                mesh = reconstruct_quality(array, mask_array, steps=quality_steps, resolution=quality_resolution,
                                           mesh_resolution=max(resolution, quality_resolution),
                                           vote_tolerance=vote_tolerance, device=mm.get_torch_device(),
                                           callback=progress)
        except ReconstructionInputError as error:
            raise NodeInputError(str(error)) from None
        return (SyncDreamerMesh(mesh),)


class SyncDreamerSaveMesh:
    DESCRIPTION = "Saves a mesh with its vertex colours as GLB, OBJ or PLY in the output folder and previews it."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mesh": ("MESH",),
            "filename_prefix": ("STRING", {"default": "mesh/syncdreamer"}),
            "format": (list(MESH_FORMATS), {"default": "glb"}),
            "up_axis": (["y", "z"], {"default": "y", "tooltip": "y: the convention of glTF and most viewers. "
                                     "z: SyncDreamer's own object frame (as the reference saves meshes)."}),
        }}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("model_file",)
    OUTPUT_TOOLTIPS = ("Path relative to the output folder, for Preview3D.",)
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = CATEGORY

    def save(self, mesh, filename_prefix, format="glb", up_axis="y"):
        import folder_paths

        meshes = _as_trimeshes(mesh)
        output_dir = folder_paths.get_output_directory()
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output_dir)
        results, first = [], None
        for item in meshes:
            name = f"{filename}_{counter:05}_.{format}"
            export_mesh(item, os.path.join(folder, name), format, up_axis)
            results.append({"filename": name, "subfolder": subfolder, "type": "output"})
            first = first or os.path.join(subfolder, name)
            counter += 1
        return {"ui": {"3d": results}, "result": (first,)}


def _as_trimeshes(mesh) -> list:
    import trimesh

    if hasattr(mesh, "mesh"):
        return [mesh.mesh]
    out = []
    colors = getattr(mesh, "vertex_colors", None)
    for i in range(mesh.vertices.shape[0]):
        item = trimesh.Trimesh(mesh.vertices[i].cpu().numpy(), mesh.faces[i].cpu().numpy(), process=False)
        if colors is not None:
            rgba = np.concatenate([colors[i].cpu().numpy(), np.ones((len(item.vertices), 1))], 1)
            item.visual = trimesh.visual.ColorVisuals(item, vertex_colors=(rgba * 255).astype(np.uint8))
        out.append(item)
    return out
