"""Writing a ``MeshAsset`` as GLB, OBJ (+ MTL + PNG), PLY, STL or 3MF, in the colour space
and units each format expects.

- GLB (written with pygltflib): positions, smooth normals, and either TEXCOORD_0 with an
  embedded PNG baseColorTexture (sRGB, as glTF defines it) or COLOR_0 as float linear
  light (glTF defines vertex colours as linear; sRGB values there look washed out).
  The material is fully rough and not metallic: the colour is albedo.
- OBJ (trimesh): ``.obj`` + ``.mtl`` + ``.png`` texture, or vertex colours appended to
  the vertex lines, sRGB.
- PLY (trimesh): vertex colours as sRGB bytes; a textured asset is sampled at its vertices.
- STL (binary) and 3MF (unit millimetre, per-vertex colour group): the welded solid at a
  print size (``printing.py``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .asset import MeshAsset
from .formats import MESH_FORMATS, PRINT_FORMATS, ExportError, require_finite

__all__ = ["ExportError", "export_asset", "read_glb"]


def export_asset(asset: MeshAsset, path: str | os.PathLike, file_format: str | None = None,
                 up_axis: str = "y", metadata: dict | None = None, print_size_mm: float = 100.0,
                 size_of: str = "height", flat_base: bool = False, printed=None) -> list[str]:
    """Write ``asset`` (SyncDreamer's z-up frame) to ``path``; returns the files written.
    ``up_axis`` "y" turns it to the convention of glTF and most viewers, "z" keeps SyncDreamer's.
    STL and 3MF are for printing: the solid at ``print_size_mm`` (its height or longest side,
    ``size_of``), standing on the build plate (z up), optionally on a flat base; ``printed``:
    what ``printing.for_print`` already made of the asset at those settings."""
    path = Path(path)
    file_format = (file_format or path.suffix.lstrip(".")).lower()
    if file_format not in MESH_FORMATS:
        raise ExportError(f"unknown mesh format {file_format!r}; choose one of {', '.join(MESH_FORMATS)}")
    if up_axis not in ("y", "z"):
        raise ExportError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    asset.check()
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_format in PRINT_FORMATS:
        from .printing import for_print, write_3mf, write_stl

        solid, colors, _ = printed or for_print(asset, print_size_mm, size_of, flat_base)
        if file_format == "stl":
            write_stl(solid, path)
        else:
            write_3mf(solid, colors if (asset.textured or asset.vertex_colors is not None) else None, path)
        return [str(path)]
    oriented = asset.to_y_up() if up_axis == "y" else asset
    require_finite(path, vertices=oriented.vertices, normals=oriented.normals, uvs=oriented.uvs,
                   colours=oriented.vertex_colors)
    if file_format == "glb":
        write_glb(oriented, path, metadata)
        return [str(path)]
    if file_format == "obj":
        return write_obj(oriented, path)
    mesh = oriented.to_trimesh()
    if oriented.textured:
        mesh.visual = mesh.visual.to_color()
    mesh.export(str(path), file_type="ply")
    return [str(path)]


def read_glb(path: str | os.PathLike, up_axis: str = "y") -> MeshAsset:
    """A GLB as Save Mesh writes it (one mesh: positions, indices, and a base-colour texture
    with UVs or linear vertex colours) back as an asset in SyncDreamer's z-up frame."""
    import pygltflib as G
    from PIL import Image

    from ..colorspace import linear_to_srgb

    if up_axis not in ("y", "z"):
        raise ExportError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    gltf = G.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    if not gltf.meshes or blob is None:
        raise ExportError(f"{path} holds no binary mesh")
    kinds = {G.FLOAT: np.float32, G.UNSIGNED_INT: np.uint32, G.UNSIGNED_SHORT: np.uint16, G.UNSIGNED_BYTE: np.uint8}
    widths = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}

    def read(index: int | None) -> np.ndarray | None:
        if index is None:
            return None
        accessor = gltf.accessors[index]
        view = gltf.bufferViews[accessor.bufferView]
        start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
        width = widths[accessor.type]
        data = np.frombuffer(blob, kinds[accessor.componentType], accessor.count * width, start)
        return data.reshape(accessor.count, width) if width > 1 else data

    primitive = gltf.meshes[0].primitives[0]
    attributes = primitive.attributes
    uvs, texture, colors = read(attributes.TEXCOORD_0), None, read(attributes.COLOR_0)
    info = gltf.materials[primitive.material].pbrMetallicRoughness.baseColorTexture if gltf.materials else None
    if uvs is not None and info is not None:
        image = gltf.images[gltf.textures[info.index].source]
        view = gltf.bufferViews[image.bufferView]
        png = blob[view.byteOffset or 0:(view.byteOffset or 0) + view.byteLength]
        texture = np.array(Image.open(io.BytesIO(png)).convert("RGB"))
    else:
        uvs = None
    if colors is not None:
        colors = linear_to_srgb(colors[:, :3].astype(np.float32))
    asset = MeshAsset(read(attributes.POSITION).astype(np.float32), read(primitive.indices).reshape(-1, 3).astype(np.int64),
                      uvs=None if uvs is None else uvs.astype(np.float32), texture=texture,
                      vertex_colors=None if texture is not None else colors)
    return asset.from_y_up() if up_axis == "y" else asset


