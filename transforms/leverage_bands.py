"""Leverage bands for display: the liquidation map stacked by band and the heatmap filter.

The model gives every liquidation level a ``leverage`` (a fine density of values, not a few
tiers), so the site groups levels into bands:

* **display bands** (the map's stacks, as CoinGlass stacks by 10x/25x/50x/100x):
  ``<=10x``, ``10-25x``, ``25-50x``, ``50-100x``, ``>100x``; a band includes its upper edge.
* **filter groups** (the heatmap's all / high / medium / low switch, as Hyblock and
  Kingfisher filter): ``low`` <= 10x, ``medium`` 10-50x, ``high`` > 50x. Each group is a
  union of display bands, so the groups sum to the whole and every band sits in one group.

The heatmap and liquidation map are linear in the levels, so running them on the levels of
each band or group splits the totals exactly (:func:`band_heatmaps`, :func:`band_maps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from transforms.bars import utc_series
from transforms.heatmap import HEATMAP_SCHEMA, TimeTiers, heatmap
from transforms.levels import snapshot
from transforms.params import ModelParams

__all__ = [
    "BANDS",
    "BAND_HEATMAP_SCHEMA",
    "BAND_MAP_SCHEMA",
    "GROUPS",
    "Band",
    "band_expr",
    "band_heatmaps",
    "band_maps",
    "group_expr",
    "heatmap_from_bands",
]


@dataclass(frozen=True)
class Band:
    """A leverage band ``(low, high]`` (``low`` None: from 0; ``high`` None: unbounded)."""

    label: str
    low: float | None
    high: float | None

    def describe(self) -> str:
        """Human text of the band's edges.

        >>> GROUPS[1].describe()
        'over 10x up to 50x'
        """
        if self.low is None:
            return f"up to {self.high:g}x"
        if self.high is None:
            return f"over {self.low:g}x"
        return f"over {self.low:g}x up to {self.high:g}x"


#: display bands of the liquidation map, lowest leverage first (upper edge included)
BANDS: tuple[Band, ...] = (
    Band("<=10x", None, 10.0),
    Band("10-25x", 10.0, 25.0),
    Band("25-50x", 25.0, 50.0),
    Band("50-100x", 50.0, 100.0),
    Band(">100x", 100.0, None),
)
#: filter groups of the heatmap (unions of display bands)
GROUPS: tuple[Band, ...] = (
    Band("low", None, 10.0),
    Band("medium", 10.0, 50.0),
    Band("high", 50.0, None),
)

#: columns of :func:`band_heatmaps` (``band`` = a :data:`GROUPS` label)
BAND_HEATMAP_SCHEMA = pl.Schema(
    {
        "band": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "price": pl.Float64(),
        "long_usd": pl.Float64(),
        "short_usd": pl.Float64(),
    }
)
#: columns of :func:`band_maps` (``band`` = a :data:`BANDS` label)
BAND_MAP_SCHEMA = pl.Schema(
    {
        "band": pl.String(),
        "as_of": pl.Datetime("us", "UTC"),
        "price": pl.Float64(),
        "long_usd": pl.Float64(),
        "short_usd": pl.Float64(),
    }
)


def _label_expr(leverage: pl.Expr, bands: tuple[Band, ...]) -> pl.Expr:
    chain: Any = None
    for band in bands:
        if band.high is None:
            break
        cond = leverage <= band.high
        chain = (
            pl.when(cond).then(pl.lit(band.label))
            if chain is None
            else chain.when(cond).then(pl.lit(band.label))
        )
    last = bands[-1].label
    expr: pl.Expr = pl.lit(last) if chain is None else chain.otherwise(pl.lit(last))
    return expr.cast(pl.String)


def band_expr(leverage: str | pl.Expr = "leverage") -> pl.Expr:
    """Polars expression: the display band label (:data:`BANDS`) of a leverage column.

    Examples
    --------
    >>> df = pl.DataFrame({"leverage": [3.0, 10.0, 12.5, 50.0, 75.0, 125.0]})
    >>> df.select(band_expr()).to_series().to_list()
    ['<=10x', '<=10x', '10-25x', '25-50x', '50-100x', '>100x']
    """
    col = pl.col(leverage) if isinstance(leverage, str) else leverage
    return _label_expr(col, BANDS).alias("band")


def group_expr(leverage: str | pl.Expr = "leverage") -> pl.Expr:
    """Polars expression: the filter group (``low``, ``medium``, ``high``) of a leverage column.

    Examples
    --------
    >>> df = pl.DataFrame({"leverage": [5.0, 10.0, 20.0, 50.0, 50.5, 100.0]})
    >>> df.select(group_expr()).to_series().to_list()
    ['low', 'low', 'medium', 'medium', 'high', 'high']
    """
    col = pl.col(leverage) if isinstance(leverage, str) else leverage
    return _label_expr(col, GROUPS).alias("band")


def band_heatmaps(
    levels: pl.DataFrame,
    bars: pl.DataFrame,
    price_step: float,
    time_step: str | timedelta | TimeTiers,
    *,
    params: ModelParams | None = None,
    price_range: tuple[float, float] | None = None,
) -> pl.DataFrame:
    """Heatmap cells per filter group: `transforms.heatmap.heatmap` on each group's levels.

    Summed over the groups (`heatmap_from_bands`), the cells equal the heatmap of all levels.
    ``time_step`` and ``price_range`` as in `transforms.heatmap.heatmap`.

    Returns
    -------
    pl.DataFrame
        :data:`BAND_HEATMAP_SCHEMA`, sorted by band (low, medium, high), ts, price.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> from transforms.levels import liquidation_levels
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0]})
    >>> p = ModelParams(leverages=(5.0, 20.0), weights=(0.5, 0.5), price_step=1.0,
    ...                 turnover_half_life_hours=None, entry_points=1, leveraged_share=1.0,
    ...                 closed_before_liquidation=0.0)
    >>> hm = band_heatmaps(liquidation_levels(bars, p), bars, 1.0, "15m", params=p)
    >>> hm.group_by("band").agg(pl.col("long_usd").sum()).sort("band").rows()
    [('low', 500.0), ('medium', 500.0)]
    """
    labels = [g.label for g in GROUPS]
    tagged = levels.with_columns(
        group_expr().replace_strict(labels, list(range(len(labels))), return_dtype=pl.Int64)
    )
    cells = heatmap(
        tagged, bars, price_step, time_step, params=params, price_range=price_range, group="band"
    )
    return cells.with_columns(
        pl.col("band").replace_strict(list(range(len(labels))), labels, return_dtype=pl.String)
    ).select(pl.col(name).cast(dtype) for name, dtype in BAND_HEATMAP_SCHEMA.items())


def heatmap_from_bands(cells: pl.DataFrame) -> pl.DataFrame:
    """The heatmap of all levels from `band_heatmaps` cells: summed over the bands per
    ``(ts, price)`` (cheaper than a second heatmap pass over every level). O(C log C).

    Returns
    -------
    pl.DataFrame
        `transforms.heatmap.HEATMAP_SCHEMA`, sorted by ts then price.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = datetime(2024, 1, 1)
    >>> cells = pl.DataFrame({"band": ["low", "high"], "ts": [t, t], "price": [1.0, 1.0],
    ...                       "long_usd": [2.0, 3.0], "short_usd": [0.0, 1.0]})
    >>> heatmap_from_bands(cells).select("price", "long_usd", "short_usd").rows()
    [(1.0, 5.0, 1.0)]
    """
    return (
        cells.lazy()
        .group_by("ts", "price")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .sort("ts", "price")
        .select([pl.col(c).cast(t) for c, t in HEATMAP_SCHEMA.items()])
        .collect()
    )


def band_maps(
    levels: pl.DataFrame,
    *,
    bars: pl.DataFrame,
    price_step: float,
    params: ModelParams | None = None,
) -> pl.DataFrame:
    """Liquidation-map snapshot (at the last bar) per display band.

    Summed over the bands, ``long_usd`` and ``short_usd`` equal
    `transforms.heatmap.liquidation_map` of all levels, bucket by bucket.

    Returns
    -------
    pl.DataFrame
        :data:`BAND_MAP_SCHEMA`, sorted by band (lowest leverage first) then price.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> from transforms.levels import liquidation_levels
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0]})
    >>> p = ModelParams(leverages=(10.0, 25.0), weights=(0.5, 0.5), price_step=1.0,
    ...                 turnover_half_life_hours=None, entry_points=1, leveraged_share=1.0,
    ...                 closed_before_liquidation=0.0)
    >>> m = band_maps(liquidation_levels(bars, p), bars=bars, price_step=1.0, params=p)
    >>> m.select("band", "price", "long_usd").filter(pl.col("long_usd") > 0).rows()
    [('<=10x', 90.0, 500.0), ('10-25x', 96.0, 500.0)]
    """
    params = params or ModelParams()
    if levels.height == 0:
        return pl.DataFrame(schema=BAND_MAP_SCHEMA)
    snap = snapshot(levels, bars, None, params)  # one snapshot, split by band afterwards
    assert snap.index is not None
    order = {b.label: k for k, b in enumerate(BANDS)}
    cells = (
        pl.DataFrame(
            {
                "leverage": levels.get_column("leverage").to_numpy()[snap.index],
                "pb": np.floor(snap.price / price_step).astype(np.int64),
                "long": np.where(snap.side == 0, snap.usd, 0.0),
                "short": np.where(snap.side == 1, snap.usd, 0.0),
            }
        )
        .with_columns(band_expr())
        .group_by("band", "pb")
        .agg(pl.col("long").sum().alias("long_usd"), pl.col("short").sum().alias("short_usd"))
        .filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0))
        .with_columns(pl.col("band").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort("_o", "pb")
    )
    return cells.select(
        "band",
        utc_series("as_of", np.full(cells.height, snap.ts, dtype=np.int64)),
        (pl.col("pb").cast(pl.Float64) * price_step).alias("price"),
        "long_usd",
        "short_usd",
    ).select(pl.col(name).cast(dtype) for name, dtype in BAND_MAP_SCHEMA.items())
