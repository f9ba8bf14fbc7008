"""Liquidation clusters: peaks of the smoothed per-side liquidation distribution, merged.

A liquidation map (one snapshot, USD per price bucket, longs below the price and shorts above)
is turned into **clusters** per side, in four steps (all in price-bucket units of the map's
``price_step``; distances given in % of the map's ``ref_price``):

1. **Smooth.** The side's USD per bucket is convolved with a triangular kernel of half-width
   ``h = round(smooth_pct / 100 * ref_price / price_step)`` buckets (weights ``h + 1 - |d|``,
   normalized; ``h = 0`` means no smoothing). Default `SMOOTH_PCT` = 0.25 % of the price.
2. **Peaks and basins.** Every strict local maximum of the smoothed curve is a peak (a
   plateau counts once, at its middle). The price axis is cut at the lowest point of the
   smoothed curve between each two neighbouring peaks (the first such bucket, which goes to
   the lower cluster; runs of empty buckets longer than ``2 h + 1`` also separate), so every
   bucket with USD belongs to exactly one basin.
3. **Merge.** Neighbouring clusters whose peaks are at most ``merge_pct`` % of the price apart
   (default `MERGE_PCT` = 0.5 %) are merged, closest pair first; the merged cluster keeps the
   higher smoothed peak (ties: the lower price). Repeated until no two neighbours are that
   close, so the peaks of the final clusters are more than ``merge_pct`` apart.
4. **Describe.** Per cluster: ``usd`` = the sum of the side's USD over its buckets (so the
   clusters of a side add up to the side's total exactly: merging never loses or invents
   USD), ``price_low`` / ``price_high`` = the lower edge of its lowest and the upper edge of
   its highest bucket with USD, ``price`` = the USD-weighted mean of the bucket midpoints
   within ``h`` buckets of its peak (the cluster's core), rounded to the nearest multiple of
   ``price_step`` (half up), ``distance_pct = 100 * (price / ref_price - 1)``.

Per side, ``rank`` orders the clusters by USD (1 = largest; ties: nearer first),
``is_largest`` marks rank 1, a cluster is **significant** when its USD is at least
``min_share`` (default `MIN_SHARE` = 5 %) of the side's total (the largest always is), and
``is_nearest`` marks the significant cluster nearest to the price (smallest
``|distance_pct|``; ties: larger USD). The key levels (`cluster_key_levels`) are the ``top``
clusters per side by USD plus the nearest significant one when it is not among them.
"""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "CLUSTERS_SCHEMA",
    "KEY_LEVELS_SCHEMA",
    "MERGE_PCT",
    "MIN_SHARE",
    "SMOOTH_PCT",
    "cluster_key_levels",
    "liquidation_clusters",
    "round_to_step",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: default smoothing half-width, % of the reference price
SMOOTH_PCT = 0.25
#: default merge distance between two clusters' peaks, % of the reference price
MERGE_PCT = 0.5
#: default significance threshold: share of the side's total USD
MIN_SHARE = 0.05

_UTC = pl.Datetime("us", "UTC")

#: Key levels: liquidation clusters per side. ``price`` is the cluster's peak rounded to the
#: price step, ``price_low``/``price_high`` its range, ``usd`` its total; ``is_nearest`` marks
#: the side's significant cluster nearest to the price, ``is_largest`` its largest (rank 1).
#: (Also exported by `transforms.levels`.)
KEY_LEVELS_SCHEMA: dict[str, pl.DataType] = {
    "as_of": _UTC,
    "side": pl.String(),
    "rank": pl.Int32(),
    "price": pl.Float64(),
    "usd": pl.Float64(),
    "distance_pct": pl.Float64(),
    "price_low": pl.Float64(),
    "price_high": pl.Float64(),
    "is_nearest": pl.Boolean(),
    "is_largest": pl.Boolean(),
}

#: Every cluster of a map, per side. ``share`` = usd / the side's total; ``buckets`` = price
#: buckets with USD in the cluster; the rest as in the module docstring.
CLUSTERS_SCHEMA: dict[str, pl.DataType] = {
    "as_of": _UTC,
    "ref_price": pl.Float64(),
    "side": pl.String(),
    "rank": pl.Int32(),
    "price": pl.Float64(),
    "price_low": pl.Float64(),
    "price_high": pl.Float64(),
    "usd": pl.Float64(),
    "share": pl.Float64(),
    "distance_pct": pl.Float64(),
    "buckets": pl.Int32(),
    "is_significant": pl.Boolean(),
    "is_nearest": pl.Boolean(),
    "is_largest": pl.Boolean(),
}

