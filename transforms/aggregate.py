"""Summing per-exchange model outputs into one aggregated ("all exchanges") view.

Every exchange's model runs on its own bars and open interest with the SAME parameters (in
particular the same ``price_step``), so their price buckets share one grid: a bucket's lower
edge is ``floor(price / step) * step`` everywhere. The functions here align frames onto a common
(time, price) grid and sum them. Pure polars, no I/O.

Conventions of the aggregate (exchange ``"all"``):

- heatmap cells: summed on ``(ts, price)``. An exchange whose heatmap used a finer time bucket
  (e.g. 5m on a short history against 15m elsewhere) is first averaged onto the coarser bucket
  (a cell is the mean alive notional over its bucket, so the fine cells inside one coarse bucket
  are summed and divided by how many fit: notional x time is preserved, nothing is counted
  twice). Price buckets merged onto a coarser step are summed (notional is additive over price).
- liquidation map: summed on ``price``; ``ref_price`` is the mean of the exchanges' reference
  prices weighted by their alive notional (long + short USD in their map: the model's estimate
  of each venue's leveraged open interest), so one exchange alone keeps its own reference;
  ``as_of`` is the newest snapshot; cumulative columns are recomputed from the sums (and equal
  the sum of the exchanges' cumulative curves).
- key levels: the liquidation clusters of the summed map (`transforms.clusters`), the same
  function a single exchange's key levels come from.
- per-bar series (predicted, baseline, realized): summed per ``ts`` (missing = 0).
- backtest scores: the summed prediction against every exchange's realized liquidations summed,
  the exchanges' baselines summed, the model's warm-up dropped.

`sum_exchanges` is the sum's one door: every stored output of exchange ``"all"`` from the
exchanges' stored outputs (the flows only read them, call it and write the result).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from transforms.backtest import SCORE_SCHEMA, baseline_liquidations, score
from transforms.clusters import KEY_LEVELS_SCHEMA, cluster_key_levels
from transforms.heatmap import (
    HEATMAP_SCHEMA,
    LIQUIDATION_MAP_SCHEMA,
    TimeTiers,
    as_timedelta,
    display_tiers_for,
)
from transforms.levels import warmup_hours
from transforms.leverage_bands import BAND_HEATMAP_SCHEMA, BAND_MAP_SCHEMA
from transforms.params import ModelParams
from transforms.realized import realized_per_bar

__all__ = [
    "PER_TS_SCHEMA",
    "AggregateResult",
    "ExchangeRun",
    "aggregate_ref_price",
    "align_cells",
    "as_timedelta",
    "key_levels_from_map",
    "sum_band_maps",
    "sum_exchanges",
    "sum_heatmaps",
    "sum_liquidation_maps",
    "sum_per_ts",
]

#: per-bar series summed by :func:`sum_per_ts` (predicted, baseline, realized per bar)
PER_TS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
}

# tolerance (in bucket units) against float noise in stored bucket edges
_EPS = 1e-9


#: a heatmap's time step: a fixed bucket or buckets coarsening with age
Step = str | timedelta | TimeTiers


def _finest(step: Step) -> timedelta:
    return step.step if isinstance(step, TimeTiers) else as_timedelta(step)


def _check_step(price_step: float) -> None:
    if not (math.isfinite(price_step) and price_step > 0):
        raise ValueError(f"price_step must be positive and finite, got {price_step!r}")


def _bucket(price_step: float) -> pl.Expr:
    return ((pl.col("price") / price_step) + _EPS).floor().cast(pl.Int64).alias("pb")


def _utc(frame: pl.DataFrame, *cols: str) -> pl.DataFrame:
    exprs = []
    for col in cols:
        dtype = frame.schema[col]
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            exprs.append(pl.col(col).dt.replace_time_zone("UTC"))
    frame = frame.with_columns(exprs) if exprs else frame
    return frame.with_columns([pl.col(c).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
                               for c in cols])  # fmt: skip


def align_cells(
    cells: pl.DataFrame,
    *,
    price_step: float,
    time_step: str | timedelta,
    source_time_step: str | timedelta,
) -> pl.DataFrame:
    """Re-bucket one exchange's heatmap cells onto a (possibly coarser) time x price grid.

    Each input cell goes to exactly one output cell: the time bucket
    ``ts.dt.truncate(time_step)`` and the price bucket ``floor(price / price_step)``. Cells
    merged over price are summed; cells merged over time are summed and divided by
    ``time_step / source_time_step`` (a cell holds the mean alive notional of its bucket, and a
    missing fine cell means nothing was alive), so ``sum(out) * time_step ==
    sum(in) * source_time_step``.

    Parameters
    ----------
    cells
        ``HEATMAP_SCHEMA`` frame (ts, price, long_usd, short_usd).
    price_step
        Target price bucket; ``price`` of the output is the bucket's lower edge.
    time_step
        Target time bucket; must be a whole multiple of ``source_time_step``.
    source_time_step
        The time bucket the cells were computed with.

    Returns
    -------
    pl.DataFrame
        ``HEATMAP_SCHEMA``, sorted by ts then price.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = [datetime(2024, 1, 1, 0, m) for m in (0, 5, 10)]
    >>> cells = pl.DataFrame({"ts": t, "price": [100.0, 101.0, 104.0],
    ...                       "long_usd": [3.0, 3.0, 3.0], "short_usd": 0.0})
    >>> align_cells(cells, price_step=5.0, time_step="15m", source_time_step="5m").rows()[0][1:]
    (100.0, 3.0, 0.0)
    """
    _check_step(price_step)
    target, source = as_timedelta(time_step), as_timedelta(source_time_step)
    ratio = target / source
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
        raise ValueError(f"time step {target} is not a whole multiple of the source step {source}")
    if cells.height == 0:
        return pl.DataFrame(schema=HEATMAP_SCHEMA)
    out = (
        _utc(cells.select("ts", "price", "long_usd", "short_usd"), "ts")
        .lazy()
        .with_columns(pl.col("ts").dt.truncate(target), _bucket(price_step))
        .group_by("ts", "pb")
        .agg(
            (pl.col("long_usd").cast(pl.Float64).sum() / round(ratio)),
            (pl.col("short_usd").cast(pl.Float64).sum() / round(ratio)),
        )
        .sort("ts", "pb")
        .with_columns((pl.col("pb").cast(pl.Float64) * price_step).alias("price"))
        .select([pl.col(c).cast(t) for c, t in HEATMAP_SCHEMA.items()])
        .collect()
    )
    return out


def _tiered_sum(parts: Sequence[tuple[pl.DataFrame, Step]], price_step: float) -> pl.DataFrame:
    """:func:`sum_heatmaps` of parts of which some use `TimeTiers`: each cell goes to the
    bucket of the coarser of its own width and the common tiers' width at its time (the
    tiers of the part with the coarsest finest step, anchored at the latest part's anchor),
    its USD scaled by own / target width (notional x time preserved)."""
    present = [(c, st) for c, st in parts if c.height]
    if not present:
        return pl.DataFrame(schema=HEATMAP_SCHEMA)
    tiers = [st for _, st in present if isinstance(st, TimeTiers)]
    target = max(tiers, key=lambda t: t.step)
    us = [_utc(c, "ts").get_column("ts").dt.epoch("us").to_numpy() for c, _ in present]
    anchor = max(TimeTiers.anchor_us(ts) for ts in us)
    frames = []
    for (cells, step), ts in zip(present, us, strict=True):
        if isinstance(step, TimeTiers):
            own = step.steps_us(ts, TimeTiers.anchor_us(ts))
        else:
            own = np.full(ts.shape[0], as_timedelta(step) // timedelta(microseconds=1))
        width = np.maximum(target.steps_us(ts, anchor), own)
        factor = own / width
        frames.append(
            cells.select(
                pl.Series("ts", ts // width * width)
                .cast(pl.Datetime("us"))
                .dt.replace_time_zone("UTC"),
                _bucket(price_step),
                pl.col("long_usd").cast(pl.Float64) * factor,
                pl.col("short_usd").cast(pl.Float64) * factor,
            )
        )
    return (
        pl.concat(frames)
        .lazy()
        .group_by("ts", "pb")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0))
        .sort("ts", "pb")
        .with_columns((pl.col("pb").cast(pl.Float64) * price_step).alias("price"))
        .select([pl.col(c).cast(t) for c, t in HEATMAP_SCHEMA.items()])
        .collect()
    )


def sum_heatmaps(
    parts: Sequence[tuple[pl.DataFrame, Step]],
    *,
    price_step: float,
    time_step: str | timedelta | None = None,
) -> pl.DataFrame:
    """Sum several exchanges' heatmap cells cell by cell on a common grid.

    Each part is ``(cells, the time step its heatmap used)``; every part is aligned with
    :func:`align_cells` onto ``time_step`` (default: the coarsest part step) and ``price_step``,
    then cells with the same ``(ts, price)`` are summed. A cell present in only some parts is
    the sum of those (missing = 0). Parts whose step is a `transforms.heatmap.TimeTiers`
    (buckets coarsening with age) are summed on the common tiers (see ``_tiered_sum``).

    Returns
    -------
    pl.DataFrame
        ``HEATMAP_SCHEMA``, only cells with a positive value, sorted by ts then price.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = datetime(2024, 1, 1)
    >>> a = pl.DataFrame({"ts": [t], "price": [100.0], "long_usd": [2.0], "short_usd": [0.0]})
    >>> b = pl.DataFrame({"ts": [t, t], "price": [100.0, 110.0], "long_usd": [1.0, 0.0],
    ...                   "short_usd": [0.0, 5.0]})
    >>> sum_heatmaps([(a, "15m"), (b, "15m")], price_step=10.0).select("price", "long_usd",
    ...     "short_usd").rows()
    [(100.0, 3.0, 0.0), (110.0, 0.0, 5.0)]
    """
    _check_step(price_step)
    if not parts:
        return pl.DataFrame(schema=HEATMAP_SCHEMA)
    if time_step is None and any(isinstance(step, TimeTiers) for _, step in parts):
        return _tiered_sum(parts, price_step)
    target = (
        as_timedelta(time_step)
        if time_step is not None
        else max(_finest(step) for _, step in parts)
    )
    aligned = [
        align_cells(cells, price_step=price_step, time_step=target, source_time_step=_finest(step))
        for cells, step in parts
    ]
    return (
        pl.concat(aligned)
        .lazy()
        .with_columns(_bucket(price_step))
        .group_by("ts", "pb")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0))
        .sort("ts", "pb")
        .with_columns((pl.col("pb").cast(pl.Float64) * price_step).alias("price"))
        .select([pl.col(c).cast(t) for c, t in HEATMAP_SCHEMA.items()])
        .collect()
    )


def aggregate_ref_price(maps: Sequence[pl.DataFrame]) -> float | None:
    """Reference price of the summed map: the maps' ``ref_price`` weighted by their alive
    notional (sum of ``long_usd + short_usd``); equal weights when every map is empty of USD;
    None without any map rows.

    Examples
    --------
    >>> a = pl.DataFrame({"ref_price": [100.0], "long_usd": [3.0], "short_usd": [0.0]})
    >>> b = pl.DataFrame({"ref_price": [104.0], "long_usd": [0.0], "short_usd": [1.0]})
    >>> aggregate_ref_price([a, b])
    101.0
    """
    refs: list[float] = []
    weights: list[float] = []
    for frame in maps:
        if frame.height == 0:
            continue
        refs.append(float(frame["ref_price"][0]))
        total = frame.select((pl.col("long_usd") + pl.col("short_usd")).sum()).item()
        weights.append(float(total) if total is not None and total > 0 else 0.0)
    if not refs:
        return None
    if len(refs) == 1:
        return refs[0]
    if math.fsum(weights) <= 0:
        weights = [1.0] * len(refs)
    return math.fsum(r * w for r, w in zip(refs, weights, strict=True)) / math.fsum(weights)


def sum_liquidation_maps(maps: Sequence[pl.DataFrame], *, price_step: float) -> pl.DataFrame:
    """Sum several exchanges' liquidation-map snapshots on price.

    Buckets (``floor(price / price_step)``) are summed; ``ref_price`` comes from
    :func:`aggregate_ref_price`, ``as_of`` is the newest snapshot, and the cumulative columns
    are recomputed as in `transforms.heatmap.liquidation_map` (longs summed from the top down,
    shorts from the bottom up), which equals the sum of the parts' cumulative curves.

    Returns
    -------
    pl.DataFrame
        ``LIQUIDATION_MAP_SCHEMA``, sorted by price.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = datetime(2024, 1, 1)
    >>> a = pl.DataFrame({"as_of": [t, t], "ref_price": 100.0, "price": [90.0, 110.0],
    ...     "long_usd": [4.0, 0.0], "short_usd": [0.0, 2.0], "long_cum_usd": [4.0, 0.0],
    ...     "short_cum_usd": [0.0, 2.0]})
    >>> b = a.with_columns(pl.col("long_usd") * 0.5)
    >>> sum_liquidation_maps([a, b], price_step=10.0).select("price", "long_usd",
    ...     "short_cum_usd").rows()
    [(90.0, 6.0, 0.0), (110.0, 0.0, 4.0)]
    """
    _check_step(price_step)
    present = [m for m in maps if m.height]
    ref = aggregate_ref_price(present)
    if not present or ref is None:
        return pl.DataFrame(schema=LIQUIDATION_MAP_SCHEMA)
    frame = pl.concat([_utc(m.select("as_of", "price", "long_usd", "short_usd"), "as_of")
                       for m in present])  # fmt: skip
    as_of = frame["as_of"].max()
    return (
        frame.lazy()
        .with_columns(_bucket(price_step))
        .group_by("pb")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0))
        .sort("pb")
        .select(
            pl.lit(as_of).alias("as_of"),
            pl.lit(ref, pl.Float64).alias("ref_price"),
            (pl.col("pb").cast(pl.Float64) * price_step).alias("price"),
            "long_usd",
            "short_usd",
            pl.col("long_usd").cum_sum(reverse=True).alias("long_cum_usd"),
            pl.col("short_usd").cum_sum().alias("short_cum_usd"),
        )
        .select([pl.col(c).cast(t) for c, t in LIQUIDATION_MAP_SCHEMA.items()])
        .collect()
    )


def key_levels_from_map(liq_map: pl.DataFrame, *, price_step: float, top: int = 5) -> pl.DataFrame:
    """Key levels of a (summed) liquidation map: its liquidation clusters.

    `transforms.clusters.cluster_key_levels` with its default smoothing, merge distance and
    significance threshold: per side the ``top`` clusters by USD plus the nearest significant
    one, prices rounded to ``price_step``, ``distance_pct`` from the map's ``ref_price``.

    Returns
    -------
    pl.DataFrame
        `transforms.levels.KEY_LEVELS_SCHEMA`, longs then shorts, by rank.

    Examples
    --------
    >>> from datetime import datetime
    >>> m = pl.DataFrame({"as_of": datetime(2024, 1, 1), "ref_price": 100.0,
    ...     "price": [80.0, 90.0, 110.0], "long_usd": [5.0, 7.0, 0.0],
    ...     "short_usd": [0.0, 0.0, 2.0]})
    >>> key_levels_from_map(m, price_step=10.0, top=1).select("side", "price", "usd").rows()
    [('long', 90.0, 12.0), ('short', 110.0, 2.0)]
    """
    _check_step(price_step)
    if liq_map.height == 0:
        return pl.DataFrame(schema=KEY_LEVELS_SCHEMA)
    frame = _utc(liq_map.select("as_of", "ref_price", "price", "long_usd", "short_usd"), "as_of")
    return cluster_key_levels(frame, price_step=price_step, top=top)


def sum_per_ts(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Sum per-bar series (``ts, long_usd, short_usd``) of several exchanges on ``ts``.

    The output has one row per timestamp present in any input (missing = 0); nulls count 0.

    Returns
    -------
    pl.DataFrame
        `PER_TS_SCHEMA`, sorted by ts.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = [datetime(2024, 1, 1, 0, m) for m in (0, 1)]
    >>> a = pl.DataFrame({"ts": t, "long_usd": [1.0, 2.0], "short_usd": [0.0, 0.0]})
    >>> b = pl.DataFrame({"ts": t[1:], "long_usd": [5.0], "short_usd": [1.0]})
    >>> sum_per_ts([a, b]).select("long_usd", "short_usd").rows()
    [(1.0, 0.0), (7.0, 1.0)]
    """
    present = [f for f in frames if f.height]
    if not present:
        return pl.DataFrame(schema=PER_TS_SCHEMA)
    stacked = pl.concat(
        [
            _utc(f.select("ts", "long_usd", "short_usd"), "ts").select(
                "ts",
                pl.col("long_usd").cast(pl.Float64).fill_null(0.0),
                pl.col("short_usd").cast(pl.Float64).fill_null(0.0),
            )
            for f in present
        ]
    )
    return (
        stacked.group_by("ts")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .sort("ts")
        .select([pl.col(c).cast(t) for c, t in PER_TS_SCHEMA.items()])
    )


