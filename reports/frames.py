"""Pure polars aggregation from warehouse rows to display resolution (no I/O).

The charts in :mod:`reports.charts` take the frames built here: a heatmap grid of at most
``max_columns`` time columns x ``max_rows`` price rows, a price path at the same time step,
a liquidation map of at most ``max_bars`` price bars and a small sparkline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

#: time-column widths the heatmap may use, finest first
NICE_TIME_STEPS = tuple(
    timedelta(minutes=m)
    for m in (1, 5, 15, 30, 60, 120, 180, 240, 360, 480, 720, 1440, 2880, 10080)
)
#: integer multiples of the model's price step the heatmap may use
NICE_MULTIPLES = (1, 2, 4, 5, 10, 20, 25, 40, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000)

MAX_COLUMNS = 300
MAX_ROWS = 200

#: columns of :attr:`HeatmapGrid.cells`
GRID_SCHEMA = pl.Schema(
    {
        "i": pl.Int32(),
        "j": pl.Int32(),
        "long_usd": pl.Float64(),
        "short_usd": pl.Float64(),
    }
)
#: columns of :func:`path_at_step`
PATH_SCHEMA = pl.Schema(
    {
        "ts": pl.Datetime("us", "UTC"),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
    }
)
#: columns of :func:`realized_at_step`
REALIZED_SCHEMA = pl.Schema(
    {
        "ts": pl.Datetime("us", "UTC"),
        "side": pl.String(),
        "usd": pl.Float64(),
        "price": pl.Float64(),
    }
)
#: columns of :func:`aggregate_map`
MAP_SCHEMA = pl.Schema(
    {
        "p0": pl.Float64(),
        "p1": pl.Float64(),
        "long_usd": pl.Float64(),
        "short_usd": pl.Float64(),
        "long_cum_usd": pl.Float64(),
        "short_cum_usd": pl.Float64(),
    }
)


@dataclass(frozen=True)
class HeatmapGrid:
    """A heatmap at display resolution.

    ``cells`` holds one row per non-empty cell: time column ``i`` (cell ``i`` starts at
    ``t0 + i * time_step``), price row ``j`` (cell ``j`` spans ``[p0 + j * price_step,
    p0 + (j + 1) * price_step)``), and the alive long/short USD in the cell (sum over the
    price buckets it merges, max over the time buckets it merges).
    """

    cells: pl.DataFrame
    t0: datetime
    time_step: timedelta
    columns: int
    p0: float
    price_step: float
    rows: int

    @property
    def price_hi(self) -> float:
        """Upper edge of the top price row."""
        return self.p0 + self.rows * self.price_step

    @property
    def t_end(self) -> datetime:
        """End of the last time column."""
        return self.t0 + self.columns * self.time_step


def choose_time_step(
    start: datetime,
    end: datetime,
    *,
    min_step: timedelta = timedelta(minutes=1),
    max_columns: int = MAX_COLUMNS,
) -> timedelta:
    """Return the finest nice time step >= ``min_step`` giving at most ``max_columns`` columns.

    Examples
    --------
    >>> from datetime import datetime
    >>> choose_time_step(datetime(2024, 1, 1), datetime(2024, 1, 8))
    datetime.timedelta(seconds=3600)
    """
    span = end - start
    for step in NICE_TIME_STEPS:
        if step >= min_step and math.ceil(span / step) <= max_columns:
            return step
    days = math.ceil(span / timedelta(days=max_columns))
    return max(timedelta(days=days), min_step)


def choose_price_step(lo: float, hi: float, base_step: float, *, max_rows: int = MAX_ROWS) -> float:
    """Return the smallest nice multiple of ``base_step`` giving at most ``max_rows`` rows.

    Examples
    --------
    >>> choose_price_step(50_000.0, 70_000.0, 50.0)
    100.0
    """
    if base_step <= 0 or not math.isfinite(base_step):
        raise ValueError(f"price step must be positive, got {base_step}")
    for m in NICE_MULTIPLES:
        if math.ceil((hi - lo) / (base_step * m)) <= max_rows:
            return base_step * m
    return base_step * math.ceil((hi - lo) / (base_step * max_rows))


def infer_step(values: pl.Series) -> float | None:
    """Return the smallest positive gap between distinct sorted values, or None.

    Examples
    --------
    >>> infer_step(pl.Series([10.0, 12.5, 15.0, 20.0]))
    2.5
    """
    gaps = values.unique().sort().diff().drop_nulls()
    gaps = gaps.filter(gaps > 0)
    if gaps.len() == 0:
        return None
    value = gaps.min()
    return float(value) if isinstance(value, int | float) else None


def price_window(
    path: pl.DataFrame, *, pad_range: float = 0.25, pad_price: float = 0.04
) -> tuple[float, float]:
    """Return the price range to show: the path's low..high padded by the larger of
    ``pad_range`` x its range and ``pad_price`` x its mid price.

    Examples
    --------
    >>> price_window(pl.DataFrame({"low": [95.0], "high": [105.0]}))
    (92.5, 107.5)
    """
    lo = float(path["low"].min())  # type: ignore[arg-type]
    hi = float(path["high"].max())  # type: ignore[arg-type]
    pad = max(pad_range * (hi - lo), pad_price * (hi + lo) / 2)
    return lo - pad, hi + pad


def aggregate_heatmap(
    cells: pl.DataFrame,
    *,
    start: datetime,
    end: datetime,
    price_lo: float,
    price_hi: float,
    base_step: float | None = None,
    max_columns: int = MAX_COLUMNS,
    max_rows: int = MAX_ROWS,
) -> HeatmapGrid:
    """Aggregate sparse heatmap cells (ts, price, long_usd, short_usd) to display resolution.

    Price buckets merged into one row are summed (notional is additive over price); time
    buckets merged into one column keep their maximum (alive notional is a level, not a flow).
    Cells outside ``[start, end)`` x ``[price_lo, price_hi)`` are dropped.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> cells = pl.DataFrame({"ts": [t, t + timedelta(minutes=15)], "price": [100.0, 101.0],
    ...                       "long_usd": [5.0, 7.0], "short_usd": [0.0, 1.0]})
    >>> g = aggregate_heatmap(cells, start=t, end=t + timedelta(hours=1), price_lo=99.0,
    ...                       price_hi=103.0, base_step=1.0)
    >>> g.cells["long_usd"].to_list()
    [5.0, 7.0]
    """
    src_t = infer_step(cells["ts"].dt.epoch("us").cast(pl.Float64)) if cells.height else None
    min_step = timedelta(microseconds=src_t) if src_t else timedelta(minutes=1)
    step_t = choose_time_step(start, end, min_step=min_step, max_columns=max_columns)
    base = base_step or (infer_step(cells["price"]) if cells.height else None) or 1.0
    step_p = choose_price_step(price_lo, price_hi, base, max_rows=max_rows)
    p0 = math.floor(price_lo / step_p) * step_p
    rows = max(1, math.ceil((price_hi - p0) / step_p))
    columns = max(1, math.ceil((end - start) / step_t))
    step_us = step_t // timedelta(microseconds=1)
    start_us = int(pl.Series([start]).dt.epoch("us")[0])
    grid = (
        cells.lazy()
        .with_columns(
            i=((pl.col("ts").dt.epoch("us") - start_us) // step_us).cast(pl.Int32),
            # half a base step of tolerance against float noise in stored bucket prices
            j=((pl.col("price") - p0 + base * 1e-6) / step_p).floor().cast(pl.Int32),
        )
        .filter(pl.col("i").is_between(0, columns - 1) & pl.col("j").is_between(0, rows - 1))
        .group_by("ts", "i", "j")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .group_by("i", "j")
        .agg(pl.col("long_usd").max(), pl.col("short_usd").max())
        .filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0))
        .sort("i", "j")
        .select(pl.col(name).cast(dtype) for name, dtype in GRID_SCHEMA.items())
        .collect()
    )
    return HeatmapGrid(
        cells=grid,
        t0=start,
        time_step=step_t,
        columns=columns,
        p0=p0,
        price_step=step_p,
        rows=rows,
    )


def path_at_step(
    path: pl.DataFrame, step: timedelta, start: datetime | None = None
) -> pl.DataFrame:
    """Resample 1m bars (ts, open, high, low, close) to OHLC bars of ``step`` (columns
    :data:`PATH_SCHEMA`), aligned to ``start`` when given.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> bars = pl.DataFrame({"ts": [t, t + timedelta(minutes=1)], "open": [1.0, 2.0],
    ...                      "high": [2.0, 4.0], "low": [0.5, 1.5], "close": [2.0, 3.0]})
    >>> path_at_step(bars, timedelta(minutes=5))["high"].to_list()
    [4.0]
    """
    if path.height == 0:
        return pl.DataFrame(schema=PATH_SCHEMA)
    step_us = step // timedelta(microseconds=1)
    origin = int(pl.Series([start]).dt.epoch("us")[0]) if start is not None else 0
    bucket = (pl.col("ts").dt.epoch("us") - origin) // step_us * step_us + origin
    return (
        path.lazy()
        .sort("ts")
        .with_columns(bucket=bucket)
        .group_by("bucket")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
        )
        .sort("bucket")
        .with_columns(ts=pl.from_epoch("bucket", time_unit="us").dt.replace_time_zone("UTC"))
        .select(pl.col(name).cast(dtype) for name, dtype in PATH_SCHEMA.items())
        .collect()
    )


def aggregate_map(
    liq_map: pl.DataFrame,
    *,
    price_lo: float | None = None,
    price_hi: float | None = None,
    max_bars: int = 120,
) -> pl.DataFrame:
    """Merge a liquidation-map snapshot into at most ``max_bars`` price bars.

    Per-bucket USD is summed; cumulative curves keep the value farthest from the reference
    price inside each bar (the curves grow away from price). Columns: :data:`MAP_SCHEMA`.

    Examples
    --------
    >>> m = pl.DataFrame({"price": [99.0, 100.0, 101.0, 102.0], "long_usd": [3.0, 1.0, 0, 0],
    ...                   "short_usd": [0, 0, 2.0, 4.0], "long_cum_usd": [4.0, 1.0, 0, 0],
    ...                   "short_cum_usd": [0, 0, 2.0, 6.0]})
    >>> aggregate_map(m, max_bars=2)["long_usd"].to_list()
    [4.0, 0.0]
    """
    if liq_map.height == 0:
        return pl.DataFrame(schema=MAP_SCHEMA)
    frame = liq_map
    if price_lo is not None:
        frame = frame.filter(pl.col("price") >= price_lo)
    if price_hi is not None:
        frame = frame.filter(pl.col("price") < price_hi)
    if frame.height == 0:
        return pl.DataFrame(schema=MAP_SCHEMA)
    base = infer_step(frame["price"]) or 1.0
    lo = float(frame["price"].min())  # type: ignore[arg-type]
    hi = float(frame["price"].max()) + base  # type: ignore[arg-type]
    step = choose_price_step(lo, hi, base, max_rows=max_bars)
    return (
        frame.lazy()
        .with_columns(p0=((pl.col("price") + base * 1e-6) / step).floor() * step)
        .group_by("p0")
        .agg(
            pl.col("long_usd").sum(),
            pl.col("short_usd").sum(),
            pl.col("long_cum_usd").max(),
            pl.col("short_cum_usd").max(),
        )
        .with_columns(p1=pl.col("p0") + step)
        .sort("p0")
        .select(pl.col(name).cast(dtype) for name, dtype in MAP_SCHEMA.items())
        .collect()
    )


def sparkline(path: pl.DataFrame, *, points: int = 120) -> pl.DataFrame:
    """Downsample 1m bars to about ``points`` closes (columns ts, close) for a sparkline.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> bars = pl.DataFrame({"ts": [t + timedelta(minutes=k) for k in range(600)],
    ...                      "close": [float(k) for k in range(600)]})
    >>> sparkline(bars, points=10).height <= 10
    True
    """
    if path.height == 0:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "close": pl.Float64})
    first, last = path["ts"].min(), path["ts"].max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    minutes = max(1, math.ceil((last - first).total_seconds() / 60 / points))
    step = timedelta(minutes=minutes)
    return (
        path.sort("ts")
        .group_by_dynamic("ts", every=step)
        .agg(pl.col("close").last())
        .select("ts", "close")
    )


def realized_at_step(
    realized: pl.DataFrame,
    path: pl.DataFrame,
    step: timedelta,
    start: datetime,
    *,
    top: int = 150,
) -> pl.DataFrame:
    """Place realized liquidations (ts, side, usd) on the heatmap: summed per time column and
    side, drawn at the column's low (longs) or high (shorts) from the 1m bars ``path``; only
    the ``top`` largest are kept. Columns: ts, side, usd, price.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> bars = pl.DataFrame({"ts": [t, t + timedelta(minutes=1)], "open": [1.0, 2.0],
    ...                      "high": [2.0, 4.0], "low": [0.5, 1.5], "close": [2.0, 3.0]})
    >>> liq = pl.DataFrame({"ts": [t, t + timedelta(minutes=1)], "side": ["long", "long"],
    ...                     "usd": [10.0, 5.0]})
    >>> realized_at_step(liq, bars, timedelta(minutes=5), t).row(0)[1:]
    ('long', 15.0, 0.5)
    """
    schema = REALIZED_SCHEMA
    if realized.height == 0 or path.height == 0:
        return pl.DataFrame(schema=schema)
    bars = path_at_step(path, step, start)
    step_us = step // timedelta(microseconds=1)
    origin = int(pl.Series([start]).dt.epoch("us")[0])
    bucket = (pl.col("ts").dt.epoch("us") - origin) // step_us * step_us + origin
    return (
        realized.lazy()
        .filter(pl.col("side").is_in(["long", "short"]) & (pl.col("usd") > 0))
        .with_columns(ts=pl.from_epoch(bucket, time_unit="us").dt.replace_time_zone("UTC"))
        .group_by("ts", "side")
        .agg(pl.col("usd").sum())
        .join(bars.lazy().select("ts", "low", "high"), on="ts", how="inner")
        .with_columns(
            price=pl.when(pl.col("side") == "long").then(pl.col("low")).otherwise(pl.col("high"))
        )
        .sort("usd", descending=True)
        .head(top)
        .sort("ts")
        .select(pl.col(k).cast(v) for k, v in schema.items())
        .collect()
    )
