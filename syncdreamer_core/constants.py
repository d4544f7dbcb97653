"""The numbers SyncDreamer fixes once and for all (paper section 3.1, reference config)."""

import math

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
#: Voxels per side of the spatial feature volume.
SPATIAL_VOLUME_SIZE = 32
#: Channels each view contributes to the spatial volume.
TARGET_ENCODER_CHANNELS = 16
#: Depth samples of each view frustum volume.
FRUSTUM_DEPTH_SAMPLES = 48
#: Half length of the frustum along the viewing ray; the reference rounds sqrt(3)/2 to this value.
FRUSTUM_HALF_LENGTH = 0.86603
#: Heads of every depth-wise attention block (head width is half the volume channels).
DEPTH_ATTENTION_HEADS = 4

#: Width of SyncDreamer's own time embedding (separate from the UNet's).
TIME_EMBED_DIM = 256
#: Width of the viewpoint embedding [d_elevation, sin d_azimuth, cos d_azimuth, 0].
VIEWPOINT_DIM = 4
#: CLIP ViT-L/14 image embedding width (the UNet's cross-attention context width).
CLIP_EMBED_DIM = 768
#: Input channels of the UNet: noisy target latent + input-view latent.
UNET_IN_CHANNELS = 8

#: DDPM schedule ("scaled linear", as Stable Diffusion 1.x).
NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012

#: Sampling defaults of the reference ``generate.py``.
DEFAULT_STEPS = 50
DEFAULT_CFG = 2.0
DEFAULT_ETA = 1.0
DEFAULT_SEED = 6033
DEFAULT_BATCH_VIEW_NUM = 8
DEFAULT_CROP_SIZE = 200

#: CLIP image normalisation (OpenAI).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_IMAGE_SIZE = 224


def target_elevation_rad() -> float:
    return math.radians(TARGET_ELEVATION_DEG)