def sum_band_maps(maps: Sequence[pl.DataFrame], *, price_step: float) -> pl.DataFrame:
    """Sum several exchanges' per-band liquidation maps on (band, price bucket); ``as_of`` is
    the newest snapshot.

    Returns
    -------
    pl.DataFrame
        `transforms.leverage_bands.BAND_MAP_SCHEMA`, sorted by band then price.

    Examples
    --------
    >>> from datetime import datetime
    >>> a = pl.DataFrame({"band": ["<=10x"], "as_of": datetime(2024, 1, 1), "price": [91.0],
    ...                   "long_usd": [2.0], "short_usd": [0.0]})
    >>> sum_band_maps([a, a], price_step=10.0).select("band", "price", "long_usd").rows()
    [('<=10x', 90.0, 4.0)]
    """
    _check_step(price_step)
    present = [m for m in maps if m.height]
    if not present:
        return pl.DataFrame(schema=BAND_MAP_SCHEMA)
    as_of = max(m["as_of"].max() for m in present)  # type: ignore[type-var]
    return (
        pl.concat([m.select("band", "price", "long_usd", "short_usd") for m in present])
        .with_columns(price=(pl.col("price") / price_step + 1e-6).floor() * price_step)
        .group_by("band", "price")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .sort("band", "price")
        .select(pl.col("band"), pl.lit(as_of).alias("as_of"), pl.all().exclude("band"))
    )


