"""Sampling and preparation defaults: those of the reference ``generate.py`` and the
authors' usual settings. Every route (nodes, command line, pipeline) reads them here."""

#: Seed of the reference ``generate.py``.
SEED = 6033
#: DDIM steps.
STEPS = 50
#: Classifier-free guidance scale.
CFG = 2.0
#: DDIM eta (1.0: the reference's stochastic DDIM).
ETA = 1.0
#: Views run through the UNet at once (a memory knob that never changes the result).
BATCH_VIEW_NUM = 8
#: Input-view elevation in degrees when the user gives none.
ELEVATION_DEG = 30.0
#: Object size in pixels in the 256x256 input (the authors mostly use 200).
CROP_SIZE = 200
#: Largest seed (ComfyUI's seed widget and torch generators take 64-bit seeds).
MAX_SEED = 2**64 - 1
#: Elevation estimates below this confidence are not used (the first guess is kept).
ELEVATION_MIN_CONFIDENCE = 0.3
#: An estimate this close to the elevation the views were made with needs no second generation.
ELEVATION_REGENERATE_BEYOND_DEG = 5.0
