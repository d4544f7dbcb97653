"""ComfyUI nodes of the pack: thin adapters over ``syncdreamer_core``."""

from .elevation import SyncDreamerElevation, SyncDreamerEstimateElevation
from .loader import SyncDreamerCheckpointLoader
from .mesh import SyncDreamerReconstruct, SyncDreamerSaveMesh
from .prepare import SyncDreamerPrepareImage, SyncDreamerWhiteBackgroundMask
from .sampler import SyncDreamerDDIMSampler, SyncDreamerEmptyLatent, SyncDreamerGuiderNode, SyncDreamerSampler
from .views import SyncDreamerComposeViews, SyncDreamerPickCandidate, SyncDreamerSelectViews, SyncDreamerSplitViews

NODES = {
    "SyncDreamerCheckpointLoader": (SyncDreamerCheckpointLoader, "Load SyncDreamer Checkpoint"),
    "SyncDreamerPrepareImage": (SyncDreamerPrepareImage, "SyncDreamer Prepare Image"),
    "SyncDreamerWhiteBackgroundMask": (SyncDreamerWhiteBackgroundMask, "SyncDreamer White Background Mask"),
    "SyncDreamerElevation": (SyncDreamerElevation, "SyncDreamer Elevation"),
    "SyncDreamerEstimateElevation": (SyncDreamerEstimateElevation, "SyncDreamer Estimate Elevation"),
    "SyncDreamerSampler": (SyncDreamerSampler, "SyncDreamer Sampler"),
    "SyncDreamerGuider": (SyncDreamerGuiderNode, "SyncDreamer Guider"),
    "SyncDreamerDDIMSampler": (SyncDreamerDDIMSampler, "SyncDreamer DDIM Sampler"),
    "SyncDreamerEmptyLatent": (SyncDreamerEmptyLatent, "SyncDreamer Empty Latent"),
    "SyncDreamerSplitViews": (SyncDreamerSplitViews, "SyncDreamer Split Views"),
    "SyncDreamerComposeViews": (SyncDreamerComposeViews, "SyncDreamer Compose Views"),
    "SyncDreamerSelectViews": (SyncDreamerSelectViews, "SyncDreamer Select Views"),
    "SyncDreamerPickCandidate": (SyncDreamerPickCandidate, "SyncDreamer Pick Candidate"),
    "SyncDreamerReconstruct": (SyncDreamerReconstruct, "SyncDreamer Reconstruct Mesh"),
    "SyncDreamerSaveMesh": (SyncDreamerSaveMesh, "SyncDreamer Save Mesh"),
}

NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for name, (_, title) in NODES.items()}
