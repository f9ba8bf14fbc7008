"""Pure polars aggregation from warehouse rows to display resolution (no I/O).

The charts in :mod:`reports.charts` take the frames built here: a heatmap grid of at most
``max_columns`` time columns x ``max_rows`` price rows, a price path at the same time step,
a liquidation map of at most ``max_bars`` price bars and a small sparkline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from transforms.display import FINEST_DISPLAY_STEP

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
    source_step: timedelta | None = None,
) -> HeatmapGrid:
    """Aggregate sparse heatmap cells (ts, price, long_usd, short_usd) to display resolution.

    Price buckets merged into one row are summed (notional is additive over price); time
    buckets merged into one column keep their maximum (alive notional is a level, not a flow).
    Cells outside ``[start, end)`` x ``[price_lo, price_hi)`` are dropped. Every column other
    than ts and price is aggregated the same way (e.g. per-leverage-group columns).

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
    values = [c for c in cells.columns if c not in ("ts", "price")] or ["long_usd", "short_usd"]
    src_t = infer_step(cells["ts"].dt.epoch("us").cast(pl.Float64)) if cells.height else None
    min_step = timedelta(microseconds=src_t) if src_t else timedelta(minutes=1)
    if source_step is not None:
        min_step = source_step
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
        .agg(pl.col(values).sum())
        .group_by("i", "j")
        .agg(pl.col(values).max())
        .filter(pl.any_horizontal(pl.col(v) > 0 for v in values))
        .sort("i", "j")
        .select(
            pl.col("i").cast(pl.Int32), pl.col("j").cast(pl.Int32), pl.col(values).cast(pl.Float64)
        )
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


#: leverage filter groups of the heatmap data, in column order (see transforms.leverage_bands)
GROUP_KEYS = ("low", "medium", "high")


def wide_band_cells(cells: pl.DataFrame, band_cells: pl.DataFrame) -> pl.DataFrame:
    """Join the total heatmap cells (ts, price, long_usd, short_usd) with the per-group cells
    (band, ts, price, long_usd, short_usd) into one frame with columns ts, price, long_usd,
    short_usd, long_low, long_medium, long_high, short_low, short_medium, short_high
    (0 where a group has no cell). Without group cells, returns ``cells`` unchanged.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = datetime(2024, 1, 1)
    >>> tot = pl.DataFrame({"ts": [t], "price": [1.0], "long_usd": [3.0], "short_usd": [0.0]})
    >>> bands = pl.DataFrame({"band": ["low", "high"], "ts": [t, t], "price": [1.0, 1.0],
    ...                       "long_usd": [1.0, 2.0], "short_usd": [0.0, 0.0]})
    >>> wide_band_cells(tot, bands).select("long_low", "long_medium", "long_high").row(0)
    (1.0, 0.0, 2.0)
    """
    if band_cells.height == 0:
        return cells
    wide = [
        band_cells.filter(pl.col("band") == g).select(
            "ts",
            "price",
            pl.col("long_usd").alias(f"long_{g}"),
            pl.col("short_usd").alias(f"short_{g}"),
        )
        for g in GROUP_KEYS
    ]
    out = cells
    for part in wide:
        out = out.join(part, on=["ts", "price"], how="full", coalesce=True)
    value_cols = [c for c in out.columns if c not in ("ts", "price")]
    return out.with_columns(pl.col(value_cols).fill_null(0.0))


