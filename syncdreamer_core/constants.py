"""The world SyncDreamer fixes once and for all (paper section 3.1, reference config):
the 16 target cameras, image and latent sizes, the object's cube, the VAE scale and the
DDPM schedule. Network widths live in ``network.config``; sampling defaults in
``defaults``."""

#: Number of generated views; view ``i`` looks from azimuth ``22.5 * i`` degrees.
VIEW_COUNT = 16
#: Elevation of all 16 target cameras, in degrees.
TARGET_ELEVATION_DEG = 30.0
#: Distance of every camera from the origin.
CAMERA_DISTANCE = 1.5
#: Focal length and principal point of the 256x256 target images.
FOCAL_PX = 280.0
PRINCIPAL_PX = 128.0

#: Resolution of the images the network sees and produces.
IMAGE_SIZE = 256
#: Latent resolution (the SD VAE downsamples by 8).
LATENT_SIZE = IMAGE_SIZE // 8
LATENT_CHANNELS = 4
#: Stable Diffusion VAE latent scale factor.
VAE_SCALE_FACTOR = 0.18215

#: The object is assumed to lie inside [-VOLUME_HALF_EXTENT, VOLUME_HALF_EXTENT]^3.
VOLUME_HALF_EXTENT = 0.5

#: DDPM schedule ("scaled linear", as Stable Diffusion 1.x).
NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012

#: CLIP image normalisation (OpenAI) and input size.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_IMAGE_SIZE = 224
