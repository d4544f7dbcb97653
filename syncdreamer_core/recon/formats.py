"""The mesh file formats the pack writes (``export``), named where a light import can see them."""

MESH_FORMATS = ("glb", "obj", "ply")
