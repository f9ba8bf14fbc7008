"""What the pages of the static report site read from the warehouse: symbols, spans, price
path, market context, realized liquidations, lineage and exchanges.

The stored model outputs of a run (heatmap cells, band cells, maps, key levels, scores,
clusters, alerts) are in :mod:`warehouse.reads_outputs`, which reads through this module's
:func:`query` (and so through :func:`one_connection`). What the model and the flows read is
:mod:`warehouse.reads` (the pages also read a few of those: re-exported below); all go through
:func:`warehouse.reads.query` (read-only connection) and return polars frames with tz-aware
UTC datetimes. The "current" model run of an (exchange, symbol) is its newest ``model_runs``
row (largest ``computed_at``); model outputs are read for that run's ``params_hash``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from warehouse import reads
from warehouse.db import read_connection
from warehouse.reads import AGGREGATE_EXCHANGE as AGGREGATE_EXCHANGE
from warehouse.reads import RUN_COLUMNS as RUN_COLUMNS
from warehouse.reads import bar_size as bar_size
from warehouse.reads import last_loaded as last_loaded

#: read-only connections held open by :func:`one_connection`, by resolved database path
_SHARED: dict[Path, duckdb.DuckDBPyConnection] = {}


@contextmanager
def one_connection(db_path: Path) -> Iterator[None]:
    """Serve every read helper of this module on ``db_path`` from one read-only connection
    while the block runs (a site build opens the warehouse once, not once per query).

    Examples
    --------
    >>> with one_connection(db):  # doctest: +SKIP
    ...     report_symbols(db, None)
    """
    key = Path(db_path).resolve()
    if key in _SHARED:
        yield
        return
    with read_connection(Path(db_path)) as con:
        _SHARED[key] = con
        try:
            yield
        finally:
            _SHARED.pop(key, None)


def query(db_path: Path, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """Run a read-only query (on the shared connection of :func:`one_connection` when open)."""
    con = _SHARED.get(Path(db_path).resolve())
    if con is None:
        return reads.query(db_path, sql, params)
    return reads._utc(con.sql(sql, params=params or []).pl())


#: columns of :func:`lineage`
LINEAGE_COLUMNS = (
    "dataset",
    "day",
    "status",
    "rows",
    "sha256",
    "error",
    "loaded_at",
    "source_url",
    "exchange",
)


def _range_sql(column: str, start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for op, value in ((">=", start), ("<", end)):
        if value is not None:
            clauses.append(f" AND {column} {op} ?")
            params.append(_param(value))
    return "".join(clauses), params


def _param(value: datetime) -> datetime:
    # the warehouse stores naive UTC
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def report_symbols(db_path: Path, exchange: str | None) -> list[str]:
    """Return every symbol with price bars or a model run on ``exchange`` (None: on any
    exchange), sorted.

    Examples
    --------
    >>> report_symbols(db, "binance")  # doctest: +SKIP
    ['BTCUSDT', 'ETHUSDT']
    """
    if exchange is None:
        sql = "SELECT DISTINCT symbol FROM klines UNION SELECT DISTINCT symbol FROM model_runs"
        params: list[Any] = []
    else:
        sql = (
            "SELECT DISTINCT symbol FROM klines WHERE exchange = ? "
            "UNION SELECT DISTINCT symbol FROM model_runs WHERE exchange = ?"
        )
        params = [exchange, exchange]
    frame = query(db_path, f"{sql} ORDER BY symbol", params)
    return [str(s) for s in frame["symbol"].to_list()]


def current_runs(db_path: Path, exchange: str) -> pl.DataFrame:
    """Return the current (newest) model run per symbol on ``exchange``.

    Columns: :data:`RUN_COLUMNS`, one row per symbol.

    Examples
    --------
    >>> current_runs(db, "binance").select("symbol", "params_hash")  # doctest: +SKIP
    """
    cols = ", ".join(RUN_COLUMNS)
    return query(
        db_path,
        f"SELECT {cols} FROM model_runs WHERE exchange = ? "
        "QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY computed_at DESC, "
        "params_hash) = 1 ORDER BY symbol",
        [exchange],
    )


def kline_span(db_path: Path, exchange: str, symbol: str) -> tuple[datetime, datetime] | None:
    """Return the first and last 1m bar time of ``symbol``, or None without bars.

    Examples
    --------
    >>> kline_span(db, "binance", "BTCUSDT")  # doctest: +SKIP
    (datetime(2024, 5, 1, 0, 0, tzinfo=UTC), datetime(2024, 5, 3, 23, 59, tzinfo=UTC))
    """
    frame = query(
        db_path,
        "SELECT min(ts) AS lo, max(ts) AS hi FROM klines WHERE exchange = ? AND symbol = ?",
        [exchange, symbol],
    )
    lo, hi = frame.row(0)
    if lo is None or hi is None:
        return None
    return lo, hi


def price_days(db_path: Path, exchange: str, symbol: str) -> pl.DataFrame:
    """Return one row per UTC day with bars: day, bars, open, high, low, close, bar_seconds;
    latest first.

    Examples
    --------
    >>> price_days(db, "binance", "BTCUSDT").columns  # doctest: +SKIP
    ['day', 'bars', 'open', 'high', 'low', 'close', 'bar_seconds']
    """
    return query(
        db_path,
        "SELECT CAST(ts AS DATE) AS day, count(*) AS bars, arg_min(open, ts) AS open, "
        "max(high) AS high, min(low) AS low, arg_max(close, ts) AS close, "
        "max(bar_seconds) AS bar_seconds "
        "FROM klines WHERE exchange = ? AND symbol = ? GROUP BY 1 ORDER BY 1 DESC",
        [exchange, symbol],
    )


def price_path(
    db_path: Path,
    exchange: str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Return the 1m trade-price bars of ``symbol`` in ``[start, end)``, ordered by ts.

    Columns: ts, open, high, low, close, volume, quote_volume.

    Examples
    --------
    >>> price_path(db, "binance", "BTCUSDT").height  # doctest: +SKIP
    4320
    """
    extra, params = _range_sql("ts", start, end)
    return query(
        db_path,
        "SELECT ts, open, high, low, close, volume, quote_volume FROM klines "
        f"WHERE exchange = ? AND symbol = ?{extra} ORDER BY ts",
        [exchange, symbol, *params],
    )


