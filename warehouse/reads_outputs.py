"""What the pages read of a model run's stored outputs.

The heatmap cells (per bucket and on a display grid), the band cells and maps, the newest
liquidation map, key levels, scores, key-level clusters, alerts, the predicted liquidations and
the long/short level sizes over time of one run (``params_hash``), and the headline run of a
symbol. The symbols, spans, price path, lineage and exchanges the pages read are in
:mod:`warehouse.reads_report`, whose :func:`~warehouse.reads_report.query` these share (one
read-only connection per site build: :func:`warehouse.reads_report.one_connection`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.reads import latest_of_run_sql
from warehouse.reads_report import _param, _range_sql, query


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
    fine: bool = False,
) -> pl.DataFrame:
    """Return one model run's heatmap aggregated in the warehouse to a display grid: column
    ``i`` = ``(ts - start) // time_step``, row ``j`` = ``(price - p0) // price_step``; price
    buckets merged into a cell are summed, time buckets merged keep their maximum. Columns:
    i, j, long_usd, short_usd (``bands=True``: from heatmap_band_cells, with a band column
    first, NULL for the total over the bands). Only cells inside the grid with a positive
    value. ``fine=True``: from the fine cells (heatmap_fine_cells, heatmap_fine_band_cells).

    Examples
    --------
    >>> heatmap_grid_cells(db, "binance", "BTCUSDT", "ab12", start=t0, end=t1,
    ...     time_step=timedelta(hours=1), columns=168, p0=90_000.0, price_step=100.0,
    ...     rows=110, tolerance=1e-4).columns  # doctest: +SKIP
    ['i', 'j', 'long_usd', 'short_usd']
    """
    table = "heatmap_band_cells" if bands else "heatmap_cells"
    if fine:
        table = table.replace("heatmap_", "heatmap_fine_")
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


def fine_cells_extent(
    db_path: Path, exchange: str, symbol: str, params_hash: str
) -> tuple[datetime, float, float] | None:
    """Return the first time bucket and the lowest and highest price bucket of one model run's
    fine cells (heatmap_fine_cells), or None without any.

    Examples
    --------
    >>> fine_cells_extent(db, "binance", "BTCUSDT", "ab12")  # doctest: +SKIP
    (datetime.datetime(2024, 1, 6, 22, 0), 90120.0, 94360.0)
    """
    frame = query(
        db_path,
        "SELECT min(ts) AS t, min(price) AS lo, max(price) AS hi FROM heatmap_fine_cells "
        "WHERE exchange = ? AND symbol = ? AND params_hash = ?",
        [exchange, symbol, params_hash],
    )
    t, lo, hi = frame.row(0)
    if t is None or lo is None or hi is None:
        return None
    return t, float(lo), float(hi)


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
