"""The template browser offers a workflow of the pack only on hosts that have every node
it uses (e.g. Photo to 3D needs ComfyUI's background removal, which 0.3.x lacks), and
lists them simplest first.

ComfyUI lists a pack's templates by globbing its ``example_workflows`` folder; a small
middleware on that listing drops the ones this host cannot run.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys

#: Node types that exist only in the frontend.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
LISTING_PATHS = ("/workflow_templates", "/api/workflow_templates")
#: The order the template browser shows the pack's cards in (the host lists files as its
#: filesystem returns them): the simplest first.
TEMPLATE_ORDER = (
    "SyncDreamer - Image to 3D",
    "SyncDreamer - Text to 3D",
    "SyncDreamer - Sketch to 3D",
    "SyncDreamer - Best of 4 candidates",
    "SyncDreamer - Elevation refinement",
    "SyncDreamer - Photo to 3D",
)


@functools.cache
def _node_types(path: str, modified: float) -> frozenset[str]:
    with open(path, encoding="utf-8") as handle:
        workflow = json.load(handle)
    return frozenset(node["type"] for node in workflow.get("nodes", []))


def templates_needing_absent_nodes(folder: str, known: set[str]) -> list[str]:
    """Template names (file stems) in ``folder`` that use a node type not in ``known``."""
    hidden = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            path = os.path.join(folder, name)
            if _node_types(path, os.path.getmtime(path)) - known - FRONTEND_ONLY:
                hidden.append(name[:-5])
    return hidden


def filter_listing(listing: dict, pack: str, hidden: list[str]) -> dict:
    if pack in listing and hidden:
        listing = {**listing, pack: [name for name in listing[pack] if name not in hidden]}
    return listing


def order_listing(listing: dict, pack: str) -> dict:
    """The pack's templates in TEMPLATE_ORDER (any others after them, as listed)."""
    if pack not in listing:
        return listing
    rank = {title: k for k, title in enumerate(TEMPLATE_ORDER)}
    names = list(listing[pack])
    return {**listing, pack: sorted(names, key=lambda name: (rank.get(name, len(rank)), names.index(name)))}


def install_template_filter(pack: str, folder: str) -> None:
    """Hide this host's unrunnable templates of ``pack`` from the template browser."""
    # The running server imports its module before it loads custom nodes; importing it here
    # elsewhere (a script, a test) would pull in the whole web stack for nothing.
    server = sys.modules.get("server")
    if server is None or not hasattr(server, "PromptServer"):
        return
    PromptServer = server.PromptServer
    try:
        from aiohttp import web

        import nodes as host_nodes
    except ImportError:  # not inside a ComfyUI server
        return

    @web.middleware
    async def offer_runnable_templates(request, handler):
        response = await handler(request)
        if request.path.rstrip("/") not in LISTING_PATHS or getattr(response, "status", 0) != 200:
            return response
        try:
            hidden = templates_needing_absent_nodes(folder, set(host_nodes.NODE_CLASS_MAPPINGS))
            return web.json_response(order_listing(filter_listing(json.loads(response.body), pack, hidden), pack))
        except Exception:  # noqa: BLE001 - never break the host's listing
            logging.exception("SyncDreamer: could not filter the template listing")
            return response

    try:
        PromptServer.instance.app.middlewares.append(offer_runnable_templates)
    except (AttributeError, RuntimeError):  # no server instance, or the app already started
        logging.warning("SyncDreamer: every template is listed, including those this ComfyUI cannot run")
