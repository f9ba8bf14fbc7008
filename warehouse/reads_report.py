"""What the pages of the static report site read from the warehouse.

The queries of the report site live here (what the model and the flows read is
:mod:`warehouse.reads`; the pages also read a few of those: re-exported below); all go through
:func:`warehouse.reads.query` (read-only connection) and return polars frames with tz-aware
UTC datetimes. The "current" model run of an (exchange, symbol) is its newest ``model_runs``
row (largest ``computed_at``); model outputs are read for that run's ``params_hash``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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
from warehouse.reads import latest_of_run_sql

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


def heatmap_span(
    db_path: Path, exchange: str, symbol: str, params_hash: str
) -> tuple[datetime, datetime] | None:
    """Return the first and last heatmap time bucket of one model run, or None if empty.

    Examples
    --------
    >>> heatmap_span(db, "binance", "BTCUSDT", "ab12")  # doctest: +SKIP
    """
    frame = query(
        db_path,
        "SELECT min(ts) AS lo, max(ts) AS hi FROM heatmap_cells "
        "WHERE exchange = ? AND symbol = ? AND params_hash = ?",
        [exchange, symbol, params_hash],
    )
    lo, hi = frame.row(0)
    if lo is None or hi is None:
        return None
    return lo, hi


def heatmap_cells(
    db_path: Path,
    exchange: str,
    symbol: str,
    params_hash: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Return the sparse heatmap cells (ts, price, long_usd, short_usd) of one model run.

    Examples
    --------
    >>> heatmap_cells(db, "binance", "BTCUSDT", "ab12").columns  # doctest: +SKIP
    ['ts', 'price', 'long_usd', 'short_usd']
    """
    extra, params = _range_sql("ts", start, end)
    return query(
        db_path,
        "SELECT ts, price, long_usd, short_usd FROM heatmap_cells "
        f"WHERE exchange = ? AND symbol = ? AND params_hash = ?{extra} ORDER BY ts, price",
        [exchange, symbol, params_hash, *params],
    )


def heatmap_source_step(
    db_path: Path, exchange: str, symbol: str, params_hash: str, since: datetime | None = None
) -> timedelta | None:
    """Return the time step of one model run's heatmap cells (gap between its first two time
    buckets at or after ``since``: stored buckets coarsen with age), or None with fewer than
    two.

    Examples
    --------
    >>> heatmap_source_step(db, "binance", "BTCUSDT", "ab12")  # doctest: +SKIP
    datetime.timedelta(seconds=900)
    """
    frame = query(
        db_path,
        "SELECT DISTINCT ts FROM heatmap_cells WHERE exchange = ? AND symbol = ? "
        "AND params_hash = ? AND ts >= ? ORDER BY ts LIMIT 2",
        [exchange, symbol, params_hash, _param(since or datetime(1970, 1, 1, tzinfo=UTC))],
    )
    if frame.height < 2:
        return None
    gap = frame["ts"][1] - frame["ts"][0]
    return gap if isinstance(gap, timedelta) else None


def heatmap_grid_cells(
    db_path: Path,
    exchange: str,
    symbol: str,
    params_hash: str,
    *,
    start: datetime,
    end: datetime,
    time_step: timedelta,
    columns: int,
    p0: float,
    price_step: float,
    rows: int,
    tolerance: float,
    bands: bool = False,
) -> pl.DataFrame:
    """Return one model run's heatmap aggregated in the warehouse to a display grid: column
    ``i`` = ``(ts - start) // time_step``, row ``j`` = ``(price - p0) // price_step``; price
    buckets merged into a cell are summed, time buckets merged keep their maximum. Columns:
    i, j, long_usd, short_usd (``bands=True``: from heatmap_band_cells, with a band column
    first, NULL for the total over the bands). Only cells inside the grid with a positive
    value.

    Examples
    --------
    >>> heatmap_grid_cells(db, "binance", "BTCUSDT", "ab12", start=t0, end=t1,
    ...     time_step=timedelta(hours=1), columns=168, p0=90_000.0, price_step=100.0,
    ...     rows=110, tolerance=1e-4).columns  # doctest: +SKIP
    ['i', 'j', 'long_usd', 'short_usd']
    """
    table = "heatmap_band_cells" if bands else "heatmap_cells"
    band = "band, " if bands else ""
    # with bands, one scan also yields the total (band NULL) through grouping sets
    group = "GROUP BY GROUPING SETS ((band, ts, i, j), (ts, i, j))" if bands else "GROUP BY ALL"
    start_us = int(start.timestamp() * 1_000_000)
    step_us = time_step // timedelta(microseconds=1)
    hi = p0 + rows * price_step
    sql = f"""
        WITH c AS (
            SELECT {band}ts,
                   CAST(floor((epoch_us(ts) - ?) / ?) AS INTEGER) AS i,
                   CAST(floor((price - ? + ?) / ?) AS INTEGER) AS j,
                   long_usd, short_usd
            FROM {table}
            WHERE exchange = ? AND symbol = ? AND params_hash = ? AND ts >= ? AND ts < ?
              AND price >= ? AND price < ?
        ), s AS (
            SELECT {band}ts, i, j, sum(long_usd) AS l, sum(short_usd) AS s
            FROM c WHERE i BETWEEN 0 AND ? AND j BETWEEN 0 AND ? {group}
        )
        SELECT {band}i, j, max(l) AS long_usd, max(s) AS short_usd
        FROM s GROUP BY ALL HAVING max(l) > 0 OR max(s) > 0 ORDER BY {band}i, j
    """
    params: list[Any] = [
        start_us, step_us, p0, tolerance, price_step, exchange, symbol, params_hash,
        _param(start), _param(end), p0 - price_step, hi + price_step, columns - 1, rows - 1,
    ]  # fmt: skip
    return query(db_path, sql, params)


