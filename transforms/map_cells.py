"""The liquidation map's cells: a snapshot's alive levels summed per price bucket.

Shared by `transforms.heatmap.liquidation_map` and `transforms.levels.key_levels`; it imports
no other model module, so neither has to import the other's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from transforms.bars import utc_series

__all__ = ["LIQUIDATION_MAP_SCHEMA", "map_cells"]

_UTC = pl.Datetime("us", "UTC")

#: One snapshot. ``price`` is the bucket's lower edge; longs lie below ``ref_price`` and shorts
#: above; ``long_cum_usd`` sums longs from ``ref_price`` down to the bucket, ``short_cum_usd``
#: shorts from ``ref_price`` up to the bucket.
LIQUIDATION_MAP_SCHEMA: dict[str, pl.DataType] = {
    "as_of": _UTC,
    "ref_price": pl.Float64(),
    "price": pl.Float64(),
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
    "long_cum_usd": pl.Float64(),
    "short_cum_usd": pl.Float64(),
}


def map_cells(
    as_of_us: int,
    ref_price: float,
    side: npt.NDArray[np.int8],
    price: npt.NDArray[np.float64],
    usd: npt.NDArray[np.float64],
    price_step: float,
) -> pl.DataFrame:
    """The liquidation map of alive levels (``side`` 0 long / 1 short, liquidation ``price``,
    remaining ``usd``) at one moment: USD per price bucket (``floor(price / step)``), buckets
    without USD dropped; ``long_cum_usd`` cumulated from the top down, ``short_cum_usd`` from
    the bottom up. O(N log N).

    Returns
    -------
    pl.DataFrame
        `LIQUIDATION_MAP_SCHEMA`, sorted by price.

    Examples
    --------
    >>> m = map_cells(0, 100.0, np.array([0, 0, 1], dtype=np.int8),
    ...               np.array([90.5, 95.0, 110.0]), np.array([1.0, 2.0, 4.0]), 5.0)
    >>> m.select("price", "long_usd", "long_cum_usd", "short_cum_usd").rows()
    [(90.0, 1.0, 3.0, 0.0), (95.0, 2.0, 2.0, 0.0), (110.0, 0.0, 0.0, 4.0)]
    """
    cells = (
        pl.DataFrame(
            {
                "pb": np.floor(price / price_step).astype(np.int64),
                "long": np.where(side == 0, usd, 0.0),
                "short": np.where(side == 1, usd, 0.0),
            }
        )
        .group_by("pb")
        .agg(pl.col("long").sum().alias("long_usd"), pl.col("short").sum().alias("short_usd"))
        .filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0))
        .sort("pb")
    )
    return cells.select(
        utc_series("as_of", np.full(cells.height, as_of_us, dtype=np.int64)),
        pl.lit(ref_price, pl.Float64).alias("ref_price"),
        (pl.col("pb").cast(pl.Float64) * price_step).alias("price"),
        "long_usd",
        "short_usd",
        pl.col("long_usd").cum_sum(reverse=True).alias("long_cum_usd"),
        pl.col("short_usd").cum_sum().alias("short_cum_usd"),
    ).select([pl.col(c).cast(t) for c, t in LIQUIDATION_MAP_SCHEMA.items()])
