"""Issue 14 item 10 through the real command line: ``ingest --exchange`` is repeatable, a
failed flow prints one line (no Prefect traceback, no INFO lines), the demo prints its
summary and the home, and progress bars stay quiet when stderr is not a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from flows.sources.binance.paths import daily_path, write_archive_file
from tests.httpmirror import klines_csv, refused_url, write_day
from warehouse.reads import query

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2024, 3, 1)


def liqheat(home: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIQHEAT_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        # a temporary Prefect server on a busy machine can take minutes to start
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
        **env_extra,
    }
    env.pop("LIQHEAT_DEBUG", None)
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=900,
        check=False,
    )


def test_ingest_exchange_is_repeatable(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    write_day(mirror, "BTCUSDT", DAY)
    home = tmp_path / "home"
    dead = refused_url()
    result = liqheat(
        home,
        "ingest",
        "--symbol",
        "BTCUSDT",
        "--start",
        DAY.isoformat(),
        "--end",
        DAY.isoformat(),
        "--exchange",
        "binance",
        "--exchange",
        "bybit",
        "--base-url",
        f"file://{mirror}",
        LIQHEAT_BYBIT_PUBLIC_URL=dead,
        LIQHEAT_BYBIT_API_URL=dead,
        LIQHEAT_HTTP_RETRIES="0",
    )
    assert result.returncode == 1, result.stderr  # bybit cannot be reached
    exchanges = query(
        home / "liqheat.duckdb", "SELECT DISTINCT exchange FROM ingest_log ORDER BY 1"
    )["exchange"].to_list()
    assert exchanges == ["binance", "bybit"]  # both were ingested, not just the last one
    loaded = query(
        home / "liqheat.duckdb",
        "SELECT count(*) AS n FROM ingest_log WHERE exchange = 'binance' AND status = 'loaded'",
    )["n"][0]
    assert loaded == 3
    assert f"home:     {home}" in result.stdout


@pytest.mark.timeout(1200)
def test_a_failed_nightly_prints_one_line(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    write_day(mirror, "BTCUSDT", DAY)
    bad = klines_csv(DAY).splitlines()
    bad[5] = bad[5].replace(bad[5].split(",")[4], "NaN", 1)
    write_archive_file(mirror, daily_path("klines", "BTCUSDT", DAY), "\n".join(bad) + "\n")
    home = tmp_path / "home"
    result = liqheat(
        home,
        "nightly",
        "--date",
        DAY.isoformat(),
        "--symbol",
        "BTCUSDT",
        "--backfill-days",
        "0",
        "--base-url",
        f"file://{mirror}",
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("liqheat: error: 1 failure(s); first: failed: klines")
    assert "bad value in data row" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "| INFO" not in result.stderr + result.stdout
    assert "| ERROR" not in result.stderr + result.stdout


@pytest.mark.timeout(1200)
def test_the_demo_prints_its_summary_not_prefect_lines(tmp_path: Path) -> None:
    demo = liqheat(tmp_path / "demo-home", "demo", "--symbol", "BTCUSDT", "--days", "1")
    assert demo.returncode == 0, demo.stderr
    assert "| INFO" not in demo.stdout + demo.stderr  # Prefect's lines stay in the run
    assert demo.stdout.startswith("symbol      loaded skipped missing failed")
    assert f"home:     {tmp_path / 'demo-home'}" in demo.stdout
    assert demo.stderr.strip() == ""  # no progress bars: stderr is not a terminal


def test_model_and_report_progress_is_quiet_off_a_terminal(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    write_day(mirror, "BTCUSDT", DAY)
    home = tmp_path / "home"
    liqheat(
        home,
        "ingest",
        "--symbol",
        "BTCUSDT",
        "--start",
        DAY.isoformat(),
        "--end",
        DAY.isoformat(),
        "--base-url",
        f"file://{mirror}",
    )
    model = liqheat(home, "model")
    assert model.returncode == 0, model.stderr
    assert model.stderr == ""
    assert model.stdout.startswith("BTCUSDT: 1,440 bars")
    report = liqheat(home, "report", "--days", "1")
    assert report.returncode == 0, report.stderr
    assert report.stderr == ""
    assert report.stdout.startswith("wrote ")
