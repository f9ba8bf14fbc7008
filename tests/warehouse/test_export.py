"""Hive-partitioned Parquet export, read back with DuckDB and polars."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.warehouse.conftest import CURRENT_RUN, DAYS
from warehouse.export import DEFAULT_TABLES, export_parquet
from warehouse.reads import query


def read_back(out: Path, table: str) -> pl.DataFrame:
    con = duckdb.connect()
    try:
        return con.sql(
            f"SELECT * FROM read_parquet('{out / table}/**/*.parquet', hive_partitioning = true)"
        ).pl()
    finally:
        con.close()


def test_export_writes_every_table_partitioned_by_exchange_symbol_day(
    warehouse_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    files = export_parquet(warehouse_db, out, symbol="BTCUSDT", start=DAYS[0], end=DAYS[1])
    assert files == sorted(files)
    assert all(f.is_file() and f.suffix == ".parquet" for f in files)
    rel = {f.relative_to(out).as_posix() for f in files}
    for day in DAYS:
        assert f"klines/exchange=binance/symbol=BTCUSDT/day={day}/part_0.parquet" in rel
    assert not any("ETHUSDT" in r for r in rel)
    for table in DEFAULT_TABLES:
        if table == "funding_rates":  # none in the test warehouse
            assert not (out / table).exists()
            continue
        back = read_back(out, table)
        where = "symbol = 'BTCUSDT'"
        if table in ("heatmap_cells", "predicted_liquidations", "key_levels"):
            where += f" AND params_hash = '{CURRENT_RUN}'"
        expected = query(warehouse_db, f"SELECT count(*) AS n FROM {table} WHERE {where}")
        assert back.height == expected["n"][0], table
        assert set(back["exchange"]) == {"binance"}
    klines = pl.read_parquet(out / "klines", hive_partitioning=True).sort("ts")
    assert klines.schema["ts"] == pl.Datetime("us", "UTC")  # instants, not local wall times
    assert klines["day"].dtype == pl.Date
    assert (klines["ts"].dt.date() == klines["day"]).all()
    assert set(read_back(out, "key_levels")["params_hash"]) == {CURRENT_RUN}


def test_reexport_replaces_only_the_requested_days(warehouse_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    kw = {"symbol": "ETHUSDT", "tables": ("klines",)}
    first = export_parquet(warehouse_db, out, start=DAYS[0], end=DAYS[1], **kw)  # type: ignore[arg-type]
    assert len(first) == 2
    stray = (
        out / "klines" / "exchange=binance" / "symbol=ETHUSDT" / f"day={DAYS[0]}" / "old.parquet"
    )
    stray.write_bytes(b"stale")
    kept = first[1].read_bytes()
    again = export_parquet(warehouse_db, out, start=DAYS[0], end=DAYS[0], **kw)  # type: ignore[arg-type]
    assert again == [first[0]]
    assert not stray.exists()  # the day's partition was replaced as a whole
    assert first[1].read_bytes() == kept  # the other day was left alone
    assert read_back(out, "klines").height == 2 * 1440


def test_export_one_exchange_and_empty_ranges(warehouse_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    none = export_parquet(
        warehouse_db, out, symbol="BTCUSDT", start=DAYS[0], end=DAYS[1], exchange="okx"
    )
    assert none == []
    later = export_parquet(
        warehouse_db, out, symbol="BTCUSDT", start=date(2030, 1, 1), end=date(2030, 1, 2)
    )
    assert later == []
    logged = export_parquet(
        warehouse_db,
        out,
        symbol="BTCUSDT",
        start=DAYS[0],
        end=date(2026, 6, 12),
        exchange="binance",
        tables=("ingest_log",),
    )
    assert len(logged) == 4  # two loaded days, the missing and the failed day
    assert read_back(out, "ingest_log").height == 3 * 2 + 2


def test_bad_arguments(warehouse_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot export schema_version"):
        export_parquet(
            warehouse_db,
            tmp_path,
            symbol="X",
            start=DAYS[0],
            end=DAYS[0],
            tables=["schema_version"],
        )
    with pytest.raises(ValueError, match="is before start"):
        export_parquet(warehouse_db, tmp_path, symbol="X", start=DAYS[1], end=DAYS[0])
    with pytest.raises(ValueError, match="bad symbol"):
        export_parquet(warehouse_db, tmp_path, symbol="X'; --", start=DAYS[0], end=DAYS[0])
