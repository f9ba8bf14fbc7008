"""The model stage: models computed in worker processes, written by the single writer, and one
symbol's bad data never stopping the others (real warehouse, real ingest of a synthetic
archive, real process pool)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.demo_data import write_demo_archive
from flows.ingest import run_ingest
from flows.modelling import model_symbols, model_workers
from flows.settings import Settings
from warehouse.db import write_connection
from warehouse.reads import query

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
DAY = date(2026, 6, 9)
BAD = "ETHUSDT"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An archive and a warehouse holding one day of three symbols."""
    root = tmp_path_factory.mktemp("model-stage")
    archive = write_demo_archive(root / "mirror", SYMBOLS, DAY, 1, seed=4)
    home = root / "template"
    report = run_ingest(Settings(home=home), SYMBOLS, [DAY], base_url=archive.base_url)
    assert report.ok
    return home, root


def _home_with_bad_symbol(loaded: tuple[Path, Path], name: str) -> Settings:
    import shutil

    template, root = loaded
    home = root / name
    shutil.copytree(template, home)
    with write_connection(home / "liqheat.duckdb") as con:
        con.execute(
            "UPDATE klines SET close = 'nan'::DOUBLE WHERE symbol = ? AND ts = "
            "(SELECT min(ts) FROM klines WHERE symbol = ?)",
            [BAD, BAD],
        )
    return Settings(home=home)


def test_pool_size_follows_cores_and_jobs() -> None:
    assert model_workers(1, 8) == 0
    assert model_workers(3, 2) == 2
    assert model_workers(3, 8) == 3
    assert model_workers(50, 1) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_symbol_fails_alone_and_the_others_are_written(
    loaded: tuple[Path, Path], workers: int
) -> None:
    settings = _home_with_bad_symbol(loaded, f"bad-{workers}")
    seen: list[str] = []
    outcomes = model_symbols(
        settings,
        [("binance", s) for s in SYMBOLS],
        workers=workers,
        on_done=lambda o: seen.append(o.symbol),
    )
    assert [o.symbol for o in outcomes] == SYMBOLS
    assert sorted(seen) == sorted(SYMBOLS)
    by_symbol = {o.symbol: o for o in outcomes}
    bad = by_symbol[BAD]
    assert bad.summary is None
    assert bad.error is not None
    assert "non-finite" in bad.error
    for symbol in SYMBOLS:
        if symbol == BAD:
            continue
        good = by_symbol[symbol]
        assert good.error is None
        assert good.summary is not None
        assert good.summary.bars == 1440
    db = settings.db_path
    cells = query(db, "SELECT symbol, count(*) AS n FROM heatmap_cells GROUP BY 1 ORDER BY 1")
    assert cells["symbol"].to_list() == [s for s in sorted(SYMBOLS) if s != BAD]
    runs = query(db, "SELECT symbol FROM model_runs ORDER BY 1")
    assert runs["symbol"].to_list() == [s for s in sorted(SYMBOLS) if s != BAD]


def test_parallel_and_serial_models_store_the_same_outputs(loaded: tuple[Path, Path]) -> None:
    results = {}
    for workers in (1, 2):
        settings = _home_with_bad_symbol(loaded, f"same-{workers}")
        model_symbols(settings, [("binance", s) for s in SYMBOLS], workers=workers)
        results[workers] = query(
            settings.db_path,
            "SELECT symbol, count(*) AS n, round(sum(long_usd + short_usd), 3) AS usd "
            "FROM heatmap_cells GROUP BY 1 ORDER BY 1",
        )
    assert results[1].equals(results[2])


@pytest.mark.slow
def test_nightly_with_a_failing_model_records_it_ends_failed_and_builds_the_site(
    loaded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, prefect_harness: object
) -> None:
    from flows.pipeline import nightly_flow

    settings = _home_with_bad_symbol(loaded, "nightly")
    monkeypatch.setenv("LIQHEAT_HOME", str(settings.home))
    archive_url = (loaded[1] / "mirror").resolve().as_uri()
    state = nightly_flow(
        date=DAY.isoformat(),
        symbols=SYMBOLS,
        base_url=archive_url,
        backfill_days=0,
        return_state=True,
    )
    assert state.is_failed(), "a failed model must end the run Failed"
    runs = query(settings.db_path, "SELECT symbol, status, problems FROM runs ORDER BY symbol")
    status = dict(zip(runs["symbol"], runs["status"], strict=True))
    assert status == {"BTCUSDT": "completed", "ETHUSDT": "failed", "SOLUSDT": "completed"}
    problem = runs.filter(runs["symbol"] == BAD)["problems"][0]
    assert "model binance ETHUSDT" in problem
    assert "non-finite" in problem
    assert (settings.site_dir / "index.html").is_file()
    assert (settings.site_dir / "BTCUSDT").is_dir()
