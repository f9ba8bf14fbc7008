"""What the model and the flows read from the warehouse: model inputs (bars, realized
liquidations), ingest state (loaded days, newest bar, last load) and the model runs the
exchanges' sum checks; plus the helpers every read shares (:func:`query`, the "newest rows of a
model run" query :func:`latest_of_run_sql`) and the storage key of that sum
(:data:`AGGREGATE_EXCHANGE`). What the pages read is :mod:`warehouse.reads_report` and
:mod:`warehouse.reads_outputs`.

All return polars frames with tz-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.db import read_connection

#: the exchange id under which the sum of the exchanges' model outputs is stored
AGGREGATE_EXCHANGE = "all"

#: columns of a ``model_runs`` row (:func:`model_run`, `warehouse.reads_report.current_runs`)
RUN_COLUMNS = (
    "symbol",
    "params_hash",
    "params_json",
    "start_ts",
    "end_ts",
    "bars",
    "levels",
    "price_step",
    "seconds",
    "computed_at",
)


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = [
        pl.col(name).dt.replace_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None
    ]
    return frame.with_columns(exprs) if exprs else frame


def _naive(value: datetime) -> datetime:
    """Return ``value`` as naive UTC (the warehouse's storage convention)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _symbol_window(
    prefix: str,
    exchange: str,
    symbol: str,
    start: datetime | None,
    end: datetime | None,
) -> tuple[str, list[Any]]:
    """Return a WHERE clause (and its parameters) for one symbol and a half-open ts window."""
    where = [f"{prefix}exchange = ?", f"{prefix}symbol = ?"]
    params: list[Any] = [exchange, symbol]
    if start is not None:
        where.append(f"{prefix}ts >= ?")
        params.append(_naive(start))
    if end is not None:
        where.append(f"{prefix}ts < ?")
        params.append(_naive(end))
    return " AND ".join(where), params


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


_MODEL_BARS_SQL = """
    SELECT k.ts, k.open, k.high, k.low, k.close, k.volume, k.taker_buy_volume,
           m.high AS mark_high, m.low AS mark_low, o.oi_base, o.oi_usd, k.bar_seconds
    FROM klines k
    LEFT JOIN mark_klines m
           ON m.exchange = k.exchange AND m.symbol = k.symbol AND m.ts = k.ts
    LEFT JOIN open_interest o
           ON o.exchange = k.exchange AND o.symbol = k.symbol AND o.ts = k.ts
    WHERE {where}
    ORDER BY k.ts
"""


