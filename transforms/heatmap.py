"""Liquidation heatmap (time x price) and liquidation map (one snapshot) from levels."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from transforms.levels import (
    EXPIRY_FRACTION,
    F64,
    _normalized,
    _ts_series,
    bar_index,
    log_survival,
    snapshot,
)
from transforms.params import ModelParams

__all__ = ["HEATMAP_SCHEMA", "LIQUIDATION_MAP_SCHEMA", "heatmap", "liquidation_map"]

_UTC = pl.Datetime("us", "UTC")

#: Sparse heatmap cells. ``price`` is the bucket's LOWER edge (``floor(p / step) * step``);
#: the USD columns are the notional alive, averaged over the bars of the time bucket.
HEATMAP_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC,
    "price": pl.Float64(),
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
}

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

# Chunks of time in which log D falls by at most this much, so exp(-log D) cannot overflow.
_CHUNK_LOG_RANGE = 300.0


def _empty_heatmap() -> pl.DataFrame:
    return pl.DataFrame(schema=HEATMAP_SCHEMA)


def _grouped_cumsum(values: F64, starts: npt.NDArray[np.bool_]) -> F64:
    """Cumulative sum restarting at each True in ``starts`` (``starts[0]`` must be True).

    Exact per group (no cancellation against other groups' totals): one vectorized step per
    position inside the groups, so O(E) work in ``max group length`` numpy calls.
    """
    n = values.shape[0]
    out = np.asarray(values, dtype=np.float64).copy()
    if n == 0:
        return out
    first = np.flatnonzero(starts)
    length = np.diff(np.r_[first, n])
    pos = np.arange(n) - np.repeat(first, length)
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(int(length.max()) + 1))
    for k in range(1, int(length.max())):
        idx = order[bounds[k] : bounds[k + 1]]
        out[idx] += out[idx - 1]
    return out


def _segmented_suffix_sum(values: F64, starts: npt.NDArray[np.bool_]) -> F64:
    """Sum of ``values[i:]`` inside i's group (groups = runs opened by ``starts``). Exact."""
    ends = np.r_[starts[1:], True]  # last element of each group
    rev = _grouped_cumsum(np.ascontiguousarray(values[::-1]), ends[::-1])
    return np.ascontiguousarray(rev[::-1])


def heatmap(
    levels: pl.DataFrame,
    bars: pl.DataFrame,
    price_step: float,
    time_step: str | timedelta,
    *,
    params: ModelParams | None = None,
) -> pl.DataFrame:
    """Alive long/short notional per (time bucket, price bucket): the liquidation heatmap.

    A level created in bar ``j`` and liquidated in bar ``m`` (or alive) counts in the bars
    ``[j, m)`` with ``notional * D[i] / D[j]`` (OI-decrease shrinkage, see
    `transforms.levels.log_survival`). A cell is the mean over the time bucket's bars. Computed as
    a difference array (``+notional / D[j]`` at creation, ``-notional / D[j]`` at the end) with a
    cumulative sum per price bucket, never a loop over levels or bars: O(N log N + n + C) for
    ``N`` levels, ``n`` bars, ``C`` output cells. Levels below `EXPIRY_FRACTION` of their
    notional are dropped. Time is cut into chunks where ``log D`` falls by at most 300 so the
    weights ``1 / D[j]`` never overflow (one chunk in practice).

    Parameters
    ----------
    levels
        Output of `transforms.levels.liquidation_levels` on ``bars``.
    bars
        The bars the levels were computed from (any interval).
    price_step
        Price bucket size; ``price`` is the bucket's lower edge.
    time_step
        Time bucket, polars duration string (``"15m"``, ``"1h"``) or timedelta; buckets start
        at ``ts.dt.truncate(time_step)``.
    params
        The levels' params (for ``D``); default `ModelParams()`.

    Returns
    -------
    pl.DataFrame
        `HEATMAP_SCHEMA`, only cells with a positive value, sorted by ts then price.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> from transforms.levels import liquidation_levels
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(4)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0, 1000.0]})
    >>> p = ModelParams(leverages=(10.0,), weights=(1.0,))
    >>> hm = heatmap(liquidation_levels(bars, p), bars, 1.0, "10m", params=p)
    >>> for row in hm.select(pl.col("ts").dt.minute(), "price", "long_usd", "short_usd").rows():
    ...     print(row)
    (0, 90.0, 1000.0, 0.0)
    (0, 109.0, 0.0, 1000.0)
    (10, 90.0, 750.0, 0.0)
    (10, 109.0, 0.0, 750.0)
    """
    if not (price_step > 0 and math.isfinite(price_step)):
        raise ValueError(f"price_step must be positive, got {price_step}")
    params = params or ModelParams()
    norm = _normalized(bars)
    n = norm.height
    if n == 0 or levels.height == 0:
        return _empty_heatmap()
    ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    log_d = log_survival(norm, params)

    # time buckets: bar -> bucket id (bars are sorted, so ids are monotone)
    bucket_ts = norm.get_column("ts").dt.truncate(time_step).dt.epoch("us").to_numpy()
    bstart = np.flatnonzero(np.r_[True, bucket_ts[1:] != bucket_ts[:-1]])
    nb = bstart.shape[0]
    bid = np.cumsum(np.r_[True, bucket_ts[1:] != bucket_ts[:-1]]) - 1
    bcount = np.diff(np.r_[bstart, n]).astype(np.float64)

    # chunks of buckets with a bounded log D range; ref = log D at the chunk's first bar
    chunk_of_bucket = np.floor(-log_d[bstart] / _CHUNK_LOG_RANGE).astype(np.int64)
    cstart_b = np.flatnonzero(np.r_[True, chunk_of_bucket[1:] != chunk_of_bucket[:-1]])
    chunk_of_bucket = np.cumsum(np.r_[True, chunk_of_bucket[1:] != chunk_of_bucket[:-1]]) - 1
    cfirst_bar = bstart[cstart_b]
    cend_bar = np.r_[cfirst_bar[1:], n]  # exclusive
    clast_bucket = np.r_[cstart_b[1:], nb] - 1
    chunk = chunk_of_bucket[bid]
    ref = log_d[cfirst_bar]
    delta = np.exp(log_d - ref[chunk])  # in (e^-300-ish, 1]
    s_b = np.bincount(bid, weights=delta, minlength=nb)
    mean_b = s_b / bcount
    # suffix sum of delta inside each bucket (exact per bucket)
    bucket_start = np.zeros(n, dtype=bool)
    bucket_start[bstart] = True
    suffix = _segmented_suffix_sum(delta, bucket_start)

    # levels -> bar intervals [j, end)
    j = bar_index(ts, levels.get_column("created_at"))
    m = bar_index(ts, levels.get_column("liquidated_at"))
    notional = levels.get_column("notional_usd").to_numpy().astype(np.float64)
    keep = (j >= 0) & (notional > 0)
    target = log_d[np.clip(j, 0, None)] + math.log(EXPIRY_FRACTION)
    end = np.minimum(m, np.searchsorted(-log_d, -target, side="right"))
    keep &= end > j
    side = (levels.get_column("side") == "short").to_numpy().astype(np.int64)[keep]
    price_b = np.floor(levels.get_column("price").to_numpy()[keep] / price_step).astype(np.int64)
    j, end, notional = j[keep], end[keep], notional[keep]
    if j.shape[0] == 0:
        return _empty_heatmap()

    # split each level into one segment per chunk it spans (one in practice)
    ca, cb = chunk[j], chunk[end - 1]
    nseg = cb - ca + 1
    rep = np.repeat(np.arange(j.shape[0]), nseg)
    seg_chunk = ca[rep] + (np.arange(rep.shape[0]) - np.repeat(np.cumsum(nseg) - nseg, nseg))
    seg_start = np.maximum(j[rep], cfirst_bar[seg_chunk])
    seg_end = np.minimum(end[rep], cend_bar[seg_chunk])
    w = notional[rep] * np.exp(ref[seg_chunk] - log_d[j[rep]])
    seg_side, seg_price = side[rep], price_b[rep]
    removed = seg_end < cend_bar[seg_chunk]

    ev_bar = np.r_[seg_start, seg_end[removed]]
    ev_w = np.r_[w, -w[removed]]
    ev_cnt = np.r_[np.ones(w.shape[0]), -np.ones(int(removed.sum()))]
    ev_side = np.r_[seg_side, seg_side[removed]]
    ev_price = np.r_[seg_price, seg_price[removed]]
    ev_bucket = bid[ev_bar]
    # aggregate events per (side, price bucket, time bucket), sorted by that key
    pb_min = int(ev_price.min())
    pb_span = int(ev_price.max()) - pb_min + 1
    key = (ev_side * pb_span + (ev_price - pb_min)) * nb + ev_bucket
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    first = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    uk = key_sorted[first]
    e_tb = uk % nb
    e_pb = (uk // nb) % pb_span + pb_min
    e_side = uk // nb // pb_span
    e_w = np.add.reduceat(ev_w[order], first)
    e_wr = np.add.reduceat((ev_w * suffix[ev_bar])[order], first)
    e_cnt = np.add.reduceat(ev_cnt[order], first)
    e_chunk = chunk_of_bucket[e_tb]
    new_group = np.r_[
        True,
        (e_side[1:] != e_side[:-1]) | (e_pb[1:] != e_pb[:-1]) | (e_chunk[1:] != e_chunk[:-1]),
    ]
    a_after = _grouped_cumsum(e_w, new_group)
    alive_after = np.rint(_grouped_cumsum(e_cnt, new_group))
    a_after = np.where(alive_after > 0, a_after, 0.0)
    a_before = a_after - e_w
    a_before = np.where(alive_after - e_cnt > 0, a_before, 0.0)
    ev_val = (a_before * s_b[e_tb] + e_wr) / bcount[e_tb]

    # gap buckets after each event bucket, up to the next event bucket of the group
    last_in_group = np.r_[new_group[1:], True]
    next_tb = np.where(last_in_group, clast_bucket[e_chunk] + 1, np.r_[e_tb[1:], 0])
    gap = np.where(alive_after > 0, next_tb - e_tb - 1, 0)
    grep = np.repeat(np.arange(e_tb.shape[0]), gap)
    g_tb = e_tb[grep] + 1 + (np.arange(grep.shape[0]) - np.repeat(np.cumsum(gap) - gap, gap))
    g_val = a_after[grep] * mean_b[g_tb]

    c_tb = np.r_[e_tb, g_tb]
    c_pb = np.r_[e_pb, e_pb[grep]]
    c_side = np.r_[e_side, e_side[grep]]
    c_usd = np.maximum(np.r_[ev_val, g_val], 0.0)
    pos = c_usd > 0
    c_tb, c_pb, c_side, c_usd = c_tb[pos], c_pb[pos], c_side[pos], c_usd[pos]
    ckey = c_tb * pb_span + (c_pb - pb_min)
    order = np.argsort(ckey, kind="stable")
    ckey = ckey[order]
    first = np.flatnonzero(np.r_[True, ckey[1:] != ckey[:-1]]) if ckey.shape[0] else first[:0]
    long_usd = (
        np.add.reduceat(np.where(c_side == 0, c_usd, 0.0)[order], first) if ckey.shape[0] else c_usd
    )
    short_usd = (
        np.add.reduceat(np.where(c_side == 1, c_usd, 0.0)[order], first) if ckey.shape[0] else c_usd
    )
    out = pl.DataFrame(
        {
            "tb": ckey[first] // pb_span,
            "pb": ckey[first] % pb_span + pb_min,
            "long_usd": long_usd,
            "short_usd": short_usd,
        }
    )
    return out.select(
        _ts_series("ts", bucket_ts[bstart][out["tb"].to_numpy()]),
        (pl.col("pb").cast(pl.Float64) * price_step).alias("price"),
        "long_usd",
        "short_usd",
    ).select([pl.col(c).cast(t) for c, t in HEATMAP_SCHEMA.items()])


def liquidation_map(
    levels: pl.DataFrame,
    at: datetime | None = None,
    *,
    bars: pl.DataFrame,
    price_step: float | None = None,
    params: ModelParams | None = None,
) -> pl.DataFrame:
    """Snapshot of alive long liquidations below and short liquidations above the price.

    At the last bar with ``ts <= at`` (default: last bar), per price bucket (lower edge), with
    the OI-decrease shrinkage applied; ``long_cum_usd`` = "if price drops to this bucket, this
    much of longs liquidates on the way" (cumulated from ``ref_price`` downward), likewise
    ``short_cum_usd`` upward. ``ref_price`` is that bar's close. O(N + n).

    Parameters
    ----------
    levels
        Output of `transforms.levels.liquidation_levels` on ``bars``.
    at
        Snapshot time (UTC; naive = UTC); default the last bar.
    bars
        The bars the levels were computed from.
    price_step
        Bucket size; default ``params.resolve_price_step(bars)``.
    params
        The levels' params; default `ModelParams()`.

    Returns
    -------
    pl.DataFrame
        `LIQUIDATION_MAP_SCHEMA`, sorted by price.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> from transforms.levels import liquidation_levels
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0]})
    >>> p = ModelParams(leverages=(10.0, 25.0), weights=(0.5, 0.5), price_step=1.0)
    >>> lm = liquidation_map(liquidation_levels(bars, p), bars=bars, params=p)
    >>> for row in lm.select("price", "long_usd", "long_cum_usd", "short_cum_usd").rows():
    ...     print(row)
    (90.0, 500.0, 1000.0, 0.0)
    (96.0, 500.0, 500.0, 0.0)
    (103.0, 0.0, 0.0, 500.0)
    (109.0, 0.0, 0.0, 1000.0)
    """
    params = params or ModelParams()
    step = price_step if price_step is not None else params.resolve_price_step(_normalized(bars))
    snap = snapshot(levels, bars, at, params)
    cells = (
        pl.DataFrame(
            {
                "pb": np.floor(snap.price / step).astype(np.int64),
                "long": np.where(snap.side == 0, snap.usd, 0.0),
                "short": np.where(snap.side == 1, snap.usd, 0.0),
            }
        )
        .group_by("pb")
        .agg(pl.col("long").sum().alias("long_usd"), pl.col("short").sum().alias("short_usd"))
        .filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0))
        .sort("pb")
    )
    return cells.select(
        _ts_series("as_of", np.full(cells.height, snap.ts, dtype=np.int64)),
        pl.lit(snap.ref_price, pl.Float64).alias("ref_price"),
        (pl.col("pb").cast(pl.Float64) * step).alias("price"),
        "long_usd",
        "short_usd",
        pl.col("long_usd").cum_sum(reverse=True).alias("long_cum_usd"),
        pl.col("short_usd").cum_sum().alias("short_cum_usd"),
    ).select([pl.col(c).cast(t) for c, t in LIQUIDATION_MAP_SCHEMA.items()])