@dataclass(frozen=True)
class ExchangeRun:
    """One exchange's stored model outputs of a symbol, as `sum_exchanges` takes them.

    ``start_ts``/``end_ts`` are its run's window (its heatmap's time buckets follow from them,
    `transforms.heatmap.display_tiers_for`); ``bars`` (its model window) and ``realized``
    (its realized liquidations, per event or per bar) are needed only to score the sum.
    """

    start_ts: datetime
    end_ts: datetime
    heatmap: pl.DataFrame
    heatmap_bands: pl.DataFrame
    liquidation_map: pl.DataFrame
    liquidation_map_bands: pl.DataFrame
    predicted: pl.DataFrame
    bars: pl.DataFrame | None = None
    realized: pl.DataFrame | None = None
    #: the exchange's bar size (its heatmap's buckets are never finer); None: 1 minute
    bar: timedelta | None = None


@dataclass(frozen=True)
class AggregateResult:
    """Every stored output of exchange ``"all"`` (see the module docstring for each sum).

    ``scores`` is `transforms.backtest.SCORE_SCHEMA` (empty when no exchange has realized
    liquidations); ``more_scores`` holds further score frames by their table, as in
    `transforms.model.ModelResult`.
    """

    heatmap: pl.DataFrame
    heatmap_bands: pl.DataFrame
    liquidation_map: pl.DataFrame
    liquidation_map_bands: pl.DataFrame
    key_levels: pl.DataFrame
    predicted: pl.DataFrame
    scores: pl.DataFrame
    price_step: float
    more_scores: dict[str, pl.DataFrame] = field(default_factory=dict)


