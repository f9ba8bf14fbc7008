"""Predicted liquidations per bar, the no-levels baseline, and the backtest score."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from transforms.bars import model_input, utc_ts
from transforms.heatmap import TimeTiers
from transforms.levels import F64, Core, compute_core
from transforms.params import ModelParams

__all__ = [
    "NEAR_KEY_LEVEL_SCHEMA",
    "PREDICTED_SCHEMA",
    "SCORE_SCHEMA",
    "baseline_liquidations",
    "capture_auc",
    "key_level_proximity",
    "log_corr",
    "predicted_from_core",
    "predicted_liquidations",
    "score",
    "top_decile_capture",
    "top_decile_overlap",
]

_UTC = pl.Datetime("us", "UTC")

PREDICTED_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC,
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
}

#: One row per (method, side). ``top_decile_capture``: share of realized USD in the 10 % of bars
#: the method ranks highest; ``near_key_level_share``: share of realized USD in bars whose range
#: came within +/-1 % of a key level listed before the bar (model only, null for the baseline);
#: ``size_ratio``: predicted / realized USD; ``coverage``: the share of the OI's market that the
#: realized feed covers (assumed, given by the caller; 1 = the same exchanges);
#: ``size_ratio_at_coverage`` = predicted x coverage / realized USD (the size ratio on the realized
#: feed's own market); ``bars`` counts the scored bars (warm-up dropped).
SCORE_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "side": pl.String(),
    "capture_auc": pl.Float64(),
    "top_decile_overlap": pl.Float64(),
    "log_corr": pl.Float64(),
    "bars": pl.Int64(),
    "realized_usd": pl.Float64(),
    "top_decile_capture": pl.Float64(),
    "near_key_level_share": pl.Float64(),
    "predicted_usd": pl.Float64(),
    "size_ratio": pl.Float64(),
    "coverage": pl.Float64(),
    "size_ratio_at_coverage": pl.Float64(),
}

#: Per bar: did its range come within the tolerance of a key level listed before it?
NEAR_KEY_LEVEL_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC,
    "long_near": pl.Boolean(),
    "short_near": pl.Boolean(),
}


def _in_input_order(bars: pl.DataFrame, per_bar: pl.DataFrame) -> pl.DataFrame:
    """Map per-bar values (unique sorted ts) back onto the input rows, same order."""
    ts = utc_ts(bars.select("ts")).get_column("ts")
    out = pl.DataFrame({"ts": ts}).join(per_bar, on="ts", how="left", maintain_order="left")
    return out.select([pl.col(c).cast(t) for c, t in PREDICTED_SCHEMA.items()]).fill_null(0.0)


def predicted_from_core(core: Core) -> pl.DataFrame:
    """Per normalized bar: USD of long/short levels crossed in that bar (internal). O(N + n)."""
    n = core.n
    usd = core.liquidated_usd()
    hit = core.m < n
    long_ = np.bincount(
        core.m[hit & (core.side == 0)], weights=usd[hit & (core.side == 0)], minlength=n
    )
    short = np.bincount(
        core.m[hit & (core.side == 1)], weights=usd[hit & (core.side == 1)], minlength=n
    )
    ts = (
        pl.Series("ts", core.ts, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
    return pl.DataFrame([ts, pl.Series("long_usd", long_[:n]), pl.Series("short_usd", short[:n])])


def predicted_liquidations(bars: pl.DataFrame, params: ModelParams | None = None) -> pl.DataFrame:
    """The model's predicted liquidations: USD of the levels crossed in each bar.

    A level crossed in bar ``m`` contributes its remaining notional ``notional * D[m] / D[j]``.
    O(n log n + N log n) (dominated by `transforms.levels.compute_core`).

    Parameters
    ----------
    bars
        Canonical bars (see `transforms.bars.model_input`).
    params
        Model parameters; default `ModelParams()`.

    Returns
    -------
    pl.DataFrame
        `PREDICTED_SCHEMA`, one row per input row in input order (a duplicated ts repeats the
        value of its bar).

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": [101.0, 101.0, 101.0],
    ...     "low": [99.0, 99.0, 80.0], "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0]})
    >>> p = ModelParams(leverages=(10.0,), weights=(1.0,), turnover_half_life_hours=None,
    ...                 entry_points=1, leveraged_share=1.0, closed_before_liquidation=0.0)
    >>> predicted_liquidations(bars, p)["long_usd"].to_list()
    [0.0, 0.0, 1000.0]
    """
    core = compute_core(bars, params or ModelParams())
    return _in_input_order(bars, predicted_from_core(core))


def baseline_liquidations(bars: pl.DataFrame) -> pl.DataFrame:
    """The no-levels baseline: long = OI * max(0, (open - low) / open), short likewise with high.

    Uses the trade-price bars and the forward-filled ``oi_usd`` at the bar's open (0 before the
    first OI sample). O(n log n).

    Examples
    --------
    >>> from datetime import datetime
    >>> bars = pl.DataFrame({"ts": [datetime(2024, 1, 1)], "open": 100.0, "high": 102.0,
    ...                      "low": 99.0, "close": 100.0, "oi_usd": 1000.0})
    >>> baseline_liquidations(bars).select("long_usd", "short_usd").rows()
    [(10.0, 20.0)]
    """
    norm = model_input(bars)
    oi = pl.col("oi_usd").fill_null(0.0)
    per_bar = norm.select(
        "ts",
        (oi * ((pl.col("open") - pl.col("low")) / pl.col("open")).clip(lower_bound=0.0)).alias(
            "long_usd"
        ),
        (oi * ((pl.col("high") - pl.col("open")) / pl.col("open")).clip(lower_bound=0.0)).alias(
            "short_usd"
        ),
    )
    return _in_input_order(bars, per_bar)


def capture_auc(predicted: F64, realized: F64) -> float:
    """Area under the capture curve; bars with equal prediction share their realized USD evenly.

    Bars are ranked by predicted USD (descending); the curve is the cumulative share of realized
    USD against the share of bars, linear inside each tie group. 0.5 = no skill, 1 = everything
    realized sits in the first-ranked bars. NaN when nothing was realized. O(n log n).

    Examples
    --------
    >>> capture_auc(np.array([3.0, 2.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0]))
    0.875
    >>> capture_auc(np.zeros(4), np.array([1.0, 0.0, 0.0, 0.0]))
    0.5
    """
    pred = np.asarray(predicted, dtype=np.float64)
    real = np.clip(np.asarray(realized, dtype=np.float64), 0.0, None)
    total = float(real.sum())
    if pred.shape[0] == 0 or total <= 0:
        return math.nan
    uniq, inv = np.unique(pred, return_inverse=True)
    n_g = np.bincount(inv, minlength=uniq.shape[0])[::-1].astype(np.float64)
    r_g = np.bincount(inv, weights=real, minlength=uniq.shape[0])[::-1] / total
    y_end = np.cumsum(r_g)
    y_start = y_end - r_g
    return float(np.sum(n_g / pred.shape[0] * (y_start + y_end) / 2.0))


def _top_membership(values: F64, k: int) -> F64:
    """Expected membership of each bar in the top ``k`` under random tie-breaking."""
    kth = np.sort(values)[::-1][k - 1]
    above = values > kth
    tied = values == kth
    out = above.astype(np.float64)
    out[tied] = (k - int(above.sum())) / int(tied.sum())
    return np.asarray(out, dtype=np.float64)


def top_decile_overlap(predicted: F64, realized: F64) -> float:
    """Share of the top 10 % realized bars that are also in the top 10 % predicted bars.

    ``k = ceil(n / 10)``; ties at the cut-off get fractional membership (the expectation over
    random tie orders). NaN for empty input. O(n log n).

    Examples
    --------
    >>> top_decile_overlap(np.arange(10.0), np.arange(10.0))
    1.0
    >>> top_decile_overlap(np.zeros(10), np.arange(10.0))
    0.1
    """
    pred = np.asarray(predicted, dtype=np.float64)
    real = np.asarray(realized, dtype=np.float64)
    if pred.shape[0] == 0:
        return math.nan
    k = max(1, math.ceil(pred.shape[0] / 10))
    return float(np.sum(_top_membership(pred, k) * _top_membership(real, k)) / k)


def top_decile_capture(predicted: F64, realized: F64) -> float:
    """Share of realized USD that happened in the 10 % of bars ranked highest by ``predicted``.

    ``k = ceil(n / 10)`` bars; ties at the cut-off get fractional membership. NaN when nothing
    was realized. A trader's reading: "the model's top-decile bars held X % of what was
    liquidated" (a no-skill ranking holds about 10 %). O(n log n).

    Examples
    --------
    >>> top_decile_capture(np.arange(10.0), np.r_[np.zeros(9), 5.0])
    1.0
    >>> top_decile_capture(np.zeros(10), np.r_[np.zeros(9), 5.0])
    0.1
    """
    pred = np.asarray(predicted, dtype=np.float64)
    real = np.clip(np.asarray(realized, dtype=np.float64), 0.0, None)
    total = float(real.sum())
    if pred.shape[0] == 0 or total <= 0:
        return math.nan
    k = max(1, math.ceil(pred.shape[0] / 10))
    return float(np.sum(_top_membership(pred, k) * real) / total)


def key_level_proximity(
    bars: pl.DataFrame,
    heatmap: pl.DataFrame,
    *,
    top: int = 5,
    tolerance: float = 0.01,
    time_step: TimeTiers | None = None,
) -> pl.DataFrame:
    """Per bar: whether its range came within ``tolerance`` of a key level listed before it.

    The key levels at a time are the ``top`` heatmap price buckets per side (by alive USD,
    bucket midpoints) of the latest heatmap time bucket that ENDED before the bar's bucket
    began (no look-ahead). A bar is near a level ``K`` when ``low <= K (1 + tol)`` and
    ``high >= K (1 - tol)``. O(C log C + n log n) for ``C`` heatmap cells. A bucket ends one
    bucket width after its start: the heatmap's smallest bucket gap, or with ``time_step``
    (the `transforms.heatmap.TimeTiers` the heatmap was computed with) each bucket's own width.

    Returns
    -------
    pl.DataFrame
        `NEAR_KEY_LEVEL_SCHEMA`, one row per normalized bar.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(2)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": [101.0, 101.0],
    ...                      "low": [99.0, 95.5], "close": 100.0, "oi_usd": 1.0})
    >>> hm = pl.DataFrame({"ts": [t[0]], "price": [95.0], "long_usd": [5.0], "short_usd": [0.0]})
    >>> key_level_proximity(bars, hm).select("long_near", "short_near").rows()
    [(False, False), (True, False)]
    """
    norm = model_input(bars).select("ts", "high", "low")
    empty = norm.select("ts", pl.lit(False).alias("long_near"), pl.lit(False).alias("short_near"))
    if heatmap.height == 0 or norm.height == 0:
        return empty.select([pl.col(c).cast(t) for c, t in NEAR_KEY_LEVEL_SCHEMA.items()])
    hm = utc_ts(heatmap.select("ts", "price", "long_usd", "short_usd"))
    buckets = hm.get_column("ts").unique().sort()
    width = buckets.diff().drop_nulls().min() if buckets.len() > 1 else None
    step_price = hm.get_column("price").unique().sort().diff().drop_nulls().min()
    half = float(step_price) / 2.0 if isinstance(step_price, float) else 0.0
    # a bucket's levels become "listed" once the bucket is over
    shift = width if width is not None else norm.get_column("ts").diff().drop_nulls().min()
    if time_step is not None:
        bar_us = norm.get_column("ts").dt.epoch("us").to_numpy()
        steps = time_step.steps_us(
            hm.get_column("ts").dt.epoch("us").to_numpy(), TimeTiers.anchor_us(bar_us)
        )
        hm = hm.with_columns(pl.Series("_w", steps).cast(pl.Duration("us")))
    else:
        hm = hm.with_columns(pl.lit(shift).cast(pl.Duration("us")).alias("_w"))
    out = norm
    for side in ("long", "short"):
        levels = (
            hm.filter(pl.col(f"{side}_usd") > 0)
            .sort([f"{side}_usd", "price"], descending=[True, False])
            .group_by("ts", maintain_order=True)
            .head(top)
            .select(
                (pl.col("ts") + pl.col("_w")).alias("listed_at"),
                (pl.col("price") + half).alias("k"),
            )
        )
        pairs = (
            out.select("ts", "high", "low")
            .join_asof(
                levels.select("listed_at").unique().sort("listed_at"),
                left_on="ts",
                right_on="listed_at",
                strategy="backward",
            )
            .join(levels, on="listed_at", how="left")
            .with_columns(
                (
                    (pl.col("low") <= pl.col("k") * (1 + tolerance))
                    & (pl.col("high") >= pl.col("k") * (1 - tolerance))
                )
                .fill_null(False)
                .alias("hit")
            )
            .group_by("ts")
            .agg(pl.col("hit").any().alias(f"{side}_near"))
        )
        out = out.join(pairs, on="ts", how="left")
    out = out.with_columns(
        pl.col("long_near").fill_null(False), pl.col("short_near").fill_null(False)
    )
    return out.sort("ts").select([pl.col(c).cast(t) for c, t in NEAR_KEY_LEVEL_SCHEMA.items()])


def log_corr(predicted: F64, realized: F64) -> float:
    """Pearson correlation of ``log(1 + predicted)`` and ``log(1 + realized)`` (NaN if constant).

    Examples
    --------
    >>> round(log_corr(np.array([0.0, 9.0, 99.0]), np.array([0.0, 99.0, 9999.0])), 6)
    1.0
    """
    a = np.log1p(np.clip(np.asarray(predicted, dtype=np.float64), 0.0, None))
    b = np.log1p(np.clip(np.asarray(realized, dtype=np.float64), 0.0, None))
    if a.shape[0] < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def score(
    predicted: pl.DataFrame,
    realized: pl.DataFrame,
    *,
    baseline: pl.DataFrame | None = None,
    warmup: timedelta | None = None,
    near: pl.DataFrame | None = None,
    coverage: float = 1.0,
) -> pl.DataFrame:
    """Backtest score per method and side: the per-bar part of the one scoring routine
    (`transforms.scoring.all_scores` adds the where-scores; CLI, warehouse, site).

    Capture AUC, top-decile overlap and log correlation rank the bars; in trader terms,
    ``top_decile_capture`` is the share of realized USD in the method's top 10 % bars and
    ``near_key_level_share`` the share of realized USD in bars that came within 1 % of a listed
    key level (``near``, from `key_level_proximity`); ``size_ratio`` = predicted / realized USD
    (realized feeds are throttled, so realized USD is a lower bound and the ratio an upper one).
    ``coverage`` states the share of the OI's market that the realized feed covers (e.g. 0.12
    for all-exchange OI against Binance-only realized BTC liquidations in late 2025, see
    docs/model.md): ``size_ratio_at_coverage`` = predicted x coverage / realized USD.
    The first ``warmup`` of ``predicted`` (the model's book is still filling, see
    `transforms.levels.warmup_hours`) is dropped from every method.

    ``realized`` (per bar ``ts, long_usd, short_usd``, e.g. from
    `transforms.realized.realized_per_bar`) is summed per ts and aligned on ``predicted.ts``
    (missing bars count as 0; realized rows outside ``predicted`` are ignored). ``baseline``,
    when given (see `baseline_liquidations`), is aligned the same way and scored as method
    ``"baseline"``.

    Returns
    -------
    pl.DataFrame
        `SCORE_SCHEMA`: rows (model, long), (model, short)[, (baseline, long), (baseline, short)].

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> ts = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(4)]
    >>> pred = pl.DataFrame({"ts": ts, "long_usd": [3.0, 2, 1, 0], "short_usd": [0.0, 0, 0, 1]})
    >>> real = pl.DataFrame({"ts": ts, "long_usd": [1.0, 0, 0, 0], "short_usd": [0.0, 0, 0, 5]})
    >>> score(pred, real).select("method", "side", "capture_auc").rows()
    [('model', 'long', 0.875), ('model', 'short', 0.875)]
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    frames = {"model": predicted}
    if baseline is not None:
        frames["baseline"] = baseline
    cutoff = None
    if warmup is not None and predicted.height:
        first = utc_ts(predicted.select("ts")).get_column("ts").min()
        if isinstance(first, datetime):
            cutoff = first + warmup
    near_map = None
    if near is not None:
        near_map = utc_ts(near.select("ts", "long_near", "short_near")).unique("ts")
    real = (
        utc_ts(realized.select("ts", "long_usd", "short_usd"))
        .group_by("ts")
        .agg(pl.col("long_usd").cast(pl.Float64).sum(), pl.col("short_usd").cast(pl.Float64).sum())
    )
    rows: list[dict[str, object]] = []
    for method, frame in frames.items():
        pred = utc_ts(frame.select("ts", "long_usd", "short_usd"))
        if cutoff is not None:
            pred = pred.filter(pl.col("ts") >= cutoff)
        joined = pred.join(real, on="ts", how="left", suffix="_real", maintain_order="left")
        joined = joined.fill_null(0.0).fill_nan(0.0)
        if near_map is not None:
            joined = joined.join(near_map, on="ts", how="left", maintain_order="left")
        for side in ("long", "short"):
            p = joined.get_column(f"{side}_usd").to_numpy().astype(np.float64)
            r = joined.get_column(f"{side}_usd_real").to_numpy().astype(np.float64)
            r = np.clip(r, 0.0, None)
            near_share = math.nan
            if near_map is not None and method == "model" and r.sum() > 0:
                hit = joined.get_column(f"{side}_near").fill_null(False).to_numpy()
                near_share = float(r[hit].sum() / r.sum())
            predicted_usd = float(np.clip(p, 0.0, None).sum())
            realized_usd = float(r.sum())
            rows.append(
                {
                    "method": method,
                    "side": side,
                    "capture_auc": capture_auc(p, r),
                    "top_decile_overlap": top_decile_overlap(p, r),
                    "log_corr": log_corr(p, r),
                    "bars": int(p.shape[0]),
                    "realized_usd": realized_usd,
                    "top_decile_capture": top_decile_capture(p, r),
                    "near_key_level_share": near_share,
                    "predicted_usd": predicted_usd,
                    "size_ratio": predicted_usd / realized_usd if realized_usd > 0 else math.nan,
                    "coverage": coverage,
                    "size_ratio_at_coverage": (
                        predicted_usd * coverage / realized_usd if realized_usd > 0 else math.nan
                    ),
                }
            )
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)
