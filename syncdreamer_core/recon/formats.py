"""The mesh file formats the pack writes (``export``), named where a light import can see them."""

MESH_FORMATS = ("glb", "obj", "ply", "stl", "3mf")
#: Formats for printing: a solid in millimetres at the size asked for.
PRINT_FORMATS = ("stl", "3mf")
#: How a print size is measured.
SIZE_OF = ("height", "longest side")
