"""Read helpers: every query the pipeline and the reports run against the warehouse.

All return polars frames with tz-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.db import read_connection


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = [
        pl.col(name).dt.replace_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None
    ]
    return frame.with_columns(exprs) if exprs else frame


def query(db_path: Path, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """Run a read-only query and return a polars frame (datetimes as UTC)."""
    with read_connection(db_path) as con:
        return _utc(con.sql(sql, params=params or []).pl())


def loaded_days(db_path: Path, exchange: str, dataset: str, symbol: str) -> set[date]:
    """Return the days already loaded for one (exchange, dataset, symbol)."""
    if not db_path.exists():
        return set()
    frame = query(
        db_path,
        "SELECT day FROM ingest_log WHERE exchange = ? AND dataset = ? AND symbol = ? "
        "AND status = 'loaded'",
        [exchange, dataset, symbol],
    )
    return set(frame["day"].to_list())


def model_bars(
    db_path: Path,
    exchange: str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Return the canonical model input for one symbol: 1m trade bars joined with mark
    high/low and open interest (null between OI samples), ordered by ``ts``.

    Columns: ts, open, high, low, close, volume, taker_buy_volume, mark_high, mark_low,
    oi_base, oi_usd.
    """
    where = ["k.exchange = ?", "k.symbol = ?"]
    params: list[Any] = [exchange, symbol]
    if start is not None:
        where.append("k.ts >= ?")
        params.append(start.replace(tzinfo=None))
    if end is not None:
        where.append("k.ts < ?")
        params.append(end.replace(tzinfo=None))
    sql = f"""
        SELECT k.ts, k.open, k.high, k.low, k.close, k.volume, k.taker_buy_volume,
               m.high AS mark_high, m.low AS mark_low, o.oi_base, o.oi_usd
        FROM klines k
        LEFT JOIN mark_klines m
               ON m.exchange = k.exchange AND m.symbol = k.symbol AND m.ts = k.ts
        LEFT JOIN open_interest o
               ON o.exchange = k.exchange AND o.symbol = k.symbol AND o.ts = k.ts
        WHERE {" AND ".join(where)}
        ORDER BY k.ts
    """
    return query(db_path, sql, params)