def aggregate_band_heatmap(
    cells: pl.DataFrame, band_cells: pl.DataFrame, **grid: Any
) -> HeatmapGrid:
    """:func:`aggregate_heatmap` of the total cells plus, from the per-group cells (band, ts,
    price, long_usd, short_usd), columns ``long_low`` .. ``short_high`` on the same grid (0
    where a group has no cell). ``grid`` are the keyword arguments of
    :func:`aggregate_heatmap`. Each group is aggregated on its own and joined on (i, j), so
    the cost stays at display resolution.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> tot = pl.DataFrame({"ts": [t], "price": [1.0], "long_usd": [3.0], "short_usd": [0.0]})
    >>> bands = pl.DataFrame({"band": ["low", "high"], "ts": [t, t], "price": [1.0, 1.0],
    ...                       "long_usd": [1.0, 2.0], "short_usd": [0.0, 0.0]})
    >>> g = aggregate_band_heatmap(tot, bands, start=t, end=t + timedelta(hours=1),
    ...                            price_lo=0.0, price_hi=2.0, base_step=1.0)
    >>> g.cells.select("long_usd", "long_low", "long_medium", "long_high").row(0)
    (3.0, 1.0, 0.0, 2.0)
    """
    src_t = infer_step(cells["ts"].dt.epoch("us").cast(pl.Float64)) if cells.height else None
    step = timedelta(microseconds=src_t) if src_t else None
    total = aggregate_heatmap(cells, source_step=step, **grid)
    if band_cells.height == 0:
        return total
    out = total.cells
    for g in GROUP_KEYS:
        part = band_cells.filter(pl.col("band") == g).drop("band")
        sub = aggregate_heatmap(part, source_step=step, **grid).cells
        out = out.join(
            sub.rename({"long_usd": f"long_{g}", "short_usd": f"short_{g}"}),
            on=["i", "j"],
            how="left",
        )
    filled = out.with_columns(pl.all().exclude("i", "j").fill_null(0.0))
    return HeatmapGrid(
        cells=filled,
        t0=total.t0,
        time_step=total.time_step,
        columns=total.columns,
        p0=total.p0,
        price_step=total.price_step,
        rows=total.rows,
    )


def grid_geometry(
    *,
    start: datetime,
    end: datetime,
    price_lo: float,
    price_hi: float,
    base_step: float,
    source_step: timedelta | None = None,
    max_columns: int = MAX_COLUMNS,
    max_rows: int = MAX_ROWS,
) -> HeatmapGrid:
    """The display grid :func:`aggregate_heatmap` would choose, without cells (fill them with
    :func:`with_cells`, e.g. from cells aggregated in the warehouse).

    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> g = grid_geometry(start=t, end=t + timedelta(days=7), price_lo=90.0, price_hi=110.0,
    ...                   base_step=0.1, max_columns=180, max_rows=110)
    >>> g.time_step, g.columns, g.price_step, g.rows
    (datetime.timedelta(seconds=3600), 168, 0.2, 100)
    """
    # never finer than the stored heatmap: its step at the page's start (read from the
    # warehouse), else the finest the model stores (`transforms.display.display_tiers_for`)
    step_t = choose_time_step(
        start, end, min_step=source_step or FINEST_DISPLAY_STEP, max_columns=max_columns
    )
    step_p = choose_price_step(price_lo, price_hi, base_step, max_rows=max_rows)
    p0 = math.floor(price_lo / step_p) * step_p
    return HeatmapGrid(
        cells=pl.DataFrame(schema=GRID_SCHEMA),
        t0=start,
        time_step=step_t,
        columns=max(1, math.ceil((end - start) / step_t)),
        p0=p0,
        price_step=step_p,
        rows=max(1, math.ceil((price_hi - p0) / step_p)),
    )


def with_cells(grid: HeatmapGrid, cells: pl.DataFrame, band_cells: pl.DataFrame) -> HeatmapGrid:
    """``grid`` with its cells: ``cells`` (i, j, long_usd, short_usd) and, when ``band_cells``
    (band, i, j, long_usd, short_usd) has rows, columns ``long_low`` .. ``short_high`` (0
    where a group has no cell).

    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> g = grid_geometry(start=t, end=t + timedelta(hours=1), price_lo=0.0, price_hi=2.0,
    ...                   base_step=1.0)
    >>> tot = pl.DataFrame({"i": [0], "j": [1], "long_usd": [3.0], "short_usd": [0.0]})
    >>> bands = pl.DataFrame({"band": ["low", "high"], "i": [0, 0], "j": [1, 1],
    ...                       "long_usd": [1.0, 2.0], "short_usd": [0.0, 0.0]})
    >>> with_cells(g, tot, bands).cells.select("long_low", "long_medium", "long_high").row(0)
    (1.0, 0.0, 2.0)
    """
    out = cells.select(
        pl.col("i").cast(pl.Int32), pl.col("j").cast(pl.Int32), "long_usd", "short_usd"
    )
    if band_cells.height:
        for g in GROUP_KEYS:
            part = band_cells.filter(pl.col("band") == g).select(
                pl.col("i").cast(pl.Int32),
                pl.col("j").cast(pl.Int32),
                pl.col("long_usd").alias(f"long_{g}"),
                pl.col("short_usd").alias(f"short_{g}"),
            )
            out = out.join(part, on=["i", "j"], how="left")
        out = out.with_columns(pl.all().exclude("i", "j").fill_null(0.0))
    return HeatmapGrid(
        cells=out,
        t0=grid.t0,
        time_step=grid.time_step,
        columns=grid.columns,
        p0=grid.p0,
        price_step=grid.price_step,
        rows=grid.rows,
    )