# tolerance (in bucket units) against float noise in stored bucket edges
_EPS = 1e-9


def round_to_step(price: float, step: float) -> float:
    """Round ``price`` to the nearest multiple of ``step`` (ties down), without float dust.

    Examples
    --------
    >>> round_to_step(64_327.8, 50.0), round_to_step(0.123456, 0.001), round_to_step(75.0, 50.0)
    (64350.0, 0.123, 50.0)
    """
    k = math.ceil(price / step - 0.5 - _EPS)
    decimals = max(0, -math.floor(math.log10(step)) + 2)
    return round(k * step, decimals)


def _check(price_step: float, smooth_pct: float, merge_pct: float, min_share: float) -> None:
    if not (math.isfinite(price_step) and price_step > 0):
        raise ValueError(f"price_step must be positive and finite, got {price_step!r}")
    for name, value in (("smooth_pct", smooth_pct), ("merge_pct", merge_pct)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    if not (0 <= min_share <= 1):
        raise ValueError(f"min_share must be in [0, 1], got {min_share!r}")


def _smoothed(usd: F64, h: int) -> F64:
    """Triangular smoothing (half-width ``h`` buckets, weights ``h + 1 - |d|``), same length."""
    if h == 0:
        return usd.copy()
    kernel = (h + 1 - np.abs(np.arange(-h, h + 1))).astype(np.float64)
    kernel /= kernel.sum()
    full = np.convolve(usd, kernel, mode="full")  # length n + 2h; "same" breaks when n < 2h+1
    return np.asarray(full[h : h + usd.shape[0]], dtype=np.float64)


def _peaks(s: F64) -> I64:
    """Strict local maxima of ``s`` (plateaus once, at their middle; the ends count as lower)."""
    n = s.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], n] - 1
    vals = s[starts]
    left = np.r_[-np.inf, vals[:-1]]
    right = np.r_[vals[1:], -np.inf]
    top = (vals > left) & (vals > right) & (vals > 0)
    return np.asarray((starts[top] + ends[top]) // 2, dtype=np.int64)


def _segments(bucket: I64, h: int) -> list[tuple[int, int]]:
    """Index ranges ``[a, b)`` of ``bucket`` (sorted) whose gaps are at most ``2 h + 1``."""
    if bucket.shape[0] == 0:
        return []
    cut = np.flatnonzero(np.diff(bucket) > 2 * h + 1) + 1
    bounds = np.r_[0, cut, bucket.shape[0]]
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(bounds.shape[0] - 1)]


def _basins(bucket: I64, usd: F64, h: int) -> list[tuple[int, int, int, float]]:
    """Basins of the smoothed curve as ``(first bucket, last bucket, peak bucket, peak value)``,
    in price order, covering every bucket in ``bucket`` (sorted, unique, USD > 0)."""
    out: list[tuple[int, int, int, float]] = []
    for a, b in _segments(bucket, h):
        lo, hi = int(bucket[a]), int(bucket[b - 1])
        dense = np.zeros(hi - lo + 1)
        dense[bucket[a:b] - lo] = usd[a:b]
        s = _smoothed(dense, h)
        peaks = _peaks(s)
        if peaks.shape[0] == 0:  # cannot happen with positive USD; keep the USD anyway
            peaks = np.array([int(np.argmax(s))], dtype=np.int64)
        cuts = [int(p + np.argmin(s[p : q + 1])) for p, q in itertools.pairwise(peaks.tolist())]
        firsts = [0, *(c + 1 for c in cuts)]
        lasts = [*cuts, hi - lo]
        for f, last, p in zip(firsts, lasts, peaks, strict=True):
            out.append((lo + f, lo + last, lo + int(p), float(s[p])))
    return out


