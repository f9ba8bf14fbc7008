"""The model's leverage density: quantiles per bar, maintenance terms, display bands.

The density is over the *notional* opened at leverage ``L``: a log-normal (median
``leverage_median``, log-sd ``leverage_sigma``) truncated to ``[leverage_min, leverage_max]``,
of which a share ``s = leverage_setting_share`` sits exactly on the common slider settings
(``leverage_settings``: each setting takes the log-normal's mass of its cell, bounded by the
log-midpoints to its neighbours) and ``1 - s`` stays smooth. The smooth part is discretized into
``B`` equal-mass bins; bin ``b`` of a bar takes the quantile ``(b + u) / B`` where the offset
``u`` in [0, 1) rotates from bar to bar (a low-discrepancy sequence of the bar's time), so the
smooth levels of successive bars sit at different leverages. Columns: the ``B`` smooth bins,
then one per setting.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import polars as pl

from transforms.params import ModelParams

__all__ = [
    "DISPLAY_BANDS",
    "LEVERAGE_DENSITY_SCHEMA",
    "band_shares",
    "bin_weights",
    "leverage_density",
    "leverage_quantiles",
    "liquidation_prices",
    "maintenance_terms",
    "rotation_offsets",
    "setting_masses",
]

F64 = npt.NDArray[np.float64]

#: Display bands for breakdown views: (label, lower exclusive, upper inclusive).
DISPLAY_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<=10x", 0.0, 10.0),
    ("10-25x", 10.0, 25.0),
    ("25-50x", 25.0, 50.0),
    ("50-100x", 50.0, 100.0),
    (">100x", 100.0, math.inf),
)

LEVERAGE_DENSITY_SCHEMA: dict[str, pl.DataType] = {
    "leverage": pl.Float64(),
    "share": pl.Float64(),
}

_GRID = 4001
_PHI = 0.6180339887498949  # golden ratio conjugate: offsets of successive bars
_PLASTIC = 0.7548776662466927  # second low-discrepancy step: offsets of entry points in a bar


def _cdf_grid(median: float, sigma: float, lo: float, hi: float) -> tuple[F64, F64]:
    x = np.linspace(math.log(lo), math.log(hi), _GRID)
    z = (x - math.log(median)) / sigma
    pdf = np.exp(-0.5 * z * z)
    cdf = np.concatenate([[0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2.0)])
    if not cdf[-1] > 0:  # the whole mass outside [lo, hi]: fall back to uniform in log L
        cdf = np.linspace(0.0, 1.0, _GRID)
    return x, np.asarray(cdf / cdf[-1], dtype=np.float64)


def leverage_quantiles(params: ModelParams, offsets: F64, side: int) -> F64:
    """Leverage of every (row, bin): the smooth bins' quantiles ``(b + offset_row) / B`` of the
    side's density, then the settings (the same in every row).

    With explicit ``params.leverages`` the tiers are returned for every row (no rotation).

    Parameters
    ----------
    params
        Model parameters (density or explicit tiers).
    offsets
        One offset in [0, 1) per row.
    side
        0 long, 1 short (``side_tilt`` shifts the medians apart).

    Returns
    -------
    numpy.ndarray
        Shape ``(len(offsets), bins + settings)`` (no settings columns when their share is 0).

    Examples
    --------
    >>> p = ModelParams(leverage_bins=2, leverage_median=10.0, leverage_sigma=0.5,
    ...                 leverage_settings=(20.0, 50.0))
    >>> q = leverage_quantiles(p, np.array([0.5]), 0)
    >>> bool(q[0, 0] < 10.0 < q[0, 1]), q[0, 2:].tolist()
    (True, [20.0, 50.0])
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    if params.leverages is not None:
        lev = np.asarray(params.leverages, dtype=np.float64)
        return np.broadcast_to(lev, (offsets.shape[0], lev.shape[0])).copy()
    smooth = _smooth_quantiles(params, offsets, side)
    if not _has_settings(params):
        return smooth
    spikes = np.asarray(params.leverage_settings, dtype=np.float64)
    return np.concatenate(
        [smooth, np.broadcast_to(spikes, (offsets.shape[0], spikes.shape[0]))], axis=1
    )


def _has_settings(params: ModelParams) -> bool:
    return bool(params.leverage_settings) and params.leverage_setting_share > 0


