"""ComfyUI nodes of the pack, on ComfyUI's node schema (``comfy_api.latest``): thin
adapters over ``syncdreamer_core``, listed in the order a graph uses them."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .common import name_errors
from .elevation import SyncDreamerElevation, SyncDreamerEstimateElevation
from .loader import SyncDreamerCheckpointLoader
from .mesh import SyncDreamerRankCandidates, SyncDreamerReconstruct, SyncDreamerSaveMesh, SyncDreamerTurntable
from .prepare import SyncDreamerPrepareImage, SyncDreamerWhiteBackgroundMask
from .sampler import SyncDreamerDDIMSampler, SyncDreamerEmptyLatent, SyncDreamerGuiderNode, SyncDreamerSampler
from .views import SyncDreamerComposeViews, SyncDreamerPickCandidate, SyncDreamerSelectViews, SyncDreamerSplitViews

NODES: list[type[io.ComfyNode]] = [
    SyncDreamerCheckpointLoader,
    SyncDreamerPrepareImage,
    SyncDreamerWhiteBackgroundMask,
    SyncDreamerElevation,
    SyncDreamerEstimateElevation,
    SyncDreamerSampler,
    SyncDreamerGuiderNode,
    SyncDreamerDDIMSampler,
    SyncDreamerEmptyLatent,
    SyncDreamerSplitViews,
    SyncDreamerComposeViews,
    SyncDreamerSelectViews,
    SyncDreamerPickCandidate,
    SyncDreamerRankCandidates,
    SyncDreamerReconstruct,
    SyncDreamerSaveMesh,
    SyncDreamerTurntable,
]


for _node in NODES:
    name_errors(_node)


class SyncDreamerExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> SyncDreamerExtension:
    return SyncDreamerExtension()