def model_bars(
    db_path: Path,
    exchange: str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Return the canonical model input for one symbol: trade bars joined with mark
    high/low and open interest (null between OI samples), ordered by ``ts``.

    Columns: ts, open, high, low, close, volume, taker_buy_volume, mark_high, mark_low,
    oi_base, oi_usd, bar_seconds (the stored bar size: 60 for the archives' 1-minute bars;
    `transforms.bars.model_input` drops it).
    """
    where, params = _symbol_window("k.", exchange, symbol, start, end)
    return query(db_path, _MODEL_BARS_SQL.format(where=where), params)


def model_window(
    db_path: Path, exchange: str, symbol: str, days: int
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """Return one symbol's model input over its last ``days`` (``(bars, events)``: the
    :func:`model_bars` frame and its :func:`realized_liquidations`), read over ONE connection;
    ``None`` when the symbol has no bars. The window ends after the newest bar."""
    with read_connection(db_path) as con:
        rows = con.execute(
            "SELECT max(ts), arg_max(bar_seconds, ts) FROM klines WHERE exchange = ? "
            "AND symbol = ?",
            [exchange, symbol],
        ).fetchall()
        last = rows[0][0] if rows else None
        if not isinstance(last, datetime):
            return None
        end = last + timedelta(seconds=int(rows[0][1] or 60))
        start = end - timedelta(days=days)
        where, params = _symbol_window("k.", exchange, symbol, start, end)
        bars = con.sql(_MODEL_BARS_SQL.format(where=where), params=params).pl()
        sql, params = realized_liquidations_sql(exchange, symbol, start, end)
        events = con.sql(sql, params=params).pl()
    return _utc(bars), _utc(events)


def symbols_loaded(db_path: Path, exchange: str | None = None) -> list[str]:
    """Return the symbols with any klines (of ``exchange``, default any exchange), sorted."""
    if not db_path.exists():
        return []
    frame = query(
        db_path,
        "SELECT DISTINCT symbol FROM klines WHERE ? IS NULL OR exchange = ? ORDER BY symbol",
        [exchange, exchange],
    )
    return [str(s) for s in frame["symbol"].to_list()]


def exchanges_with_bars(db_path: Path, symbol: str) -> list[str]:
    """Return the exchanges holding bars of ``symbol``: binance first, then by name."""
    frame = query(
        db_path,
        "SELECT DISTINCT exchange FROM klines WHERE symbol = ? "
        "ORDER BY exchange <> 'binance', exchange",
        [symbol],
    )
    return [str(e) for e in frame["exchange"].to_list()]


def bar_size(db_path: Path, exchange: str, symbol: str) -> timedelta:
    """Return the size of the newest stored bar of one (exchange, symbol) (1 minute when it
    has none, or when the warehouse predates stored bar sizes)."""
    if not db_path.exists():
        return timedelta(minutes=1)
    frame = query(
        db_path,
        "SELECT arg_max(bar_seconds, ts) AS s FROM klines WHERE exchange = ? AND symbol = ?",
        [exchange, symbol],
    )
    value = frame["s"][0] if frame.height else None
    return timedelta(seconds=int(value or 60))


def last_bar_ts(db_path: Path, exchange: str, symbol: str) -> datetime | None:
    """Return the open time of the newest bar of one symbol, or None (also when there is
    no warehouse yet)."""
    if not db_path.exists():
        return None
    frame = query(
        db_path,
        "SELECT max(ts) AS ts FROM klines WHERE exchange = ? AND symbol = ?",
        [exchange, symbol],
    )
    value = frame["ts"][0] if frame.height else None
    return value if isinstance(value, datetime) else None


def realized_liquidations_sql(
    exchange: str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[str, list[Any]]:
    """Return the one query of realized liquidation events (ts, side, usd, source) of one
    symbol in ``[start, end)`` and its parameters (run by :func:`realized_liquidations`, by
    :func:`model_window` and by `warehouse.reads_report.realized_liquidations`).

    An event stored under several sources (the same file stored twice under two names, or
    overlapping exports) counts once, under the first source by name: the k-th copy of an
    identical (ts, side, usd) in one source matches the k-th copy in another. Repeats within
    one source are kept.
    """
    where, params = _symbol_window("", exchange, symbol, start, end)
    sql = (
        "SELECT ts, side, usd, min(source) AS source FROM ("
        "  SELECT ts, side, usd, source, row_number() OVER "
        "    (PARTITION BY ts, side, usd, source) AS copy"
        f"  FROM realized_liquidations WHERE {where}"
        ") GROUP BY ts, side, usd, copy ORDER BY ts, side, usd"
    )
    return sql, params


def realized_liquidations(
    db_path: Path,
    exchange: str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Return realized liquidation events (ts, side, usd, source) for one symbol, an event
    stored under several sources once (see :func:`realized_liquidations_sql`)."""
    return query(db_path, *realized_liquidations_sql(exchange, symbol, start, end))


def latest_of_run_sql(table: str, columns: str, order: str, *, newest: str = "as_of") -> str:
    """The query of the newest rows of one model run in ``table``: ``columns`` of the rows whose
    ``newest`` column is the run's largest, ordered by ``order``; its parameters are
    ``[exchange, symbol, params_hash]``. (Model outputs keep older snapshots of a run; pages and
    the exchanges' sum read the newest.)

    Examples
    --------
    >>> sql = latest_of_run_sql("key_levels", "side, price", "side")
    >>> sql.split(" WHERE ")[0], sql.split(" QUALIFY ")[1]
    ('SELECT side, price FROM key_levels', 'as_of = max(as_of) OVER () ORDER BY side')
    """
    return (
        f"SELECT {columns} FROM {table} "
        "WHERE exchange = ? AND symbol = ? AND params_hash = ? "
        f"QUALIFY {newest} = max({newest}) OVER () ORDER BY {order}"
    )


