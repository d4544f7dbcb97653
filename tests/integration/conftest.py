"""Fixtures of the integration tests (see comfy_server.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_server import start_server, stop_server  # noqa: E402


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    server = start_server(tmp_path_factory)
    yield server
    stop_server(server)
