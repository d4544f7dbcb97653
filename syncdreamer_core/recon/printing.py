"""The asset as a solid: for a slicer (STL, 3MF at a size in millimetres) and for anything
that needs a closed surface (a boolean, a physics collider).

The reconstruction is a closed field's surface and decimation keeps it closed
(``mesh_tools.decimate``); a textured asset only duplicates vertices along its UV seams.
Here the geometry is welded back by position into a closed, outward-wound 2-manifold,
scaled so its height (or its longest side) has the size asked for, optionally given a
flat base (cut a little above its lowest point and closed, by manifold3d, whose results
are manifold by construction), and measured.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh

from .asset import MeshAsset
from .formats import SIZE_OF, require_finite
from .mesh_tools import is_solid, make_solid

#: Depth of the flat base's cut: this share of the height, at least BASE_MIN_MM.
BASE_SHARE = 0.02
BASE_MIN_MM = 0.4
#: A side longer than this fits no plausible printer (the report says so).
LARGEST_PRINTER_MM = 1000.0
#: A side shorter than this share of the longest is no extent: the mesh is flat along it.
FLAT_SHARE = 1e-6


class PrintError(ValueError):
    """A print setting that cannot be met."""


@dataclass(frozen=True)
class PrintReport:
    """What a slicer will see."""

    watertight: bool
    volume_ml: float
    size_mm: tuple[float, float, float]  # x, y (up), z extents
    faces: int
    bodies: int
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        x, y, z = self.size_mm
        closed = "closed 2-manifold" if self.watertight else "NOT closed"
        return (f"{closed}, {self.bodies} bod{'y' if self.bodies == 1 else 'ies'}, {self.faces} faces, "
                f"{x:.1f} x {y:.1f} x {z:.1f} mm (w x h x d), {self.volume_ml:.1f} ml"
                + "".join(f"; WARNING: {w}" for w in self.warnings))

    def as_dict(self) -> dict:
        return asdict(self)


def check_print_size(size_mm, size_of: str = "height") -> float:
    if isinstance(size_mm, bool) or not isinstance(size_mm, (int, float)) or not 1 <= size_mm <= 2000:
        raise PrintError(f"the print size must be 1..2000 mm, got {size_mm!r}")
    if size_of not in SIZE_OF:
        raise PrintError(f"the size is of one of {', '.join(SIZE_OF)}, got {size_of!r}")
    return float(size_mm)


def solid_geometry(asset: MeshAsset) -> trimesh.Trimesh:
    """The asset's surface, y up, welded by position (UV seams closed) and made solid."""
    oriented = asset.to_y_up()
    require_finite("the mesh", vertices=oriented.vertices)  # welding would hide a NaN, not mend it
    return make_solid(trimesh.Trimesh(oriented.vertices.astype(np.float64), oriented.faces, process=False))


def for_print(asset: MeshAsset, size_mm: float, size_of: str = "height", flat_base: bool = False,
              name: str = "the mesh") -> tuple[trimesh.Trimesh, np.ndarray, PrintReport]:
    """The solid in millimetres (y up, standing on y = 0, centred over the origin), the sRGB
    colour (0..1) of each of its vertices (for 3MF), and its report. A mesh with no extent
    along the sized axis (``name`` in the message) is refused: no scale makes it that size."""
    size_mm = check_print_size(size_mm, size_of)
    mesh = solid_geometry(asset)

    def measured(m: trimesh.Trimesh) -> float:
        return m.extents[1] if size_of == "height" else m.extents.max()

    check_extent(mesh, size_mm, size_of, name)
    scale = size_mm / measured(mesh)
    mesh.apply_scale(scale)
    if flat_base:
        mesh = _cut_base(mesh)
        rescale = size_mm / measured(mesh)  # the size asked for is the size of what is printed
        mesh.apply_scale(rescale)
        scale *= rescale
    shift = np.array([-mesh.centroid[0], -mesh.bounds[0, 1], -mesh.centroid[2]])
    mesh.apply_translation(shift)
    return mesh, _colors_at(asset, mesh, scale, shift), report(mesh)


def check_extent(mesh: trimesh.Trimesh, size_mm: float, size_of: str, name: str) -> None:
    x, y, z = (float(v) for v in mesh.extents)
    extent = y if size_of == "height" else max(x, y, z)
    if not np.isfinite([x, y, z]).all() or extent <= FLAT_SHARE * max(x, y, z, 0.0) or extent <= 0:
        raise PrintError(f"{name} has no {'height' if size_of == 'height' else 'extent'} to scale: it measures "
                         f"{x:.6g} x {y:.6g} x {z:.6g} (w x h x d, y up), so no scale makes it {size_mm:g} mm "
                         f"{'tall' if size_of == 'height' else 'long'}. A flat mesh cannot be printed as it is: "
                         "give it thickness first" + (", or size it by its longest side" if size_of == "height"
                                                      and max(x, z) > 0 else ""))