def market_context(
    db_path: Path,
    exchanges: list[str],
    symbol: str,
    start: datetime | None,
    end: datetime | None,
    every_minutes: int,
) -> pl.DataFrame:
    """Return traded USD volume and open interest of ``symbol`` summed over ``exchanges`` per
    ``every_minutes`` bucket (aligned to ``start``) in ``[start, end)``: ts, volume_usd,
    oi_usd (last sample of the bucket per exchange, summed; null without samples).

    Examples
    --------
    >>> market_context(db, ["binance"], "BTCUSDT", None, None, 60).columns  # doctest: +SKIP
    ['ts', 'volume_usd', 'oi_usd']
    """
    marks = ", ".join("?" for _ in exchanges) or "NULL"
    extra_k, params_k = _range_sql("ts", start, end)
    every = f"INTERVAL {int(every_minutes)} MINUTE"
    sql = f"""
        WITH v AS (
            SELECT time_bucket({every}, ts, ?::TIMESTAMP) AS ts, sum(quote_volume) AS volume_usd
            FROM klines WHERE exchange IN ({marks}) AND symbol = ?{extra_k} GROUP BY 1
        ), o AS (
            SELECT ts, sum(oi) AS oi_usd FROM (
                SELECT time_bucket({every}, ts, ?::TIMESTAMP) AS ts, exchange,
                       arg_max(oi_usd, ts) AS oi
                FROM open_interest WHERE exchange IN ({marks}) AND symbol = ?{extra_k}
                GROUP BY 1, 2
            ) GROUP BY 1
        )
        SELECT coalesce(v.ts, o.ts) AS ts, v.volume_usd, o.oi_usd
        FROM v FULL OUTER JOIN o ON v.ts = o.ts ORDER BY 1
    """
    origin = _param(start) if start is not None else datetime(2000, 1, 1)
    params = [origin, *exchanges, symbol, *params_k]
    return query(db_path, sql, [*params, *params])