def model_run(db_path: Path, exchange: str, symbol: str, params_hash: str) -> dict[str, Any] | None:
    """Return the ``model_runs`` row of one (exchange, symbol, params_hash) as a dict, or None.

    Examples
    --------
    >>> model_run(db, "binance", "BTCUSDT", "ab12")["price_step"]  # doctest: +SKIP
    50.0
    """
    frame = query(
        db_path,
        f"SELECT {', '.join(RUN_COLUMNS)} FROM model_runs "
        "WHERE exchange = ? AND symbol = ? AND params_hash = ?",
        [exchange, symbol, params_hash],
    )
    return frame.row(0, named=True) if frame.height else None


def window_bars(
    db_path: Path, exchange: str, symbol: str, start: datetime, end: datetime
) -> tuple[int, datetime | None, datetime | None]:
    """Return (count, first ts, last ts) of the bars of ``symbol`` in ``[start, end)``.

    Examples
    --------
    >>> window_bars(db, "binance", "BTCUSDT", start, end)  # doctest: +SKIP
    (4320, datetime(2024, 5, 1, 0, 0, tzinfo=UTC), datetime(2024, 5, 3, 23, 59, tzinfo=UTC))
    """
    where, params = _symbol_window("", exchange, symbol, start, end)
    frame = query(
        db_path,
        f"SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi FROM klines WHERE {where}",
        params,
    )
    n, lo, hi = frame.row(0)
    return int(n), lo, hi


def last_loaded(db_path: Path, exchange: str, symbol: str) -> datetime | None:
    """Return when any file of ``symbol`` on ``exchange`` was last loaded (ingest_log), or None.

    Examples
    --------
    >>> last_loaded(db, "binance", "BTCUSDT")  # doctest: +SKIP
    """
    frame = query(
        db_path,
        "SELECT max(loaded_at) AS ts FROM ingest_log WHERE exchange = ? AND symbol = ?",
        [exchange, symbol],
    )
    value = frame.item()
    return value if isinstance(value, datetime) else None


def latest_where_scores(
    db_path: Path, exchange: str, symbol: str, params_hash: str
) -> pl.DataFrame:
    """Return the newest where-scores of one model run (one row per name, side and bin; see
    :data:`transforms.where.WHERE_SCORE_SCHEMA` and the table's comments). Empty when the run
    has none (or the warehouse predates them).

    Examples
    --------
    >>> latest_where_scores(db, "binance", "BTCUSDT", "ab12")  # doctest: +SKIP
    """
    sql = latest_of_run_sql(
        "where_scores",
        "* EXCLUDE (exchange, symbol, params_hash)",
        "name, side, bin",
        newest="computed_at",
    )
    return query(db_path, sql, [exchange, symbol, params_hash])


def short_days(db_path: Path, exchange: str, symbol: str, days: int) -> list[tuple[date, str]]:
    """Return the incomplete loaded days (``ingest_log.complete`` false: a short archive file, a
    partly covered import day) among the last ``days`` before the newest bar, with why."""
    last = last_bar_ts(db_path, exchange, symbol)
    if last is None:
        return []
    first_day = (last - timedelta(days=days)).date()
    frame = query(
        db_path,
        "SELECT day, any_value(error) AS why FROM ingest_log WHERE exchange = ? AND symbol = ? "
        "AND status = 'loaded' AND NOT complete AND day >= ? "
        "AND dataset IN ('klines', 'import') GROUP BY day ORDER BY day",
        [exchange, symbol, first_day],
    )
    return [(d, str(w or "incomplete")) for d, w in frame.iter_rows()]
