"""The whole pipeline, end to end, through the Prefect demo flow (slow, run by make test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DEMO_SYMBOLS
from warehouse.reads import query

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "table",
    [
        "klines",
        "mark_klines",
        "open_interest",
        "heatmap_cells",
        "liquidation_map",
        "key_levels",
        "predicted_liquidations",
        "backtest_scores",
        "model_runs",
        "realized_liquidations",
    ],
)
def test_demo_fills_every_table_for_every_symbol(demo_home: Path, table: str) -> None:
    counts = query(
        demo_home / "liqheat.duckdb",
        f"SELECT symbol, count(*) AS n FROM {table} GROUP BY symbol ORDER BY symbol",
    )
    assert counts["symbol"].to_list() == sorted(DEMO_SYMBOLS)
    assert min(counts["n"].to_list()) > 0


def test_demo_loads_whole_days_and_logs_them(demo_home: Path) -> None:
    db = demo_home / "liqheat.duckdb"
    klines = query(db, "SELECT symbol, count(*) AS n FROM klines GROUP BY symbol")
    assert set(klines["n"].to_list()) == {2 * 1440}
    log = query(db, "SELECT status, count(*) AS n FROM ingest_log GROUP BY status")
    assert log["status"].to_list() == ["loaded"]
    shas = query(db, "SELECT sha256 FROM ingest_log")
    assert all(isinstance(s, str) and len(s) == 64 for s in shas["sha256"].to_list())


def test_demo_writes_the_site(demo_home: Path) -> None:
    index = demo_home / "site" / "index.html"
    assert index.is_file()
    html = index.read_text(encoding="utf-8")
    for symbol in DEMO_SYMBOLS:
        assert symbol in html
    assert "ynthetic" in html


def test_rerunning_the_model_replaces_rather_than_duplicates(demo_home: Path) -> None:
    from flows.modelling import model_symbol
    from flows.settings import Settings

    db = demo_home / "liqheat.duckdb"
    tables = ["liq_levels", "heatmap_cells", "key_levels", "backtest_scores", "model_runs"]

    def counts() -> dict[str, int]:
        return {t: int(query(db, f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in tables}

    before = counts()
    model_symbol(Settings(home=demo_home), DEMO_SYMBOLS[0])
    assert counts() == before


def test_raw_levels_are_stored_only_when_asked_and_only_for_the_current_run(
    demo_home: Path,
) -> None:
    from flows.modelling import model_symbol
    from flows.settings import Settings

    db = demo_home / "liqheat.duckdb"
    symbol = DEMO_SYMBOLS[0]

    def levels() -> int:
        sql = f"SELECT count(*) AS n FROM liq_levels WHERE symbol = '{symbol}'"
        return int(query(db, sql)["n"][0])

    assert levels() == 0  # the default: reproducible from the bars and params_json
    summary = model_symbol(Settings(home=demo_home, store_levels=True), symbol)
    assert levels() == summary.levels > 0
    model_symbol(Settings(home=demo_home), symbol)
    assert levels() == 0
