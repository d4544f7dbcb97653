"""Shared test helpers: where the reference data lives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data" / "syncdreamer-ref"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def require_shared(path: Path = SHARED) -> Path:
    """Skip (with the reason) when the reference data beside the checkout is absent."""
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (clone the project with ../shared beside it)")
    return path
