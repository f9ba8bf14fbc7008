"""Liquidation levels of the open-interest model, and key levels (strongest clusters).

The model (see ``docs/model.md``), with ``n`` bars and ``N`` levels:

1. **Gross turnover.** Every bar ``i`` a share ``tau_i`` of every open level closes and the
   same share of the open interest opens anew: ``tau_i = 1 - exp(-ln 2 * dt_i * rel_i / h)``
   with the bar's duration ``dt_i`` (hours), the position half-life ``h``
   (``turnover_half_life_hours``) and ``rel_i`` the bar's volume per hour relative to its causal
   running mean (1 without volume). See `turnover_share`.
2. **Net OI changes.** OI samples are the bars where ``oi_observed``; interval ``k`` covers the
   bars ``[s_k, s_(k+1))``. ``dOI_k > 0`` opens ``dOI_k`` more contracts, spread over the
   interval's bars by volume (equal weights without volume); ``dOI_k < 0`` closes the fraction
   ``-dOI_k / oi_base[s_k]`` of every open level at bar ``s_(k+1)``. So the open book follows
   the observed OI (less what the model liquidates).
3. **Entries.** A bar's opened contracts (turnover + net increase; the same notional of longs
   and of shorts) enter at up to ``entry_points`` prices spread evenly along the bar's path
   ``O -> L -> H -> C`` (close >= open) or ``O -> H -> L -> C``, one point per
   ``entry_resolution`` of the bar's relative range.
4. **Leverage density.** Each entry's notional, times `liquidatable_fraction` (the leveraged
   share of OI not closed before liquidation), is split over the notional-weighted leverage
   density (`transforms.leverage`): rotating equal-mass bins of its smooth part plus the common
   leverage settings.
   Liquidation price: long ``P (1 - 1/L - a) / (1 - r)``, short ``P (1 + 1/L + a) / (1 + r)``
   with the maintenance rate ``r`` and amount/notional ``a`` (`transforms.brackets`).
5. **Liquidation.** Intra-bar (``intrabar``): a level is liquidated in its creation bar when
   the part of the path after its entry reaches its price (mark low/high at the path's extremes).
   Otherwise in the first later bar ``m > j`` whose mark low is <= its price (long) or whose
   mark high is >= its price (short), found for all levels at once by binary lifting on a
   sparse table of range minima: O(n log n) to build, O(N log n) to search.
6. **Survival.** Turnover, net decreases and an optional decay form the cumulative product ``D``
   (``log D`` per bar, see `log_survival`): a level opened at bar ``j`` keeps
   ``notional * D[i] / D[j]`` at bar ``i``.

Warm-up: the book starts empty and fills as ``1 - exp(-t ln 2 / h)``: `warmup_hours` is the
time to 90 % (``log2(10) h``); scores drop that span.

Caveat: the split of an interval's net increase over its bars uses the OI sample at the
interval's end, a look-ahead of at most one OI interval (none when OI is given on every bar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import polars as pl

from transforms._kernels import first_crossing_kernel
from transforms.bars import as_model_input, utc_series
from transforms.clusters import KEY_LEVELS_SCHEMA, cluster_key_levels
from transforms.leverage import (
    bin_weights,
    leverage_quantiles,
    liquidation_prices,
    rotation_offsets,
)
from transforms.map_cells import map_cells
from transforms.params import ModelParams

__all__ = [
    "KEY_LEVELS_SCHEMA",
    "LEVELS_SCHEMA",
    "first_crossing",
    "key_levels",
    "liquidatable_fraction",
    "liquidation_levels",
    "log_survival",
    "turnover_share",
    "warmup_hours",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_UTC = pl.Datetime("us", "UTC")

#: One row per created level. ``price`` is the exact liquidation price; ``liquidated_usd`` is the
#: remaining notional when crossed (0 while alive); ``alive_usd`` the remaining notional after the
#: last bar (0 once liquidated). Closed notional = notional_usd - liquidated_usd - alive_usd.
#: ``liquidated_at == created_at`` marks a level liquidated inside its creation bar.
LEVELS_SCHEMA: dict[str, pl.DataType] = {
    "created_at": _UTC,
    "side": pl.String(),
    "leverage": pl.Float64(),
    "price": pl.Float64(),
    "notional_usd": pl.Float64(),
    "liquidated_at": _UTC,
    "entry_price": pl.Float64(),
    "liquidated_usd": pl.Float64(),
    "alive_usd": pl.Float64(),
}

#: Key levels (`key_levels`): `transforms.clusters.KEY_LEVELS_SCHEMA`, exported here too.

#: A level whose remaining notional falls below this fraction of its opening notional is treated
#: as closed by the heatmap, liquidation map and key levels (a display cut-off; the levels frame
#: and the predicted liquidations are not affected).
EXPIRY_FRACTION = 1e-6

#: Cap on a bar's volume relative to its running mean (one absurd print cannot turn the book over).
MAX_RELATIVE_VOLUME = 20.0


@dataclass(frozen=True)
class Core:
    """Arrays of one model run (internal; shared by levels, heatmap and backtest)."""

    ts: I64  # bar open, epoch microseconds
    close: F64
    log_d: F64  # log of the survival factor D per bar
    j: I64  # creation bar per level
    m: I64  # liquidation bar per level (>= j; == j inside the creation bar), n when alive
    side: npt.NDArray[np.int8]  # 0 long, 1 short
    leverage: F64
    price: F64
    entry: F64
    notional: F64

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])

    def liquidated_usd(self) -> F64:
        """Remaining notional of each level when crossed, 0 for levels still alive."""
        hit = self.m < self.n
        out = np.zeros(self.notional.shape[0])
        out[hit] = self.notional[hit] * np.exp(self.log_d[self.m[hit]] - self.log_d[self.j[hit]])
        return out

    def expiry(self) -> I64:
        """First bar where a level's remaining fraction is below `EXPIRY_FRACTION` (n if never)."""
        target = self.log_d[self.j] + math.log(EXPIRY_FRACTION)
        return np.searchsorted(-self.log_d, -target, side="right").astype(np.int64)

    def end(self) -> I64:
        """End bar (exclusive) of each level's display life: min(liquidation, expiry)."""
        return np.minimum(self.m, self.expiry())