def realized_liquidations(
    db_path: Path,
    exchange: str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Return realized liquidations (ts, side, usd, source) of ``symbol`` in ``[start, end)``:
    the query of `warehouse.reads.realized_liquidations` (an event stored under several
    sources counts once), on the shared connection when one is open.

    Examples
    --------
    >>> realized_liquidations(db, "binance", "BTCUSDT").columns  # doctest: +SKIP
    ['ts', 'side', 'usd', 'source']
    """
    return query(db_path, *reads.realized_liquidations_sql(exchange, symbol, start, end))


def lineage(db_path: Path, exchange: str, symbol: str) -> pl.DataFrame:
    """Return the ingest ledger of ``symbol``: :data:`LINEAGE_COLUMNS`, latest day first.

    Examples
    --------
    >>> lineage(db, "binance", "BTCUSDT").columns[:3]  # doctest: +SKIP
    ['dataset', 'day', 'status']
    """
    cols = ", ".join(LINEAGE_COLUMNS)
    return query(
        db_path,
        f"SELECT {cols} FROM ingest_log WHERE exchange = ? AND symbol = ? "
        "ORDER BY day DESC, dataset",
        [exchange, symbol],
    )


def is_synthetic(db_path: Path, exchange: str, symbol: str) -> bool:
    """Return True when any ingested file of ``symbol`` came from the synthetic demo archive.

    Examples
    --------
    >>> is_synthetic(db, "binance", "BTCUSDT")  # doctest: +SKIP
    False
    """
    frame = query(
        db_path,
        "SELECT count(*) AS n FROM ingest_log WHERE exchange = ? AND symbol = ? "
        "AND source_url LIKE '%synthetic%'",
        [exchange, symbol],
    )
    return int(frame.item()) > 0


def last_updated(db_path: Path, exchange: str | None) -> datetime | None:
    """Return when data or models of ``exchange`` (None: of any exchange) last changed (newest
    load or model run).

    Examples
    --------
    >>> last_updated(db, "binance")  # doctest: +SKIP
    datetime(2024, 5, 4, 1, 2, 3, tzinfo=UTC)
    """
    where = "WHERE exchange = ?" if exchange is not None else ""
    params = [exchange, exchange] if exchange is not None else []
    frame = query(
        db_path,
        "SELECT greatest("
        f"(SELECT max(loaded_at) FROM ingest_log {where}), "
        f"(SELECT max(computed_at) FROM model_runs {where})) AS ts",
        params,
    )
    value = frame.item()
    return value if isinstance(value, datetime) else None


#: display order of exchanges (others follow alphabetically)
EXCHANGE_ORDER = ("binance", "bybit", "okx")


def _exchange_rank(exchange: str) -> tuple[int, str]:
    order = {name: k for k, name in enumerate(EXCHANGE_ORDER)}
    return (order.get(exchange, len(order)), exchange)


def symbol_exchanges(db_path: Path, symbol: str) -> list[str]:
    """Return the exchanges with 1m bars or a model run for ``symbol`` (never ``"all"``),
    binance, bybit, okx first.

    Examples
    --------
    >>> symbol_exchanges(db, "BTCUSDT")  # doctest: +SKIP
    ['binance', 'bybit']
    """
    frame = query(
        db_path,
        "SELECT DISTINCT exchange FROM klines WHERE symbol = ? "
        "UNION SELECT DISTINCT exchange FROM model_runs WHERE symbol = ?",
        [symbol, symbol],
    )
    names = {str(e) for e in frame["exchange"].to_list()} - {AGGREGATE_EXCHANGE}
    return sorted(names, key=_exchange_rank)


def report_exchanges(db_path: Path) -> list[str]:
    """Return every exchange with bars or model runs, ``"all"`` included when aggregated runs
    exist; ``"all"`` first, then binance, bybit, okx, then the others.

    Examples
    --------
    >>> report_exchanges(db)  # doctest: +SKIP
    ['all', 'binance', 'bybit']
    """
    frame = query(
        db_path,
        "SELECT DISTINCT exchange FROM klines UNION SELECT DISTINCT exchange FROM model_runs",
    )
    names = {str(e) for e in frame["exchange"].to_list()}
    ordered = sorted(names - {AGGREGATE_EXCHANGE}, key=_exchange_rank)
    return [AGGREGATE_EXCHANGE, *ordered] if AGGREGATE_EXCHANGE in names else ordered


def model_run_exists(db_path: Path, exchange: str, symbol: str) -> bool:
    """Return True when ``symbol`` has any model run on ``exchange`` (e.g. ``"all"``).

    Examples
    --------
    >>> model_run_exists(db, "all", "BTCUSDT")  # doctest: +SKIP
    True
    """
    frame = query(
        db_path,
        "SELECT count(*) AS n FROM model_runs WHERE exchange = ? AND symbol = ?",
        [exchange, symbol],
    )
    return int(frame.item()) > 0