def sum_exchanges(
    runs: Sequence[ExchangeRun], *, price_step: float, params: ModelParams
) -> AggregateResult:
    """Sum the exchanges' model outputs of one symbol into the outputs of exchange ``"all"``.

    Every run must share ``params`` (in particular ``price_step``): heatmaps (total and per
    band) summed with `sum_heatmaps` on each run's display tiers, maps with
    `sum_liquidation_maps` / `sum_band_maps`, key levels from the summed map, predictions with
    `sum_per_ts`; when the sum predicts anything and some exchange has realized liquidations,
    the scores of the summed prediction against every exchange's realized liquidations summed
    (baseline: every exchange's baseline summed; each run then needs its ``bars``), the
    model's warm-up dropped.

    Examples
    --------
    >>> from datetime import datetime
    >>> t = datetime(2024, 1, 1)
    >>> cells = pl.DataFrame({"ts": [t], "price": [100.0], "long_usd": [2.0], "short_usd": [0.0]})
    >>> pred = pl.DataFrame({"ts": [t], "long_usd": [1.0], "short_usd": [0.0]})
    >>> run = ExchangeRun(t, t, cells, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pred)
    >>> out = sum_exchanges([run, run], price_step=10.0, params=ModelParams(price_step=10.0))
    >>> out.heatmap["long_usd"].to_list(), out.predicted["long_usd"].to_list()
    ([4.0], [2.0])
    """
    heat = sum_heatmaps(
        [(r.heatmap, display_tiers_for(r.start_ts, r.end_ts, r.bar)) for r in runs],
        price_step=price_step,
    )
    liq_map = sum_liquidation_maps([r.liquidation_map for r in runs], price_step=price_step)
    band_parts: dict[str, list[tuple[pl.DataFrame, Step]]] = {}
    for r in runs:
        if not r.heatmap_bands.height:
            continue
        every = display_tiers_for(r.start_ts, r.end_ts, r.bar)
        for band, part in r.heatmap_bands.group_by("band", maintain_order=True):
            band_parts.setdefault(str(band[0]), []).append((part.drop("band"), every))
    heat_bands = [
        sum_heatmaps(parts, price_step=price_step).select(pl.lit(band).alias("band"), pl.all())
        for band, parts in sorted(band_parts.items())
    ]
    pred = sum_per_ts([r.predicted for r in runs])
    scores = pl.DataFrame(schema=SCORE_SCHEMA)
    if pred.height and any(r.realized is not None and r.realized.height for r in runs):
        baselines, realized = [], []
        for r in runs:
            if r.bars is None:
                raise ValueError("scoring the sum needs every exchange's bars")
            baselines.append(baseline_liquidations(r.bars))
            if r.realized is not None and r.realized.height:
                realized.append(realized_per_bar(r.realized, r.bars))
        scores = score(
            pred,
            sum_per_ts(realized),
            baseline=sum_per_ts(baselines),
            warmup=timedelta(hours=warmup_hours(params)),
        )
    return AggregateResult(
        heatmap=heat,
        heatmap_bands=(
            pl.concat(heat_bands) if heat_bands else pl.DataFrame(schema=BAND_HEATMAP_SCHEMA)
        ),
        liquidation_map=liq_map,
        liquidation_map_bands=sum_band_maps(
            [r.liquidation_map_bands for r in runs], price_step=price_step
        ),
        key_levels=key_levels_from_map(liq_map, price_step=price_step),
        predicted=pred,
        scores=scores,
        price_step=price_step,
    )