def _merge(basins: list[tuple[int, int, int, float]], reach: float) -> list[tuple[int, int, int]]:
    """Merge neighbouring basins whose peaks are within ``reach`` buckets, closest first.

    Returns ``(first bucket, last bucket, peak bucket)`` in price order. A heap of neighbour
    pairs with lazy deletion: O(k log k) for ``k`` basins.
    """
    k = len(basins)
    first = [b[0] for b in basins]
    last = [b[1] for b in basins]
    peak = [b[2] for b in basins]
    value = [b[3] for b in basins]
    nxt = list(range(1, k + 1))
    prv = list(range(-1, k - 1))
    alive = [True] * k
    version = [0] * k
    heap: list[tuple[int, int, int, int, int]] = []

    def push(i: int) -> None:
        j = nxt[i]
        if j < k:
            dist = peak[j] - peak[i]
            if dist <= reach + _EPS:
                heapq.heappush(heap, (dist, peak[i], i, version[i], version[j]))

    for i in range(k - 1):
        push(i)
    while heap:
        _, _, i, vi, vj = heapq.heappop(heap)
        j = nxt[i] if i < k else k
        if not alive[i] or j >= k or version[i] != vi or version[j] != vj:
            continue
        # merge j into i: keep the higher peak (ties: the lower price, i.e. i's)
        if value[j] > value[i]:
            peak[i], value[i] = peak[j], value[j]
        last[i] = last[j]
        alive[j] = False
        nxt[i] = nxt[j]
        if nxt[j] < k:
            prv[nxt[j]] = i
        version[i] += 1
        push(i)
        if prv[i] >= 0:
            push(prv[i])
    return [(first[i], last[i], peak[i]) for i in range(k) if alive[i]]


def _side_clusters(
    bucket: I64, usd: F64, *, price_step: float, h: int, reach: float
) -> list[dict[str, float | int]]:
    """Clusters of one side (internal): bucket indices sorted and unique, USD > 0."""
    rows: list[dict[str, float | int]] = []
    for f, last, p in _merge(_basins(bucket, usd, h), reach):
        a, b = np.searchsorted(bucket, [f, last + 1])
        bk, us = bucket[a:b], usd[a:b]
        core = np.abs(bk - p) <= h
        if not core.any() or us[core].sum() <= 0:
            core = np.ones(bk.shape[0], dtype=bool)
        mid = (bk[core].astype(np.float64) + 0.5) * price_step
        price = float(np.sum(mid * us[core]) / np.sum(us[core]))
        rows.append(
            {
                "price": round_to_step(price, price_step),
                "price_low": round_to_step(float(bk[0]) * price_step, price_step),
                "price_high": round_to_step(float(bk[-1] + 1) * price_step, price_step),
                "usd": float(np.sum(us)),
                "buckets": int(b - a),
            }
        )
    return rows


