"""Diffusion around the network: the noise schedule, the synchronized denoiser, the
samplers that drive it and the random streams they draw from."""