def sweeps(
    grid: HeatmapGrid, candles: pl.DataFrame, *, top: int = 12, min_share: float = 0.02
) -> pl.DataFrame:
    """Where price ran through a cluster: per heatmap column, the alive USD of the previous
    column in the price rows the candle traversed (longs between its low and the previous
    close, shorts between the previous close and its high). Keeps per side the ``top``
    largest sweeps above ``min_share`` of the largest column total. Columns: ts, side, usd,
    price (the candle's low for longs, high for shorts).

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> g = HeatmapGrid(pl.DataFrame({"i": [0], "j": [2], "long_usd": [9.0], "short_usd": [0.0]}),
    ...                 t, timedelta(hours=1), 2, 90.0, 1.0, 20)
    >>> c = pl.DataFrame({"ts": [t, t + timedelta(hours=1)], "open": [95.0, 95.0],
    ...     "high": [96.0, 96.0], "low": [94.0, 91.0], "close": [95.0, 93.0]})
    >>> sweeps(g, c).select("side", "usd", "price").rows()
    [('long', 9.0, 91.0)]
    """
    schema = REALIZED_SCHEMA
    if grid.cells.height == 0 or candles.height < 2:
        return pl.DataFrame(schema=schema)
    step_us = grid.time_step // timedelta(microseconds=1)
    t0_us = int(pl.Series([grid.t0]).dt.epoch("us")[0])
    cand = candles.sort("ts").with_columns(
        i=((pl.col("ts").dt.epoch("us") - t0_us) // step_us).cast(pl.Int32),
        prev=pl.col("close").shift(1),
    )
    prev_cells = grid.cells.select(
        (pl.col("i") + 1).alias("i"),
        "j",
        "long_usd",
        "short_usd",
        lo=grid.p0 + pl.col("j") * grid.price_step,
    ).with_columns(hi=pl.col("lo") + grid.price_step)
    joined = prev_cells.join(cand.drop_nulls("prev"), on="i", how="inner")
    longs = (
        joined.filter((pl.col("lo") >= pl.col("low")) & (pl.col("hi") <= pl.col("prev")))
        .group_by("ts", "low")
        .agg(pl.col("long_usd").sum().alias("usd"))
        .select("ts", pl.lit("long").alias("side"), "usd", pl.col("low").alias("price"))
    )
    shorts = (
        joined.filter((pl.col("hi") <= pl.col("high")) & (pl.col("lo") >= pl.col("prev")))
        .group_by("ts", "high")
        .agg(pl.col("short_usd").sum().alias("usd"))
        .select("ts", pl.lit("short").alias("side"), "usd", pl.col("high").alias("price"))
    )
    both = pl.concat([longs, shorts])
    per_col = grid.cells.group_by("i").agg((pl.col("long_usd") + pl.col("short_usd")).sum())
    biggest = float(per_col["long_usd"].max() or 0.0)  # type: ignore[arg-type]
    return (
        both.filter(pl.col("usd") > max(min_share * biggest, 0.0))
        .sort("usd", descending=True)
        .group_by("side", maintain_order=True)
        .head(top)
        .sort("ts", "side")
        .select(pl.col(k).cast(v) for k, v in schema.items())
    )