def report(mesh: trimesh.Trimesh) -> PrintReport:
    solid = is_solid(mesh)
    sides = tuple(round(float(v), 2) for v in mesh.extents)
    warnings = tuple(f"{side:.0f} mm {axis}: larger than any printer ({LARGEST_PRINTER_MM:.0f} mm); lower print_size_mm "
                     "or size it by its longest side" for side, axis in zip(sides, ("wide", "tall", "deep"), strict=True)
                     if side > LARGEST_PRINTER_MM)
    return PrintReport(watertight=solid, volume_ml=round(float(abs(mesh.volume)) / 1000.0, 3) if solid else 0.0,
                       size_mm=sides, faces=len(mesh.faces), bodies=len(mesh.split(only_watertight=False)),
                       warnings=warnings)


def _cut_base(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Cut a little above the lowest point and close the cut: a flat face to stand on."""
    import manifold3d

    height = mesh.extents[1]
    plane = mesh.bounds[0, 1] + max(BASE_SHARE * height, BASE_MIN_MM)
    solid = manifold3d.Manifold(manifold3d.Mesh(vert_properties=np.asarray(mesh.vertices, np.float32),
                                                tri_verts=np.asarray(mesh.faces, np.uint32)))
    if solid.status() != manifold3d.Error.NoError:
        raise PrintError(f"the mesh is not a closed manifold ({solid.status()}); a flat base needs one")
    cut = solid.trim_by_plane((0.0, 1.0, 0.0), float(plane)).to_mesh()
    return make_solid(trimesh.Trimesh(np.asarray(cut.vert_properties[:, :3], np.float64),
                                      np.asarray(cut.tri_verts, np.int64), process=False))


def _colors_at(asset: MeshAsset, mesh: trimesh.Trimesh, scale: float, shift: np.ndarray) -> np.ndarray:
    """The sRGB colour (0..1) at each vertex of the print mesh: the texture or vertex colour of
    the nearest asset vertex, moved as the print mesh was (grey where the asset has none)."""
    from scipy.spatial import cKDTree

    if not asset.textured and asset.vertex_colors is None:
        return np.full((len(mesh.vertices), 3), 0.7, np.float32)
    oriented = asset.to_y_up()
    if asset.textured:
        height, width = asset.texture.shape[:2]
        u = np.clip((oriented.uvs[:, 0] * width).astype(int), 0, width - 1)
        v = np.clip((oriented.uvs[:, 1] * height).astype(int), 0, height - 1)
        colors = asset.texture[v, u].astype(np.float32) / 255.0
    else:
        colors = np.asarray(oriented.vertex_colors, np.float32)
    _, nearest = cKDTree(oriented.vertices.astype(np.float64) * scale + shift).query(np.asarray(mesh.vertices))
    return colors[nearest]


# ---------------------------------------------------------------- files

def write_stl(mesh: trimesh.Trimesh, path: Path) -> None:
    """Binary STL in millimetres, z up (standing on the build plate)."""
    require_finite(path, vertices=mesh.vertices)
    upright = trimesh.Trimesh(_z_up(mesh.vertices), mesh.faces, process=False)
    Path(path).write_bytes(trimesh.exchange.stl.export_stl(upright))


_CONTENT_TYPES = ('<?xml version="1.0" encoding="UTF-8"?>\n<Types xmlns="http://schemas.openxmlformats.org/package/'
                  '2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
                  'relationships+xml"/><Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing'
                  '-3dmodel+xml"/></Types>')
_RELS = ('<?xml version="1.0" encoding="UTF-8"?>\n<Relationships xmlns="http://schemas.openxmlformats.org/package/'
         '2006/relationships"><Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/'
         '3dmanufacturing/2013/01/3dmodel"/></Relationships>')


def write_3mf(mesh: trimesh.Trimesh, colors: np.ndarray | None, path: Path, name: str = "SyncDreamer object") -> None:
    """3MF (core spec, unit millimetre) with per-vertex colours as a colour group of the
    Materials and Properties extension, which colour-aware slicers read."""
    require_finite(path, vertices=mesh.vertices, colours=colors)
    vertices = "".join(f'<vertex x="{x:.4f}" y="{y:.4f}" z="{z:.4f}"/>' for x, y, z in _z_up(mesh.vertices))
    has_color = colors is not None and len(colors) == len(mesh.vertices)
    if has_color:
        triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}" pid="2" p1="{a}" p2="{b}" p3="{c}"/>'
                            for a, b, c in mesh.faces)
        hexes = (np.clip(np.round(colors * 255), 0, 255).astype(np.uint8))
        group = '<m:colorgroup id="2">' + "".join(f'<m:color color="#{r:02X}{g:02X}{b:02X}"/>' for r, g, b in hexes) \
            + "</m:colorgroup>"
    else:
        triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in mesh.faces)
        group = ""
    model = ('<?xml version="1.0" encoding="UTF-8"?>\n<model unit="millimeter" xml:lang="en-US" '
             'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" '
             'xmlns:m="http://schemas.microsoft.com/3dmanufacturing/material/2015/02">'
             f'<metadata name="Title">{name}</metadata><metadata name="Application">ComfyUI-SyncDreamer</metadata>'
             f'<resources>{group}<object id="1" type="model"><mesh><vertices>{vertices}</vertices>'
             f'<triangles>{triangles}</triangles></mesh></object></resources>'
             '<build><item objectid="1"/></build></model>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("3D/3dmodel.model", model)


def _z_up(vertices: np.ndarray) -> np.ndarray:
    """A build volume is z up: (x, y up, z) -> (x, -z, y), a rotation (winding kept)."""
    v = np.asarray(vertices)
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], 1)