def _interval_ids(observed: npt.NDArray[np.bool_]) -> tuple[I64, I64]:
    """Sample bar indices and, per bar, the id of the OI interval it belongs to (-1 = none)."""
    samples = np.flatnonzero(observed).astype(np.int64)
    n = observed.shape[0]
    g = np.searchsorted(samples, np.arange(n), side="right").astype(np.int64) - 1
    g[g >= samples.shape[0] - 1] = -1  # after the last sample: no closing sample yet
    return samples, g


def _bar_hours(ts_us: I64) -> F64:
    """Duration of each bar in hours (the last bar: the median step; 1 bar alone: 1 minute)."""
    n = ts_us.shape[0]
    if n < 2:
        return np.full(n, 1.0 / 60.0)
    step = np.diff(ts_us).astype(np.float64) / 3.6e9
    return np.append(step, float(np.median(step)))


def turnover_share(bars: pl.DataFrame, params: ModelParams) -> F64:
    """Share ``tau_i`` of the open book that turns over in each bar (0 without turnover).

    ``tau_i = 1 - exp(-ln 2 * dt_i * rel_i / h)``: ``dt_i`` the bar's duration in hours, ``h``
    the position half-life, ``rel_i`` the bar's volume per hour over its causal exponentially
    weighted mean (half-life ``volume_mean_hours``), clipped to [0, 20]; 1 where volume is
    missing or with ``turnover_volume=False``. O(n).

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": 1000.0})
    >>> turnover_share(bars, ModelParams(turnover_half_life_hours=1.0)).round(3).tolist()
    [0.5, 0.5, 0.5]
    """
    norm = as_model_input(bars)
    n = norm.height
    half_life = params.turnover_half_life_hours
    if half_life is None or n == 0:
        return np.zeros(n)
    ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    dt = _bar_hours(ts)
    rel = np.ones(n)
    vol = norm.get_column("volume").to_numpy().astype(np.float64)
    ok = np.isfinite(vol) & (vol > 0)
    if params.turnover_volume and ok.sum() >= 2:
        rate = pl.DataFrame({"ts": norm.get_column("ts"), "r": np.where(ok, vol / dt, np.nan)})
        mean = (
            rate.with_columns(pl.col("r").fill_nan(None))
            .select(
                pl.col("r")
                .ewm_mean_by("ts", half_life=f"{int(params.volume_mean_hours * 3600)}s")
                .forward_fill()
            )
            .to_series()
            .to_numpy()
            .astype(np.float64)
        )
        good = ok & np.isfinite(mean) & (mean > 0)
        rel[good] = np.clip(vol[good] / dt[good] / mean[good], 0.0, MAX_RELATIVE_VOLUME)
    return np.asarray(-np.expm1(-math.log(2.0) * dt * rel / half_life), dtype=np.float64)


