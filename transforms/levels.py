"""Liquidation levels of the open-interest model, and key levels (strongest clusters).

The model (see ``../shared/reference/liquidation-model.md``), with ``n`` bars, ``K`` OI intervals,
``T`` leverage tiers and ``N = O(n T)`` levels:

1. OI samples are the bars where ``oi_observed``; interval ``k`` covers the bars
   ``[s_k, s_(k+1))`` and its change is ``dOI_k = oi_base[s_(k+1)] - oi_base[s_k]`` (base units,
   so a price move alone opens nothing).
2. ``dOI_k > 0`` opens ``dOI_k`` contracts, i.e. the same notional of longs and of shorts. With
   ``entry="bars"`` the contracts are spread over the interval's bars by volume (equal weights
   without volume) at each bar's typical price ``(high + low + close) / 3``; one level per
   (bar, side, tier), created at that bar. With ``entry="typical"`` one level per (interval, side,
   tier) at the interval's volume-weighted typical price, created at the interval's last bar.
   ``notional_usd = contracts * entry_price * weight(tier, side)``.
3. Liquidation price: long ``P (1 - 1/L) / (1 - mmr)``, short ``P (1 + 1/L) / (1 + mmr)``; the
   exact value is kept (not snapped to the price step).
4. A level is alive from its creation bar ``j`` until the first later bar ``m > j`` whose mark low
   is <= its price (long) or whose mark high is >= its price (short): liquidated in bar ``m``.
   Found for all levels at once by binary lifting on a sparse table of range minima:
   O(n log n) to build, O(N log n) to search, O(n log n) memory.
5. ``dOI_k < 0`` closes the fraction ``-dOI_k / oi_base[s_k]`` of every open level at bar
   ``s_(k+1)`` (``oi_decrease="proportional"``); an optional half-life decays all levels. Both
   are the cumulative product ``D`` (kept as ``log D`` per bar, see `log_survival`): a level's
   remaining notional at bar ``i`` is ``notional * D[i] / D[j]``.

Caveat: with ``entry="bars"`` the split of an interval's contracts over its bars uses the OI sample
at the interval's end, a look-ahead of at most one OI interval (5 minutes on 1m bars; none when
OI is given on every bar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import polars as pl

from transforms.bars import model_input
from transforms.params import ModelParams

__all__ = [
    "KEY_LEVELS_SCHEMA",
    "LEVELS_SCHEMA",
    "first_crossing",
    "key_levels",
    "liquidation_levels",
    "log_survival",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_UTC = pl.Datetime("us", "UTC")

#: One row per created level. ``price`` is the exact liquidation price; ``liquidated_usd`` is the
#: remaining notional when crossed (0 while alive); ``alive_usd`` the remaining notional after the
#: last bar (0 once liquidated). Closed notional = notional_usd - liquidated_usd - alive_usd.
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

#: Key levels: liquidation clusters per side (see `transforms.clusters`). ``price`` is the
#: cluster's peak rounded to the price step, ``price_low``/``price_high`` its range, ``usd`` its
#: total; ``is_nearest`` marks the side's significant cluster nearest to the price, ``is_largest``
#: its largest (rank 1).
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

#: A level whose remaining notional falls below this fraction of its opening notional is treated
#: as closed by the heatmap, liquidation map and key levels (a display cut-off; the levels frame
#: and the predicted liquidations are not affected).
EXPIRY_FRACTION = 1e-9


@dataclass(frozen=True)
class Core:
    """Arrays of one model run (internal; shared by levels, heatmap and backtest)."""

    ts: I64  # bar open, epoch microseconds
    close: F64
    log_d: F64  # log of the survival factor D per bar
    j: I64  # creation bar per level
    m: I64  # liquidation bar per level, n when alive
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


def log_survival(bars: pl.DataFrame, params: ModelParams) -> F64:
    """Log of the survival factor ``D`` per bar (non-increasing, ``log D[0] = 0``).

    ``D`` is the product of ``oi_base[s_(k+1)] / oi_base[s_k]`` over the OI intervals that
    decreased, applied at the interval's closing sample bar ``s_(k+1)`` (with
    ``oi_decrease="proportional"``), times ``2 ** (-hours since the first bar / half_life)``.
    A level opened at bar ``j`` keeps ``D[i] / D[j]`` of its notional at bar ``i``. O(n).

    Parameters
    ----------
    bars
        Output of `transforms.bars.model_input` (normalized automatically if it is not).
    params
        Model parameters (``oi_decrease``, ``decay_half_life_hours``).

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(3)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 800.0, 800.0]})
    >>> np.exp(log_survival(bars, ModelParams())).round(3).tolist()
    [1.0, 0.8, 0.8]
    """
    norm = _normalized(bars)
    n = norm.height
    inc = np.zeros(n)
    if params.oi_decrease == "proportional" and n:
        samples, _ = _interval_ids(norm.get_column("oi_observed").to_numpy())
        base = norm.get_column("oi_base").to_numpy()[samples]
        if samples.shape[0] >= 2:
            ratio = base[1:] / base[:-1]
            closing = ratio < 1.0
            inc[samples[1:][closing]] = np.log(ratio[closing])
    log_d = np.cumsum(inc)
    if params.decay_half_life_hours is not None and n:
        ts = norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.float64)
        hours = (ts - ts[0]) / 3.6e9
        log_d = log_d - math.log(2.0) * hours / params.decay_half_life_hours
    return np.asarray(log_d, dtype=np.float64)


def _normalized(bars: pl.DataFrame) -> pl.DataFrame:
    if "oi_observed" in bars.columns and bars.schema.get("ts") == _UTC:
        ts = bars.get_column("ts")
        if ts.is_sorted() and ts.n_unique() == bars.height:
            return bars
    return model_input(bars)


def _tier_z(leverages: F64) -> F64:
    """Rank of each tier by leverage mapped linearly onto [-1, 1] (0 with a single tier)."""
    t = leverages.shape[0]
    if t == 1:
        return np.zeros(1)
    rank = np.argsort(np.argsort(leverages)).astype(np.float64)
    return np.asarray(2.0 * rank / (t - 1) - 1.0, dtype=np.float64)


def _openings(norm: pl.DataFrame, params: ModelParams) -> tuple[I64, F64, F64, F64]:
    """Creation bar, entry price, opened contracts (base units) and taker-buy share per opening."""
    n = norm.height
    empty = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    if n < 2:
        return empty
    samples, g = _interval_ids(norm.get_column("oi_observed").to_numpy())
    k = samples.shape[0] - 1
    if k < 1:
        return empty
    base = norm.get_column("oi_base").to_numpy()[samples]
    delta = base[1:] - base[:-1]
    high, low, close = (norm.get_column(c).to_numpy() for c in ("high", "low", "close"))
    typical = (high + low + close) / 3.0
    vol = np.nan_to_num(norm.get_column("volume").to_numpy().astype(np.float64), nan=0.0)
    vol = np.where(vol > 0, vol, 0.0)
    buy = norm.get_column("taker_buy_volume").to_numpy().astype(np.float64)
    buy_ok = np.isfinite(buy) & (vol > 0)
    inside = g >= 0
    gi = g[inside]
    vol_sum = np.bincount(gi, weights=vol[inside], minlength=k)
    count = np.bincount(gi, minlength=k).astype(np.float64)
    weight = np.zeros(n)
    weight[inside] = np.where(
        vol_sum[gi] > 0, vol[inside] / np.where(vol_sum[gi] > 0, vol_sum[gi], 1.0), 1.0 / count[gi]
    )
    buy_sum = np.bincount(gi, weights=np.where(buy_ok, buy, 0.0)[inside], minlength=k)
    buy_vol = np.bincount(gi, weights=np.where(buy_ok, vol, 0.0)[inside], minlength=k)
    share = np.where(buy_vol > 0, buy_sum / np.where(buy_vol > 0, buy_vol, 1.0), 0.5)
    share = np.clip(share, 0.0, 1.0)
    opened = np.where(delta > 0, delta, 0.0)
    if params.entry == "bars":
        contracts = np.zeros(n)
        contracts[inside] = opened[gi] * weight[inside]
        bar_idx = np.flatnonzero(contracts > 0).astype(np.int64)
        return (
            bar_idx,
            typical[bar_idx].astype(np.float64),
            contracts[bar_idx].astype(np.float64),
            share[g[bar_idx]].astype(np.float64),
        )
    vw = np.bincount(gi, weights=(weight * typical)[inside], minlength=k)
    idx = np.flatnonzero(opened > 0)
    return (
        (samples[1:][idx] - 1).astype(np.int64),
        vw[idx].astype(np.float64),
        opened[idx].astype(np.float64),
        share[idx].astype(np.float64),
    )


def first_crossing(values: F64, start: I64, threshold: F64) -> I64:
    """Smallest ``m >= start`` with ``values[m] <= threshold`` per query, ``len(values)`` if none.

    Binary lifting on a sparse table of range minima: O(n log n) time and memory to build,
    O(log n) per query, all queries vectorized. For shorts pass ``-mark_high`` and ``-price``.

    Examples
    --------
    >>> v = np.array([5.0, 4.0, 6.0, 3.0, 7.0])
    >>> first_crossing(v, np.array([0, 1, 2, 4]), np.array([4.5, 3.5, 3.0, 1.0])).tolist()
    [1, 3, 3, 5]
    """
    n = values.shape[0]
    pos = np.asarray(start, dtype=np.int64).copy()
    if n == 0 or pos.shape[0] == 0:
        return np.full(pos.shape[0], n, dtype=np.int64)
    table = [np.asarray(values, dtype=np.float64)]
    while (1 << len(table)) <= n:
        prev, half = table[-1], 1 << (len(table) - 1)
        table.append(np.minimum(prev[:-half], prev[half:]))
    thr = np.asarray(threshold, dtype=np.float64)
    for k in range(len(table) - 1, -1, -1):
        row = table[k]  # row[i] = min(values[i : i + 2**k]), defined for i <= n - 2**k
        ok = np.flatnonzero(pos < row.shape[0])
        jump = ok[row[pos[ok]] > thr[ok]]
        pos[jump] += 1 << k
    return np.minimum(pos, n)


def compute_core(bars: pl.DataFrame, params: ModelParams) -> Core:
    """Run the model on (normalized) bars and return its arrays (internal building block).

    O(n log n + N log n) time, O(n log n + N) memory (see the module docstring).
    """
    norm = _normalized(bars)
    n = norm.height
    j0, entry0, contracts, share = _openings(norm, params)
    lev = np.asarray(params.leverages, dtype=np.float64)
    w = np.asarray(params.weights, dtype=np.float64)
    t = lev.shape[0]
    if params.side_tilt == "taker":
        a = params.tilt_strength * (2.0 * share - 1.0)
        z = _tier_z(lev)
        wl = w[None, :] * np.exp(a[:, None] * z[None, :])
        ws = w[None, :] * np.exp(-a[:, None] * z[None, :])
        wl /= wl.sum(axis=1, keepdims=True)
        ws /= ws.sum(axis=1, keepdims=True)
    else:
        wl = ws = np.broadcast_to(w, (j0.shape[0], t))
    usd = contracts * entry0
    # level order: creation bar, side (long first), tier order as given
    nl = j0.shape[0] * t
    j = np.repeat(j0, t)
    entry = np.repeat(entry0, t)
    lev_l = np.tile(lev, j0.shape[0])
    mmr = params.mmr
    long_price = entry * (1.0 - 1.0 / lev_l) / (1.0 - mmr)
    short_price = entry * (1.0 + 1.0 / lev_l) / (1.0 + mmr)
    long_usd = (usd[:, None] * wl).reshape(nl)
    short_usd = (usd[:, None] * ws).reshape(nl)
    mark_low = norm.get_column("mark_low").to_numpy().astype(np.float64)
    mark_high = norm.get_column("mark_high").to_numpy().astype(np.float64)
    m_long = first_crossing(mark_low, j + 1, long_price)
    m_short = first_crossing(-mark_high, j + 1, -short_price)

    def both(a_long: npt.NDArray[np.generic], a_short: npt.NDArray[np.generic]) -> np.ndarray:
        stacked = np.stack([a_long.reshape(j0.shape[0], t), a_short.reshape(j0.shape[0], t)], 1)
        return stacked.reshape(2 * nl)

    side = np.tile(np.repeat(np.array([0, 1], dtype=np.int8), t), j0.shape[0])
    return (
        Core(
            ts=norm.get_column("ts").dt.epoch("us").to_numpy().astype(np.int64),
            close=norm.get_column("close").to_numpy().astype(np.float64),
            log_d=log_survival(norm, params),
            j=both(j, j).astype(np.int64),
            m=both(m_long, m_short).astype(np.int64),
            side=side,
            leverage=both(lev_l, lev_l).astype(np.float64),
            price=both(long_price, short_price).astype(np.float64),
            entry=both(entry, entry).astype(np.float64),
            notional=both(long_usd, short_usd).astype(np.float64),
        )
        if n
        else _empty_core(norm, params)
    )


def _empty_core(norm: pl.DataFrame, params: ModelParams) -> Core:
    z_i, z_f = np.zeros(0, np.int64), np.zeros(0)
    return Core(
        ts=z_i, close=z_f, log_d=log_survival(norm, params), j=z_i, m=z_i,
        side=np.zeros(0, np.int8), leverage=z_f, price=z_f, entry=z_f, notional=z_f,
    )  # fmt: skip


def _ts_series(name: str, micros: I64) -> pl.Series:
    return (
        pl.Series(name, micros, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )


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
            _ts_series("created_at", created),
            pl.Series("side", core.side).replace_strict(
                {0: "long", 1: "short"}, return_dtype=pl.String
            ),
            pl.Series("leverage", core.leverage),
            pl.Series("price", core.price),
            pl.Series("notional_usd", core.notional),
            _ts_series("liquidated_at", liq_ts),
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
    >>> lv = liquidation_levels(bars, ModelParams(leverages=(10.0,), weights=(1.0,)))
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


@dataclass(frozen=True)
class Snapshot:
    """Alive levels at one bar (internal): bar index, ts, ref price and per-level arrays."""

    i: int
    ts: int
    ref_price: float
    side: npt.NDArray[np.int8]
    price: F64
    usd: F64


def snapshot(levels: pl.DataFrame, bars: pl.DataFrame, at: datetime | None, params: ModelParams
             ) -> Snapshot:  # fmt: skip
    """Alive notional of each level at the last bar with ``ts <= at`` (default: the last bar).

    Longs at or above, and shorts at or below, the bar's close are dropped (they are crossed in
    the next bar). O(N + n).
    """
    norm = _normalized(bars)
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
        i = int(bar_index(ts, at_ts)[0])
        if i < 0:
            raise ValueError(f"at={at} is before the first bar ({norm.get_column('ts')[0]})")
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
    return Snapshot(i, int(ts[i]), ref, side[alive], price[alive], usd)


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

    The liquidation map at the last bar with ``ts <= at`` (default: last bar; see
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
        Snapshot time (UTC; naive = UTC). Default: the last bar.
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
    >>> p = ModelParams(leverages=(10.0,), weights=(1.0,), price_step=1.0)
    >>> key_levels(liquidation_levels(bars, p), bars, params=p).select("side", "usd").rows()
    [('long', 1000.0), ('short', 1000.0)]
    """
    from transforms.clusters import cluster_key_levels  # imports this module
    from transforms.heatmap import liquidation_map  # imports this module

    params = params or ModelParams()
    step = price_step if price_step is not None else params.resolve_price_step(_normalized(bars))
    liq_map = liquidation_map(levels, at, bars=bars, price_step=step, params=params)
    return cluster_key_levels(liq_map, price_step=step, top=top)
