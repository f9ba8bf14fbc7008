"""Shared fixtures. Real files from ../shared/data are read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()

# keep Prefect's state out of the user's home during tests
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".pytest_cache" / "prefect"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data (real market files); tests using it fail if it is absent."""
    assert SHARED_DATA.is_dir(), f"expected the shared data folder at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_harness() -> object:
    """One Prefect test server for the whole session (starting one takes a while)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


DEMO_SYMBOLS = ("BTCUSDT", "ETHUSDT")
DEMO_END = "2026-06-10"


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory, prefect_harness: object) -> Path:
    """A LIQHEAT_HOME filled by the real demo flow (2 symbols x 2 synthetic days)."""
    from datetime import date

    from flows.prefect_runtime import run_demo
    from flows.settings import Settings

    home = tmp_path_factory.mktemp("demo-home")
    summary = run_demo(
        Settings(home=home),
        list(DEMO_SYMBOLS),
        days=2,
        seed=11,
        end=date.fromisoformat(DEMO_END),
    )
    assert summary.ok, summary.render()
    return home