def liquidatable_fraction(params: ModelParams) -> float:
    """Share of an opened contract's notional that the book carries (and can liquidate).

    ``leveraged_share * (1 - closed_before_liquidation)``: only the leveraged traders' part of
    the open interest is in the book, and of it only what is not closed or rescued before the
    liquidation price is reached.

    Examples
    --------
    >>> liquidatable_fraction(ModelParams(leveraged_share=0.5, closed_before_liquidation=0.9))
    0.05
    """
    return round(params.leveraged_share * (1.0 - params.closed_before_liquidation), 12)


def warmup_hours(params: ModelParams) -> float:
    """Hours until the empty starting book holds 90 % of its steady state (scores drop them).

    ``log2(10) * turnover_half_life_hours``; without turnover one day (the book then only fills
    through net OI increases, which no span guarantees).

    Examples
    --------
    >>> round(warmup_hours(ModelParams(turnover_half_life_hours=6.0)), 2)
    19.93
    """
    if params.turnover_half_life_hours is None:
        return 24.0
    return math.log2(10.0) * params.turnover_half_life_hours


def log_survival(bars: pl.DataFrame, params: ModelParams) -> F64:
    """Log of the survival factor ``D`` per bar (non-increasing, ``log D[0] = 0``).

    ``D`` is the product of ``1 - tau_i`` (turnover, from bar 1 on), of
    ``oi_base[s_(k+1)] / oi_base[s_k]`` over the OI intervals that decreased, applied at the
    interval's closing sample bar ``s_(k+1)`` (with ``oi_decrease="proportional"``), and of
    ``2 ** (-hours since the first bar / decay half-life)``. A level opened at bar ``j`` keeps
    ``D[i] / D[j]`` of its notional at bar ``i``. O(n).

    Parameters
    ----------
    bars
        Output of `transforms.bars.model_input` (normalized automatically if it is not).
    params
        Model parameters (turnover, ``oi_decrease``, ``decay_half_life_hours``).

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 800.0, 800.0]})
    >>> p = ModelParams(turnover_half_life_hours=None, entry_points=1)
    >>> np.exp(log_survival(bars, p)).round(3).tolist()
    [1.0, 0.8, 0.8]
    """
    norm = as_model_input(bars)
    n = norm.height
    inc = np.zeros(n)
    if params.oi_decrease == "proportional" and n:
        samples, _ = _interval_ids(norm.get_column("oi_observed").to_numpy())
        base = norm.get_column("oi_base").to_numpy()[samples]
        if samples.shape[0] >= 2:
            ratio = base[1:] / base[:-1]
            closing = ratio < 1.0
            inc[samples[1:][closing]] = np.log(ratio[closing])
    if n > 1:
        tau = turnover_share(norm, params)
        inc[1:] += np.log1p(-np.minimum(tau[1:], 1.0 - 1e-12))
    log_d = np.cumsum(inc)
    if params.decay_half_life_hours is not None and n:
        ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.float64)
        hours = (ts - ts[0]) / 3.6e9
        log_d = log_d - math.log(2.0) * hours / params.decay_half_life_hours
    return np.asarray(log_d, dtype=np.float64)


def _opened_contracts(norm: pl.DataFrame, params: ModelParams) -> F64:
    """Contracts (base units, per side) opened in each bar: turnover plus net OI increase."""
    n = norm.height
    out = np.zeros(n)
    if n == 0:
        return out
    base_ff = norm.get_column("oi_base").to_numpy().astype(np.float64)
    known = np.isfinite(base_ff)
    out[known] = turnover_share(norm, params)[known] * base_ff[known]
    samples, g = _interval_ids(norm.get_column("oi_observed").to_numpy())
    k = samples.shape[0] - 1
    if k < 1:
        return out
    base = base_ff[samples]
    delta = base[1:] - base[:-1]
    vol = np.nan_to_num(norm.get_column("volume").to_numpy().astype(np.float64), nan=0.0)
    vol = np.where(vol > 0, vol, 0.0)
    inside = g >= 0
    gi = g[inside]
    vol_sum = np.bincount(gi, weights=vol[inside], minlength=k)
    count = np.bincount(gi, minlength=k).astype(np.float64)
    weight = np.where(
        vol_sum[gi] > 0, vol[inside] / np.where(vol_sum[gi] > 0, vol_sum[gi], 1.0), 1.0 / count[gi]
    )
    out[inside] += np.where(delta > 0, delta, 0.0)[gi] * weight
    return out


