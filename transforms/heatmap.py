"""Liquidation heatmap (time x price) and liquidation map (one snapshot) from levels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from transforms.bars import as_model_input, utc_series
from transforms.display import (
    DISPLAY_AGES,
    FINEST_DISPLAY_STEP,
    SHORT_HISTORY,
    TimeTiers,
    as_timedelta,
    display_tiers,
    display_tiers_for,
)
from transforms.levels import (
    EXPIRY_FRACTION,
    F64,
    I64,
    bar_index,
    log_survival,
    snapshot,
)
from transforms.map_cells import LIQUIDATION_MAP_SCHEMA, map_cells
from transforms.params import ModelParams

__all__ = [
    "DISPLAY_AGES",
    "FINEST_DISPLAY_STEP",
    "HEATMAP_SCHEMA",
    "LIQUIDATION_MAP_SCHEMA",
    "SHORT_HISTORY",
    "TimeTiers",
    "as_timedelta",
    "display_price_range",
    "display_tiers",
    "display_tiers_for",
    "heatmap",
    "liquidation_map",
]

_UTC = pl.Datetime("us", "UTC")

#: Sparse heatmap cells. ``price`` is the bucket's LOWER edge (``floor(p / step) * step``);
#: the USD columns are the notional alive, averaged over the bars of the time bucket.
HEATMAP_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC,
    "price": pl.Float64(),
    "long_usd": pl.Float64(),
    "short_usd": pl.Float64(),
}


def display_price_range(
    bars: pl.DataFrame,
    key_prices: list[float] | None = None,
    *,
    pad_range: float = 0.3,
    pad_price: float = 0.05,
    pad_level: float = 0.02,
) -> tuple[float, float]:
    """The prices the site can show for ``bars``: their low..high padded by the larger of
    ``pad_range`` x the range and ``pad_price`` x the mid price, widened to every key price
    +- ``pad_level``. Wider than every page's own window (the site pads a range's low..high by
    the larger of 25 % of its range and 4 % of its mid price, and widens it to the key levels
    +- 1 %), so no page misses a cell.

    Examples
    --------
    >>> display_price_range(pl.DataFrame({"low": [95.0], "high": [105.0]}), [80.0])
    (78.4, 110.0)
    """
    lo = float(bars.get_column("low").min())  # type: ignore[arg-type]
    hi = float(bars.get_column("high").max())  # type: ignore[arg-type]
    pad = max(pad_range * (hi - lo), pad_price * (hi + lo) / 2)
    lo, hi = lo - pad, hi + pad
    for p in key_prices or []:
        if math.isfinite(p) and p > 0:
            lo, hi = min(lo, p * (1 - pad_level)), max(hi, p * (1 + pad_level))
    return max(lo, 0.0), hi


# Chunks of time in which log D falls by at most this much, so exp(-log D) cannot overflow.
_CHUNK_LOG_RANGE = 300.0


def _empty_heatmap(group: str | None = None) -> pl.DataFrame:
    return pl.DataFrame(schema={**({group: pl.Int64()} if group else {}), **HEATMAP_SCHEMA})


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


@dataclass(frozen=True)
class _Grid:
    """Time buckets, chunks and per-bar survival factors shared by both sides (internal)."""

    nb: int  # number of time buckets
    pb_min: int  # smallest price bucket index
    pb_span: int  # number of price buckets spanned
    chunk: I64  # chunk per bar
    chunk_of_bucket: I64
    cfirst_bar: I64  # first bar per chunk
    cend_bar: I64  # end bar (exclusive) per chunk
    clast_bucket: I64  # last bucket per chunk
    ref: F64  # log D at each chunk's first bar
    log_d: F64
    bid: I64  # time bucket per bar
    s_b: F64  # sum over each bucket's bars of exp(log D - ref)
    mean_b: F64  # s_b / bars in the bucket
    bcount: F64
    suffix: F64  # per bar: sum of exp(log D - ref) from this bar to its bucket's end


def _side_cells(g: _Grid, j: I64, end: I64, notional: F64, price_b: I64) -> tuple[I64, F64]:
    """Heatmap cells of one side: sorted unique keys ``tb * pb_span + pb - pb_min`` and USD."""
    if j.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    # split each level into one segment per chunk it spans (one in practice)
    ca, cb = g.chunk[j], g.chunk[end - 1]
    nseg = cb - ca + 1
    rep = np.repeat(np.arange(j.shape[0]), nseg)
    seg_chunk = ca[rep] + (np.arange(rep.shape[0]) - np.repeat(np.cumsum(nseg) - nseg, nseg))
    seg_start = np.maximum(j[rep], g.cfirst_bar[seg_chunk])
    seg_end = np.minimum(end[rep], g.cend_bar[seg_chunk])
    w = notional[rep] * np.exp(g.ref[seg_chunk] - g.log_d[j[rep]])
    seg_price = price_b[rep] - g.pb_min
    removed = seg_end < g.cend_bar[seg_chunk]
    del rep, seg_chunk

    # events (+w at the segment start, -w at its end), aggregated per (price bucket, time
    # bucket) and sorted by that key
    ev_bar = np.concatenate([seg_start, seg_end[removed]])
    ev_w = np.concatenate([w, -w[removed]])
    n_removed = int(removed.sum())
    ev_cnt = np.concatenate([np.ones(w.shape[0], np.int64), -np.ones(n_removed, np.int64)])
    key = np.concatenate([seg_price, seg_price[removed]]) * g.nb + g.bid[ev_bar]
    del seg_start, seg_end, w, seg_price, removed
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    e_w = np.add.reduceat(ev_w[order], first)
    e_wr = np.add.reduceat((ev_w * g.suffix[ev_bar])[order], first)
    e_cnt = np.add.reduceat(ev_cnt[order], first)
    uk = key[first]
    del order, key, first, ev_bar, ev_w, ev_cnt
    e_tb = uk % g.nb
    e_pb = uk // g.nb
    del uk
    e_chunk = g.chunk_of_bucket[e_tb]
    new_group = np.r_[True, (e_pb[1:] != e_pb[:-1]) | (e_chunk[1:] != e_chunk[:-1])]
    a_after = _grouped_cumsum(e_w, new_group)
    alive_after = _grouped_cumsum(e_cnt.astype(np.float64), new_group)
    a_after = np.where(alive_after > 0.5, a_after, 0.0)
    a_before = np.where(alive_after - e_cnt > 0.5, a_after - e_w, 0.0)
    ev_val = (a_before * g.s_b[e_tb] + e_wr) / g.bcount[e_tb]
    del a_before, e_wr, e_w

    # gap buckets after each event bucket, up to the next event bucket of the group
    last_in_group = np.r_[new_group[1:], True]
    next_tb = np.where(last_in_group, g.clast_bucket[e_chunk] + 1, np.r_[e_tb[1:], 0])
    gap = np.where(alive_after > 0.5, next_tb - e_tb - 1, 0)
    del last_in_group, next_tb, alive_after, new_group, e_chunk
    grep = np.repeat(np.arange(e_tb.shape[0]), gap)
    g_tb = e_tb[grep] + 1 + (np.arange(grep.shape[0]) - np.repeat(np.cumsum(gap) - gap, gap))
    g_val = a_after[grep] * g.mean_b[g_tb]
    c_key = np.concatenate([e_tb * g.pb_span + e_pb, g_tb * g.pb_span + e_pb[grep]])
    c_usd = np.concatenate([ev_val, g_val])
    del grep, g_tb, g_val, ev_val, e_tb, e_pb
    keep = c_usd > 0
    c_key, c_usd = c_key[keep], c_usd[keep]
    order = np.argsort(c_key)
    return c_key[order], c_usd[order]


def heatmap(
    levels: pl.DataFrame,
    bars: pl.DataFrame,
    price_step: float,
    time_step: str | timedelta | TimeTiers,
    *,
    params: ModelParams | None = None,
    price_range: tuple[float, float] | None = None,
    group: str | None = None,
) -> pl.DataFrame:
    """Alive long/short notional per (time bucket, price bucket): the liquidation heatmap.

    A level created in bar ``j`` and liquidated in bar ``m`` (or alive) counts in the bars
    ``[j, m)`` with ``notional * D[i] / D[j]`` (OI-decrease shrinkage, see
    `transforms.levels.log_survival`). A cell is the mean over the time bucket's bars. Computed as
    a difference array (``+notional / D[j]`` at creation, ``-notional / D[j]`` at the end) with a
    cumulative sum per price bucket, never a loop over levels or bars: O(N log N + n + C log C)
    for ``N`` levels, ``n`` bars, ``C`` output cells (the per-group cumulative sums are exact and
    take one numpy call per time bucket of the longest price-bucket history). Each side is done
    in its own pass to halve peak memory. Levels below `EXPIRY_FRACTION` of their notional are
    dropped. Time is cut into chunks where ``log D`` falls by at most 300 so the weights
    ``1 / D[j]`` never overflow (one chunk in practice).

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
        at ``ts.dt.truncate(time_step)``. A `TimeTiers` coarsens older buckets (the stored,
        display-resolution heatmap: `display_tiers`).
    params
        The levels' params (for ``D``); default `ModelParams()`.
    price_range
        Only levels priced in ``[lo, hi]`` (e.g. `display_price_range`); cells inside the range
        are unchanged, and the cost falls with the levels left out.
    group
        Name of a column of small non-negative integers in ``levels``: one heatmap per group
        in a single pass (the group is folded into the price key), returned with that column
        first and sorted by group, ts, price.

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
    >>> p = ModelParams(leverages=(10.0,), weights=(1.0,), turnover_half_life_hours=None,
    ...                 entry_points=1, leveraged_share=1.0, closed_before_liquidation=0.0)
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
    if price_range is not None:
        levels = levels.filter(pl.col("price").is_between(price_range[0], price_range[1]))
    norm = as_model_input(bars)
    n = norm.height
    if n == 0 or levels.height == 0:
        return _empty_heatmap(group)
    ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    log_d = log_survival(norm, params)

    # time buckets: bar -> bucket id (bars are sorted, so ids are monotone)
    if isinstance(time_step, TimeTiers):
        bucket_ts = time_step.bucket_starts(ts, TimeTiers.anchor_us(ts))
    else:
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
    s_b = np.bincount(bid, weights=delta, minlength=nb).astype(np.float64)
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
    side = (levels.get_column("side") == "short").to_numpy().astype(np.int8)[keep]
    price_b = np.floor(levels.get_column("price").to_numpy()[keep] / price_step).astype(np.int64)
    j, end, notional = j[keep], end[keep], notional[keep]
    if j.shape[0] == 0:
        return _empty_heatmap(group)
    raw_min, raw_span = 0, 0
    if group is not None:  # fold the group into the price key: one pass for every group
        raw_min = int(price_b.min())
        raw_span = int(price_b.max()) - raw_min + 1
        gid = levels.get_column(group).to_numpy()[keep].astype(np.int64)
        price_b = gid * raw_span + (price_b - raw_min)

    pb_min = int(price_b.min())
    pb_span = int(price_b.max()) - pb_min + 1
    grid = _Grid(nb, pb_min, pb_span, chunk, chunk_of_bucket, cfirst_bar, cend_bar, clast_bucket,
                 ref, log_d, bid, s_b, mean_b, bcount, suffix)  # fmt: skip
    is_short = side == 1
    k_long, v_long = _side_cells(grid, j[~is_short], end[~is_short], notional[~is_short],
                                 price_b[~is_short])  # fmt: skip
    k_short, v_short = _side_cells(grid, j[is_short], end[is_short], notional[is_short],
                                   price_b[is_short])  # fmt: skip
    del j, end, notional, price_b, side, is_short
    keys = np.sort(np.concatenate([k_long, k_short]), kind="stable")  # merge of two sorted runs
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    long_usd = np.zeros(keys.shape[0])
    short_usd = np.zeros(keys.shape[0])
    long_usd[np.searchsorted(keys, k_long)] = v_long
    short_usd[np.searchsorted(keys, k_short)] = v_short
    pb = keys % pb_span + pb_min
    out = pl.DataFrame(
        {"tb": keys // pb_span, "pb": pb, "long_usd": long_usd, "short_usd": short_usd}
    )
    if group is not None:
        out = out.with_columns(
            pl.Series(group, pb // raw_span), pl.Series("pb", pb % raw_span + raw_min)
        ).sort(group, "tb", "pb")
    cols: list[pl.Series | pl.Expr | str] = [
        utc_series("ts", bucket_ts[bstart][out["tb"].to_numpy()]),
        (pl.col("pb").cast(pl.Float64) * price_step).alias("price"),
        "long_usd",
        "short_usd",
    ]
    frame = out.select(*([group] if group else []), *cols)
    return frame.select(
        *([pl.col(group)] if group else []), *[pl.col(c).cast(t) for c, t in HEATMAP_SCHEMA.items()]
    )


def liquidation_map(
    levels: pl.DataFrame,
    at: datetime | None = None,
    *,
    bars: pl.DataFrame,
    price_step: float | None = None,
    params: ModelParams | None = None,
) -> pl.DataFrame:
    """Snapshot of alive long liquidations below and short liquidations above the price.

    As of ``at``: after the last bar closed by ``at`` (default: the last bar; see
    `transforms.levels.snapshot`), per price bucket (lower edge), with
    the OI-decrease shrinkage applied; ``long_cum_usd`` = "if price drops to this bucket, this
    much of longs liquidates on the way" (cumulated from ``ref_price`` downward), likewise
    ``short_cum_usd`` upward. ``ref_price`` is that bar's close. O(N + n).

    Parameters
    ----------
    levels
        Output of `transforms.levels.liquidation_levels` on ``bars``.
    at
        Snapshot time (UTC; naive = UTC): the book after the last bar that closed by
        then; default the last bar.
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
    >>> p = ModelParams(leverages=(10.0, 25.0), weights=(0.5, 0.5), price_step=1.0,
    ...                 turnover_half_life_hours=None, entry_points=1, leveraged_share=1.0,
    ...                 closed_before_liquidation=0.0)
    >>> lm = liquidation_map(liquidation_levels(bars, p), bars=bars, params=p)
    >>> for row in lm.select("price", "long_usd", "long_cum_usd", "short_cum_usd").rows():
    ...     print(row)
    (90.0, 500.0, 1000.0, 0.0)
    (96.0, 500.0, 500.0, 0.0)
    (103.0, 0.0, 0.0, 500.0)
    (109.0, 0.0, 0.0, 1000.0)
    """
    params = params or ModelParams()
    step = price_step if price_step is not None else params.resolve_price_step(as_model_input(bars))
    snap = snapshot(levels, bars, at, params)
    return map_cells(snap.ts, snap.ref_price, snap.side, snap.price, snap.usd, step)
