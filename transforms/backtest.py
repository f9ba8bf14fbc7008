"""Predicted liquidations per bar, the no-levels baseline, and the backtest score."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from transforms.bars import _utc_ts, model_input
from transforms.levels import F64, Core, compute_core
from transforms.params import ModelParams

__all__ = [
    "PREDICTED_SCHEMA",
    "SCORE_SCHEMA",
    "baseline_liquidations",
    "capture_auc",
    "log_corr",
    "predicted_from_core",
    "predicted_liquidations",
    "score",
    "top_decile_overlap",
]

_UTC = pl.Datetime("us", "UTC")

PREDICTED_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC,
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
}

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "side": pl.String(),
    "capture_auc": pl.Float64(),
    "top_decile_overlap": pl.Float64(),
    "log_corr": pl.Float64(),
    "bars": pl.Int64(),
    "realized_usd": pl.Float64(),
}


def _in_input_order(bars: pl.DataFrame, per_bar: pl.DataFrame) -> pl.DataFrame:
    """Map per-bar values (unique sorted ts) back onto the input rows, same order."""
    ts = _utc_ts(bars.select("ts")).get_column("ts")
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
    >>> p = ModelParams(leverages=(10.0,), weights=(1.0,))
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
) -> pl.DataFrame:
    """Backtest score per method and side: capture AUC, top-decile overlap, log correlation.

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
    frames = {"model": predicted}
    if baseline is not None:
        frames["baseline"] = baseline
    real = (
        _utc_ts(realized.select("ts", "long_usd", "short_usd"))
        .group_by("ts")
        .agg(pl.col("long_usd").cast(pl.Float64).sum(), pl.col("short_usd").cast(pl.Float64).sum())
    )
    rows: list[dict[str, object]] = []
    for method, frame in frames.items():
        pred = _utc_ts(frame.select("ts", "long_usd", "short_usd"))
        joined = pred.join(real, on="ts", how="left", suffix="_real", maintain_order="left")
        joined = joined.fill_null(0.0).fill_nan(0.0)
        for side in ("long", "short"):
            p = joined.get_column(f"{side}_usd").to_numpy().astype(np.float64)
            r = joined.get_column(f"{side}_usd_real").to_numpy().astype(np.float64)
            rows.append(
                {
                    "method": method,
                    "side": side,
                    "capture_auc": capture_auc(p, r),
                    "top_decile_overlap": top_decile_overlap(p, r),
                    "log_corr": log_corr(p, r),
                    "bars": int(p.shape[0]),
                    "realized_usd": float(np.clip(r, 0.0, None).sum()),
                }
            )
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)