@dataclass(frozen=True)
class _Entries:
    """Entry points: bar, point index in the bar, price, share of the bar, path extremes after."""

    bar: I64
    point: I64
    price: F64
    share: F64
    low_after: F64
    high_after: F64


def _entries(norm: pl.DataFrame, params: ModelParams, bars_with_openings: I64) -> _Entries:
    """Entry points spread evenly along each bar's O-L-H-C / O-H-L-C path (vectorized)."""
    col = {c: norm.get_column(c).to_numpy().astype(np.float64)[bars_with_openings]
           for c in ("open", "high", "low", "close", "mark_high", "mark_low")}  # fmt: skip
    o, h, lo, c = col["open"], col["high"], col["low"], col["close"]
    rng = (h - lo) / c
    s = np.clip(np.ceil(rng / params.entry_resolution), 1, params.entry_points).astype(np.int64)
    up = c >= o
    # vertices of the trade path and of the crossing path (mark extremes)
    v1 = np.where(up, lo, h)
    v2 = np.where(up, h, lo)
    m_low, m_high = col["mark_low"], col["mark_high"]  # liquidations trigger on mark price
    seg0, seg1, seg2 = np.abs(v1 - o), np.abs(v2 - v1), np.abs(c - v2)
    bar = np.repeat(np.arange(bars_with_openings.shape[0]), s)
    point = np.arange(bar.shape[0]) - np.repeat(np.cumsum(s) - s, s)
    total = (seg0 + seg1 + seg2)[bar]
    f = (point + 0.5) / s[bar] * total
    c1, c2 = seg0[bar], (seg0 + seg1)[bar]
    k = np.where(f < c1, 0, np.where(f < c2, 1, 2))
    start = np.choose(k, [o[bar], v1[bar], v2[bar]])
    stop = np.choose(k, [v1[bar], v2[bar], c[bar]])
    seg = np.choose(k, [seg0[bar], seg1[bar], seg2[bar]])
    off = f - np.choose(k, [np.zeros_like(f), c1, c2])
    frac = np.where(seg > 0, off / np.where(seg > 0, seg, 1.0), 0.0)
    price = np.where(total > 0, start + (stop - start) * frac, o[bar])
    # extremes of the rest of the path (vertices after the point), on mark prices
    mv1 = np.where(up, m_low, m_high)[bar]
    mv2 = np.where(up, m_high, m_low)[bar]
    cb = c[bar]
    low_after = np.where(k == 0, np.minimum(np.minimum(mv1, mv2), cb),
                         np.where(k == 1, np.minimum(mv2, cb), cb))  # fmt: skip
    high_after = np.where(k == 0, np.maximum(np.maximum(mv1, mv2), cb),
                          np.where(k == 1, np.maximum(mv2, cb), cb))  # fmt: skip
    # never beyond the bar's mark extremes (a trade close outside them triggers nothing)
    low_after = np.maximum(np.minimum(low_after, price), m_low[bar])
    high_after = np.minimum(np.maximum(high_after, price), m_high[bar])
    return _Entries(
        bar=bars_with_openings[bar].astype(np.int64),
        point=point.astype(np.int64),
        price=price.astype(np.float64),
        share=(1.0 / s[bar]).astype(np.float64),
        low_after=low_after.astype(np.float64),
        high_after=high_after.astype(np.float64),
    )


def first_crossing(values: F64, start: I64, threshold: F64) -> I64:
    """Smallest ``m >= start`` with ``values[m] <= threshold`` per query, ``len(values)`` if none.

    A compiled kernel (`transforms._kernels`): queries that never cross (threshold below the
    suffix minimum) are answered in O(1); the others gallop over a sparse table of range minima
    (windows of doubling size from ``start``) and descend inside the window holding the
    crossing: O(n log n) to build, O(log distance) per query. For shorts pass ``-mark_high`` and
    ``-price``.

    Examples
    --------
    >>> v = np.array([5.0, 4.0, 6.0, 3.0, 7.0])
    >>> first_crossing(v, np.array([0, 1, 2, 4]), np.array([4.5, 3.5, 3.0, 1.0])).tolist()
    [1, 3, 3, 5]
    """
    return first_crossing_kernel(values, start, threshold)


