"""Shared fixtures. Real files from ../shared/data are read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()

# keep Prefect's state out of the user's home during tests
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".pytest_cache" / "prefect"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data (real market files); tests using it fail if it is absent."""
    assert SHARED_DATA.is_dir(), f"expected the shared data folder at {SHARED_DATA}"
    return SHARED_DATA
