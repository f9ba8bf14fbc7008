"""A seeded SYNTHETIC perpetual-futures market with known positions (demo data, ground truth).

Everything this module produces is synthetic: no row comes from an exchange. It exists for the
offline demo and for tests with a known answer (the estimator can be checked against the true
positions).

The model, per symbol, at 1-minute resolution:

- **Price.** Log-price GBM with GARCH(1,1) volatility clustering, a slowly varying drift (trends),
  an intraday volatility profile, and cascade impact (below). Trade prices are rounded to the
  symbol's tick; the mark price is the trade price plus a small noise, also rounded.
- **Opening.** Every bar opens new positions at the bar's typical traded price
  ``(open + high + low + close) / 4``, the same notional on both sides (every contract has a long
  and a short), split over the leverage tiers by the tier weights. One cohort per
  (bar, side, tier). A cohort is eligible for liquidation from the next bar on.
- **Liquidation.** A long cohort is liquidated in the first later bar whose MARK low is at or
  below its liquidation price ``P * (1 - 1/L) / (1 - mmr)``; a short in the first bar whose mark
  high is at or above ``P * (1 + 1/L) / (1 + mmr)``. A liquidation is a forced market order: it
  pushes the bar's low (longs) or high (shorts) further by
  ``cascade_impact * liquidated_usd / target_oi_usd`` in log price (market depth scales with the
  market's usual size), which can liquidate more cohorts in the same bar (cascades). Forced
  sells and forced buys in the same bar match each other; the rest is taken by traders of the
  other side closing, pro rata, so both sides keep the same open interest.
- **Closing.** Each bar a random fraction of open interest is closed, pro rata over all open
  cohorts of both sides. So a cohort's remaining quantity at time t is
  ``qty * exp(log_survival(t) - log_survival(t0))`` with the side's cumulative log survival
  (reported in :attr:`SyntheticMarket.open_interest`).
- **Warm-up.** The simulation starts ``warmup_days`` before ``start`` from zero open interest, so
  the emitted days begin with a realistic book. Warm-up bars are not emitted (except in
  ``positions`` and ``open_interest``, which hold the whole truth).

Open interest (``metrics``) is sampled every 5 minutes: ``create_time`` is the 5-minute label and
the value is the open interest at that instant (one side's open quantity; both sides are equal).
``sum_taker_long_short_vol_ratio`` is taker buy / taker sell volume of the 5 bars before the
label; the account and position long/short ratios are smooth random series (AR(1) in log) around
typical levels (global accounts 1.6, top-trader accounts 1.3, top-trader positions 1.15).
"""

from __future__ import annotations

import heapq
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TypeVar

import numpy as np
import polars as pl

__all__ = [
    "KLINE_COLUMNS",
    "KLINE_SCHEMA",
    "LIQUIDATION_SCHEMA",
    "METRICS_COLUMNS",
    "METRICS_SCHEMA",
    "OPEN_INTEREST_SCHEMA",
    "POSITION_SCHEMA",
    "SyntheticMarket",
    "SyntheticParams",
    "synthetic_market",
    "synthetic_markets",
]

MINUTE_MS = 60_000
BARS_PER_DAY = 1440
METRICS_STEP = 5  # minutes
METRICS_PER_DAY = BARS_PER_DAY // METRICS_STEP
#: at most this many price pushes per bar; remaining crossings are then liquidated without impact
MAX_CASCADE_STEPS = 25
#: largest fraction of a side closed at once (keeps log survival finite)
_MAX_CLOSE = 1.0 - 1e-12

_UTC_US = pl.Datetime("us", "UTC")