def compute_core(bars: pl.DataFrame, params: ModelParams) -> Core:
    """Run the model on (normalized) bars and return its arrays (internal building block).

    O(n log n + N log n) time, O(n log n + N) memory (see the module docstring).
    """
    norm = as_model_input(bars)
    n = norm.height
    if n == 0:
        return _empty_core(norm, params)
    contracts = _opened_contracts(norm, params)
    opening = np.flatnonzero(contracts > 0).astype(np.int64, copy=False)
    ent = _entries(norm, params, opening)
    ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64, copy=False)
    usd = contracts[ent.bar] * ent.share * ent.price
    w_long = bin_weights(params, 0)
    w_short = w_long if params.side_tilt == 0 else bin_weights(params, 1)
    t = w_long.shape[0]
    p = ent.bar.shape[0]
    offsets = rotation_offsets(ts[ent.bar], ent.point)
    lev_long = leverage_quantiles(params, offsets, 0)  # (points, bins)
    lev_short = lev_long if params.side_tilt == 0 else leverage_quantiles(params, offsets, 1)
    entry = ent.price[:, None]
    price_long = liquidation_prices(entry, lev_long, params, 0)
    price_short = liquidation_prices(entry, lev_short, params, 1)
    j = np.repeat(ent.bar, t)
    m_long = first_crossing(
        norm.get_column("mark_low").to_numpy().astype(np.float64, copy=False),
        j + 1,
        price_long.reshape(-1),
    ).reshape(p, t)
    m_short = first_crossing(
        -norm.get_column("mark_high").to_numpy().astype(np.float64, copy=False),
        j + 1,
        -price_short.reshape(-1),
    ).reshape(p, t)
    if params.intrabar:
        bar = ent.bar[:, None]
        m_long = np.where(price_long >= ent.low_after[:, None], bar, m_long)
        m_short = np.where(price_short <= ent.high_after[:, None], bar, m_short)

    def both(a_long: npt.NDArray[np.generic], a_short: npt.NDArray[np.generic]) -> np.ndarray:
        """(points, bins) per side -> one array ordered by point, side (long first), bin."""
        return np.stack([a_long, a_short], axis=1).reshape(-1)

    usd = usd * liquidatable_fraction(params)
    notional_long = usd[:, None] * w_long[None, :]
    notional_short = usd[:, None] * w_short[None, :]
    return Core(
        ts=ts,
        close=norm.get_column("close").to_numpy().astype(np.float64, copy=False),
        log_d=log_survival(norm, params),
        j=np.repeat(ent.bar, 2 * t).astype(np.int64, copy=False),
        m=both(m_long, m_short).astype(np.int64, copy=False),
        side=np.tile(np.repeat(np.array([0, 1], dtype=np.int8), t), p),
        leverage=both(lev_long, lev_short).astype(np.float64, copy=False),
        price=both(price_long, price_short).astype(np.float64, copy=False),
        entry=np.repeat(ent.price, 2 * t).astype(np.float64, copy=False),
        notional=both(notional_long, notional_short).astype(np.float64, copy=False),
    )


def _empty_core(norm: pl.DataFrame, params: ModelParams) -> Core:
    z_i, z_f = np.zeros(0, np.int64), np.zeros(0)
    return Core(
        ts=z_i, close=z_f, log_d=log_survival(norm, params), j=z_i, m=z_i,
        side=np.zeros(0, np.int8), leverage=z_f, price=z_f, entry=z_f, notional=z_f,
    )  # fmt: skip


def levels_frame(core: Core) -> pl.DataFrame:
    """The `LEVELS_SCHEMA` frame of a `Core` (internal)."""
    n = core.n
    hit = core.m < n
    liq_ts = np.where(hit, core.ts[np.minimum(core.m, max(n - 1, 0))] if n else core.m, 0)
    liq_usd = core.liquidated_usd()
    alive = np.zeros(core.notional.shape[0])
    if n:
        alive[~hit] = core.notional[~hit] * np.exp(core.log_d[n - 1] - core.log_d[core.j[~hit]])
    created = core.ts[core.j] if n else core.j
    frame = pl.DataFrame(
        [
            utc_series("created_at", created),
            pl.Series("side", core.side).replace_strict(
                {0: "long", 1: "short"}, return_dtype=pl.String
            ),
            pl.Series("leverage", core.leverage),
            pl.Series("price", core.price),
            pl.Series("notional_usd", core.notional),
            utc_series("liquidated_at", liq_ts),
            pl.Series("entry_price", core.entry),
            pl.Series("liquidated_usd", liq_usd),
            pl.Series("alive_usd", alive),
        ]
    )
    frame = frame.with_columns(
        pl.when(pl.Series(hit)).then(pl.col("liquidated_at")).otherwise(None).alias("liquidated_at")
    )
    return frame.select([pl.col(c).cast(t) for c, t in LEVELS_SCHEMA.items()])


