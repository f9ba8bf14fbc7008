"""The nightly flow against a local HTTP mirror: yesterday plus gaps, one bad file, summaries."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.demo_data import write_demo_archive
from flows.sources.binance.paths import daily_path
from tests.httpmirror import Fault, serve_mirror
from warehouse.reads import query

pytestmark = pytest.mark.slow

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
FIRST = date(2026, 6, 8)
NIGHT = date(2026, 6, 10)


def test_nightly_backfills_gaps_isolates_a_bad_file_and_records_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: object
) -> None:
    from flows.pipeline import nightly_flow

    archive = write_demo_archive(tmp_path / "mirror", SYMBOLS, FIRST, 3, seed=5)
    home = tmp_path / "home"
    monkeypatch.setenv("LIQHEAT_HOME", str(home))
    db = home / "liqheat.duckdb"
    bad = daily_path("klines", "ETHUSDT", date(2026, 6, 9))
    # the zip is corrupted on both tries: checksum mismatch, re-downloaded once, then failed
    faults = {bad: [Fault(body=b"PK\x03\x04 not really a zip", times=2)]}

    with serve_mirror(archive.root, faults) as mirror:
        state = nightly_flow(
            date=NIGHT.isoformat(),
            symbols=SYMBOLS,
            base_url=mirror.base_url,
            backfill_days=2,
            return_state=True,
        )
        assert state.is_failed(), "a failed file must end the run Failed"
        first_downloads = mirror.zip_downloads()

        # the other symbol and the other days of the bad symbol were loaded anyway
        days = query(db, "SELECT symbol, count(DISTINCT ts::DATE) AS d FROM klines GROUP BY 1")
        assert dict(zip(days["symbol"], days["d"], strict=True)) == {"BTCUSDT": 3, "ETHUSDT": 2}
        failed = query(
            db, "SELECT symbol, dataset, day, error FROM ingest_log WHERE status='failed'"
        )
        assert failed.height == 1
        assert failed["dataset"][0] == "klines"
        assert "checksum" in failed["error"][0].lower()
        runs = query(db, "SELECT symbol, status, days_failed FROM runs ORDER BY symbol")
        assert runs.rows() == [("BTCUSDT", "completed", 0), ("ETHUSDT", "failed", 1)]
        assert (home / "site" / "index.html").is_file()
        assert query(db, "SELECT count(*) AS n FROM heatmap_cells")["n"][0] > 0

        # the second night re-downloads only the file that failed, and completes
        state = nightly_flow(
            date=NIGHT.isoformat(),
            symbols=SYMBOLS,
            base_url=mirror.base_url,
            backfill_days=2,
            return_state=True,
        )
        assert state.is_completed()
        assert mirror.zip_downloads() - first_downloads == 1
        assert query(db, "SELECT count(*) AS n FROM klines")["n"][0] == 2 * 3 * 1440
        assert query(db, "SELECT count(DISTINCT run_id) AS n FROM runs")["n"][0] == 2