def band_heatmap_cells(
    db_path: Path,
    exchange: str,
    symbol: str,
    params_hash: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Return the heatmap cells per leverage filter group (band, ts, price, long_usd,
    short_usd) of one model run; empty for runs stored before the leverage views.

    Examples
    --------
    >>> band_heatmap_cells(db, "binance", "BTCUSDT", "ab12").columns  # doctest: +SKIP
    ['band', 'ts', 'price', 'long_usd', 'short_usd']
    """
    extra, params = _range_sql("ts", start, end)
    return query(
        db_path,
        "SELECT band, ts, price, long_usd, short_usd FROM heatmap_band_cells "
        f"WHERE exchange = ? AND symbol = ? AND params_hash = ?{extra} ORDER BY band, ts, price",
        [exchange, symbol, params_hash, *params],
    )


def latest_band_map(db_path: Path, exchange: str, symbol: str, params_hash: str) -> pl.DataFrame:
    """Return the newest liquidation map per leverage display band of one model run
    (band, as_of, price, long_usd, short_usd), ordered by band and price.

    Examples
    --------
    >>> latest_band_map(db, "binance", "BTCUSDT", "ab12").columns  # doctest: +SKIP
    ['band', 'as_of', 'price', 'long_usd', 'short_usd']
    """
    sql = latest_of_run_sql(
        "liquidation_map_bands", "band, as_of, price, long_usd, short_usd", "band, price"
    )
    return query(db_path, sql, [exchange, symbol, params_hash])


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


def latest_liquidation_map(
    db_path: Path, exchange: str, symbol: str, params_hash: str
) -> pl.DataFrame:
    """Return the newest liquidation-map snapshot of one model run, ordered by price.

    Columns: as_of, ref_price, price, long_usd, short_usd, long_cum_usd, short_cum_usd.

    Examples
    --------
    >>> latest_liquidation_map(db, "binance", "BTCUSDT", "ab12")  # doctest: +SKIP
    """
    sql = latest_of_run_sql(
        "liquidation_map",
        "as_of, ref_price, price, long_usd, short_usd, long_cum_usd, short_cum_usd",
        "price",
    )
    return query(db_path, sql, [exchange, symbol, params_hash])


def latest_key_levels(db_path: Path, exchange: str, symbol: str, params_hash: str) -> pl.DataFrame:
    """Return the newest key levels of one model run: as_of, side, rank, price, usd,
    distance_pct, and any further columns the table has (e.g. a cluster's price range).

    Ordered by side then rank.

    Examples
    --------
    >>> latest_key_levels(db, "binance", "BTCUSDT", "ab12")  # doctest: +SKIP
    """
    sql = latest_of_run_sql("key_levels", "* EXCLUDE (exchange, symbol, params_hash)", "side, rank")
    return query(db_path, sql, [exchange, symbol, params_hash])


def latest_scores(db_path: Path, exchange: str, symbol: str, params_hash: str) -> pl.DataFrame:
    """Return the newest backtest score per (method, side) of one model run.

    Columns: method, side, capture_auc, top_decile_overlap, log_corr, bars, realized_usd,
    start_ts, end_ts, realized_source, computed_at, and any further score columns the table
    has (e.g. top_decile_capture, near_key_level_share).

    Examples
    --------
    >>> latest_scores(db, "binance", "BTCUSDT", "ab12")  # doctest: +SKIP
    """
    return query(
        db_path,
        "SELECT * EXCLUDE (exchange, symbol, params_hash) FROM backtest_scores "
        "WHERE exchange = ? AND symbol = ? AND params_hash = ? "
        "QUALIFY row_number() OVER (PARTITION BY method, side ORDER BY computed_at DESC) = 1 "
        "ORDER BY side, method DESC",
        [exchange, symbol, params_hash],
    )


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


def predicted_liquidations(
    db_path: Path, exchange: str, symbol: str, params_hash: str
) -> pl.DataFrame:
    """Return the predicted liquidations (ts, long_usd, short_usd) of one model run by ts.

    Examples
    --------
    >>> predicted_liquidations(db, "binance", "BTCUSDT", "ab12").columns  # doctest: +SKIP
    ['ts', 'long_usd', 'short_usd']
    """
    return query(
        db_path,
        "SELECT ts, long_usd, short_usd FROM predicted_liquidations "
        "WHERE exchange = ? AND symbol = ? AND params_hash = ? ORDER BY ts",
        [exchange, symbol, params_hash],
    )


#: columns of :func:`latest_key_clusters` (the ``key_levels`` table since schema version 7)
KEY_CLUSTER_COLUMNS = (
    "as_of",
    "side",
    "rank",
    "price",
    "usd",
    "distance_pct",
    "price_low",
    "price_high",
    "is_nearest",
    "is_largest",
)


def latest_key_clusters(
    db_path: Path, exchange: str, symbol: str, params_hash: str
) -> pl.DataFrame:
    """Return the newest key levels of one model run with their cluster columns
    (`KEY_CLUSTER_COLUMNS`: price range, nearest and largest flags), by side then rank.

    Examples
    --------
    >>> latest_key_clusters(db, "all", "BTCUSDT", "ab12").columns[-2:]  # doctest: +SKIP
    ['is_nearest', 'is_largest']
    """
    sql = latest_of_run_sql("key_levels", ", ".join(KEY_CLUSTER_COLUMNS), "side, rank")
    return query(db_path, sql, [exchange, symbol, params_hash])


#: columns of :func:`latest_alerts`
ALERT_COLUMNS = (
    "exchange",
    "symbol",
    "side",
    "price",
    "price_low",
    "price_high",
    "usd",
    "distance_pct",
    "ref_price",
    "ts",
    "message",
    "run_id",
    "created_at",
)


def latest_alerts(db_path: Path, symbol: str | None = None) -> pl.DataFrame:
    """Return the alerts on the current model runs (view ``v_latest_alerts``), of one symbol
    or of all, ordered by symbol, exchange and distance from the price (`ALERT_COLUMNS`).

    Examples
    --------
    >>> latest_alerts(db, "BTCUSDT")["message"].to_list()  # doctest: +SKIP
    ['BTCUSDT: $412.3M of shorts at 64,350 (64,200-64,500), +2.1% from 63,020']
    """
    where, params = ("WHERE symbol = ? ", [symbol]) if symbol is not None else ("", [])
    return query(
        db_path,
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM v_latest_alerts {where}"
        "ORDER BY symbol, exchange, abs(distance_pct), side",
        params,
    )


#: periods of :func:`long_short_over_time`
LONG_SHORT_PERIODS = {"1h": "1 hour", "4h": "4 hours", "1d": "1 day"}


def long_short_over_time(
    db_path: Path, exchange: str, symbol: str, params_hash: str, every: str = "1h"
) -> pl.DataFrame:
    """Long vs short liquidation level size over time for one model run.

    Per heatmap time bucket, the alive long and short level USD summed over price; per period
    (``every`` = "1h", "4h" or "1d", aligned to midnight UTC) their mean over the period's
    buckets, and ``delta_usd = long_usd - short_usd``. Same rule as view ``v_long_short``.

    Returns
    -------
    pl.DataFrame
        ts (period start, UTC), long_usd, short_usd, delta_usd; sorted by ts.

    Examples
    --------
    >>> long_short_over_time(db, "all", "BTCUSDT", "ab12", every="4h").columns  # doctest: +SKIP
    ['ts', 'long_usd', 'short_usd', 'delta_usd']
    """
    if every not in LONG_SHORT_PERIODS:
        raise ValueError(f"every must be one of {', '.join(LONG_SHORT_PERIODS)}, got {every!r}")
    interval = LONG_SHORT_PERIODS[every]
    return query(
        db_path,
        "WITH per_bucket AS ("
        "SELECT ts, sum(long_usd) AS long_usd, sum(short_usd) AS short_usd FROM heatmap_cells "
        "WHERE exchange = ? AND symbol = ? AND params_hash = ? GROUP BY ts) "
        f"SELECT time_bucket(INTERVAL '{interval}', ts) AS ts, avg(long_usd) AS long_usd, "
        "avg(short_usd) AS short_usd, "
        # to the cent: a parallel sum's last bits vary, which would show as 1e-9 USD deltas
        "round(avg(long_usd) - avg(short_usd), 2) AS delta_usd "
        "FROM per_bucket GROUP BY 1 ORDER BY 1",
        [exchange, symbol, params_hash],
    )


def headline_run(db_path: Path, symbol: str) -> dict[str, Any] | None:
    """The current run a symbol's alerts come from: among the symbol's current runs (one per
    exchange, see ``v_latest_run``), the newest, preferring ``all`` (every exchange summed) on
    a tie. Keys: exchange, params_hash, price_step, computed_at; None without any run.

    Examples
    --------
    >>> headline_run(db, "BTCUSDT")["exchange"]  # doctest: +SKIP
    'all'
    """
    frame = query(
        db_path,
        "SELECT exchange, params_hash, price_step, computed_at FROM v_latest_run "
        "WHERE symbol = ? ORDER BY computed_at DESC, exchange = 'all' DESC, exchange LIMIT 1",
        [symbol],
    )
    return frame.row(0, named=True) if frame.height else None