def liquidation_levels(bars: pl.DataFrame, params: ModelParams | None = None) -> pl.DataFrame:
    """Estimate the liquidation levels created by open-interest increases.

    See the module docstring for the model. Time O(n log n + N log n), memory O(n log n + N)
    with ``n`` bars and ``N`` levels (about 2 x tiers x bars of rising OI); no per-bar loop.

    Parameters
    ----------
    bars
        Canonical bars (see `transforms.bars.model_input`), any bar interval.
    params
        Model parameters (default `ModelParams()`).

    Returns
    -------
    pl.DataFrame
        `LEVELS_SCHEMA`, ordered by creation bar, side (long first), tier.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": [101.0, 101.0, 101.0],
    ...     "low": [99.0, 99.0, 80.0], "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0]})
    >>> p = ModelParams(leverages=(10.0,), weights=(1.0,), turnover_half_life_hours=None,
    ...                 entry_points=1, leveraged_share=1.0, closed_before_liquidation=0.0)
    >>> lv = liquidation_levels(bars, p)
    >>> row = lv.row(0, named=True)
    >>> row["side"], round(row["price"], 4), row["notional_usd"], row["liquidated_at"].minute
    ('long', 90.3614, 1000.0, 10)
    """
    return levels_frame(compute_core(bars, params or ModelParams()))


def bar_index(ts: I64, when: pl.Series) -> I64:
    """Index of the last bar with ``ts <= when`` (-1 before the first bar); nulls map to n."""
    micros = when.dt.epoch("us").to_numpy()
    out = np.searchsorted(ts, np.nan_to_num(micros.astype(np.float64), nan=0.0), side="right") - 1
    out = np.asarray(out, dtype=np.int64)
    out[np.isnan(micros.astype(np.float64))] = ts.shape[0]
    return out


def bar_closes(ts: I64) -> I64:
    """Close time (epoch us) of each bar: its open plus the bar interval, at most the next open.

    The bar interval is the median gap between bar opens (one minute for a single bar), so a
    bar before a gap in the data still closes one interval after it opened.

    Examples
    --------
    >>> bar_closes(np.array([0, 60, 120, 600], dtype=np.int64)).tolist()
    [60, 120, 180, 660]
    """
    n = ts.shape[0]
    if n == 0:
        return ts.copy()
    if n == 1:
        return ts + 60_000_000
    gaps = np.diff(ts)
    step = int(np.median(gaps))
    return np.asarray(ts + np.minimum(np.append(gaps, step), step), dtype=np.int64)


def closed_bar_index(ts: I64, at_us: I64) -> I64:
    """Index of the last bar CLOSED by each time (``open + interval <= at``; -1 if none).

    The book "as of ``at``" is the book after that bar: the bar that opens at ``at`` is still
    running (its high, low, close and the levels it creates are in the future at ``at``).

    Examples
    --------
    >>> ts = np.array([0, 60, 120], dtype=np.int64)
    >>> closed_bar_index(ts, np.array([59, 60, 119, 120, 10_000], dtype=np.int64)).tolist()
    [-1, 0, 0, 1, 2]
    """
    return np.asarray(np.searchsorted(bar_closes(ts), at_us, side="right") - 1, dtype=np.int64)


@dataclass(frozen=True)
class Snapshot:
    """Alive levels at one bar (internal): bar index, ts, ref price and per-level arrays."""

    i: int
    ts: int
    ref_price: float
    side: npt.NDArray[np.int8]
    price: F64
    usd: F64
    #: row numbers in ``levels`` of the alive levels above
    index: I64 | None = None