def setting_masses(params: ModelParams, side: int = 0) -> F64:
    """Share of the side's log-normal mass in each setting's cell (they sum to 1).

    A setting's cell runs from the log-midpoint to its lower neighbour to the one to its upper
    neighbour (the first and last cells to ``leverage_min`` and ``leverage_max``).

    Examples
    --------
    >>> p = ModelParams(leverage_settings=(10.0, 100.0), leverage_median=31.6227766,
    ...                 leverage_sigma=1.0, leverage_min=1.01, leverage_max=1e4)
    >>> setting_masses(p).round(3).tolist()
    [0.5, 0.5]
    """
    spikes = np.log(np.asarray(params.leverage_settings, dtype=np.float64))
    median = params.leverage_median * math.exp(params.side_tilt if side == 0 else -params.side_tilt)
    x, cdf = _cdf_grid(median, params.leverage_sigma, params.leverage_min, params.leverage_max)
    edges = np.concatenate([[x[0]], (spikes[1:] + spikes[:-1]) / 2.0, [x[-1]]])
    mass = np.clip(np.diff(np.interp(edges, x, cdf)), 0.0, None)
    if not mass.sum() > 0:
        return np.full(spikes.shape[0], 1.0 / spikes.shape[0])
    return np.asarray(mass / mass.sum(), dtype=np.float64)


def _smooth_quantiles(params: ModelParams, offsets: F64, side: int) -> F64:
    table = _inverse_cdf(params, side)
    b = params.leverage_bins
    q = (np.arange(b, dtype=np.float64)[None, :] + offsets[:, None]) * ((_GRID - 1) / b)
    i0 = np.minimum(q.astype(np.int64), _GRID - 2)
    frac = q - i0
    log_lev = table[i0] + (table[i0 + 1] - table[i0]) * frac
    return np.asarray(np.exp(log_lev), dtype=np.float64)


def _inverse_cdf(params: ModelParams, side: int) -> F64:
    """log L at ``_GRID`` equally spaced quantiles of the side's truncated log-normal."""
    median = params.leverage_median * math.exp(params.side_tilt if side == 0 else -params.side_tilt)
    x, cdf = _cdf_grid(median, params.leverage_sigma, params.leverage_min, params.leverage_max)
    return np.asarray(np.interp(np.linspace(0.0, 1.0, _GRID), cdf, x), dtype=np.float64)


def bin_weights(params: ModelParams, side: int = 0) -> F64:
    """Share of opened notional per column of `leverage_quantiles` (they sum to 1).

    The smooth bins ``(1 - s) / B`` each, the settings ``s`` times `setting_masses`; or the
    explicit tier weights.

    Examples
    --------
    >>> bin_weights(ModelParams(leverage_bins=4, leverage_setting_share=0.0)).tolist()
    [0.25, 0.25, 0.25, 0.25]
    >>> w = bin_weights(ModelParams(leverage_bins=4, leverage_setting_share=0.5))
    >>> w[:4].tolist(), round(float(w[4:].sum()), 9)
    ([0.125, 0.125, 0.125, 0.125], 0.5)
    """
    if params.weights is not None:
        return np.asarray(params.weights, dtype=np.float64)
    smooth = np.full(params.leverage_bins, 1.0 / params.leverage_bins)
    if not _has_settings(params):
        return smooth
    share = params.leverage_setting_share
    return np.concatenate([smooth * (1.0 - share), share * setting_masses(params, side)])