KLINE_COLUMNS: tuple[str, ...] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
KLINE_SCHEMA: dict[str, pl.DataType] = {
    "open_time": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "close_time": pl.Int64(),
    "quote_volume": pl.Float64(),
    "count": pl.Int64(),
    "taker_buy_volume": pl.Float64(),
    "taker_buy_quote_volume": pl.Float64(),
    "ignore": pl.Int64(),
}
METRICS_COLUMNS: tuple[str, ...] = (
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio",
    "count_long_short_ratio",
    "sum_taker_long_short_vol_ratio",
)
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "create_time": _UTC_US,
    "symbol": pl.String(),
    "sum_open_interest": pl.Float64(),
    "sum_open_interest_value": pl.Float64(),
    "count_toptrader_long_short_ratio": pl.Float64(),
    "sum_toptrader_long_short_ratio": pl.Float64(),
    "count_long_short_ratio": pl.Float64(),
    "sum_taker_long_short_vol_ratio": pl.Float64(),
}
#: realized liquidations, one row per liquidated cohort; usd = liquidated quantity * price
LIQUIDATION_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC_US,
    "side": pl.String(),
    "usd": pl.Float64(),
    "price": pl.Float64(),
}
#: the true cohorts: notional_usd = quantity * entry_price; closed_usd = quantity closed by random
#: closing (valued at entry) before liquidation or the end; liquidated_at = bar open time or null
POSITION_SCHEMA: dict[str, pl.DataType] = {
    "created_at": _UTC_US,
    "side": pl.String(),
    "leverage": pl.Int64(),
    "entry_price": pl.Float64(),
    "liq_price": pl.Float64(),
    "notional_usd": pl.Float64(),
    "closed_usd": pl.Float64(),
    "liquidated_at": _UTC_US,
}
#: true open interest after each bar (ts = bar open + 1 minute), warm-up included
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC_US,
    "long_qty": pl.Float64(),
    "short_qty": pl.Float64(),
    "long_log_survival": pl.Float64(),
    "short_log_survival": pl.Float64(),
    "mark_price": pl.Float64(),
}

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}(_[A-Z0-9]{1,10})?$")