def snapshot(levels: pl.DataFrame, bars: pl.DataFrame, at: datetime | None, params: ModelParams
             ) -> Snapshot:  # fmt: skip
    """The book as of ``at``: alive notional of each level after the close of the last bar
    that CLOSED by ``at`` (``ts + bar interval <= at``, see `closed_bar_index`); ``at=None``:
    after the last bar.

    So ``at`` on a bar's open gives the book after the previous bar: nothing of the bar that
    opens at ``at`` (its levels, its high/low/close) is used, so a decision at ``at`` sees no
    future. ``ref_price`` is that closed bar's close. Longs at or above, and shorts at or below,
    it are dropped (they are crossed in the next bar). O(N + n).

    Raises
    ------
    ValueError
        Empty bars, or ``at`` before the close of the first bar.
    """
    norm = as_model_input(bars)
    if norm.height == 0:
        raise ValueError("bars is empty")
    ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64)
    log_d = log_survival(norm, params)
    if at is None:
        i = norm.height - 1
    else:
        at_ts = pl.Series([at]).cast(pl.Datetime("us", "UTC") if at.tzinfo else pl.Datetime("us"))
        if at.tzinfo is None:
            at_ts = at_ts.dt.replace_time_zone("UTC")
        at_us = at_ts.dt.epoch("us").to_numpy().astype(np.int64)
        i = int(closed_bar_index(ts, at_us)[0])
        if i < 0:
            raise ValueError(
                f"at={at} is before the close of the first bar ({norm.get_column('ts')[0]} open)"
            )
    j = bar_index(ts, levels.get_column("created_at"))
    m = bar_index(ts, levels.get_column("liquidated_at"))
    # a null liquidated_at maps to n; a level liquidated in bar m is not alive at m
    target = log_d[np.clip(j, 0, None)] + math.log(EXPIRY_FRACTION)
    expiry = np.searchsorted(-log_d, -target, side="right")
    ref = float(norm.get_column("close")[i])
    side = (levels.get_column("side") == "short").to_numpy().astype(np.int8)
    price = levels.get_column("price").to_numpy().astype(np.float64)
    alive = (j >= 0) & (j <= i) & (m > i) & (expiry > i)
    alive &= np.where(side == 0, price < ref, price > ref)
    usd = levels.get_column("notional_usd").to_numpy()[alive] * np.exp(log_d[i] - log_d[j[alive]])
    return Snapshot(i, int(ts[i]), ref, side[alive], price[alive], usd, np.flatnonzero(alive))


def key_levels(
    levels: pl.DataFrame,
    bars: pl.DataFrame,
    at: datetime | None = None,
    *,
    top: int = 5,
    price_step: float | None = None,
    params: ModelParams | None = None,
) -> pl.DataFrame:
    """Key levels (liquidation clusters) per side at one moment.

    The liquidation map as of ``at`` (after the last bar closed by then; default: last bar; see
    `transforms.heatmap.liquidation_map`) on ``price_step`` buckets (default:
    ``params.resolve_price_step(bars)``), clustered by `transforms.clusters.cluster_key_levels`
    with its default smoothing, merge distance and significance threshold: the ``top`` clusters
    per side by USD plus the nearest significant one. O(N + n).

    Parameters
    ----------
    levels
        Output of `liquidation_levels` on the same bars and params.
    bars
        The bars the levels were computed from.
    at
        Snapshot time (UTC; naive = UTC): the book after the last bar that closed by
        then (see `snapshot`). Default: the last bar.
    top
        Number of clusters per side (by USD).
    price_step
        Price bucket of the map; cluster prices are rounded to it.
    params
        The levels' params (for the OI-decrease factor); default `ModelParams()`.

    Returns
    -------
    pl.DataFrame
        `KEY_LEVELS_SCHEMA`, longs then shorts, by rank.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0]})
    >>> p = ModelParams(leverages=(10.0,), weights=(1.0,), price_step=1.0,
    ...                 turnover_half_life_hours=None, entry_points=1, leveraged_share=1.0,
    ...                 closed_before_liquidation=0.0)
    >>> key_levels(liquidation_levels(bars, p), bars, params=p).select("side", "usd").rows()
    [('long', 1000.0), ('short', 1000.0)]
    """
    params = params or ModelParams()
    step = price_step if price_step is not None else params.resolve_price_step(as_model_input(bars))
    snap = snapshot(levels, bars, at, params)
    liq_map = map_cells(snap.ts, snap.ref_price, snap.side, snap.price, snap.usd, step)
    return cluster_key_levels(liq_map, price_step=step, top=top)
