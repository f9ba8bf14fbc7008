"""The canonical model input: one row per trade-price bar with open interest.

Conventions
-----------
``ts`` is the bar's open (UTC). ``oi_usd`` / ``oi_base`` are the open interest *at the bar's open
instant* (the archive's metrics convention: the value at ``create_time``), null between OI samples.
A source that stamps OI at the bar's close (e.g. an aggregated 4h file) must shift it one bar later.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "BARS_SCHEMA",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "as_model_input",
    "model_input",
    "utc_series",
    "utc_ts",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "oi_usd")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "mark_high",
    "mark_low",
    "volume",
    "taker_buy_volume",
    "oi_base",
)

#: Schema of `model_input`'s output. ``oi_usd``/``oi_base`` are forward-filled (null before the
#: first sample); ``oi_observed`` is True on the bars where a fresh OI sample was present.
BARS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "mark_high": pl.Float64(),
    "mark_low": pl.Float64(),
    "volume": pl.Float64(),
    "taker_buy_volume": pl.Float64(),
    "oi_usd": pl.Float64(),
    "oi_base": pl.Float64(),
    "oi_observed": pl.Boolean(),
}

_PRICES = ("open", "high", "low", "close")


def utc_ts(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its ``ts`` column as UTC microseconds (naive = UTC).

    Examples
    --------
    >>> from datetime import datetime
    >>> utc_ts(pl.DataFrame({"ts": [datetime(2024, 1, 1)]})).schema["ts"]
    Datetime(time_unit='us', time_zone='UTC')
    """
    dtype = frame.schema["ts"]
    if not isinstance(dtype, pl.Datetime):
        raise ValueError(f"bars.ts must be a datetime column, got {dtype}")
    ts = pl.col("ts")
    ts = (
        ts.dt.replace_time_zone("UTC")
        if dtype.time_zone is None
        else ts.dt.convert_time_zone("UTC")
    )
    return frame.with_columns(ts.dt.cast_time_unit("us"))


def _positive_or_null(name: str) -> pl.Expr:
    col = pl.col(name).cast(pl.Float64)
    return pl.when(col.is_finite() & (col > 0)).then(col).otherwise(None).alias(name)


def model_input(bars: pl.DataFrame) -> pl.DataFrame:
    """Validate and normalize a bars frame into `BARS_SCHEMA`.

    Sorts by ``ts`` and keeps the first row of duplicate timestamps (input order); any bar
    interval works. OI <= 0 or non-finite is treated as missing. ``oi_observed`` marks the bars
    with a fresh sample, then ``oi_usd``/``oi_base`` are forward-filled. Absent ``oi_base`` is
    derived as ``oi_usd / open`` at each sample; absent or null ``mark_high``/``mark_low`` fall back
    to ``high``/``low``; absent ``volume``/``taker_buy_volume`` are null. O(n log n) (the sort).

    Parameters
    ----------
    bars
        Columns ts (datetime; naive = UTC), open, high, low, close, oi_usd, optional
        mark_high, mark_low, volume, taker_buy_volume, oi_base. Other columns are dropped.

    Returns
    -------
    pl.DataFrame
        Exactly the columns of `BARS_SCHEMA`, sorted by ts, unique ts.

    Raises
    ------
    ValueError
        On missing columns, a non-datetime ts, or null/non-positive/non-finite prices.

    Examples
    --------
    >>> from datetime import datetime
    >>> raw = pl.DataFrame({"ts": [datetime(2024, 1, 1, 0, 5), datetime(2024, 1, 1)],
    ...     "open": [10.0, 10.0], "high": [11.0, 11.0], "low": [9.0, 9.0],
    ...     "close": [10.0, 10.0], "oi_usd": [None, 1000.0]})
    >>> model_input(raw).select("oi_usd", "oi_base", "oi_observed", "mark_low").rows()
    [(1000.0, 100.0, True, 9.0), (1000.0, 100.0, False, 9.0)]
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars is missing required column(s): {', '.join(missing)}")
    frame = utc_ts(bars)
    present = [c for c in OPTIONAL_COLUMNS if c in frame.columns]
    frame = frame.select(
        "ts",
        *[pl.col(c).cast(pl.Float64) for c in (*_PRICES, "oi_usd")],
        *[pl.col(c).cast(pl.Float64) for c in present],
    )
    if frame.get_column("ts").null_count():
        raise ValueError("bars.ts contains nulls")
    bad = frame.select(
        pl.any_horizontal(
            ~(pl.col(c).is_finite() & (pl.col(c) > 0)).fill_null(True) for c in _PRICES
        )
        .sum()
        .alias("n")
    ).item()
    if bad:
        raise ValueError(f"bars has {bad} row(s) with null, non-finite or non-positive prices")
    frame = frame.sort("ts", maintain_order=True).unique("ts", keep="first", maintain_order=True)
    for name, fallback in (("mark_high", "high"), ("mark_low", "low")):
        if name in frame.columns:
            col = pl.col(name)
            good = col.is_finite() & (col > 0)
            frame = frame.with_columns(
                pl.when(good).then(col).otherwise(pl.col(fallback)).alias(name)
            )
        else:
            frame = frame.with_columns(pl.col(fallback).alias(name))
    for name in ("volume", "taker_buy_volume"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(name))
    frame = frame.with_columns(_positive_or_null("oi_usd"))
    if "oi_base" in frame.columns:
        frame = frame.with_columns(_positive_or_null("oi_base"))
        frame = frame.with_columns(
            pl.coalesce("oi_base", pl.col("oi_usd") / pl.col("open")).alias("oi_base"),
            pl.coalesce("oi_usd", pl.col("oi_base") * pl.col("open")).alias("oi_usd"),
        )
    else:
        frame = frame.with_columns((pl.col("oi_usd") / pl.col("open")).alias("oi_base"))
    frame = frame.with_columns(pl.col("oi_base").is_not_null().alias("oi_observed"))
    frame = frame.with_columns(pl.col("oi_usd").forward_fill(), pl.col("oi_base").forward_fill())
    return frame.select([pl.col(c).cast(t) for c, t in BARS_SCHEMA.items()])


def as_model_input(bars: pl.DataFrame) -> pl.DataFrame:
    """``bars`` when already `model_input` output (UTC ``ts``, sorted, unique, with
    ``oi_observed``), else `model_input(bars)`: the model's building blocks call it on
    their input so a normalized frame is not normalized twice.

    Examples
    --------
    >>> from datetime import datetime
    >>> raw = pl.DataFrame({"ts": [datetime(2024, 1, 1)], "open": 1.0, "high": 1.0,
    ...                     "low": 1.0, "close": 1.0, "oi_usd": 5.0})
    >>> norm = as_model_input(raw)
    >>> as_model_input(norm) is norm, norm["oi_observed"].to_list()
    (True, [True])
    """
    if "oi_observed" in bars.columns and bars.schema.get("ts") == BARS_SCHEMA["ts"]:
        ts = bars.get_column("ts")
        if ts.is_sorted() and ts.n_unique() == bars.height:
            return bars
    return model_input(bars)


def utc_series(name: str, micros: npt.NDArray[np.int64]) -> pl.Series:
    """A UTC datetime series (microseconds) named ``name`` from epoch microseconds.

    Examples
    --------
    >>> utc_series("ts", np.array([0], dtype=np.int64)).to_list()[0].isoformat()
    '1970-01-01T00:00:00+00:00'
    """
    return (
        pl.Series(name, micros, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