def liquidation_clusters(
    liq_map: pl.DataFrame,
    *,
    price_step: float,
    smooth_pct: float = SMOOTH_PCT,
    merge_pct: float = MERGE_PCT,
    min_share: float = MIN_SHARE,
) -> pl.DataFrame:
    """Every liquidation cluster of a liquidation map, per side (see the module docstring).

    Parameters
    ----------
    liq_map
        A liquidation-map snapshot (`transforms.heatmap.LIQUIDATION_MAP_SCHEMA`; at least
        ``as_of, ref_price, price, long_usd, short_usd``), ``price`` = bucket lower edge.
    price_step
        The map's price bucket; cluster prices are rounded to it.
    smooth_pct
        Smoothing half-width in % of ``ref_price`` (0: none).
    merge_pct
        Clusters whose peaks are at most this % of ``ref_price`` apart are merged.
    min_share
        A cluster is significant when its USD is at least this share of its side's total.

    Returns
    -------
    pl.DataFrame
        `CLUSTERS_SCHEMA`, longs then shorts, each by rank. Per side the USD adds up to the
        map's total of that side.

    Examples
    --------
    >>> from datetime import datetime
    >>> m = pl.DataFrame({"as_of": datetime(2024, 1, 1), "ref_price": 100.0,
    ...     "price": [90.0, 91.0, 96.0, 104.0], "long_usd": [4.0, 6.0, 1.0, 0.0],
    ...     "short_usd": [0.0, 0.0, 0.0, 3.0]})
    >>> out = liquidation_clusters(m, price_step=1.0, smooth_pct=1.0, merge_pct=2.0)
    >>> for row in out.select("side", "rank", "price", "price_low", "price_high", "usd").rows():
    ...     print(row)
    ('long', 1, 91.0, 90.0, 92.0, 10.0)
    ('long', 2, 96.0, 96.0, 97.0, 1.0)
    ('short', 1, 104.0, 104.0, 105.0, 3.0)
    >>> out.filter(pl.col("side") == "long").select("is_nearest", "is_largest").rows()
    [(False, True), (True, False)]
    """
    _check(price_step, smooth_pct, merge_pct, min_share)
    if liq_map.height == 0:
        return pl.DataFrame(schema=CLUSTERS_SCHEMA)
    frame = liq_map.select("as_of", "ref_price", "price", "long_usd", "short_usd")
    as_of = frame["as_of"].max()
    ref = float(frame["ref_price"][0])
    if not (math.isfinite(ref) and ref > 0):
        raise ValueError(f"ref_price must be positive, got {ref!r}")
    h = round(smooth_pct / 100.0 * ref / price_step)
    reach = merge_pct / 100.0 * ref / price_step
    pb = np.floor(frame["price"].to_numpy().astype(np.float64) / price_step + 0.5).astype(np.int64)
    parts: list[pl.DataFrame] = []
    for side in ("long", "short"):
        raw = frame[f"{side}_usd"].fill_null(0.0).to_numpy().astype(np.float64)
        ok = raw > 0
        if not ok.any():
            continue
        grouped = (
            pl.DataFrame({"pb": pb[ok], "usd": raw[ok]}).group_by("pb").agg(pl.col("usd").sum())
        ).sort("pb")
        rows = _side_clusters(
            grouped["pb"].to_numpy().astype(np.int64),
            grouped["usd"].to_numpy().astype(np.float64),
            price_step=price_step,
            h=h,
            reach=reach,
        )
        total = float(grouped["usd"].sum())
        part = (
            pl.DataFrame(rows, schema_overrides={"buckets": pl.Int32})
            .with_columns(
                pl.lit(side).alias("side"),
                (pl.col("usd") / total).alias("share"),
                ((pl.col("price") / ref - 1.0) * 100.0).alias("distance_pct"),
            )
            .with_columns(pl.col("distance_pct").abs().alias("_far"))
            .sort(["usd", "_far"], descending=[True, False])
            .with_columns(pl.int_range(1, pl.len() + 1).cast(pl.Int32).alias("rank"))
            .with_columns(
                (pl.col("rank") == 1).alias("is_largest"),
                ((pl.col("share") >= min_share) | (pl.col("rank") == 1)).alias("is_significant"),
            )
        )
        nearest = (
            part.filter(pl.col("is_significant"))
            .sort(["_far", "usd"], descending=[False, True])["rank"]
            .first()
        )
        parts.append(part.with_columns((pl.col("rank") == nearest).alias("is_nearest")))
    if not parts:
        return pl.DataFrame(schema=CLUSTERS_SCHEMA)
    return (
        pl.concat(parts, how="diagonal")
        .select(
            pl.lit(as_of).alias("as_of"),
            pl.lit(ref, pl.Float64).alias("ref_price"),
            *[pl.col(c) for c in CLUSTERS_SCHEMA if c not in ("as_of", "ref_price")],
        )
        .select([pl.col(c).cast(t) for c, t in CLUSTERS_SCHEMA.items()])
    )


def cluster_key_levels(
    liq_map: pl.DataFrame,
    *,
    price_step: float,
    top: int = 5,
    smooth_pct: float = SMOOTH_PCT,
    merge_pct: float = MERGE_PCT,
    min_share: float = MIN_SHARE,
) -> pl.DataFrame:
    """Key levels of a liquidation map: per side the ``top`` clusters by USD, plus the nearest
    significant cluster when it is not among them (its ``rank`` is then above ``top``).

    See `liquidation_clusters` for the parameters and the cluster rules.

    Returns
    -------
    pl.DataFrame
        `KEY_LEVELS_SCHEMA`, longs then shorts, by rank.

    Examples
    --------
    >>> from datetime import datetime
    >>> m = pl.DataFrame({"as_of": datetime(2024, 1, 1), "ref_price": 100.0,
    ...     "price": [80.0, 81.0, 95.0, 110.0], "long_usd": [5.0, 7.0, 1.0, 0.0],
    ...     "short_usd": [0.0, 0.0, 0.0, 2.0]})
    >>> kl = cluster_key_levels(m, price_step=1.0, top=1, min_share=0.05)
    >>> for row in kl.select("side", "rank", "price", "usd", "is_nearest", "is_largest").rows():
    ...     print(row)
    ('long', 1, 81.0, 12.0, False, True)
    ('long', 2, 95.0, 1.0, True, False)
    ('short', 1, 110.0, 2.0, True, True)
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    clusters = liquidation_clusters(
        liq_map,
        price_step=price_step,
        smooth_pct=smooth_pct,
        merge_pct=merge_pct,
        min_share=min_share,
    )
    return (
        clusters.filter((pl.col("rank") <= top) | pl.col("is_nearest"))
        .with_columns((pl.col("side") == "short").alias("_short"))
        .sort("_short", "rank")
        .select([pl.col(c).cast(t) for c, t in KEY_LEVELS_SCHEMA.items()])
    )
