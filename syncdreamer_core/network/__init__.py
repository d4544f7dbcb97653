"""The denoising network (paper section 3): viewpoint and time embeddings, the spatial
and frustum volumes, depth-wise attention and the Zero123-style UNet."""
