"""The loader's checks (issue 12): Bybit/Binance open-interest ratio warnings and contract sizes
cached in ``symbol_map`` with the day read, against a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from flows.sources.base import OPEN_INTEREST_SCHEMA, StagedUnit
from flows.sources.loader import OI_RATIO_BAND, load_staged, oi_ratio_warning
from flows.sources.symbols import symbol_map_frame
from warehouse.db import migrate
from warehouse.reads import query
from warehouse.writes import write_symbol_map

DAY = date(2026, 9, 1)
START = datetime(2026, 9, 1, tzinfo=UTC)
END = START + timedelta(days=1)


def oi_unit(tmp_path: Path, exchange: str, oi: float, **kw: object) -> StagedUnit:
    frame = (
        pl.DataFrame(
            {"ts": [START + timedelta(minutes=5 * i) for i in range(288)], "oi_base": [oi] * 288},
        )
        .with_columns(pl.lit(None, pl.Float64()).alias(c) for c in list(OPEN_INTEREST_SCHEMA)[2:])
        .select(pl.col(c).cast(t) for c, t in OPEN_INTEREST_SCHEMA.items())
    )
    path = tmp_path / f"{exchange}-{oi}.parquet"
    frame.write_parquet(path)
    dataset = "metrics" if exchange == "binance" else "open_interest"
    return StagedUnit(
        exchange,
        dataset,
        "BTCUSDT",
        DAY,
        "loaded",
        table="open_interest",
        parquet=str(path),
        start=START,
        end=END,
        rows=288,
        **kw,  # type: ignore[arg-type]
    )


def test_ratio_band() -> None:
    assert oi_ratio_warning(0.70) is None  # the real 2026 BTCUSDT figures: 65k / 93k
    assert oi_ratio_warning(OI_RATIO_BAND[0]) is None
    assert oi_ratio_warning(1.40) == (
        "Bybit/Binance open interest 1.40 outside 0.25-1.2: check the OI basis (single side?)"
    )
    assert oi_ratio_warning(0.05) is not None


@pytest.mark.parametrize(("bybit_oi", "warned"), [(65_000.0, False), (130_000.0, True)])
def test_bybit_day_is_cross_checked_against_binance(
    tmp_path: Path, bybit_oi: float, warned: bool
) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    # Binance's day in the same call, and (second run) from the warehouse
    outcomes = load_staged(
        db, [oi_unit(tmp_path, "binance", 93_000.0), oi_unit(tmp_path, "bybit", bybit_oi)]
    )
    again = load_staged(db, [oi_unit(tmp_path, "bybit", bybit_oi)])
    for bybit in (outcomes[1], again[0]):
        assert bybit.status == "loaded"
        assert (bybit.kind == "warning") is warned
        assert (
            bybit.reason is not None and "Bybit/Binance open interest" in bybit.reason
        ) is warned
    log = query(db, "SELECT exchange, status, error FROM ingest_log ORDER BY exchange")
    assert log["status"].to_list() == ["loaded", "loaded"]
    error = log.filter(pl.col("exchange") == "bybit")["error"][0]
    assert (
        (
            error == "Bybit/Binance open interest 1.40 outside 0.25-1.2: check the OI basis "
            "(single side?)"
        )
        if warned
        else error is None
    )
    assert outcomes[0].kind is None  # Binance itself is never flagged


def test_no_binance_day_means_no_check(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    [bybit] = load_staged(db, [oi_unit(tmp_path, "bybit", 1e9)])
    assert (bybit.status, bybit.kind, bybit.reason) == ("loaded", None, None)


def test_read_contract_size_is_cached_in_symbol_map(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    write_symbol_map(db, symbol_map_frame())
    unit = oi_unit(
        tmp_path, "bybit", 65_000.0, contract_size=1.0, contract_unit="base", size_read_on=DAY
    )
    failed = StagedUnit(
        "okx",
        "trades",
        "ETHUSDT",
        DAY,
        "failed",
        reason="x",
        contract_size=0.1,
        contract_unit="base",
        size_read_on=DAY,
    )
    load_staged(db, [unit, failed])
    rows = query(
        db,
        "SELECT exchange, symbol, contract_size, size_read_on FROM symbol_map "
        "WHERE size_read_on IS NOT NULL",
    ).rows()
    assert rows == [("bybit", "BTCUSDT", 1.0, DAY)]  # a failed unit caches nothing
