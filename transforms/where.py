"""Where-scores: does the map say where price goes, and where liquidations happen?

Measured from ONE model run without look-ahead (see docs/model.md, "Where-scores"):

* **Decision times** ``t``: every ``step`` (default 4 h) on the UTC grid (multiples of the step
  since the epoch), from the first grid time at least ``max(3 days, model warm-up)`` after the
  first bar, up to the last ``t`` with a full ``horizon`` (default 24 h) of bars after it.
* **Book at t**: the levels of the run created by bars that CLOSED by ``t`` (``ts + bar
  interval <= t``, `transforms.levels.closed_bar_index`), still alive after that bar (not
  liquidated in it or before), with their remaining notional ``notional * D[i] / D[j]``
  (`transforms.levels.log_survival`); ``ref`` = that bar's close. Exactly the book of
  `transforms.levels.snapshot` at ``t``. Levels whose remaining share is below the model's
  ``EXPIRY_FRACTION`` (about 22 turnover half-lives old) are skipped, so each decision only
  looks at a recent window of levels.
* **Band and buckets**: per side the alive USD at a distance of ``band`` (default 0.5-8 %) from
  ``ref`` (longs below, shorts above) in buckets of ``bucket`` (0.25 %) of distance from the
  band's lower edge; a bucket's distance is the USD-weighted mean distance of its levels.
* **magnet**: the strongest bucket per side is *touched* when a bar of ``[t, t + horizon)`` has
  ``low <= price`` (long) / ``high >= price`` (short). Null: a level at the same distance and
  side at every other decision time ``t'`` with ``|t' - t| >= horizon`` (windows do not
  overlap), averaged (the exact expectation, no seed). lift = sum of hits / sum of null hits.
* **realized_near** (with realized USD per bar): the share of the side's realized USD of the
  horizon in bars whose range came within ``+/- tol`` (0.5 %) of the side's top-3 buckets
  (strongest first, at least ``2 tol`` apart); null: the top-3 distances of every eligible
  other decision applied at ``t``'s price (exact expectation).
* **direction**: correlation of the band imbalance ``(long - short) / (long + short)`` with the
  horizon's return, and the share of decisions where price moved toward the bigger pool
  (``sign(return) == -sign(imbalance)``).
* **Intervals**: 95 % moving-block bootstrap over decision times (blocks of ``block`` = 2 days,
  ``draws`` = 2000, ``seed`` = 7): the horizons of decisions 4 h apart overlap, so decisions
  are not independent.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit

from transforms.bars import model_input, utc_ts
from transforms.levels import (
    EXPIRY_FRACTION,
    bar_index,
    closed_bar_index,
    liquidation_levels,
    log_survival,
    warmup_hours,
)
from transforms.params import ModelParams

__all__ = [
    "WHERE_SCORE_SCHEMA",
    "Buckets",
    "WhereMethod",
    "block_interval",
    "book_buckets",
    "decision_times",
    "magnet_hits",
    "top_distances",
    "where_scores",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_UTC = pl.Datetime("us", "UTC")
_US_PER_HOUR = 3_600_000_000

#: One row per score, side and distance bin. ``name``: ``magnet`` (share of decisions whose
#: strongest cluster was touched within the horizon), ``realized_near`` (share of the
#: horizon's realized USD in bars near the top-3 clusters), ``direction_corr`` (correlation of
#: the band imbalance with the horizon's return; null 0), ``direction_agree`` (share of
#: decisions where price moved toward the bigger pool; null 0.5). ``side``: long, short or
#: both; ``bin``: ``all`` or a distance bin of the model's cluster (magnet only, e.g.
#: ``0.5-1 %``). ``n``: decision-sides scored (decisions for direction and realized_near
#: both); ``model`` / ``null``: the model's figure and the distance-matched null's; ``lift`` =
#: model / null (NaN for direction_corr); ``lo`` / ``hi``: 95 % block-bootstrap interval of
#: the lift (of the correlation / share for direction). ``first_decision`` / ``last_decision``
#: bound the decision times; ``step_hours`` / ``horizon_hours`` the method.
WHERE_SCORE_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(),
    "side": pl.String(),
    "bin": pl.String(),
    "n": pl.Int64(),
    "model": pl.Float64(),
    "null": pl.Float64(),
    "lift": pl.Float64(),
    "lo": pl.Float64(),
    "hi": pl.Float64(),
    "first_decision": _UTC,
    "last_decision": _UTC,
    "step_hours": pl.Float64(),
    "horizon_hours": pl.Float64(),
}

SIDES = ("long", "short")


@njit(cache=True)
def _bucket_kernel(  # pragma: no cover - compiled
    k0: I64, k1: I64, j: I64, side: I64, price: F64, notional: F64, bars_i: I64, log_d: F64,
    ref: F64, band0: float, band1: float, bucket: float, usd_out: F64, dist_out: F64,
) -> None:  # fmt: skip
    """Add each level's remaining USD (and USD x distance) to its distance bucket at every
    decision ``k0 <= row < k1`` at which it is in the book (compiled: no pair arrays)."""
    nb = usd_out.shape[2]
    for q in range(k0.shape[0]):
        s = side[q]
        p = price[q]
        for row in range(k0[q], k1[q]):
            r = ref[row]
            d = (r - p) / r if s == 0 else (p - r) / r
            if d < band0 or d >= band1:
                continue
            b = int(np.floor((d - band0) / bucket))
            if b < 0 or b >= nb:
                continue
            u = notional[q] * np.exp(log_d[bars_i[row]] - log_d[j[q]])
            usd_out[row, s, b] += u
            dist_out[row, s, b] += u * d


@dataclass(frozen=True)
class WhereMethod:
    """The where-scores' settings (defaults = the published method).

    Examples
    --------
    >>> WhereMethod().n_buckets, WhereMethod().bin_labels()
    (30, ['0.5-1 %', '1-2 %', '2-4 %', '4-8 %'])
    """

    step: timedelta = timedelta(hours=4)
    horizon: timedelta = timedelta(hours=24)
    min_warmup: timedelta = timedelta(days=3)
    band: tuple[float, float] = (0.005, 0.08)
    bucket: float = 0.0025
    bins: tuple[float, ...] = (0.005, 0.01, 0.02, 0.04, 0.08)
    tol: float = 0.005
    top: int = 3
    block: timedelta = timedelta(days=2)
    draws: int = 2000
    seed: int = 7

    @property
    def n_buckets(self) -> int:
        return max(1, round((self.band[1] - self.band[0]) / self.bucket))

    def bin_labels(self) -> list[str]:
        return [f"{a * 100:g}-{b * 100:g} %" for a, b in itertools.pairwise(self.bins)]


@dataclass(frozen=True)
class Decisions:
    """Decision times and their bars: ``i`` the last closed bar, ``[start, end)`` the horizon's
    bars (open in ``[t, t + horizon)``)."""

    t_us: I64
    i: I64
    start: I64
    end: I64


@dataclass(frozen=True)
class Buckets:
    """Per decision and side (long 0, short 1) and distance bucket: alive USD and USD x distance."""

    usd: F64  # [k, 2, buckets]
    usd_dist: F64  # [k, 2, buckets]
    ref: F64  # [k] close of the last closed bar

    def distance(self) -> F64:
        """USD-weighted mean distance of each bucket (NaN where empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.usd > 0, self.usd_dist / self.usd, np.nan)

    def strongest(self) -> F64:
        """[k, 2] distance of the strongest bucket (NaN where the side's band is empty)."""
        if self.usd.shape[0] == 0:
            return np.zeros((0, 2))
        best = self.usd.argmax(-1)[..., None]
        usd = np.take_along_axis(self.usd, best, -1)[..., 0]
        dsum = np.take_along_axis(self.usd_dist, best, -1)[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(usd > 0, dsum / usd, np.nan)


def decision_times(ts_us: I64, warmup: timedelta, method: WhereMethod) -> Decisions:
    """Decision times on the UTC ``step`` grid after ``warmup`` with a full horizon after them.

    Examples
    --------
    >>> ts = np.arange(0, 48, dtype=np.int64) * 3_600_000_000  # 48 hourly bars from the epoch
    >>> m = WhereMethod(min_warmup=timedelta(0), horizon=timedelta(hours=12))
    >>> d = decision_times(ts, timedelta(hours=10), m)
    >>> (d.t_us // 3_600_000_000).tolist(), d.i.tolist()
    ([12, 16, 20, 24, 28, 32, 36], [11, 15, 19, 23, 27, 31, 35])
    >>> d.start.tolist(), d.end.tolist()
    ([12, 16, 20, 24, 28, 32, 36], [24, 28, 32, 36, 40, 44, 48])
    """
    empty = np.zeros(0, np.int64)
    if ts_us.shape[0] < 2:
        return Decisions(empty, empty, empty, empty)
    step = int(method.step / timedelta(microseconds=1))
    horizon = int(method.horizon / timedelta(microseconds=1))
    first = int(ts_us[0]) + int(max(warmup, method.min_warmup) / timedelta(microseconds=1))
    first = -(-first // step) * step
    interval = int(np.median(np.diff(ts_us)))
    last_close = int(ts_us[-1]) + interval
    t = np.arange(first, last_close - horizon + 1, step, dtype=np.int64)
    i = closed_bar_index(ts_us, t)
    start = np.searchsorted(ts_us, t, side="left").astype(np.int64)
    end = np.searchsorted(ts_us, t + horizon, side="left").astype(np.int64)
    keep = (i >= 0) & (end > start)
    return Decisions(t[keep], i[keep], start[keep], end[keep])


def book_buckets(
    levels: pl.DataFrame, norm: pl.DataFrame, log_d: F64, bars_i: I64, method: WhereMethod
) -> Buckets:
    """The book after each bar in ``bars_i``, bucketed by distance in the band (no look-ahead).

    Only levels created by bars ``j <= i``, not liquidated by bar ``i`` (``liquidated_at`` bar
    ``> i``) and with a remaining share ``D[i] / D[j] >= EXPIRY_FRACTION`` count. Each level is
    visited at the decisions at which it is in the book (a compiled loop), so the work is the
    sum of the levels' book lives in decisions, not decisions x levels.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(3)]
    >>> bars = model_input(pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                                  "close": 100.0, "oi_usd": 1.0}))
    >>> lv = pl.DataFrame({"created_at": [t[0], t[2]], "side": ["long", "long"],
    ...     "price": [98.0, 98.0], "notional_usd": [5.0, 7.0], "liquidated_at": [None, None]},
    ...     schema_overrides={"created_at": pl.Datetime("us", "UTC"),
    ...                       "liquidated_at": pl.Datetime("us", "UTC")})
    >>> b = book_buckets(lv, bars, np.zeros(3), np.array([1, 2]), WhereMethod())
    >>> b.usd[:, 0].sum(-1).tolist(), round(float(b.strongest()[0, 0]), 4)
    ([5.0, 12.0], 0.02)
    """
    nb = method.n_buckets
    k = bars_i.shape[0]
    usd_out = np.zeros((k, 2, nb))
    dist_out = np.zeros((k, 2, nb))
    close = norm.get_column("close").to_numpy().astype(np.float64)
    ref = close[bars_i] if k else np.zeros(0)
    if k == 0 or levels.height == 0:
        return Buckets(usd_out, dist_out, ref)
    ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    j = bar_index(ts, levels.get_column("created_at"))
    m = bar_index(ts, levels.get_column("liquidated_at"))
    # decisions (sorted bars_i) at which each level is in the book: j <= i < min(m, expiry)
    expiry = np.searchsorted(-log_d, -(log_d[np.clip(j, 0, None)] + math.log(EXPIRY_FRACTION)),
                             side="right")  # fmt: skip
    k0 = np.searchsorted(bars_i, j, side="left")
    k1 = np.searchsorted(bars_i, np.minimum(m, expiry), side="left")
    use = np.flatnonzero((j >= 0) & (k1 > k0))
    k0, count = k0[use], (k1 - k0)[use]
    j = j[use]
    side = (levels.get_column("side") == "short").to_numpy()[use].astype(np.int64)
    price = levels.get_column("price").to_numpy().astype(np.float64)[use]
    notional = levels.get_column("notional_usd").to_numpy().astype(np.float64)[use]
    _bucket_kernel(
        np.ascontiguousarray(k0, dtype=np.int64),
        np.ascontiguousarray(k0 + count, dtype=np.int64),
        np.ascontiguousarray(j, dtype=np.int64),
        np.ascontiguousarray(side, dtype=np.int64),
        np.ascontiguousarray(price),
        np.ascontiguousarray(notional),
        np.ascontiguousarray(bars_i, dtype=np.int64),
        np.ascontiguousarray(log_d, dtype=np.float64),
        np.ascontiguousarray(ref, dtype=np.float64),
        float(method.band[0]),
        float(method.band[1]),
        float(method.bucket),
        usd_out,
        dist_out,
    )
    return Buckets(usd_out, dist_out, ref)


def top_distances(buckets: Buckets, top: int, min_sep: float) -> F64:
    """[k, 2, top] distances of the strongest buckets, greedily at least ``min_sep`` apart.

    Examples
    --------
    >>> usd = np.array([[[1.0, 5.0, 4.0, 3.0], [0.0, 0.0, 0.0, 2.0]]])
    >>> dist = usd * np.array([0.010, 0.012, 0.014, 0.030])
    >>> top_distances(Buckets(usd, dist, np.ones(1)), 3, 0.01).round(3).tolist()
    [[[0.012, 0.03, nan], [0.03, nan, nan]]]
    """
    k = buckets.usd.shape[0]
    out = np.full((k, 2, top), np.nan)
    d = buckets.distance()
    order = np.argsort(-buckets.usd, axis=-1, kind="stable")
    for row in range(k):
        for s in (0, 1):
            got: list[float] = []
            for b in order[row, s]:
                if buckets.usd[row, s, b] <= 0 or len(got) == top:
                    break
                if all(abs(d[row, s, b] - g) >= min_sep - 1e-12 for g in got):
                    got.append(float(d[row, s, b]))
            out[row, s, : len(got)] = got
    return out


def eligible(t_us: I64, horizon: timedelta) -> npt.NDArray[np.bool_]:
    """[k, k'] True where decision ``k'`` may serve as a null for ``k`` (windows do not overlap)."""
    h = int(horizon / timedelta(microseconds=1))
    return np.asarray(np.abs(t_us[:, None] - t_us[None, :]) >= h)


def magnet_hits(dist: F64, excursion: F64, elig: npt.NDArray[np.bool_]) -> tuple[F64, F64]:
    """Model hits and distance-matched null hits per decision and side.

    ``dist`` [k, 2]: the model level's distance (NaN = none); ``excursion`` [k, 2]: the largest
    move toward the side within the horizon (``(ref - min low) / ref`` for longs, ``(max high -
    ref) / ref`` for shorts). The null of ``(k, s)`` is the share of eligible ``k'`` whose
    excursion reached ``dist[k, s]``: the exact expectation of a level at the same distance at
    a random non-overlapping time. Both are NaN where ``dist`` is NaN or nothing is eligible.

    Examples
    --------
    >>> dist = np.array([[0.01, 0.02], [0.01, np.nan], [0.03, 0.02]])
    >>> exc = np.array([[0.02, 0.01], [0.0, 0.05], [0.04, 0.03]])
    >>> hit, null = magnet_hits(dist, exc, ~np.eye(3, dtype=bool))
    >>> hit.tolist(), null.tolist()
    ([[1.0, 0.0], [0.0, nan], [1.0, 1.0]], [[0.5, 1.0], [1.0, nan], [0.0, 0.5]])
    """
    count = elig.sum(1).astype(np.float64)
    hit = np.where(np.isnan(dist), np.nan, (excursion >= dist).astype(np.float64))
    null = np.full(dist.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        for s in (0, 1):
            reached = excursion[None, :, s] >= dist[:, s, None]  # [k, k']
            null[:, s] = (reached & elig).sum(1) / count
    bad = np.isnan(dist) | (count[:, None] == 0)
    hit[bad] = np.nan
    null[bad] = np.nan
    return hit, null


def _block_draws(n: int, block: int, draws: int, seed: int) -> I64:
    """[draws, n] indices of a moving-block bootstrap (blocks of ``block`` consecutive rows)."""
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(draws, math.ceil(n / block)))
    return np.asarray((starts[..., None] + np.arange(block)).reshape(draws, -1)[:, :n])


#: An interval needs at least this many blocks of rows: with fewer, the resampled ratios are a
#: handful of block combinations and their quantiles mean nothing (NaN: "too few decisions").
MIN_BLOCKS = 5


def block_interval(
    num: F64, den: F64, *, block: int, draws: int = 2000, seed: int = 7
) -> tuple[float, float]:
    """95 % moving-block bootstrap interval of ``sum(num) / sum(den)`` over rows (time order).

    Rows are resampled in blocks of ``block`` consecutive rows (overlapping outcomes stay
    together); the interval is the 2.5 and 97.5 % quantiles of the resampled ratios. Seeded:
    the same input gives the same interval. NaN when there are fewer rows than `MIN_BLOCKS`
    blocks.

    Examples
    --------
    >>> x = np.arange(1.0, 41.0)
    >>> block_interval(x, x, block=4)
    (1.0, 1.0)
    >>> lo, hi = block_interval(x, np.full(40, 20.5), block=4)
    >>> lo < 1.0 < hi
    True
    """
    n = num.shape[0]
    if n == 0 or n < MIN_BLOCKS * block:
        return math.nan, math.nan
    idx = _block_draws(n, block, draws, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = num[idx].sum(1) / den[idx].sum(1)
    ratio = ratio[np.isfinite(ratio)]
    if ratio.shape[0] == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(ratio, [0.025, 0.975])
    return float(lo), float(hi)


def _corr_interval(x: F64, y: F64, block: int, draws: int, seed: int) -> tuple[float, float]:
    n = x.shape[0]
    if n < 3 or n < MIN_BLOCKS * block:
        return math.nan, math.nan
    idx = _block_draws(n, block, draws, seed)
    xs, ys = x[idx], y[idx]
    xc, yc = xs - xs.mean(1, keepdims=True), ys - ys.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(1) / np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
    r = r[np.isfinite(r)]
    if r.shape[0] == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(r, [0.025, 0.975])
    return float(lo), float(hi)


def _zone_usd(prices: F64, low: F64, high: F64, usd: F64, tol: float) -> F64:
    """USD of the bars whose range came within ``tol`` of any of ``prices`` [..., m] (NaN = none);
    bars ``low``, ``high``, ``usd`` [H]. Returns [...]."""
    p = prices[..., :, None]
    with np.errstate(invalid="ignore"):
        near = (low <= p * (1 + tol)) & (high >= p * (1 - tol))  # [..., m, H]
    return np.asarray((near.any(-2) * usd).sum(-1), dtype=np.float64)


def _realized_aligned(norm: pl.DataFrame, realized: pl.DataFrame) -> F64:
    """[n, 2] realized long/short USD per normalized bar (summed per ts; missing = 0)."""
    real = (
        utc_ts(realized.select("ts", "long_usd", "short_usd"))
        .group_by("ts")
        .agg(pl.col("long_usd").cast(pl.Float64).sum(), pl.col("short_usd").cast(pl.Float64).sum())
    )
    joined = norm.select("ts").join(real, on="ts", how="left", maintain_order="left")
    arr = joined.select("long_usd", "short_usd").fill_null(0.0).fill_nan(0.0).to_numpy()
    return np.clip(np.asarray(arr, dtype=np.float64), 0.0, None)


def where_scores(
    bars: pl.DataFrame,
    levels: pl.DataFrame | None = None,
    params: ModelParams | None = None,
    *,
    realized: pl.DataFrame | None = None,
    method: WhereMethod | None = None,
) -> pl.DataFrame:
    """The where-scores of one model run (see the module docstring for the method).

    Parameters
    ----------
    bars
        Canonical bars (see `transforms.bars.model_input`) the run was computed on.
    levels
        The run's levels (`transforms.levels.liquidation_levels` on ``bars``, ``params``);
        computed when not given.
    params
        The run's parameters (survival factor, warm-up); default `ModelParams()`.
    realized
        Optional realized liquidations per bar (``ts, long_usd, short_usd``): adds
        ``realized_near``.
    method
        Decision step, horizon, band, buckets, bootstrap (default `WhereMethod()`).

    Returns
    -------
    pl.DataFrame
        `WHERE_SCORE_SCHEMA`; empty when the bars leave no decision time (shorter than the
        warm-up plus the horizon) or fewer than two.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(24 * 6)]
    >>> price = 100 * np.exp(0.01 * np.sin(np.arange(len(t)) / 5))
    >>> bars = pl.DataFrame({"ts": t, "open": price, "high": price * 1.01,
    ...                      "low": price * 0.99, "close": price, "oi_usd": 1e6})
    >>> out = where_scores(bars, method=WhereMethod(draws=200))
    >>> out.filter(pl.col("bin") == "all")["name"].unique(maintain_order=True).to_list()
    ['magnet', 'direction_corr', 'direction_agree']
    """
    params = params or ModelParams()
    method = method or WhereMethod()
    norm = model_input(bars)
    if norm.height < 2:
        return pl.DataFrame(schema=WHERE_SCORE_SCHEMA)
    ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    dec = decision_times(ts, timedelta(hours=warmup_hours(params)), method)
    if dec.t_us.shape[0] < 2:
        return pl.DataFrame(schema=WHERE_SCORE_SCHEMA)
    if levels is None:
        levels = liquidation_levels(norm, params)
    buckets = book_buckets(levels, norm, log_survival(norm, params), dec.i, method)
    low = norm.get_column("low").to_numpy().astype(np.float64)
    high = norm.get_column("high").to_numpy().astype(np.float64)
    close = norm.get_column("close").to_numpy().astype(np.float64)
    ref = buckets.ref
    k = dec.t_us.shape[0]
    min_low = np.array([low[a:b].min() for a, b in zip(dec.start, dec.end, strict=True)])
    max_high = np.array([high[a:b].max() for a, b in zip(dec.start, dec.end, strict=True)])
    excursion = np.stack([(ref - min_low) / ref, (max_high - ref) / ref], axis=1)
    ret = close[dec.end - 1] / ref - 1.0
    elig = eligible(dec.t_us, method.horizon)
    block = max(1, round(method.block / method.step))
    common = {
        "first_decision": int(dec.t_us[0]),
        "last_decision": int(dec.t_us[-1]),
        "step_hours": method.step / timedelta(hours=1),
        "horizon_hours": method.horizon / timedelta(hours=1),
    }
    rows: list[dict[str, object]] = []

    def ratio_row(name: str, side: str, bin_: str, n: int, num: F64, den: F64, scale: F64
                  ) -> None:  # fmt: skip
        """A lift row: model = sum(num) / sum(scale), null = sum(den) / sum(scale)."""
        total = float(scale.sum())
        m_sum, n_sum = float(num.sum()), float(den.sum())
        lo, hi = block_interval(num, den, block=block, draws=method.draws, seed=method.seed)
        rows.append(
            {"name": name, "side": side, "bin": bin_, "n": n,
             "model": m_sum / total if total > 0 else math.nan,
             "null": n_sum / total if total > 0 else math.nan,
             "lift": m_sum / n_sum if n_sum > 0 else math.nan, "lo": lo, "hi": hi, **common}
        )  # fmt: skip

    # magnet
    dist = buckets.strongest()
    hit, null = magnet_hits(dist, excursion, elig)
    valid = ~np.isnan(hit)
    for label, cols in (("long", [0]), ("short", [1]), ("both", [0, 1])):
        v = valid[:, cols]
        ratio_row(
            "magnet", label, "all", int(v.sum()),
            np.where(v, hit[:, cols], 0.0).sum(1), np.where(v, null[:, cols], 0.0).sum(1),
            v.sum(1).astype(np.float64),
        )  # fmt: skip
    for (a, b), label in zip(itertools.pairwise(method.bins), method.bin_labels(), strict=True):
        with np.errstate(invalid="ignore"):
            v = valid & (dist >= a) & (dist < b)
        ratio_row(
            "magnet", "both", label, int(v.sum()),
            np.where(v, hit, 0.0).sum(1), np.where(v, null, 0.0).sum(1),
            v.sum(1).astype(np.float64),
        )  # fmt: skip

    # realized near the top clusters
    if realized is not None:
        real = _realized_aligned(norm, realized)
        tops = top_distances(buckets, method.top, 2 * method.tol)
        sign = np.array([-1.0, 1.0])
        near = np.zeros((k, 2))
        null_usd = np.zeros((k, 2))
        total = np.zeros((k, 2))
        count = elig.sum(1)
        for row in range(k):
            a, b = int(dec.start[row]), int(dec.end[row])
            for s in (0, 1):
                usd = real[a:b, s]
                total[row, s] = usd.sum()
                pos = usd > 0
                if not pos.any():
                    continue
                lo_b, hi_b, u = low[a:b][pos], high[a:b][pos], usd[pos]
                prices = ref[row] * (1 + sign[s] * tops[row, s])
                near[row, s] = _zone_usd(prices[None, :], lo_b, hi_b, u, method.tol)[0]
                if count[row]:
                    others = ref[row] * (1 + sign[s] * tops[elig[row], s])  # [k', top]
                    null_usd[row, s] = _zone_usd(others, lo_b, hi_b, u, method.tol).mean()
        for label, cols in (("long", [0]), ("short", [1]), ("both", [0, 1])):
            use = (count > 0)[:, None] & (total[:, cols] > 0)
            ratio_row(
                "realized_near", label, "all", int(use.any(1).sum()),
                np.where(use, near[:, cols], 0.0).sum(1),
                np.where(use, null_usd[:, cols], 0.0).sum(1),
                np.where(use, total[:, cols], 0.0).sum(1),
            )  # fmt: skip

    # direction
    band = buckets.usd.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        imb = (band[:, 0] - band[:, 1]) / (band[:, 0] + band[:, 1])
    ok = np.isfinite(imb) & np.isfinite(ret)
    x, y = imb[ok], ret[ok]
    corr = math.nan
    if x.shape[0] >= 3 and x.std() > 0 and y.std() > 0:
        corr = float(np.corrcoef(x, y)[0, 1])
    lo, hi = _corr_interval(x, y, block, method.draws, method.seed)
    rows.append(
        {"name": "direction_corr", "side": "both", "bin": "all", "n": int(ok.sum()),
         "model": corr, "null": 0.0, "lift": math.nan, "lo": lo, "hi": hi, **common}
    )  # fmt: skip
    agree = (np.sign(y) == -np.sign(x)).astype(np.float64)
    share = float(agree.mean()) if agree.shape[0] else math.nan
    lo, hi = block_interval(agree, np.ones_like(agree), block=block, draws=method.draws,
                            seed=method.seed)  # fmt: skip
    rows.append(
        {"name": "direction_agree", "side": "both", "bin": "all", "n": int(ok.sum()),
         "model": share, "null": 0.5, "lift": share / 0.5, "lo": lo, "hi": hi, **common}
    )  # fmt: skip
    frame = pl.DataFrame(rows)
    return frame.with_columns(
        pl.col("first_decision", "last_decision")
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    ).select([pl.col(c).cast(t) for c, t in WHERE_SCORE_SCHEMA.items()])
