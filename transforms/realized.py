"""Realized liquidations bucketed onto the bars' time grid (for the backtest)."""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.bars import model_input, utc_ts

__all__ = ["REALIZED_SCHEMA", "realized_per_bar"]

REALIZED_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
}

_SIDES = {"long": "long", "short": "short"}


def _as_utc(frame: pl.DataFrame) -> pl.DataFrame:
    dtype = frame.schema["ts"]
    if dtype == pl.String:
        frame = frame.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us"))
    elif dtype.is_integer():
        frame = frame.with_columns(pl.from_epoch("ts", time_unit="ms"))
    return utc_ts(frame)


def realized_per_bar(events_or_bars: pl.DataFrame, bars: pl.DataFrame) -> pl.DataFrame:
    """Sum realized liquidations per bar of ``bars``.

    Accepts per-event rows (``ts, side, usd``; side "long"/"short", any case: "long" = a long
    position was liquidated) or per-bar rows (``ts, long_usd, short_usd``). ``ts`` may be a UTC
    datetime (naive = UTC), an ISO-8601 string or epoch milliseconds. A row at ``t`` belongs to
    the bar with ``ts <= t < next ts``; the last bar spans the median bar interval. Rows outside
    the bars are dropped. O((n + e) log n).

    Parameters
    ----------
    events_or_bars
        Realized liquidations, per event or per bar.
    bars
        The bars defining the grid (only ``ts`` is used, but the frame must be valid bars).

    Returns
    -------
    pl.DataFrame
        `REALIZED_SCHEMA`, one row per (unique, sorted) bar; 0 where nothing was liquidated.

    Examples
    --------
    >>> from datetime import datetime
    >>> bars = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, m) for m in (0, 5, 10)],
    ...     "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "oi_usd": 1.0})
    >>> ev = pl.DataFrame({"ts": ["2024-01-01T00:04:59Z", "2024-01-01T00:05:00Z",
    ...     "2024-01-01T00:14:00Z", "2024-01-01T00:15:00Z"],
    ...     "side": ["long", "SHORT", "long", "long"], "usd": [1.0, 2.0, 3.0, 4.0]})
    >>> realized_per_bar(ev, bars).select("long_usd", "short_usd").rows()
    [(1.0, 0.0), (0.0, 2.0), (3.0, 0.0)]
    """
    cols = set(events_or_bars.columns)
    if {"ts", "long_usd", "short_usd"} <= cols:
        frame = _as_utc(events_or_bars.select("ts", "long_usd", "short_usd"))
        frame = frame.select(
            "ts",
            pl.col("long_usd").cast(pl.Float64).fill_null(0.0),
            pl.col("short_usd").cast(pl.Float64).fill_null(0.0),
        )
    elif {"ts", "side", "usd"} <= cols:
        frame = _as_utc(events_or_bars.select("ts", "side", "usd"))
        side = pl.col("side").cast(pl.String).str.to_lowercase().str.strip_chars()
        unknown = frame.filter(~side.is_in(list(_SIDES))).height
        if unknown:
            raise ValueError(f"{unknown} realized row(s) have a side other than long/short")
        usd = pl.col("usd").cast(pl.Float64).fill_null(0.0)
        frame = frame.select(
            "ts",
            pl.when(side == "long").then(usd).otherwise(0.0).alias("long_usd"),
            pl.when(side == "short").then(usd).otherwise(0.0).alias("short_usd"),
        )
    else:
        raise ValueError(
            "realized data needs columns ts, side, usd (per event) or ts, long_usd, short_usd "
            f"(per bar); got {sorted(cols)}"
        )
    grid = model_input(bars).get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    n = grid.shape[0]
    if n == 0:
        return pl.DataFrame(schema=REALIZED_SCHEMA)
    step = int(np.median(np.diff(grid))) if n > 1 else 0
    t = frame.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    idx = np.searchsorted(grid, t, side="right") - 1
    ok = (idx >= 0) & ((idx < n - 1) | (t < grid[-1] + step))
    long_ = np.bincount(idx[ok], weights=frame.get_column("long_usd").to_numpy()[ok], minlength=n)
    short = np.bincount(idx[ok], weights=frame.get_column("short_usd").to_numpy()[ok], minlength=n)
    ts = pl.Series("ts", grid, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.DataFrame([ts, pl.Series("long_usd", long_), pl.Series("short_usd", short)])