def rotation_offsets(ts_us: npt.NDArray[np.int64], points: npt.NDArray[np.int64]) -> F64:
    """Low-discrepancy offset in [0, 1) per (bar time, entry point index).

    Depends on the bar's time, not its position, so a bar gets the same leverages in any window.

    Examples
    --------
    >>> rotation_offsets(np.array([0, 0]), np.array([0, 1])).round(4).tolist()
    [0.0, 0.7549]
    """
    minutes = (np.asarray(ts_us, dtype=np.int64) // 60_000_000).astype(np.float64)
    raw = np.mod(minutes * _PHI, 1.0) + np.asarray(points, dtype=np.float64) * _PLASTIC
    return np.asarray(np.mod(raw, 1.0), dtype=np.float64)


def maintenance_terms(params: ModelParams, leverage: F64) -> tuple[F64, F64]:
    """Maintenance rate and maintenance amount / notional for positions at ``leverage``.

    Without brackets: ``(mmr, 0)``. With brackets: the position's notional is
    ``min(position_usd, cap of the largest bracket allowing the leverage)``; its bracket gives
    the rate and the amount (divided by that notional).

    Examples
    --------
    >>> from transforms.brackets import brackets_for
    >>> p = ModelParams(brackets=brackets_for("BTCUSDT"), position_usd=1e6)
    >>> rate, amount = maintenance_terms(p, np.array([10.0, 110.0]))
    >>> rate.tolist(), amount.round(6).tolist()
    ([0.0065, 0.004], [0.00095, 0.0])
    """
    leverage = np.asarray(leverage, dtype=np.float64)
    if params.brackets is None:
        return np.full(leverage.shape, params.mmr), np.zeros(leverage.shape)
    table = np.asarray(params.brackets, dtype=np.float64)
    caps, rates, amounts, max_lev = table[:, 0], table[:, 1], table[:, 2], table[:, 3]
    # the largest bracket whose max leverage allows L (brackets are sorted by notional and
    # their max leverage falls with it); L above every max -> the first bracket
    allowed = max_lev[None, :] >= leverage.reshape(-1)[:, None]
    last_ok = np.where(
        allowed.any(axis=1), allowed.shape[1] - 1 - np.argmax(allowed[:, ::-1], 1), 0
    )
    cap_allowed = caps[last_ok]
    notional = np.minimum(params.position_usd, cap_allowed)
    k = np.searchsorted(caps, notional, side="left")
    k = np.minimum(k, caps.shape[0] - 1)
    rate = rates[k].reshape(leverage.shape)
    amount = (amounts[k] / notional).reshape(leverage.shape)
    return np.asarray(rate, dtype=np.float64), np.asarray(amount, dtype=np.float64)


def liquidation_prices(entry: F64, leverage: F64, params: ModelParams, side: int) -> F64:
    """Isolated-margin liquidation price (Binance form with the bracket's maintenance amount).

    Long ``P (1 - 1/L - a) / (1 - r)``, short ``P (1 + 1/L + a) / (1 + r)`` with rate ``r`` and
    amount/notional ``a`` from `maintenance_terms`.

    Examples
    --------
    >>> lp = liquidation_prices(np.array([100.0]), np.array([10.0]), ModelParams(), 0)
    >>> round(float(lp[0]), 4)
    90.3614
    """
    rate, amount = maintenance_terms(params, leverage)
    if side == 0:
        return np.asarray(entry * (1.0 - 1.0 / leverage - amount) / (1.0 - rate), dtype=np.float64)
    return np.asarray(entry * (1.0 + 1.0 / leverage + amount) / (1.0 + rate), dtype=np.float64)


def leverage_density(params: ModelParams, side: int = 0, points: int = 200) -> pl.DataFrame:
    """The density on a log grid (its smooth part), plus one row per setting, sorted by leverage.

    ``share`` is the share of opened notional: the smooth part's ``points`` rows carry
    ``1 - leverage_setting_share``, the settings' rows the rest; shares sum to 1. With explicit
    tiers: one row per tier.

    Examples
    --------
    >>> d = leverage_density(ModelParams(), points=50)
    >>> d.height, round(d["share"].sum(), 9)
    (58, 1.0)
    >>> round(d.filter(pl.col("leverage") == 20.0)["share"].item(), 3)
    0.082
    """
    if params.leverages is not None and params.weights is not None:
        return pl.DataFrame(
            {"leverage": list(params.leverages), "share": list(params.weights)},
            schema=LEVERAGE_DENSITY_SCHEMA,
        )
    median = params.leverage_median * math.exp(params.side_tilt if side == 0 else -params.side_tilt)
    edges = np.linspace(math.log(params.leverage_min), math.log(params.leverage_max), points + 1)
    x, cdf = _cdf_grid(median, params.leverage_sigma, params.leverage_min, params.leverage_max)
    mass = np.diff(np.interp(edges, x, cdf))
    lev = np.exp((edges[1:] + edges[:-1]) / 2.0)
    share = mass / mass.sum()
    if _has_settings(params):
        s = params.leverage_setting_share
        lev = np.concatenate([lev, np.asarray(params.leverage_settings, dtype=np.float64)])
        share = np.concatenate([share * (1.0 - s), s * setting_masses(params, side)])
    order = np.argsort(lev, kind="stable")
    return pl.DataFrame(
        {"leverage": lev[order], "share": share[order]}, schema=LEVERAGE_DENSITY_SCHEMA
    )


def band_shares(params: ModelParams, side: int = 0) -> pl.DataFrame:
    """Share of opened notional per `DISPLAY_BANDS` band, computed from the density.

    Examples
    --------
    >>> s = band_shares(ModelParams(leverages=(5.0, 20.0), weights=(0.5, 0.5)))
    >>> s.filter(pl.col("share") > 0).rows()
    [('<=10x', 0.5), ('10-25x', 0.5)]
    """
    dens = leverage_density(params, side, points=2000)
    lev = dens.get_column("leverage").to_numpy()
    share = dens.get_column("share").to_numpy()
    rows = [
        (label, float(share[(lev > lo) & (lev <= hi)].sum())) for label, lo, hi in DISPLAY_BANDS
    ]
    return pl.DataFrame(rows, schema={"band": pl.String(), "share": pl.Float64()}, orient="row")