@dataclass(frozen=True)
class SyntheticParams:
    """Generating parameters of the synthetic market.

    Fields left as ``None`` get per-symbol defaults (BTC-like, ETH-like or generic) when the
    market is generated; :attr:`SyntheticMarket.params` holds the resolved values.

    Attributes
    ----------
    leverage_tiers, leverage_weights
        Leverage mix of newly opened notional (weights sum to 1), the same for both sides.
    mmr
        Maintenance margin rate used in the liquidation price.
    start_price
        Price where the simulation (warm-up included) starts; default drawn from the seed
        (BTC 60k-100k, ETH 2k-4k, others 1-100).
    volatility
        Long-run standard deviation of 1-minute log returns (BTC 0.0005, ETH 0.00065,
        others 0.0009).
    target_oi_usd
        Open interest the market settles around (BTC 8e9, ETH 5e9, others 3e8).
    price_decimals, qty_decimals
        Tick and lot precision (decimals); default from the price level.
    open_rate
        Mean opened notional per minute per side, as a fraction of ``target_oi_usd``.
    close_rate
        Mean fraction of open interest closed per minute (random, pro rata).
    activity_noise
        Log-normal sd of the per-minute opening/closing activity.
    cascade_impact
        Log-price push per unit of liquidated USD / ``target_oi_usd``.
    cascade_persistence
        Share of a cascade push that stays in the bar's close (the rest is a wick).
    garch_alpha, garch_beta
        GARCH(1,1) volatility clustering.
    trend_persistence, trend_scale
        AR(1) drift: persistence per minute and innovation in units of ``volatility``.
    mark_noise
        Relative sd of mark price around trade price.
    volume_turnover
        Extra traded volume per minute (not changing open interest), fraction of OI.
    warmup_days
        Days simulated before ``start`` (not emitted) so the book is populated.

    Examples
    --------
    >>> SyntheticParams(cascade_impact=3.0).leverage_tiers
    (5, 10, 25, 50, 100)
    """

    leverage_tiers: tuple[int, ...] = (5, 10, 25, 50, 100)
    leverage_weights: tuple[float, ...] = (0.30, 0.30, 0.20, 0.10, 0.10)
    mmr: float = 0.004
    start_price: float | None = None
    volatility: float | None = None
    target_oi_usd: float | None = None
    price_decimals: int | None = None
    qty_decimals: int | None = None
    open_rate: float = 0.0006
    close_rate: float = 0.0005
    activity_noise: float = 0.5
    cascade_impact: float = 0.1
    cascade_persistence: float = 0.4
    garch_alpha: float = 0.06
    garch_beta: float = 0.92
    trend_persistence: float = 0.997
    trend_scale: float = 0.002
    mark_noise: float = 0.00005
    volume_turnover: float = 0.001
    warmup_days: int = 2

    def __post_init__(self) -> None:
        tiers, weights = self.leverage_tiers, self.leverage_weights
        if not tiers or len(tiers) != len(weights):
            raise ValueError(
                "leverage_tiers and leverage_weights must be non-empty and equal length"
            )
        if any(t <= 1 for t in tiers) or len(set(tiers)) != len(tiers):
            raise ValueError(f"leverage tiers must be distinct and > 1, got {tiers}")
        if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-9):
            raise ValueError(f"leverage weights must be >= 0 and sum to 1, got {weights}")
        if not 0 < self.mmr < 0.1:
            raise ValueError(f"mmr must be in (0, 0.1), got {self.mmr}")
        if not 0 <= self.close_rate < 0.5 or not 0 <= self.open_rate < 0.5:
            raise ValueError("open_rate and close_rate must be in [0, 0.5)")
        if self.garch_alpha < 0 or self.garch_beta < 0 or self.garch_alpha + self.garch_beta >= 1:
            raise ValueError("garch_alpha, garch_beta must be >= 0 with alpha + beta < 1")
        if not 0 <= self.trend_persistence < 1:
            raise ValueError("trend_persistence must be in [0, 1)")
        if not 0 <= self.cascade_persistence <= 1 or self.cascade_impact < 0:
            raise ValueError("cascade_impact must be >= 0 and cascade_persistence in [0, 1]")
        if self.warmup_days < 0:
            raise ValueError(f"warmup_days must be >= 0, got {self.warmup_days}")
        for name in ("start_price", "volatility", "target_oi_usd"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        for name in ("price_decimals", "qty_decimals"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 8:
                raise ValueError(f"{name} must be in [0, 8], got {value}")


@dataclass(frozen=True)
class SyntheticMarket:
    """One symbol's SYNTHETIC market: archive-shaped frames plus the true positions.

    Attributes
    ----------
    symbol
        E.g. ``"BTCUSDT"``.
    klines, mark_klines
        1-minute bars, columns :data:`KLINE_COLUMNS` (:data:`KLINE_SCHEMA`); mark volume-type
        columns are 0.
    metrics
        5-minute open interest and ratios, :data:`METRICS_SCHEMA`, sorted by ``create_time``.
    liquidations
        Realized liquidation events, :data:`LIQUIDATION_SCHEMA`, sorted by ``ts``.
    positions
        True cohorts (warm-up included), :data:`POSITION_SCHEMA`.
    params
        Resolved generating parameters.
    open_interest
        True per-minute open interest and per-side log survival (warm-up included),
        :data:`OPEN_INTEREST_SCHEMA`.
    start, days
        First emitted day and number of emitted days.
    """

    symbol: str
    klines: pl.DataFrame
    mark_klines: pl.DataFrame
    metrics: pl.DataFrame
    liquidations: pl.DataFrame
    positions: pl.DataFrame
    params: SyntheticParams
    open_interest: pl.DataFrame
    start: date
    days: int


_T = TypeVar("_T")


def _resolved(value: _T | None, name: str) -> _T:
    if value is None:
        raise ValueError(f"synthetic params field {name} was not resolved")
    return value


def _symbol_seed(seed: int, symbol: str) -> np.random.SeedSequence:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.SeedSequence([seed, zlib.crc32(symbol.encode())])


def _resolve(symbol: str, params: SyntheticParams, rng: np.random.Generator) -> SyntheticParams:
    """Fill the per-symbol defaults (always draws the start price, so seeds stay aligned)."""
    if symbol.startswith("BTC"):
        lo, hi, vol, oi = 60_000.0, 100_000.0, 0.0005, 8e9
    elif symbol.startswith("ETH"):
        lo, hi, vol, oi = 2_000.0, 4_000.0, 0.00065, 5e9
    else:
        lo, hi, vol, oi = 1.0, 100.0, 0.0009, 3e8
    drawn = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    price = params.start_price if params.start_price is not None else drawn
    magnitude = math.floor(math.log10(price))
    price_decimals = params.price_decimals
    if price_decimals is None:
        price_decimals = min(8, max(0, 5 - magnitude))
    qty_decimals = params.qty_decimals
    if qty_decimals is None:
        qty_decimals = 3 if price >= 1000 else min(8, max(0, magnitude))
    return replace(
        params,
        start_price=round(price, price_decimals),
        volatility=params.volatility if params.volatility is not None else vol,
        target_oi_usd=params.target_oi_usd if params.target_oi_usd is not None else oi,
        price_decimals=price_decimals,
        qty_decimals=qty_decimals,
    )


def synthetic_market(
    symbol: str,
    start: date,
    days: int,
    seed: int,
    *,
    params: SyntheticParams | None = None,
) -> SyntheticMarket:
    """Simulate one symbol's SYNTHETIC market for ``days`` days from ``start`` (UTC).

    Parameters
    ----------
    symbol
        Upper-case symbol; ``BTC*`` and ``ETH*`` get BTC-like and ETH-like defaults.
    start
        First emitted day (00:00 UTC).
    days
        Number of emitted days (>= 1); 1440 bars and 288 metrics rows per day.
    seed
        Non-negative seed; the symbol's own seed is derived from it and the symbol name, so the
        same (symbol, seed, params) always gives identical output.
    params
        Generating parameters; defaults to :class:`SyntheticParams()`.

    Returns
    -------
    SyntheticMarket

    Examples
    --------
    >>> m = synthetic_market("BTCUSDT", date(2024, 1, 1), 1, seed=7)
    >>> m.klines.height, m.metrics.height
    (1440, 288)
    >>> bool((m.klines["low"] <= m.klines["close"]).all())
    True
    """
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(f"malformed symbol {symbol!r} (expected e.g. BTCUSDT)")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    rng = np.random.default_rng(_symbol_seed(seed, symbol))
    resolved = _resolve(symbol, params if params is not None else SyntheticParams(), rng)
    return _simulate(symbol, start, days, resolved, rng)


def synthetic_markets(
    symbols: Iterable[str], start: date, days: int, seed: int
) -> dict[str, SyntheticMarket]:
    """Simulate several symbols (each with its own seed derived from ``seed``), default params.

    Examples
    --------
    >>> ms = synthetic_markets(["BTCUSDT", "ETHUSDT"], date(2024, 1, 1), 1, seed=7)
    >>> sorted(ms), ms["ETHUSDT"].klines["close"][0] < ms["BTCUSDT"].klines["close"][0]
    (['BTCUSDT', 'ETHUSDT'], True)
    """
    return {s: synthetic_market(s, start, days, seed) for s in dict.fromkeys(symbols)}


def _liq_factors(p: SyntheticParams) -> tuple[list[float], list[float]]:
    """Liquidation price / entry price per tier: long ``(1 - 1/L) / (1 - mmr)``, short
    ``(1 + 1/L) / (1 + mmr)``."""
    long_factor = [(1.0 - 1.0 / lev) / (1.0 - p.mmr) for lev in p.leverage_tiers]
    short_factor = [(1.0 + 1.0 / lev) / (1.0 + p.mmr) for lev in p.leverage_tiers]
    return long_factor, short_factor


def _intraday_profile(n_bars: int, first_minute_of_day: int) -> np.ndarray:
    """Volatility multiplier by minute of day: quieter in Asia's night, busiest around 14:30."""
    minute = (np.arange(n_bars) + first_minute_of_day) % BARS_PER_DAY
    hour = minute / 60.0
    profile = 0.8 + 0.5 * np.exp(-0.5 * ((hour - 14.5) / 2.5) ** 2)
    return profile / profile.mean()  # type: ignore[no-any-return]


def _simulate(
    symbol: str, start: date, days: int, p: SyntheticParams, rng: np.random.Generator
) -> SyntheticMarket:
    n_warm = p.warmup_days * BARS_PER_DAY
    n = n_warm + days * BARS_PER_DAY
    k = len(p.leverage_tiers)
    pd_ = _resolved(p.price_decimals, "price_decimals")
    sigbar = _resolved(p.volatility, "volatility")
    target_oi = _resolved(p.target_oi_usd, "target_oi_usd")
    start_price = _resolved(p.start_price, "start_price")

    # exogenous randomness, drawn up front (vectorized) and read as Python floats in the loop
    act_sd = p.activity_noise
    z_ret = rng.standard_normal(n).tolist()
    z_trend = rng.standard_normal(n).tolist()
    wick_hi = (np.abs(rng.standard_normal(n)) * 0.8).tolist()
    wick_lo = (np.abs(rng.standard_normal(n)) * 0.8).tolist()
    e_mark = rng.standard_normal((3, n)) * p.mark_noise
    e_mc, e_mh, e_ml = (e_mark[i].tolist() for i in range(3))
    act_open = np.exp(rng.normal(-0.5 * act_sd**2, act_sd, n)).tolist()
    act_close = np.exp(rng.normal(-0.5 * act_sd**2, act_sd, n)).tolist()
    act_churn = np.exp(rng.normal(-0.5 * act_sd**2, act_sd, n)).tolist()
    z_taker = rng.standard_normal(n).tolist()
    season = _intraday_profile(n, 0).tolist()

    long_factor, short_factor = _liq_factors(p)
    weights = list(p.leverage_weights)

    # per-bar outputs
    bar_o = [0.0] * n
    bar_h = [0.0] * n
    bar_l = [0.0] * n
    bar_c = [0.0] * n
    mark_o = [0.0] * n
    mark_h = [0.0] * n
    mark_l = [0.0] * n
    mark_c = [0.0] * n
    volume = [0.0] * n
    taker_buy = [0.0] * n
    vwap_t = [0.0] * n
    open_qty = [0.0] * n  # per side, all tiers
    logs0_long = [0.0] * n  # side log survival when the bar's cohorts were created
    logs0_short = [0.0] * n
    oi_long = [0.0] * n
    oi_short = [0.0] * n
    ls_long = [0.0] * n
    ls_short = [0.0] * n
    # cohort id = (bar * 2 + side) * k + tier; side 0 long, 1 short
    liq_bar = np.full(n * 2 * k, -1, dtype=np.int64)
    liq_rem = np.zeros(n * 2 * k)
    ev_cid: list[int] = []
    ev_usd: list[float] = []

    long_heap: list[tuple[float, int]] = []  # (-liq_price, cid): max-heap of long liq prices
    short_heap: list[tuple[float, int]] = []  # (liq_price, cid)
    long_qty = short_qty = 0.0
    logsl = logss = 0.0
    var = sigbar * sigbar
    omega = var * (1.0 - p.garch_alpha - p.garch_beta)
    var_cap = (10.0 * sigbar) ** 2
    drift = 0.0
    prev_close = start_price
    prev_mark = start_price
    exp = math.exp

    for t in range(n):
        sig = math.sqrt(var) * season[t]
        drift = p.trend_persistence * drift + p.trend_scale * sigbar * z_trend[t]
        r_exo = drift + sig * z_ret[t]
        o_ = prev_close
        c_ = o_ * exp(r_exo)
        h_ = max(o_, c_) * exp(sig * wick_hi[t])
        l_ = min(o_, c_) * exp(-sig * wick_lo[t])
        mo = prev_mark
        mc = round(c_ * (1.0 + e_mc[t]), pd_)
        mh = max(mo, mc, round(h_ * (1.0 + e_mh[t]), pd_))
        ml = min(mo, mc, round(l_ * (1.0 + e_ml[t]), pd_))

        ql = qs = 0.0
        steps = 0
        while True:
            new_l = new_s = 0.0
            popped = False
            while long_heap and -long_heap[0][0] >= ml:
                neg_liq, cid = heapq.heappop(long_heap)
                b, tier = divmod(cid, 2 * k)
                rem = open_qty[b] * weights[tier] * exp(logsl - logs0_long[b])
                liq_bar[cid] = t
                liq_rem[cid] = rem
                ev_cid.append(cid)
                ev_usd.append(-neg_liq * rem)
                ql += rem
                new_l -= neg_liq * rem
                popped = True
            while short_heap and short_heap[0][0] <= mh:
                liq, cid = heapq.heappop(short_heap)
                b, rest = divmod(cid, 2 * k)
                rem = open_qty[b] * weights[rest - k] * exp(logss - logs0_short[b])
                liq_bar[cid] = t
                liq_rem[cid] = rem
                ev_cid.append(cid)
                ev_usd.append(liq * rem)
                qs += rem
                new_s += liq * rem
                popped = True
            if not popped:
                break
            if steps >= MAX_CASCADE_STEPS:
                continue  # no more price impact: the next pass finds nothing new
            steps += 1
            dl = min(p.cascade_impact * new_l / target_oi, 0.05)
            du = min(p.cascade_impact * new_s / target_oi, 0.05)
            l_ *= exp(-dl)
            h_ *= exp(du)
            c_ *= exp(p.cascade_persistence * (du - dl))
            h_ = max(h_, c_)
            l_ = min(l_, c_)
            mc = round(c_ * (1.0 + e_mc[t]), pd_)
            mh = max(mh, mc, round(h_ * (1.0 + e_mh[t]), pd_))
            ml = min(ml, mc, round(l_ * (1.0 + e_ml[t]), pd_))

        o_r = round(o_, pd_)
        c_r = round(c_, pd_)
        h_r = round(max(h_, o_, c_), pd_)
        l_r = round(min(l_, o_, c_), pd_)
        bar_o[t], bar_h[t], bar_l[t], bar_c[t] = o_r, h_r, l_r, c_r
        mark_o[t], mark_h[t], mark_l[t], mark_c[t] = mo, mh, ml, mc
        prev_close, prev_mark = c_r, mc
        ret = math.log(c_r / o_r) / season[t]  # deseasonalized, so the profile cannot explode it
        var = min(omega + p.garch_alpha * ret * ret + p.garch_beta * var, var_cap)

        # liquidated quantity leaves its side. Forced sells (longs) and forced buys (shorts)
        # first match each other; the rest is taken by the other side's traders closing, pro
        # rata. So both sides lose max(ql, qs) and stay equal.
        long_qty -= ql
        short_qty -= qs
        counter = 0.0
        if qs > ql and long_qty > 0.0:
            frac = min((qs - ql) / long_qty, _MAX_CLOSE)
            logsl += math.log1p(-frac)
            counter = frac * long_qty
            long_qty *= 1.0 - frac
        elif ql > qs and short_qty > 0.0:
            frac = min((ql - qs) / short_qty, _MAX_CLOSE)
            logss += math.log1p(-frac)
            counter = frac * short_qty
            short_qty *= 1.0 - frac
        # random closing, pro rata over all open cohorts of both sides
        f = min(p.close_rate * act_close[t], 0.5)
        closed = f * (long_qty + short_qty) / 2.0
        long_qty *= 1.0 - f
        short_qty *= 1.0 - f
        lf = math.log1p(-f)
        logsl += lf
        logss += lf

        # opening: equal notional per side at the bar's typical price, split over the tiers
        vwap = (o_r + h_r + l_r + c_r) / 4.0
        activity = math.sqrt(sig / sigbar)
        q = target_oi * p.open_rate * act_open[t] * activity / vwap
        vwap_t[t] = vwap
        open_qty[t] = q
        logs0_long[t] = logsl
        logs0_short[t] = logss
        base = t * 2 * k
        for i in range(k):
            heapq.heappush(long_heap, (-vwap * long_factor[i], base + i))
            heapq.heappush(short_heap, (vwap * short_factor[i], base + k + i))
        long_qty += q
        short_qty += q
        oi_long[t], oi_short[t] = long_qty, short_qty
        ls_long[t], ls_short[t] = logsl, logss

        churn = target_oi * p.volume_turnover * act_churn[t] * activity / vwap
        organic = q + closed + counter + churn
        share = 0.5 + 0.2 * math.tanh(r_exo / sig) + 0.05 * z_taker[t]
        share = min(0.95, max(0.05, share))
        volume[t] = organic + ql + qs
        taker_buy[t] = organic * share + qs  # a liquidated short is a forced buy

    return _assemble(
        symbol=symbol,
        start=start,
        days=days,
        p=p,
        rng=rng,
        arrays={
            "open": bar_o,
            "high": bar_h,
            "low": bar_l,
            "close": bar_c,
            "mark_open": mark_o,
            "mark_high": mark_h,
            "mark_low": mark_l,
            "mark_close": mark_c,
            "volume": volume,
            "taker_buy": taker_buy,
            "vwap": vwap_t,
            "open_qty": open_qty,
            "logs0_long": logs0_long,
            "logs0_short": logs0_short,
            "oi_long": oi_long,
            "oi_short": oi_short,
            "ls_long": ls_long,
            "ls_short": ls_short,
        },
        liq_bar=liq_bar,
        liq_rem=liq_rem,
        ev_cid=np.asarray(ev_cid, dtype=np.int64),
        ev_usd=np.asarray(ev_usd, dtype=np.float64),
    )


def _ar1_log(rng: np.random.Generator, n: int, mean: float, phi: float, sd: float) -> np.ndarray:
    """AR(1) around log(mean), returned as a level (exp)."""
    x = np.empty(n)
    noise = rng.standard_normal(n) * sd
    level = 0.0
    for i in range(n):
        level = phi * level + noise[i]
        x[i] = level
    return np.exp(np.log(mean) + x)  # type: ignore[no-any-return]


def _assemble(
    *,
    symbol: str,
    start: date,
    days: int,
    p: SyntheticParams,
    rng: np.random.Generator,
    arrays: dict[str, list[float]],
    liq_bar: np.ndarray,
    liq_rem: np.ndarray,
    ev_cid: np.ndarray,
    ev_usd: np.ndarray,
) -> SyntheticMarket:
    a = {name: np.asarray(values, dtype=np.float64) for name, values in arrays.items()}
    k = len(p.leverage_tiers)
    n_warm = p.warmup_days * BARS_PER_DAY
    n = a["open"].size
    start_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1000)
    sim_start_ms = start_ms - n_warm * MINUTE_MS
    bar_ms = sim_start_ms + np.arange(n, dtype=np.int64) * MINUTE_MS
    emit = slice(n_warm, n)
    qd = _resolved(p.qty_decimals, "qty_decimals")

    # --- trade and mark klines (emitted period) ---
    vol = np.round(a["volume"], qd)
    tbuy = np.minimum(np.round(a["taker_buy"], qd), vol)
    trade_size = np.exp(rng.normal(0.0, 0.3, n)) * 5_000.0 / a["vwap"]
    count = np.maximum(1, np.rint(a["volume"] / trade_size)).astype(np.int64)
    open_time = bar_ms[emit]
    klines = pl.DataFrame(
        {
            "open_time": open_time,
            "open": a["open"][emit],
            "high": a["high"][emit],
            "low": a["low"][emit],
            "close": a["close"][emit],
            "volume": vol[emit],
            "close_time": open_time + MINUTE_MS - 1,
            "quote_volume": np.round(vol * a["vwap"], 5)[emit],
            "count": count[emit],
            "taker_buy_volume": tbuy[emit],
            "taker_buy_quote_volume": np.round(tbuy * a["vwap"], 5)[emit],
            "ignore": np.zeros(n - n_warm, dtype=np.int64),
        },
        schema=KLINE_SCHEMA,
    )
    zeros_f = np.zeros(n - n_warm)
    mark_klines = pl.DataFrame(
        {
            "open_time": open_time,
            "open": a["mark_open"][emit],
            "high": a["mark_high"][emit],
            "low": a["mark_low"][emit],
            "close": a["mark_close"][emit],
            "volume": zeros_f,
            "close_time": open_time + MINUTE_MS - 1,
            "quote_volume": zeros_f,
            "count": np.zeros(n - n_warm, dtype=np.int64),
            "taker_buy_volume": zeros_f,
            "taker_buy_quote_volume": zeros_f,
            "ignore": np.zeros(n - n_warm, dtype=np.int64),
        },
        schema=KLINE_SCHEMA,
    )

    # --- metrics: open interest at each 5-minute label instant ---
    n_metrics = days * METRICS_PER_DAY
    label_ms = start_ms + np.arange(n_metrics, dtype=np.int64) * METRICS_STEP * MINUTE_MS
    state = n_warm + np.arange(n_metrics) * METRICS_STEP - 1  # last bar before the label
    has_state = state >= 0
    idx = np.maximum(state, 0)
    oi_base = np.where(has_state, a["oi_long"][idx], 0.0)
    mark_at = np.where(has_state, a["mark_close"][idx], _resolved(p.start_price, "start_price"))
    # taker buy/sell volume ratio over the 5 bars before the label
    buy_cum = np.concatenate([[0.0], np.cumsum(tbuy)])
    sell_cum = np.concatenate([[0.0], np.cumsum(vol - tbuy)])
    hi = state + 1
    lo = np.maximum(hi - METRICS_STEP, 0)
    buys = buy_cum[hi] - buy_cum[lo]
    sells = sell_cum[hi] - sell_cum[lo]
    taker_ratio = np.where(sells > 0, buys / np.where(sells > 0, sells, 1.0), 1.0)
    metrics = pl.DataFrame(
        {
            "create_time": label_ms * 1000,
            "symbol": [symbol] * n_metrics,
            "sum_open_interest": np.round(oi_base, qd),
            "sum_open_interest_value": np.round(oi_base * mark_at, 8),
            "count_toptrader_long_short_ratio": np.round(
                _ar1_log(rng, n_metrics, 1.3, 0.995, 0.01), 8
            ),
            "sum_toptrader_long_short_ratio": np.round(
                _ar1_log(rng, n_metrics, 1.15, 0.99, 0.015), 8
            ),
            "count_long_short_ratio": np.round(_ar1_log(rng, n_metrics, 1.6, 0.995, 0.01), 8),
            "sum_taker_long_short_vol_ratio": np.round(taker_ratio, 8),
        },
        schema={**METRICS_SCHEMA, "create_time": pl.Int64()},
    ).with_columns(pl.col("create_time").cast(_UTC_US))

    # --- true cohorts ---
    cid = np.arange(n * 2 * k, dtype=np.int64)
    bar = cid // (2 * k)
    side = (cid // k) % 2
    tier = cid % k
    entry = a["vwap"][bar]
    qty = a["open_qty"][bar] * np.asarray(p.leverage_weights)[tier]
    tiers = np.asarray(p.leverage_tiers, dtype=np.int64)[tier]
    is_long = side == 0
    # the same float operations as the simulation, so crossings compare bit-identical prices
    long_factor, short_factor = (np.asarray(f) for f in _liq_factors(p))
    liq_price = np.where(is_long, entry * long_factor[tier], entry * short_factor[tier])
    logs0 = np.where(is_long, a["logs0_long"][bar], a["logs0_short"][bar])
    logs_end = np.where(is_long, a["ls_long"][-1], a["ls_short"][-1])
    liquidated = liq_bar >= 0
    remaining = np.where(liquidated, liq_rem, qty * np.exp(logs_end - logs0))
    positions = pl.DataFrame(
        {
            "created_at": bar_ms[bar] * 1000,
            "side": np.where(is_long, "long", "short"),
            "leverage": tiers,
            "entry_price": entry,
            "liq_price": liq_price,
            "notional_usd": qty * entry,
            "closed_usd": (qty - remaining) * entry,
            "liquidated_at": np.where(liquidated, bar_ms[np.maximum(liq_bar, 0)] * 1000, 0),
            "_liq": liquidated,
        }
    ).select(
        pl.col("created_at").cast(_UTC_US),
        "side",
        "leverage",
        "entry_price",
        "liq_price",
        "notional_usd",
        "closed_usd",
        pl.when(pl.col("_liq")).then(pl.col("liquidated_at")).cast(_UTC_US).alias("liquidated_at"),
    )

    # --- realized liquidation events (emitted period) ---
    ev_bar = liq_bar[ev_cid]
    keep = ev_bar >= n_warm
    ev_cid, ev_bar, ev_usd = ev_cid[keep], ev_bar[keep], ev_usd[keep]
    offset_ms = rng.integers(0, MINUTE_MS, ev_cid.size)
    liquidations = (
        pl.DataFrame(
            {
                "ts": (bar_ms[ev_bar] + offset_ms) * 1000,
                "side": np.where(side[ev_cid] == 0, "long", "short"),
                "usd": ev_usd,
                "price": liq_price[ev_cid],
            },
            schema={**LIQUIDATION_SCHEMA, "ts": pl.Int64()},
        )
        .with_columns(pl.col("ts").cast(_UTC_US))
        .sort("ts", maintain_order=True)
    )

    open_interest = pl.DataFrame(
        {
            "ts": (bar_ms + MINUTE_MS) * 1000,
            "long_qty": a["oi_long"],
            "short_qty": a["oi_short"],
            "long_log_survival": a["ls_long"],
            "short_log_survival": a["ls_short"],
            "mark_price": a["mark_close"],
        },
        schema={**OPEN_INTEREST_SCHEMA, "ts": pl.Int64()},
    ).with_columns(pl.col("ts").cast(_UTC_US))

    return SyntheticMarket(
        symbol=symbol,
        klines=klines,
        mark_klines=mark_klines,
        metrics=metrics,
        liquidations=liquidations,
        positions=positions,
        params=p,
        open_interest=open_interest,
        start=start,
        days=days,
    )