def write_obj(asset: MeshAsset, path: Path) -> list[str]:
    from trimesh.exchange.obj import export_obj

    mesh = asset.to_trimesh()
    if not asset.textured:
        path.write_text(export_obj(mesh, include_normals=True, include_color=True))
        return [str(path)]
    text, _ = export_obj(mesh, include_normals=True, include_texture=True, return_texture=True,
                         mtl_name=f"{path.stem}.mtl")
    texture = path.with_suffix(".png")
    from PIL import Image

    Image.fromarray(asset.texture).save(texture)
    material = text.split("usemtl ", 1)[1].split()[0]
    # The colour is all in the texture: a white diffuse factor, no ambient or specular tint.
    path.with_suffix(".mtl").write_text(f"newmtl {material}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                                        f"map_Kd {texture.name}\n")
    path.write_text(text)
    return [str(path), str(path.with_suffix(".mtl")), str(texture)]


def write_glb(asset: MeshAsset, path: Path, metadata: dict | None = None) -> None:
    import pygltflib as G

    blob = bytearray()
    views, accessors = [], []

    def add(data: np.ndarray, kind: str, component: int, target: int | None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(data)
        while len(blob) % 4:
            blob.append(0)
        views.append(G.BufferView(buffer=0, byteOffset=len(blob), byteLength=data.nbytes, target=target))
        blob.extend(data.tobytes())
        count = data.shape[0] if kind != "SCALAR" else data.size
        accessor = G.Accessor(bufferView=len(views) - 1, componentType=component, count=count, type=kind)
        if bounds:
            accessor.min = data.min(0).tolist()
            accessor.max = data.max(0).tolist()
        accessors.append(accessor)
        return len(accessors) - 1

    attributes = G.Attributes(
        POSITION=add(asset.vertices.astype(np.float32), "VEC3", G.FLOAT, G.ARRAY_BUFFER, bounds=True),
        NORMAL=add(asset.normals.astype(np.float32), "VEC3", G.FLOAT, G.ARRAY_BUFFER),
    )
    material = G.Material(name="syncdreamer", doubleSided=False, pbrMetallicRoughness=G.PbrMetallicRoughness(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0))
    images, textures, samplers = [], [], []
    if asset.textured:
        from PIL import Image

        attributes.TEXCOORD_0 = add(asset.uvs.astype(np.float32), "VEC2", G.FLOAT, G.ARRAY_BUFFER)
        png = io.BytesIO()
        Image.fromarray(asset.texture).save(png, format="PNG")
        while len(blob) % 4:
            blob.append(0)
        views.append(G.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(png.getvalue())))
        blob.extend(png.getvalue())
        images.append(G.Image(bufferView=len(views) - 1, mimeType="image/png"))
        samplers.append(G.Sampler(magFilter=G.LINEAR, minFilter=G.LINEAR_MIPMAP_LINEAR, wrapS=G.CLAMP_TO_EDGE,
                                  wrapT=G.CLAMP_TO_EDGE))
        textures.append(G.Texture(source=0, sampler=0))
        material.pbrMetallicRoughness.baseColorTexture = G.TextureInfo(index=0)
    elif asset.vertex_colors is not None:
        attributes.COLOR_0 = add(asset.linear_vertex_colors().astype(np.float32), "VEC3", G.FLOAT, G.ARRAY_BUFFER)
    indices = add(asset.faces.astype(np.uint32).reshape(-1), "SCALAR", G.UNSIGNED_INT, G.ELEMENT_ARRAY_BUFFER)
    gltf = G.GLTF2(
        asset=G.Asset(version="2.0", generator="ComfyUI-SyncDreamer", extras=metadata or {}),
        scene=0, scenes=[G.Scene(nodes=[0])], nodes=[G.Node(mesh=0, name="syncdreamer")],
        meshes=[G.Mesh(name="syncdreamer", primitives=[G.Primitive(attributes=attributes, indices=indices,
                                                                    material=0, mode=G.TRIANGLES)])],
        materials=[material], textures=textures, images=images, samplers=samplers,
        accessors=accessors, bufferViews=views, buffers=[G.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(bytes(blob))
    gltf.save_binary(str(path))
