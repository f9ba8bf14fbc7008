"""A seeded SYNTHETIC perpetual-futures market with known positions (demo data, ground truth).

Everything this module produces is synthetic: no row comes from an exchange. It exists for the
offline demo and for tests with a known answer (the estimator can be checked against the true
positions). It deliberately does NOT share the liquidation model's assumptions (net-OI openings,
a few leverage spikes, one pro-rata close): the traders here have their own turnover, a
continuous leverage mix, notional brackets and cross-margin-like effective leverage.

The market, per symbol, at 1-minute resolution:

- **Price.** Log-price GBM with GARCH(1,1) volatility clustering, a slowly varying drift (trends),
  an intraday volatility profile, rare exogenous jumps (``shock_rate_per_day``) and cascade
  impact (below). Trade prices are rounded to the symbol's tick; the mark price is the trade
  price plus a small noise, also rounded.
- **Volume** is half the legs traded in the bar (every trade has two: openings, closings,
  forced orders and their counterparties) plus a little churn (``volume_turnover``); taker buy
  volume is a share of the organic volume tilted by the bar's return, plus the forced buys of
  liquidated shorts (liquidated longs are taker sells).
- **Trader populations** (:class:`TraderPopulation`, default :data:`DEFAULT_POPULATIONS`):
  scalpers (high leverage, minutes-to-hours holding times), day traders, swing traders (days)
  and long holders (low leverage, weeks). Each holds a share of the open interest, closes at
  its own random rate (a per-minute hazard ``1 / mean_life`` times a random activity) and closes
  whatever is left at ``max_life``. So turnover (volume several times OI per day) comes from
  traders, not from net OI changes.
- **Opening.** Every bar opens new positions at the bar's typical traded price
  ``(open + high + low + close) / 4``, the same quantity on both sides (every contract has a long
  and a short), split over the populations by their opening rates. Each (bar, side, population)
  is split into ``slots`` equal cohorts, each with its own random draw of
  position size (log-normal, heavy tailed, notional weighted), nominal leverage (a mixture of
  log-normals per population, capped by the size's notional bracket), a cross-margin factor
  ``u`` in ``(0.2, 1]`` (extra margin in the account: effective leverage = nominal x ``u``) and
  whether its trader tops up margin. One cohort per (bar, side, population, slot).
- **Brackets** (:data:`BRACKETS`, data per symbol): a position of notional ``N`` falls in the
  first bracket with ``N <= cap`` and gets that bracket's maximum leverage, maintenance rate
  ``mmr`` and maintenance amount ``cum``.
- **Liquidation.** With ``L`` the effective leverage (wallet balance ``N / L``), the Binance
  isolated formula gives long ``P * (1 - 1/L - cum/N) / (1 - mmr)`` and short
  ``P * (1 + 1/L + cum/N) / (1 + mmr)``. A long cohort is liquidated in the first later bar whose
  MARK low is at or below its liquidation price, a short in the first bar whose mark high is at
  or above it. A cohort whose trader tops up is not liquidated at that first crossing: the
  trader adds margin (effective leverage halves: ``positions.topup_liq_price``) and the cohort
  is liquidated at the first crossing of the new price, from that bar on (the same bar
  included). A cohort still open at its population's ``max_life`` is never liquidated after it.
- **Cascades.** A liquidation is a forced market order: it pushes the bar's low (longs) or high
  (shorts) further by ``cascade_impact * liquidated_usd / target_oi_usd`` in log price, which can
  liquidate more cohorts in the same bar. The forced order's counterparty is partly the other
  side closing (``counter_close_share``, pro rata over that side) and partly new positions.
- **Both sides stay equal.** Closings and liquidations of one side in excess of the other's are
  matched by new positions of the first side (a long closing sells to a new long), so long and
  short open interest stay equal.
- **Warm-up.** The simulation starts ``warmup_days`` before ``start`` from zero open interest;
  during the warm-up each population opens faster (by ``1 / (1 - exp(-warmup / mean_life))``)
  so the emitted days begin with a book near its steady state. Warm-up bars are not emitted
  (except in ``positions`` and ``open_interest``, which hold the whole truth).
- **Truth.** ``positions`` holds every cohort (``notional_usd = open_usd + closed_usd +
  liquidated_usd``); the open interest of a side is the sum of its cohorts' open quantity.
  :meth:`SyntheticMarket.leverage_mix` gives the true leverage mix (median, log-sd and display
  band shares of the effective or nominal leverage) that an estimator can be compared with.
- **Realized feed.** ``liquidations`` holds one order per liquidated cohort at a random second of
  its bar; with ``feed_throttle_ms`` (e.g. 1000, like Binance's feed: at most one order per
  second per symbol) only the last order of each window is published, so realized totals are a
  lower bound of the true liquidations (``positions.liquidated_usd``).

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
    "BRACKETS",
    "DEFAULT_POPULATIONS",
    "KLINE_COLUMNS",
    "KLINE_SCHEMA",
    "LEVERAGE_BANDS",
    "LEVERAGE_MIX_SCHEMA",
    "LIQUIDATION_SCHEMA",
    "METRICS_COLUMNS",
    "METRICS_SCHEMA",
    "OPEN_INTEREST_SCHEMA",
    "POSITION_SCHEMA",
    "Bracket",
    "SyntheticMarket",
    "SyntheticParams",
    "TraderPopulation",
    "leverage_mix",
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
#: margin factor u = effective / nominal leverage lies in (_U_MIN, 1]
_U_MIN = 0.2

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
#: realized liquidation orders, one row per published order; usd = liquidated quantity * price
LIQUIDATION_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC_US,
    "side": pl.String(),
    "usd": pl.Float64(),
    "price": pl.Float64(),
}
#: the true cohorts (warm-up included). ``leverage`` is the nominal leverage (after the bracket
#: cap), ``effective_leverage`` = nominal x margin factor (sets ``liq_price``); ``position_usd``
#: the representative position size that chose the bracket (``mmr``, ``maintenance_usd``).
#: Quantities valued at entry: ``notional_usd = open_usd + closed_usd + liquidated_usd`` (closed
#: = by the traders, including the counterparty of forced orders and ``max_life``).
#: ``topped_up_at`` is the bar where the trader added margin instead of being liquidated (the
#: first crossing of ``liq_price``), after which ``topup_liq_price`` applies. Times are bar
#: open times; a cohort is created at the end of its bar.
POSITION_SCHEMA: dict[str, pl.DataType] = {
    "created_at": _UTC_US,
    "side": pl.String(),
    "population": pl.String(),
    "leverage": pl.Float64(),
    "effective_leverage": pl.Float64(),
    "position_usd": pl.Float64(),
    "mmr": pl.Float64(),
    "maintenance_usd": pl.Float64(),
    "entry_price": pl.Float64(),
    "liq_price": pl.Float64(),
    "topup_liq_price": pl.Float64(),
    "notional_usd": pl.Float64(),
    "open_usd": pl.Float64(),
    "closed_usd": pl.Float64(),
    "liquidated_usd": pl.Float64(),
    "topped_up_at": _UTC_US,
    "liquidated_at": _UTC_US,
}
#: true open interest after each bar (ts = bar open + 1 minute), warm-up included
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {
    "ts": _UTC_US,
    "long_qty": pl.Float64(),
    "short_qty": pl.Float64(),
    "mark_price": pl.Float64(),
}
#: display bands of leverage: (label, lower bound exclusive, upper bound inclusive)
LEVERAGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<=10x", 0.0, 10.0),
    ("10-25x", 10.0, 25.0),
    ("25-50x", 25.0, 50.0),
    ("50-100x", 50.0, 100.0),
    (">100x", 100.0, math.inf),
)
#: :func:`leverage_mix` output: one row per side and one for both ("all")
LEVERAGE_MIX_SCHEMA: dict[str, pl.DataType] = {
    "side": pl.String(),
    "notional_usd": pl.Float64(),
    "median": pl.Float64(),
    "log_sd": pl.Float64(),
    **{f"share_{label}": pl.Float64() for label, _, _ in LEVERAGE_BANDS},
}

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}(_[A-Z0-9]{1,10})?$")


@dataclass(frozen=True)
class Bracket:
    """One notional bracket: positions with notional ``<= cap_usd`` (and above the previous cap)
    get at most ``max_leverage``, maintenance rate ``mmr`` and maintenance amount
    ``maintenance_usd`` (Binance's ``cum``)."""

    cap_usd: float
    max_leverage: float
    mmr: float
    maintenance_usd: float


#: notional brackets per symbol family (data, not code). BTCUSDT as published by Binance; the
#: maintenance amounts follow ``cum_k = cum_(k-1) + cap_(k-1) * (mmr_k - mmr_(k-1))``. Positions
#: above the last cap are capped at it.
BRACKETS: dict[str, tuple[Bracket, ...]] = {
    "BTC": (
        Bracket(50_000, 125, 0.004, 0),
        Bracket(600_000, 100, 0.005, 50),
        Bracket(3_000_000, 75, 0.0065, 950),
        Bracket(12_000_000, 50, 0.01, 11_450),
        Bracket(70_000_000, 25, 0.02, 131_450),
    ),
    "ETH": (
        Bracket(50_000, 125, 0.004, 0),
        Bracket(600_000, 100, 0.005, 50),
        Bracket(3_000_000, 75, 0.0065, 950),
        Bracket(12_000_000, 50, 0.01, 11_450),
        Bracket(50_000_000, 25, 0.02, 131_450),
    ),
    "*": (
        Bracket(5_000, 75, 0.005, 0),
        Bracket(50_000, 50, 0.01, 25),
        Bracket(250_000, 25, 0.02, 525),
        Bracket(1_000_000, 10, 0.05, 8_025),
        Bracket(5_000_000, 5, 0.1, 58_025),
    ),
}


@dataclass(frozen=True)
class TraderPopulation:
    """One kind of trader in the synthetic market.

    Attributes
    ----------
    name
        Label in ``positions.population``.
    oi_share
        Share of the steady-state open interest this population holds.
    mean_life_minutes
        Mean holding time: each minute a fraction ``activity / mean_life`` of the population's
        open quantity is closed (activity log-normal, mean 1).
    max_life_minutes
        Whatever is still open at this age is closed (None: never).
    leverage_modes
        Mixture of log-normals for the nominal leverage: ``(weight, median, log_sd)`` each;
        draws are clipped to [1, 125] and capped by the position's bracket.
    size_median_usd, size_log_sd
        Log-normal position size (by count); slots draw from the notional-weighted version
        (median ``size_median_usd * exp(size_log_sd**2)``).
    margin_beta
        Beta(a, b) of the margin factor: ``u = 0.2 + 0.8 * Beta(a, b)``, effective = nominal x u.
    topup_share
        Share of cohorts whose trader adds margin (once) instead of being liquidated.
    slots
        Cohorts per (bar, side) for this population.
    """

    name: str
    oi_share: float
    mean_life_minutes: float
    max_life_minutes: int | None
    leverage_modes: tuple[tuple[float, float, float], ...]
    size_median_usd: float
    size_log_sd: float
    margin_beta: tuple[float, float]
    topup_share: float
    slots: int

    def __post_init__(self) -> None:
        if not self.oi_share > 0 or not self.mean_life_minutes >= 1:
            raise ValueError(f"population {self.name}: oi_share > 0, mean_life_minutes >= 1")
        if self.max_life_minutes is not None and self.max_life_minutes < 1:
            raise ValueError(f"population {self.name}: max_life_minutes must be >= 1")
        if not self.leverage_modes or any(
            w < 0 or m < 1 or s < 0 for w, m, s in self.leverage_modes
        ):
            raise ValueError(f"population {self.name}: leverage modes need w >= 0, median >= 1")
        if not math.isclose(sum(w for w, _, _ in self.leverage_modes), 1.0, abs_tol=1e-9):
            raise ValueError(f"population {self.name}: leverage mode weights must sum to 1")
        if not 0 <= self.topup_share <= 1 or self.slots < 1 or min(self.margin_beta) <= 0:
            raise ValueError(f"population {self.name}: topup_share in [0, 1], slots >= 1")


#: the default trader mix (steady-state OI shares sum to 1). Opened notional is dominated by the
#: short-lived, high-leverage populations; open interest by the long-lived, low-leverage ones.
DEFAULT_POPULATIONS: tuple[TraderPopulation, ...] = (
    TraderPopulation(
        name="scalper",
        oi_share=0.04,
        mean_life_minutes=60.0,
        max_life_minutes=720,
        leverage_modes=((0.6, 40.0, 0.35), (0.4, 15.0, 0.4)),
        size_median_usd=2_000.0,
        size_log_sd=1.5,
        margin_beta=(3.0, 2.0),
        topup_share=0.05,
        slots=6,
    ),
    TraderPopulation(
        name="day",
        oi_share=0.18,
        mean_life_minutes=480.0,
        max_life_minutes=4_320,
        leverage_modes=((1.0, 15.0, 0.45),),
        size_median_usd=8_000.0,
        size_log_sd=1.6,
        margin_beta=(2.0, 2.0),
        topup_share=0.15,
        slots=5,
    ),
    TraderPopulation(
        name="swing",
        oi_share=0.36,
        mean_life_minutes=4_320.0,
        max_life_minutes=43_200,
        leverage_modes=((0.7, 6.0, 0.45), (0.3, 15.0, 0.3)),
        size_median_usd=20_000.0,
        size_log_sd=1.8,
        margin_beta=(1.5, 2.5),
        topup_share=0.25,
        slots=5,
    ),
    TraderPopulation(
        name="holder",
        oi_share=0.42,
        mean_life_minutes=30_240.0,
        max_life_minutes=None,
        leverage_modes=((1.0, 3.0, 0.4),),
        size_median_usd=50_000.0,
        size_log_sd=2.0,
        margin_beta=(1.2, 3.0),
        topup_share=0.3,
        slots=4,
    ),
)


@dataclass(frozen=True)
class SyntheticParams:
    """Generating parameters of the synthetic market.

    Fields left as ``None`` get per-symbol defaults (BTC-like, ETH-like or generic) when the
    market is generated; :attr:`SyntheticMarket.params` holds the resolved values.

    Attributes
    ----------
    populations
        The traders (:class:`TraderPopulation`); their ``oi_share`` are normalized.
    brackets
        Notional brackets (default :data:`BRACKETS` of the symbol's family).
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
    activity_noise
        Log-normal sd of the per-minute opening/closing activity.
    cascade_impact
        Log-price push per unit of liquidated USD / ``target_oi_usd``.
    cascade_persistence
        Share of a cascade push that stays in the bar's close (the rest is a wick).
    counter_close_share
        Share of a forced order's net quantity taken by the other side closing (the rest by new
        positions of the liquidated side).
    garch_alpha, garch_beta
        GARCH(1,1) volatility clustering.
    trend_persistence, trend_scale
        AR(1) drift: persistence per minute and innovation in units of ``volatility``.
    mark_noise
        Relative sd of mark price around trade price.
    volume_turnover
        Extra traded volume per minute not changing open interest, fraction of OI.
    shock_rate_per_day, shock_scale
        Rare exogenous jumps (news): expected jumps per day and mean absolute size in log
        price (exponential; 60 % down), which start the large cascade days.
    feed_throttle_ms
        Publish at most one liquidation order per window of this many ms (the last one), like
        Binance's 1-second snapshot feed; None publishes every order.
    warmup_days
        Days simulated before ``start`` (not emitted) so the book is populated.

    Examples
    --------
    >>> [p.name for p in SyntheticParams().populations]
    ['scalper', 'day', 'swing', 'holder']
    >>> SyntheticParams(feed_throttle_ms=1000).feed_throttle_ms
    1000
    """

    populations: tuple[TraderPopulation, ...] = DEFAULT_POPULATIONS
    brackets: tuple[Bracket, ...] | None = None
    start_price: float | None = None
    volatility: float | None = None
    target_oi_usd: float | None = None
    price_decimals: int | None = None
    qty_decimals: int | None = None
    activity_noise: float = 0.5
    cascade_impact: float = 0.2
    cascade_persistence: float = 0.4
    counter_close_share: float = 0.6
    garch_alpha: float = 0.06
    garch_beta: float = 0.92
    trend_persistence: float = 0.997
    trend_scale: float = 0.002
    mark_noise: float = 0.00005
    volume_turnover: float = 0.0005
    shock_rate_per_day: float = 0.1
    shock_scale: float = 0.015
    feed_throttle_ms: int | None = None
    warmup_days: int = 2

    def __post_init__(self) -> None:
        if not self.populations:
            raise ValueError("populations must not be empty")
        if len({p.name for p in self.populations}) != len(self.populations):
            raise ValueError("population names must be distinct")
        if self.brackets is not None:
            _check_brackets(self.brackets)
        if self.garch_alpha < 0 or self.garch_beta < 0 or self.garch_alpha + self.garch_beta >= 1:
            raise ValueError("garch_alpha, garch_beta must be >= 0 with alpha + beta < 1")
        if not 0 <= self.trend_persistence < 1:
            raise ValueError("trend_persistence must be in [0, 1)")
        if not 0 <= self.cascade_persistence <= 1 or self.cascade_impact < 0:
            raise ValueError("cascade_impact must be >= 0 and cascade_persistence in [0, 1]")
        if not 0 <= self.counter_close_share <= 1:
            raise ValueError("counter_close_share must be in [0, 1]")
        if min(self.activity_noise, self.volume_turnover, self.shock_rate_per_day) < 0:
            raise ValueError("activity_noise, volume_turnover, shock_rate_per_day must be >= 0")
        if not 0 <= self.shock_scale < 0.2:
            raise ValueError(f"shock_scale must be in [0, 0.2), got {self.shock_scale}")
        if self.feed_throttle_ms is not None and self.feed_throttle_ms < 1:
            raise ValueError(f"feed_throttle_ms must be >= 1, got {self.feed_throttle_ms}")
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


def _check_brackets(brackets: tuple[Bracket, ...]) -> None:
    caps = [b.cap_usd for b in brackets]
    if not brackets or caps != sorted(caps) or len(set(caps)) != len(caps):
        raise ValueError("brackets must be non-empty with increasing cap_usd")
    for b in brackets:
        if not 0 < b.mmr < 0.5 or b.max_leverage < 1 or b.maintenance_usd < 0:
            raise ValueError(f"bad bracket {b}: mmr in (0, 0.5), max_leverage >= 1, cum >= 0")


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
        Realized (published) liquidation orders, :data:`LIQUIDATION_SCHEMA`, sorted by ``ts``.
    positions
        True cohorts (warm-up included), :data:`POSITION_SCHEMA`.
    params
        Resolved generating parameters.
    open_interest
        True per-minute open interest per side (warm-up included), :data:`OPEN_INTEREST_SCHEMA`.
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

    def leverage_mix(
        self,
        column: str = "effective_leverage",
        *,
        weight: str = "notional_usd",
        emitted_only: bool = True,
    ) -> pl.DataFrame:
        """The TRUE leverage mix (see :func:`leverage_mix`) of opened notional (or, with
        ``weight="open_usd"``, of what is still open at the end); by default of the cohorts
        opened in the emitted days."""
        since = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        return leverage_mix(
            self.positions, column, weight=weight, since=since if emitted_only else None
        )


def leverage_mix(
    positions: pl.DataFrame,
    column: str = "effective_leverage",
    *,
    weight: str = "notional_usd",
    since: datetime | None = None,
) -> pl.DataFrame:
    """Notional-weighted leverage mix of opened positions: median, log-sd and band shares.

    Parameters
    ----------
    positions
        Frame with ``side``, ``notional_usd``, ``created_at`` and ``column``
        (:data:`POSITION_SCHEMA`).
    column
        ``"effective_leverage"`` (what sets the liquidation price) or ``"leverage"`` (nominal).
    weight
        ``"notional_usd"`` (opened notional, the default) or ``"open_usd"`` (still open at the
        end of the simulation); the ``notional_usd`` output column holds its total.
    since
        Only positions created at or after this instant.

    Returns
    -------
    pl.DataFrame
        :data:`LEVERAGE_MIX_SCHEMA`, rows ``long``, ``short``, ``all``: weighted median of the
        leverage, weighted sd of its log, and the share of notional per :data:`LEVERAGE_BANDS`.

    Examples
    --------
    >>> pos = pl.DataFrame({"side": ["long", "short"], "notional_usd": [3.0, 1.0],
    ...     "created_at": [datetime(2024, 1, 1, tzinfo=UTC)] * 2,
    ...     "effective_leverage": [5.0, 40.0]})
    >>> mix = leverage_mix(pos)
    >>> mix.filter(side="all").select("median", "share_<=10x", "share_25-50x").row(0)
    (5.0, 0.75, 0.25)
    """
    if since is not None:
        positions = positions.filter(pl.col("created_at") >= since)
    rows = []
    for side in ("long", "short", "all"):
        part = positions if side == "all" else positions.filter(side=side)
        lev = part[column].to_numpy().astype(np.float64)
        w = part[weight].to_numpy().astype(np.float64)
        total = float(w.sum())
        row: dict[str, float | str] = {"side": side, "notional_usd": total}
        if total > 0:
            order = np.argsort(lev, kind="stable")
            cum = np.cumsum(w[order])
            row["median"] = float(lev[order][np.searchsorted(cum, 0.5 * total)])
            logs = np.log(lev)
            mean = float((w * logs).sum() / total)
            row["log_sd"] = math.sqrt(max(float((w * (logs - mean) ** 2).sum() / total), 0.0))
            for label, lo, hi in LEVERAGE_BANDS:
                row[f"share_{label}"] = float(w[(lev > lo) & (lev <= hi)].sum() / total)
        else:
            row |= {"median": math.nan, "log_sd": math.nan}
            row |= {f"share_{label}": math.nan for label, _, _ in LEVERAGE_BANDS}
        rows.append(row)
    return pl.DataFrame(rows, schema=LEVERAGE_MIX_SCHEMA)


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
        lo, hi, vol, oi, family = 60_000.0, 100_000.0, 0.0005, 8e9, "BTC"
    elif symbol.startswith("ETH"):
        lo, hi, vol, oi, family = 2_000.0, 4_000.0, 0.00065, 5e9, "ETH"
    else:
        lo, hi, vol, oi, family = 1.0, 100.0, 0.0009, 3e8, "*"
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
        brackets=params.brackets if params.brackets is not None else BRACKETS[family],
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


def _intraday_profile(n_bars: int, first_minute_of_day: int) -> np.ndarray:
    """Volatility multiplier by minute of day: quieter in Asia's night, busiest around 14:30."""
    minute = (np.arange(n_bars) + first_minute_of_day) % BARS_PER_DAY
    hour = minute / 60.0
    profile = 0.8 + 0.5 * np.exp(-0.5 * ((hour - 14.5) / 2.5) ** 2)
    return profile / profile.mean()  # type: ignore[no-any-return]


def _ar1_log(rng: np.random.Generator, n: int, mean: float, phi: float, sd: float) -> np.ndarray:
    """AR(1) around log(mean), returned as a level (exp)."""
    x = np.empty(n)
    noise = rng.standard_normal(n) * sd
    level = 0.0
    for i in range(n):
        level = phi * level + noise[i]
        x[i] = level
    return np.exp(np.log(mean) + x)  # type: ignore[no-any-return]


def _draw_cohorts(p: SyntheticParams, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per (bar, side, slot) attributes, shape (n, 2, slots), each row sorted so that index 0
    is the first to be liquidated (longs: highest liquidation price first, shorts lowest)."""
    brackets = _resolved(p.brackets, "brackets")
    caps = np.asarray([b.cap_usd for b in brackets])
    max_lev = np.asarray([b.max_leverage for b in brackets], dtype=np.float64)
    mmrs = np.asarray([b.mmr for b in brackets])
    cums = np.asarray([b.maintenance_usd for b in brackets], dtype=np.float64)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("pop", "lev", "eff", "size", "mmr", "cum", "top")
    }
    for i, pop in enumerate(p.populations):
        shape = (n, 2, pop.slots)
        mu = math.log(pop.size_median_usd) + pop.size_log_sd**2  # notional-weighted sizes
        size = np.minimum(np.exp(rng.normal(mu, pop.size_log_sd, shape)), caps[-1])
        tier = np.minimum(np.searchsorted(caps, size, side="left"), caps.size - 1)
        w = np.asarray([m[0] for m in pop.leverage_modes])
        med = np.log(np.asarray([m[1] for m in pop.leverage_modes]))
        sd = np.asarray([m[2] for m in pop.leverage_modes])
        comp = rng.choice(w.size, size=shape, p=w / w.sum())
        lev = np.exp(med[comp] + sd[comp] * rng.standard_normal(shape))
        lev = np.minimum(np.clip(lev, 1.0, 125.0), max_lev[tier])
        a, b = pop.margin_beta
        u = _U_MIN + (1.0 - _U_MIN) * rng.beta(a, b, shape)
        parts["pop"].append(np.full(shape, i, dtype=np.int64))
        parts["lev"].append(lev)
        parts["eff"].append(lev * np.maximum(u, 1e-3))
        parts["size"].append(size)
        parts["mmr"].append(mmrs[tier])
        parts["cum"].append(cums[tier])
        parts["top"].append(rng.random(shape) < pop.topup_share)
    out = {k: np.concatenate(v, axis=2) for k, v in parts.items()}
    is_long = np.zeros(out["eff"].shape, dtype=bool)
    is_long[:, 0, :] = True
    out["factor"] = _liq_factor(is_long, out["eff"], out["cum"] / out["size"], out["mmr"])
    out["factor2"] = _liq_factor(is_long, out["eff"] / 2.0, out["cum"] / out["size"], out["mmr"])
    key = np.where(is_long, -out["factor"], out["factor"])
    order = np.argsort(key, axis=2, kind="stable")
    return {k: np.take_along_axis(v, order, axis=2) for k, v in out.items()}


def _liq_factor(
    is_long: np.ndarray, eff: np.ndarray, cum_share: np.ndarray, mmr: np.ndarray
) -> np.ndarray:
    """Liquidation price / entry price (Binance isolated formula with wallet = notional / eff):
    long ``(1 - 1/eff - cum/N) / (1 - mmr)``, short ``(1 + 1/eff + cum/N) / (1 + mmr)``.
    A long factor <= 0 is never reached."""
    long_f = (1.0 - 1.0 / eff - cum_share) / (1.0 - mmr)
    short_f = (1.0 + 1.0 / eff + cum_share) / (1.0 + mmr)
    return np.where(is_long, long_f, short_f)  # type: ignore[no-any-return]


def _simulate(
    symbol: str, start: date, days: int, p: SyntheticParams, rng: np.random.Generator
) -> SyntheticMarket:
    n_warm = p.warmup_days * BARS_PER_DAY
    n = n_warm + days * BARS_PER_DAY
    pd_ = _resolved(p.price_decimals, "price_decimals")
    sigbar = _resolved(p.volatility, "volatility")
    target_oi = _resolved(p.target_oi_usd, "target_oi_usd")
    start_price = _resolved(p.start_price, "start_price")
    pops = p.populations
    n_pop = len(pops)

    # exogenous price randomness first (so, without impact, the path ignores the traders)
    act_sd = p.activity_noise
    z_ret = rng.standard_normal(n).tolist()
    z_trend = rng.standard_normal(n).tolist()
    wick_hi = (np.abs(rng.standard_normal(n)) * 0.8).tolist()
    wick_lo = (np.abs(rng.standard_normal(n)) * 0.8).tolist()
    e_mark = rng.standard_normal((3, n)) * p.mark_noise
    e_mc, e_mh, e_ml = (e_mark[i].tolist() for i in range(3))
    act_open = np.exp(rng.normal(-0.5 * act_sd**2, act_sd, n)).tolist()
    act_churn = np.exp(rng.normal(-0.5 * act_sd**2, act_sd, n)).tolist()
    z_taker = rng.standard_normal(n).tolist()
    season = _intraday_profile(n, 0).tolist()
    is_shock = rng.random(n) < p.shock_rate_per_day / BARS_PER_DAY
    shock_sign = np.where(rng.random(n) < 0.6, -1.0, 1.0)  # crashes a little more often
    shock = np.where(is_shock, shock_sign * rng.exponential(p.shock_scale, n), 0.0).tolist()

    # the traders: own closing hazards per population (exogenous), opening rates, cohorts
    oi_total = sum(pop.oi_share for pop in pops)
    share = np.asarray([pop.oi_share / oi_total for pop in pops])
    life = np.asarray([pop.mean_life_minutes for pop in pops])
    rate = share / life  # opened quantity per minute, fraction of the target OI
    weights = (rate / rate.sum()).tolist()
    warm_boost = 1.0 / -np.expm1(-max(n_warm, 1) / life) if n_warm > 0 else np.ones(n_pop)
    act_close = np.exp(rng.normal(-0.5 * act_sd**2, act_sd, (n_pop, n)))
    h = np.log1p(-np.minimum(act_close / life[:, None], 0.5))  # own log survival per bar
    h_end = np.cumsum(h, axis=1)
    eh = np.exp(h).tolist()
    hend = h_end.tolist()
    maxlife = [pop.max_life_minutes if pop.max_life_minutes is not None else n + 1 for pop in pops]
    slots = [pop.slots for pop in pops]
    jt = sum(slots)
    coh = _draw_cohorts(p, n, rng)
    factor = coh["factor"].ravel().tolist()
    factor2 = coh["factor2"].ravel().tolist()
    popc = coh["pop"].ravel().tolist()
    topf = coh["top"].ravel().tolist()

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
    oi_long = [0.0] * n
    oi_short = [0.0] * n
    cend_l = [0.0] * n  # counterparty log survival per side at the end of each bar
    cend_s = [0.0] * n
    qslot = [0.0] * (n * 2 * n_pop)  # quantity of one cohort of (bar, side, population)
    cnt = [0] * (n * 2 * n_pop)  # cohorts of (bar, side, population) not liquidated
    ptr = [0] * (n * 2)  # per (bar, side): next cohort of the sorted row
    liq_bar = np.full(n * 2 * jt, -1, dtype=np.int64)
    top_bar = np.full(n * 2 * jt, -1, dtype=np.int64)
    liq_rem = np.zeros(n * 2 * jt)
    ev_cid: list[int] = []
    ev_usd: list[float] = []

    # heap entries: (key, id); id >= 0 a row (bar) of cohorts, id < 0 a topped-up cohort -1-id
    long_heap: list[tuple[float, int]] = []  # key -liq_price (max-heap)
    short_heap: list[tuple[float, int]] = []  # key liq_price
    ql_pop = [0.0] * n_pop  # open quantity per population, long side
    qs_pop = [0.0] * n_pop
    hprev = [0.0] * n_pop
    cl = cs = 0.0
    var = sigbar * sigbar
    omega = var * (1.0 - p.garch_alpha - p.garch_beta)
    var_cap = (10.0 * sigbar) ** 2
    drift = 0.0
    prev_close = start_price
    prev_mark = start_price
    exp = math.exp
    phi = p.counter_close_share
    two_jt = 2 * jt
    base_rate = (rate * target_oi).tolist()
    boost = warm_boost.tolist()

    for t in range(n):
        sig = math.sqrt(var) * season[t]
        drift = p.trend_persistence * drift + p.trend_scale * sigbar * z_trend[t]
        r_exo = drift + sig * z_ret[t] + shock[t]
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
                key = long_heap[0][1]
                if key >= 0:  # the row stays at the top while its cohorts are taken
                    b = key
                    base = b * two_jt
                    k = ptr[2 * b]
                    vw = vwap_t[b]
                    while k < jt:
                        cid = base + k
                        price = vw * factor[cid]
                        if price < ml:
                            break
                        k += 1
                        pp = popc[cid]
                        if t - b > maxlife[pp]:
                            continue  # closed at max life
                        if topf[cid]:
                            top_bar[cid] = t
                            heapq.heappush(long_heap, (-(vw * factor2[cid]), -1 - cid))
                            continue
                        rem = qslot[2 * b * n_pop + pp] * exp(
                            hprev[pp] - hend[pp][b] + cl - cend_l[b]
                        )
                        liq_bar[cid] = t
                        liq_rem[cid] = rem
                        ev_cid.append(cid)
                        ev_usd.append(price * rem)
                        ql += rem
                        new_l += price * rem
                        ql_pop[pp] -= rem
                        cnt[2 * b * n_pop + pp] -= 1
                        popped = True
                    while k < jt and t - b > maxlife[popc[base + k]]:
                        k += 1  # closed at max life: never the row's key again
                    ptr[2 * b] = k
                    if k < jt:
                        heapq.heapreplace(long_heap, (-(vw * factor[base + k]), b))
                    else:
                        heapq.heappop(long_heap)
                else:
                    heapq.heappop(long_heap)
                    cid = -1 - key
                    b = cid // two_jt
                    pp = popc[cid]
                    if t - b > maxlife[pp]:
                        continue
                    price = vwap_t[b] * factor2[cid]
                    rem = qslot[2 * b * n_pop + pp] * exp(hprev[pp] - hend[pp][b] + cl - cend_l[b])
                    liq_bar[cid] = t
                    liq_rem[cid] = rem
                    ev_cid.append(cid)
                    ev_usd.append(price * rem)
                    ql += rem
                    new_l += price * rem
                    ql_pop[pp] -= rem
                    cnt[2 * b * n_pop + pp] -= 1
                    popped = True
            while short_heap and short_heap[0][0] <= mh:
                key = short_heap[0][1]
                if key >= 0:  # the row stays at the top while its cohorts are taken
                    b = key
                    base = b * two_jt + jt
                    k = ptr[2 * b + 1]
                    vw = vwap_t[b]
                    while k < jt:
                        cid = base + k
                        price = vw * factor[cid]
                        if price > mh:
                            break
                        k += 1
                        pp = popc[cid]
                        if t - b > maxlife[pp]:
                            continue
                        if topf[cid]:
                            top_bar[cid] = t
                            heapq.heappush(short_heap, (vw * factor2[cid], -1 - cid))
                            continue
                        rem = qslot[(2 * b + 1) * n_pop + pp] * exp(
                            hprev[pp] - hend[pp][b] + cs - cend_s[b]
                        )
                        liq_bar[cid] = t
                        liq_rem[cid] = rem
                        ev_cid.append(cid)
                        ev_usd.append(price * rem)
                        qs += rem
                        new_s += price * rem
                        qs_pop[pp] -= rem
                        cnt[(2 * b + 1) * n_pop + pp] -= 1
                        popped = True
                    while k < jt and t - b > maxlife[popc[base + k]]:
                        k += 1  # closed at max life: never the row's key again
                    ptr[2 * b + 1] = k
                    if k < jt:
                        heapq.heapreplace(short_heap, (vw * factor[base + k], b))
                    else:
                        heapq.heappop(short_heap)
                else:
                    heapq.heappop(short_heap)
                    cid = -1 - key
                    b = cid // two_jt
                    pp = popc[cid]
                    if t - b > maxlife[pp]:
                        continue
                    price = vwap_t[b] * factor2[cid]
                    rem = qslot[(2 * b + 1) * n_pop + pp] * exp(
                        hprev[pp] - hend[pp][b] + cs - cend_s[b]
                    )
                    liq_bar[cid] = t
                    liq_rem[cid] = rem
                    ev_cid.append(cid)
                    ev_usd.append(price * rem)
                    qs += rem
                    new_s += price * rem
                    qs_pop[pp] -= rem
                    cnt[(2 * b + 1) * n_pop + pp] -= 1
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

        # forced orders' net quantity: partly the other side closing (pro rata), partly new
        # positions of the liquidated side (extra_*), so both sides stay equal
        extra_l = extra_s = counter = 0.0
        d = ql - qs
        if d > 0.0:
            tot = sum(qs_pop)
            if tot > 0.0:
                frac = min(phi * d / tot, _MAX_CLOSE)
                cs += math.log1p(-frac)
                counter = frac * tot
                for i in range(n_pop):
                    qs_pop[i] *= 1.0 - frac
            extra_l = d - counter
        elif d < 0.0:
            tot = sum(ql_pop)
            if tot > 0.0:
                frac = min(-phi * d / tot, _MAX_CLOSE)
                cl += math.log1p(-frac)
                counter = frac * tot
                for i in range(n_pop):
                    ql_pop[i] *= 1.0 - frac
            extra_s = -d - counter
        # own closing (each population at its own random rate), then closing at max life
        c_l = c_s = 0.0
        for i in range(n_pop):
            f = eh[i][t]
            x = ql_pop[i] * (1.0 - f)
            y = qs_pop[i] * (1.0 - f)
            ql_pop[i] -= x
            qs_pop[i] -= y
            c_l += x
            c_s += y
            hprev[i] = hend[i][t]
            b = t - maxlife[i]
            if b >= 0:
                j = 2 * b * n_pop + i
                if cnt[j] > 0:
                    x = cnt[j] * qslot[j] * exp(hend[i][t] - hend[i][b] + cl - cend_l[b])
                    ql_pop[i] -= x
                    c_l += x
                if cnt[j + n_pop] > 0:
                    y = cnt[j + n_pop] * qslot[j + n_pop]
                    y *= exp(hend[i][t] - hend[i][b] + cs - cend_s[b])
                    qs_pop[i] -= y
                    c_s += y
        e = c_l - c_s
        if e > 0.0:
            extra_l += e
        else:
            extra_s -= e

        # opening at the bar's typical price
        vwap = (o_r + h_r + l_r + c_r) / 4.0
        activity = math.sqrt(sig / sigbar)
        scale = act_open[t] * activity / vwap
        warm = t < n_warm
        opened = 0.0
        for i in range(n_pop):
            q = base_rate[i] * scale * (boost[i] if warm else 1.0)
            ol = q + extra_l * weights[i]
            os_ = q + extra_s * weights[i]
            j = 2 * t * n_pop + i
            qslot[j] = ol / slots[i]
            qslot[j + n_pop] = os_ / slots[i]
            cnt[j] = slots[i]
            cnt[j + n_pop] = slots[i]
            ql_pop[i] += ol
            qs_pop[i] += os_
            opened += ol + os_
        vwap_t[t] = vwap
        cend_l[t] = cl
        cend_s[t] = cs
        heapq.heappush(long_heap, (-(vwap * factor[t * two_jt]), t))
        heapq.heappush(short_heap, (vwap * factor[t * two_jt + jt], t))
        oi_long[t] = sum(ql_pop)
        oi_short[t] = sum(qs_pop)

        churn = target_oi * p.volume_turnover * act_churn[t] * activity / vwap
        legs = opened + counter + c_l + c_s + ql + qs  # every trade has two legs
        organic = 0.5 * legs - ql - qs + churn
        tshare = 0.5 + 0.2 * math.tanh(r_exo / sig) + 0.05 * z_taker[t]
        tshare = min(0.95, max(0.05, tshare))
        volume[t] = organic + ql + qs
        taker_buy[t] = organic * tshare + qs  # a liquidated short is a forced buy

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
            "oi_long": oi_long,
            "oi_short": oi_short,
            "cend_l": cend_l,
            "cend_s": cend_s,
            "qslot": qslot,
        },
        h_end=h_end,
        coh=coh,
        liq_bar=liq_bar,
        top_bar=top_bar,
        liq_rem=liq_rem,
        ev_cid=np.asarray(ev_cid, dtype=np.int64),
        ev_usd=np.asarray(ev_usd, dtype=np.float64),
    )


def _assemble(
    *,
    symbol: str,
    start: date,
    days: int,
    p: SyntheticParams,
    rng: np.random.Generator,
    arrays: dict[str, list[float]],
    h_end: np.ndarray,
    coh: dict[str, np.ndarray],
    liq_bar: np.ndarray,
    top_bar: np.ndarray,
    liq_rem: np.ndarray,
    ev_cid: np.ndarray,
    ev_usd: np.ndarray,
) -> SyntheticMarket:
    a = {name: np.asarray(values, dtype=np.float64) for name, values in arrays.items()}
    n_warm = p.warmup_days * BARS_PER_DAY
    n = a["open"].size
    n_pop = len(p.populations)
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

    # --- true cohorts: cid = (bar * 2 + side) * slots + slot ---
    jt = coh["factor"].shape[2]
    bar = np.repeat(np.arange(n, dtype=np.int64), 2 * jt)
    side = np.tile(np.repeat(np.arange(2, dtype=np.int64), jt), n)
    pop = coh["pop"].ravel()
    entry = a["vwap"][bar]
    qty = a["qslot"][(bar * 2 + side) * n_pop + pop]
    liq_price = entry * coh["factor"].ravel()  # the simulation's float operations
    topped = top_bar >= 0
    topup_price = entry * coh["factor2"].ravel()
    liquidated = liq_bar >= 0
    maxlife = np.asarray(
        [q.max_life_minutes if q.max_life_minutes is not None else n + 1 for q in p.populations]
    )[pop]
    cend = np.stack([a["cend_l"], a["cend_s"]])

    def surviving(t: np.ndarray) -> np.ndarray:
        """Share of a cohort still held by its traders at the end of bar t."""
        return np.exp(h_end[pop, t] - h_end[pop, bar] + cend[side, t] - cend[side, bar])  # type: ignore[no-any-return]

    expiry = bar + maxlife
    expired = ~liquidated & (expiry <= n - 1)
    alive_end = ~liquidated & ~expired
    remaining = np.where(alive_end, qty * surviving(np.full(bar.size, n - 1)), 0.0)
    liq_qty = np.where(liquidated, liq_rem, 0.0)
    names = {i: q.name for i, q in enumerate(p.populations)}
    positions = pl.DataFrame(
        {
            "created_at": bar_ms[bar] * 1000,
            "_side": side,
            "_pop": pop,
            "leverage": coh["lev"].ravel(),
            "effective_leverage": coh["eff"].ravel(),
            "position_usd": coh["size"].ravel(),
            "mmr": coh["mmr"].ravel(),
            "maintenance_usd": coh["cum"].ravel(),
            "entry_price": entry,
            "liq_price": liq_price,
            "topup_liq_price": topup_price,
            "notional_usd": qty * entry,
            "open_usd": remaining * entry,
            "closed_usd": (qty - remaining - liq_qty) * entry,
            "liquidated_usd": liq_qty * entry,
            "topped_up_at": bar_ms[np.maximum(top_bar, 0)] * 1000,
            "liquidated_at": bar_ms[np.maximum(liq_bar, 0)] * 1000,
            "_top": topped,
            "_liq": liquidated,
        }
    ).select(
        pl.col("created_at").cast(_UTC_US),
        pl.when(pl.col("_side") == 0).then(pl.lit("long")).otherwise(pl.lit("short")).alias("side"),
        pl.col("_pop").replace_strict(names, return_dtype=pl.String()).alias("population"),
        "leverage",
        "effective_leverage",
        "position_usd",
        "mmr",
        "maintenance_usd",
        "entry_price",
        "liq_price",
        pl.when(pl.col("_top")).then(pl.col("topup_liq_price")).alias("topup_liq_price"),
        "notional_usd",
        "open_usd",
        "closed_usd",
        "liquidated_usd",
        pl.when(pl.col("_top")).then(pl.col("topped_up_at")).cast(_UTC_US).alias("topped_up_at"),
        pl.when(pl.col("_liq")).then(pl.col("liquidated_at")).cast(_UTC_US).alias("liquidated_at"),
    )

    # --- realized liquidation orders (emitted period), optionally throttled ---
    ev_bar = liq_bar[ev_cid]
    keep = ev_bar >= n_warm
    ev_cid, ev_bar, ev_usd = ev_cid[keep], ev_bar[keep], ev_usd[keep]
    offset_ms = rng.integers(0, MINUTE_MS, ev_cid.size)
    ev_price = np.where(topped[ev_cid], topup_price[ev_cid], liq_price[ev_cid])
    ts_ms = bar_ms[ev_bar] + offset_ms
    order = np.argsort(ts_ms, kind="stable")
    ev_cid, ts_ms, ev_usd, ev_price = ev_cid[order], ts_ms[order], ev_usd[order], ev_price[order]
    if p.feed_throttle_ms is not None and ts_ms.size:
        window = ts_ms // p.feed_throttle_ms
        last = np.r_[window[1:] != window[:-1], True]  # the window's last order is published
        ev_cid, ts_ms, ev_usd, ev_price = ev_cid[last], ts_ms[last], ev_usd[last], ev_price[last]
    liquidations = pl.DataFrame(
        {
            "ts": ts_ms * 1000,
            "side": np.where(side[ev_cid] == 0, "long", "short"),
            "usd": ev_usd,
            "price": ev_price,
        },
        schema={**LIQUIDATION_SCHEMA, "ts": pl.Int64()},
    ).with_columns(pl.col("ts").cast(_UTC_US))

    open_interest = pl.DataFrame(
        {
            "ts": (bar_ms + MINUTE_MS) * 1000,
            "long_qty": a["oi_long"],
            "short_qty": a["oi_short"],
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
