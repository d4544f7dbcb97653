"""From views to the 3D asset: reconstruct, save, turn around, and rank candidates."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from comfy_api.latest import io

from syncdreamer_core.constants import VIEW_COUNT

from .common import (
    CATEGORY,
    NodeInputError,
    core_errors,
    finite_number,
    image_batch,
    mask_batch,
    progress,
    schema,
    to_numpy,
    whole_number,
)
from .host import make_mesh_value

TEXTURE_CHOICES = ["none", "1024", "2048", "512"]
DEFAULT_MAX_FACES = 30000


# ---------------------------------------------------------------- MESH <-> asset

def mesh_value(asset):
    """A core ``MeshAsset`` (z up) as the host's MESH: y up like every ComfyUI 3D node,
    vertex colours linear (glTF's COLOR_0), texture sRGB floats."""
    oriented = asset.to_y_up()

    def batch(array, dtype=torch.float32):
        return None if array is None else torch.from_numpy(np.ascontiguousarray(array)).to(dtype)[None]

    texture = None if oriented.texture is None else oriented.texture.astype(np.float32) / 255.0
    return make_mesh_value(batch(oriented.vertices), batch(oriented.faces, torch.int64), uvs=batch(oriented.uvs),
                           vertex_colors=batch(oriented.linear_vertex_colors()), texture=batch(texture),
                           normals=batch(oriented.normals))


def assets_of(mesh) -> list:
    """Every item of a MESH value (ours or another node's) as a core asset."""
    from syncdreamer_core.recon.asset import from_arrays

    vertices, faces = getattr(mesh, "vertices", None), getattr(mesh, "faces", None)
    if not torch.is_tensor(vertices) or not torch.is_tensor(faces) or vertices.ndim != 3 or faces.ndim != 3:
        raise NodeInputError("mesh must be a MESH with batched vertices [B, N, 3] and faces [B, M, 3]")
    counts = getattr(mesh, "vertex_counts", None), getattr(mesh, "face_counts", None)
    uvs, colors, texture = (getattr(mesh, name, None) for name in ("uvs", "vertex_colors", "texture"))
    out = []
    for i in range(vertices.shape[0]):
        v_count = int(counts[0][i]) if counts[0] is not None else vertices.shape[1]
        f_count = int(counts[1][i]) if counts[1] is not None else faces.shape[1]
        out.append(core_errors(
            from_arrays, to_numpy(vertices[i, :v_count]), faces[i, :f_count].cpu().numpy(),
            None if uvs is None else to_numpy(uvs[i, :v_count]),
            None if colors is None else to_numpy(colors[i, :v_count]),
            None if texture is None else to_numpy(texture[min(i, texture.shape[0] - 1)])))
    return out


# ---------------------------------------------------------------- nodes

class SyncDreamerReconstruct(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerReconstruct",
            display_name="SyncDreamer Reconstruct Mesh",
            category=CATEGORY,
            search_aliases=["views to mesh", "image to 3d", "multiview reconstruction", "texture bake"],
            description=("Builds the 3D mesh from the 16 views (SyncDreamer renders on white, so no matting model is "
                         "needed) and colours it with a texture baked from the views (or vertex colours). fast: "
                         "silhouette carving, seconds. quality: refines it by fitting a signed distance field to the "
                         "images (NeuS-style), minutes on a CPU. The MESH is ComfyUI's own type, y up: stock Save "
                         "3D Model (SaveGLB) writes it with its texture."),
            inputs=[
                io.Image.Input("views", tooltip="The 16 decoded views (one set; use 'Pick Candidate' or 'Rank "
                               "Candidates' for batches)."),
                io.Combo.Input("method", options=["fast", "quality"], default="fast", tooltip=(
                    "fast: carve the silhouettes and mesh them (seconds). quality: then fit a signed distance "
                    "field to the colours and silhouettes by differentiable rendering (minutes on a CPU), "
                    "closer to the object.")),
                io.Int.Input("resolution", default=128, min=32, max=320, step=8, tooltip=(
                    "Voxels per side of the carving grid (fast) and of the final mesh grid (quality).")),
                io.Int.Input("quality_steps", default=800, min=1, max=20000, tooltip=(
                    "Optimisation iterations of the quality method (800: about two minutes on a CPU).")),
                io.Int.Input("quality_resolution", default=96, min=32, max=256, step=8,
                             tooltip="Voxels per side of the signed distance field the quality method optimises."),
                io.Int.Input("vote_tolerance", default=2, min=0, max=4, tooltip=(
                    "How many views may disagree with the others (bad masks) and be left out of the carving.")),
                io.Mask.Input("masks", optional=True, tooltip=(
                    "Object masks (1 = object) of the 16 views, if you have better ones than the white-background "
                    "detection.")),
                io.Combo.Input("texture", options=TEXTURE_CHOICES, default="1024", optional=True, tooltip=(
                    "Colour as a base-colour texture of this size baked from the views (UV-unwrapped with "
                    "xatlas), or 'none' for vertex colours.")),
                io.Int.Input("max_faces", default=DEFAULT_MAX_FACES, min=0, max=2_000_000, step=1000, optional=True,
                             tooltip="Decimate the mesh to at most this many triangles before colouring (0 keeps "
                             "all of them, ~70k at resolution 128)."),
                io.Boolean.Input("cleanup", default=False, optional=True, tooltip=(
                    "Keep only the largest connected piece and close holes.")),
            ],
            outputs=[io.Mesh.Output("MESH", display_name="MESH", tooltip=(
                "ComfyUI's MESH (y up): vertices, faces, UVs + texture (sRGB) or vertex colours (linear)."))],
        )

    @classmethod
    def execute(cls, views, method="fast", resolution=128, quality_steps=800, quality_resolution=96,
                vote_tolerance=2, masks=None, texture="1024", max_faces=DEFAULT_MAX_FACES, cleanup=False):
        import comfy.model_management as mm

        from syncdreamer_core.recon import make_asset, reconstruct_fast, reconstruct_quality
        from syncdreamer_core.recon.mesh_tools import check_face_budget

        image_batch(views, "views")
        if views.shape[0] != VIEW_COUNT:
            raise NodeInputError(f"views must be exactly {VIEW_COUNT} images (one set), got {views.shape[0]}; "
                                 "use 'SyncDreamer Pick Candidate' or 'SyncDreamer Rank Candidates' to take one set "
                                 "out of a batch")
        if texture not in TEXTURE_CHOICES:
            raise NodeInputError(f"texture must be one of {', '.join(TEXTURE_CHOICES)}, got {texture!r}")
        resolution = whole_number(resolution, "resolution", 32, 320)
        max_faces = core_errors(check_face_budget, whole_number(max_faces, "max_faces", 0, 2_000_000))
        vote_tolerance = whole_number(vote_tolerance, "vote_tolerance", 0, 4)
        mask_array = None
        if masks is not None:
            mask_array = to_numpy(mask_batch(masks, "masks", views.shape[1], views.shape[2]))
            if mask_array.shape[0] != VIEW_COUNT:
                raise NodeInputError(f"masks must be {VIEW_COUNT} masks, one per view, got {mask_array.shape[0]}")
        array = to_numpy(views)
        if method == "fast":
            result = core_errors(reconstruct_fast, array, mask_array, resolution=resolution,
                                 vote_tolerance=vote_tolerance, callback=progress(1), return_details=True)
        elif method == "quality":
            quality_steps = whole_number(quality_steps, "quality_steps", 1, 20000)
            quality_resolution = whole_number(quality_resolution, "quality_resolution", 32, 256)
            result = core_errors(reconstruct_quality, array, mask_array, steps=quality_steps,
                                 resolution=quality_resolution, mesh_resolution=max(resolution, quality_resolution),
                                 vote_tolerance=vote_tolerance, device=mm.get_torch_device(),
                                 callback=progress(quality_steps), return_details=True)
        else:
            raise NodeInputError(f"method must be 'fast' or 'quality', got {method!r}")
        size = None if texture == "none" else int(texture)
        asset = core_errors(make_asset, result, size, max_faces, bool(cleanup), progress(1))
        return io.NodeOutput(mesh_value(asset))


def file_3d_output() -> list:
    """The host's 3D-file output where it has one (ComfyUI 0.27+: Preview 3D and the newer
    3D nodes take a File3D)."""
    if not hasattr(io, "File3DAny"):
        return []
    return [io.File3DAny.Output("model_3d", display_name="model_3d",
                                tooltip="The first saved file as a 3D file value, for Preview 3D and other 3D nodes.")]


def workflow_metadata(hidden) -> dict:
    """What ComfyUI embeds in the files it saves: the prompt and the workflow (JSON text),
    for the GLB's asset.extras, so the file reopens the graph that made it."""
    import json

    metadata = {"generator": "ComfyUI-SyncDreamer"}
    prompt, extra = getattr(hidden, "prompt", None), getattr(hidden, "extra_pnginfo", None)
    if prompt is not None:
        metadata["prompt"] = json.dumps(prompt)
    for key, value in (extra or {}).items():
        metadata[key] = json.dumps(value)
    return metadata


class SyncDreamerSaveMesh(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from syncdreamer_core.recon.formats import MESH_FORMATS, SIZE_OF

        return schema(
            node_id="SyncDreamerSaveMesh",
            display_name="SyncDreamer Save Mesh",
            category=CATEGORY,
            search_aliases=["export mesh", "save glb", "save obj", "save ply", "save stl", "3mf", "3d print"],
            description=("Saves a mesh as GLB (texture or linear vertex colours, as glTF defines them), OBJ (+ MTL "
                         "+ PNG), PLY, or for 3D printing as STL or 3MF (a closed solid in millimetres at the size "
                         "you set, optionally on a flat base); its output feeds Preview3D. Shows whether the mesh is "
                         "closed, its size in mm and its volume. Works with any MESH."),
            is_output_node=True,
            inputs=[
                io.Mesh.Input("mesh", tooltip="A MESH, e.g. from 'SyncDreamer Reconstruct Mesh'."),
                io.String.Input("filename_prefix", default="mesh/syncdreamer", tooltip=(
                    "Where in the output folder: 'folder/name' gives output/folder/name_00001_.glb.")),
                io.Combo.Input("format", options=list(MESH_FORMATS), default="glb", tooltip=(
                    "glb: one file, for the web, Blender, game engines and ComfyUI's viewer. obj: .obj + .mtl + "
                    "texture .png. ply: vertex colours, for point-cloud and mesh tools. stl: for any slicer. 3mf: for "
                    "slicers, with units and colour.")),
                io.Combo.Input("up_axis", options=["y", "z"], default="y", tooltip=(
                    "y: the convention of glTF and most viewers (the MESH is already y up). z: SyncDreamer's own "
                    "object frame, as the reference saves meshes. (STL and 3MF always stand on the build plate.)")),
                io.Float.Input("print_size_mm", default=100.0, min=1.0, max=2000.0, step=1.0, optional=True,
                               tooltip="STL and 3MF: the printed object's height (or longest side) in millimetres."),
                io.Combo.Input("size_of", options=list(SIZE_OF), default="height", optional=True,
                               tooltip="What print_size_mm measures."),
                io.Boolean.Input("flat_base", default=False, optional=True, tooltip=(
                    "STL and 3MF: cut the object a little above its lowest point and close the cut, so it stands "
                    "flat on the build plate.")),
            ],
            outputs=[io.String.Output("model_file", display_name="model_file", tooltip=(
                                          "Path relative to the output folder, for Preview3D. For STL and 3MF a GLB "
                                          "of the same mesh saved beside it (_preview.glb), which viewers show "
                                          "upright and in colour.")),
                     *file_3d_output()],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def execute(cls, mesh, filename_prefix, format="glb", up_axis="y", print_size_mm=100.0, size_of="height",
                flat_base=False):
        import folder_paths

        from syncdreamer_core.outputs import check_name
        from syncdreamer_core.recon.export import export_asset
        from syncdreamer_core.recon.formats import MESH_FORMATS, PRINT_FORMATS
        from syncdreamer_core.recon.printing import PrintError, check_print_size, for_print

        if format not in MESH_FORMATS:
            raise NodeInputError(f"format must be one of {', '.join(MESH_FORMATS)}, got {format!r}")
        if up_axis not in ("y", "z"):
            raise NodeInputError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
        if not isinstance(filename_prefix, str) or not filename_prefix.strip():
            raise NodeInputError("filename_prefix must be a name like 'mesh/syncdreamer'")
        core_errors(check_print_size, print_size_mm, size_of)
        core_errors(check_name, os.path.basename(os.path.normpath(filename_prefix)) + f"_00001_.{format}",
                    "file name of filename_prefix")
        assets = assets_of(mesh)
        output_dir = folder_paths.get_output_directory()
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output_dir)
        results, first = [], None
        metadata = workflow_metadata(getattr(cls, "hidden", None))
        reports = []
        for asset in assets:
            name = f"{filename}_{counter:05}_.{format}"
            if format in PRINT_FORMATS:
                printed = core_errors(for_print, asset, print_size_mm, size_of, bool(flat_base), name)
                reports.append(f"{name}: " + printed[2].describe())
            else:  # the report says what a slicer would see; a mesh that cannot be printed is still saved
                try:
                    printed = for_print(asset, print_size_mm, size_of, bool(flat_base), "it")
                    reports.append(f"{name}: {printed[2].describe()} at {print_size_mm:g} mm")
                except PrintError as error:
                    printed = None
                    reports.append(f"{name}: saved; not printable as it is: {error}")
            written = [(name, format, (print_size_mm, size_of, bool(flat_base), printed))]
            if format in PRINT_FORMATS:
                # a viewer shows a print file on its side, unlit or not at all: Preview 3D gets a GLB of it
                written.append((f"{filename}_{counter:05}_preview.glb", "glb", ()))
            for file_name, file_format, printing in written:
                try:
                    core_errors(export_asset, asset, os.path.join(folder, file_name), file_format, up_axis, metadata,
                                *printing)
                except OSError as error:
                    raise NodeInputError(f"cannot write {os.path.join(subfolder, file_name)} in the output folder: "
                                         f"{error.strerror or error}") from None
                results.append({"filename": file_name, "subfolder": subfolder, "type": "output"})
            shown = os.path.join(subfolder, written[-1][0])
            reports.append(f"saved {os.path.join('output', subfolder, name)}" + (
                f"; Preview 3D shows {os.path.join('output', shown)}" if len(written) > 1 else ""))
            first = first or shown
            counter += 1
        outputs = [first]
        if file_3d_output():
            from comfy_api.latest import Types

            outputs.append(Types.File3D(os.path.join(output_dir, first)))
        for line in reports:
            logging.info("SyncDreamer Save Mesh: %s", line)
        return io.NodeOutput(*outputs, ui={"3d": results, "text": reports})


class SyncDreamerTurntable(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerTurntable",
            display_name="SyncDreamer Turntable",
            category=CATEGORY,
            search_aliases=["turntable", "orbit render", "360 video", "render mesh"],
            description=("Renders a mesh (texture or vertex colours) from a circle of cameras around it, as an IMAGE "
                         "batch: feed it to Save Animated WEBP or a video node for a turntable, or to Preview Image."),
            inputs=[
                io.Mesh.Input("mesh", tooltip="A MESH, e.g. from 'SyncDreamer Reconstruct Mesh'."),
                io.Int.Input("frames", default=24, min=1, max=360, tooltip="Frames of one full turn."),
                io.Float.Input("elevation", default=20.0, min=-89.0, max=89.0, step=1.0,
                               tooltip="Camera elevation in degrees (0: level with the object)."),
                io.Int.Input("resolution", default=384, min=32, max=1024, step=32,
                             tooltip="Frame size in pixels (square)."),
                io.Float.Input("light", default=0.35, min=0.0, max=1.0, step=0.05, tooltip=(
                    "0: flat colour (the albedo as baked); higher: more shading from a light at the camera.")),
            ],
            outputs=[io.Image.Output("IMAGE", display_name="IMAGE", tooltip="frames x resolution x resolution, on white.")],
        )

    @classmethod
    def execute(cls, mesh, frames=24, elevation=20.0, resolution=384, light=0.35):
        from syncdreamer_core.recon.turntable import turntable

        frames = whole_number(frames, "frames", 1, 360)
        resolution = whole_number(resolution, "resolution", 32, 1024)
        elevation = finite_number(elevation, "elevation", -89.0, 89.0)
        light = finite_number(light, "light", 0.0, 1.0)
        assets = assets_of(mesh)
        report = progress(frames * len(assets))
        images = torch.empty(len(assets) * frames, resolution, resolution, 3)  # the frames render into it
        for i, asset in enumerate(assets):
            core_errors(turntable, asset, frames, elevation, resolution, light,
                        callback=lambda done, total, i=i: report(i * frames + done, frames * len(assets)),
                        out=images[i * frames:(i + 1) * frames].numpy())
        return io.NodeOutput(images)


class SyncDreamerRankCandidates(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerRankCandidates",
            display_name="SyncDreamer Rank Candidates",
            category=CATEGORY,
            search_aliases=["best candidate", "pick best views", "consistency score"],
            description=("Scores every candidate set of 16 views for multiview consistency (does the shape carved "
                         "from all silhouettes fill each view's silhouette; do the views agree on the colour of "
                         "each surface point) and outputs the best set, all sets best first, and the scores."),
            inputs=[io.Image.Input("views", tooltip="Several sets of 16 views (a sampler with batch_size > 1, decoded).")],
            outputs=[
                io.Image.Output("best_views", display_name="best_views", tooltip="The 16 views of the best candidate."),
                io.Image.Output("ranked_views", display_name="ranked_views",
                                tooltip="All candidates' views, best candidate first."),
                io.Int.Output("best_index", display_name="best_index",
                              tooltip="Index of the best candidate in the input batch (its seed is seed + index)."),
                io.String.Output("scores", display_name="scores", tooltip="Every candidate's score, best first."),
            ],
        )

    @classmethod
    def execute(cls, views):
        from syncdreamer_core.recon.ranking import rank_candidates

        image_batch(views, "views")
        if views.shape[0] % VIEW_COUNT:
            raise NodeInputError(f"views must hold sets of {VIEW_COUNT} images, got {views.shape[0]}")
        count = views.shape[0] // VIEW_COUNT
        ranking = core_errors(rank_candidates, to_numpy(views), VIEW_COUNT, progress(count))
        order = torch.cat([torch.arange(s.index * VIEW_COUNT, (s.index + 1) * VIEW_COUNT) for s in ranking])
        best = ranking[0].index
        text = "\n".join(s.describe() for s in ranking)
        return io.NodeOutput(views[best * VIEW_COUNT:(best + 1) * VIEW_COUNT], views[order], best, text,
                             ui={"text": [text]})
