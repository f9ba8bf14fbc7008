"""Guard rails of `liqheat ingest`: a range above LIQHEAT_MAX_DOWNLOADS files prints its plan and
exits 2 without --yes (nothing created); the problems table merges missing days into spans."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli import liqheat, one_error_line


def test_a_long_range_prints_the_plan_and_asks_for_yes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = liqheat(
        home, "ingest", "--symbol", "BTCUSDT", "--start", "2019-01-01", "--end", "2026-12-05",
        "--base-url", (tmp_path / "mirror").as_uri(),
    )  # fmt: skip
    assert out.returncode == 2
    assert "plan: 8,784 file(s) to download for 1 symbol(s), 2019-01-01 .. 2026-12-05" in out.stdout
    assert "binance klines: 2,896" in out.stdout
    assert "more than LIQHEAT_MAX_DOWNLOADS=1,000: add --yes" in one_error_line(out)
    assert not home.exists()  # asked before anything was created


def test_with_yes_it_runs_and_missing_days_are_summarised_as_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "LIQHEAT_MAX_DOWNLOADS", "10")
    monkeypatch.setitem(os.environ, "COLUMNS", "200")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    args = ("ingest", "--symbol", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-20",
            "--base-url", mirror.as_uri())  # fmt: skip
    home = tmp_path / "home"
    refused = liqheat(home, *args)
    assert refused.returncode == 2
    out = liqheat(home, *args, "--yes")
    assert out.returncode == 1, out.stderr  # nothing is published in the empty mirror
    assert "plan: 61 file(s) to download" in out.stdout
    assert "ingest problems: 61 files in 4 span(s)" in out.stdout
    assert "2024-01-01 .. 2024-01-20 (20 days)" in out.stdout
    table = [line for line in out.stdout.splitlines() if "404 not published" in line]
    assert len(table) == 4  # klines, markPriceKlines, metrics spans and the funding month
