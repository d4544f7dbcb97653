"""SyncDreamer as a host-independent torch library: the network, its sampling, input
preparation, reconstruction and the 3D asset; the command line is ``python -m syncdreamer_core``."""

#: Kept equal to pyproject.toml's version.
__version__ = "0.3.0"
