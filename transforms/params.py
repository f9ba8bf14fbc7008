"""Parameters of the open-interest liquidation model, with a stable hash to key stored results."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

__all__ = ["Bracket", "ModelParams", "nice_step"]

_NICE = (1.0, 2.0, 2.5, 5.0, 10.0)

#: One notional bracket of an exchange's maintenance table:
#: ``(max_notional_usd, maintenance_rate, maintenance_amount_usd, max_leverage)``.
Bracket = tuple[float, float, float, float]


def nice_step(raw: float) -> float:
    """Round a positive step to the nearest (in log scale) 1, 2, 2.5 or 5 x 10^k.

    Examples
    --------
    >>> nice_step(64.0), nice_step(3.1), nice_step(0.0007)
    (50.0, 2.5, 0.0005)
    """
    if not (raw > 0 and math.isfinite(raw)):
        raise ValueError(f"price step must be a positive finite number, got {raw!r}")
    exp = math.floor(math.log10(raw))
    mant = raw / 10.0**exp
    best = min(_NICE, key=lambda m: abs(math.log(mant / m)))
    # round away float noise (e.g. 2.5 * 10**-4 -> 0.00025)
    return float(f"{best * 10.0**exp:.12g}")


class ModelParams(BaseModel):
    """Every knob of the open-interest model, frozen and hashable.

    The shape defaults (half-life, leverage density) sit in the middle of the plateau that
    `liqheat calibrate` finds on the real 4h BTC set in ``../shared/data``; the two size knobs
    (``leveraged_share``, ``closed_before_liquidation``) do not change any rank score and are set
    from what keeps open interest from being liquidated (see ``docs/model.md``, *Sizes*).

    Parameters
    ----------
    turnover_half_life_hours
        Mean half-life of a leveraged position: every bar a share
        ``1 - 2**(-dt * rel_volume / half_life)`` of every open level closes and the same share
        of the (leveraged) open interest opens anew at the bar's prices (gross turnover).
        ``None`` = no turnover (only net OI changes open and close). Default 24 h.
    leveraged_share
        Share of the open interest held by leveraged traders whose positions can be liquidated
        (isolated margin or thin cross margin). The rest (basis and funding trades hedged with
        spot, market makers' hedged inventory, deep cross-margin accounts at 1-3x) is not in
        the book. Scales every opened contract (turnover and net OI increases). Default 0.5.
    closed_before_liquidation
        Share of a leveraged position's notional that is closed or rescued before the market
        reaches its liquidation price (stop-losses fire first, take-profits, partial closes,
        margin added after a warning). Levels carry ``1 - closed_before_liquidation`` of their
        notional: the book and the predictions count what would be *liquidated*. Default 0.9.
    turnover_volume
        Modulate the turnover by the bar's volume relative to its causal running mean
        (``volume_mean_hours``), where the bars have volume; the half-life sets the mean rate.
    volume_mean_hours
        Half-life of the exponentially weighted running mean of volume per hour.
    leverage_median, leverage_sigma
        Log-normal leverage density of newly opened *notional* (notional-weighted: high leverage
        is only allowed on small positions, so little notional sits there): median (10x) and
        log-sd (1.0), truncated to ``[leverage_min, leverage_max]``. Its smooth part is
        discretized into ``leverage_bins`` equal-mass bins whose quantiles rotate from bar to
        bar (no artificial bands).
    leverage_settings, leverage_setting_share
        Common leverage settings of the exchanges' sliders (5, 10, 20, 25, 50, 75, 100, 125x):
        a share ``leverage_setting_share`` (0.5) of the density's mass sits exactly on them
        (each setting takes the density's mass of its cell, the log-midpoints between
        neighbouring settings), the rest in the rotating smooth bins. Levels of the settings
        line up across bars, so the map shows bands where many positions entered at one price.
        ``()`` or share 0 = smooth only.
    side_tilt
        Log shift of the density per side: longs use ``median * exp(side_tilt)``, shorts
        ``median * exp(-side_tilt)`` (positive = longs more leveraged).
    leverages, weights
        Optional explicit leverage tiers and their shares (overrides the density; tiers do not
        rotate). Used for hand-computed known answers and for comparison with the old model.
    mmr
        Maintenance margin rate when ``brackets`` is None (0.004: BTC/ETH first bracket).
    brackets, position_usd
        The exchange's notional brackets (see `transforms.brackets`): a position at leverage
        ``L`` is taken to have notional ``min(position_usd, the largest notional allowed at L)``
        and liquidates with that bracket's rate and maintenance amount.
    intrabar
        Positions opened inside a bar are liquidated in the same bar when the part of the bar's
        path after their entry reaches their price (path O -> L -> H -> C when the bar closes
        up, O -> H -> L -> C otherwise; entries spread evenly along the path).
    entry_points, entry_resolution
        At most ``entry_points`` entry prices per bar, one per ``entry_resolution`` (relative)
        of the bar's range (a calm 1m bar has one, a wide 4h bar up to ``entry_points``).
    oi_decrease
        ``"proportional"`` (default): an OI decrease of fraction ``f`` closes ``f`` of every open
        level. ``"ignore"``: net decreases close nothing.
    decay_half_life_hours
        Optional extra exponential decay of open levels.
    price_step
        Price bucket size; ``None`` = auto: 0.1 % of the median close rounded by `nice_step`.

    Examples
    --------
    >>> p = ModelParams()
    >>> p.params_hash() == ModelParams().params_hash()
    True
    >>> ModelParams(leverages=(10, 20), weights=(1, 1)).weights
    (0.5, 0.5)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    turnover_half_life_hours: float | None = 24.0
    turnover_volume: bool = True
    volume_mean_hours: float = 72.0
    leveraged_share: float = 0.5
    closed_before_liquidation: float = 0.9
    leverage_median: float = 10.0
    leverage_sigma: float = 1.0
    leverage_min: float = 2.0
    leverage_max: float = 125.0
    leverage_bins: int = 8
    leverage_settings: tuple[float, ...] = (5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0)
    leverage_setting_share: float = 0.5
    side_tilt: float = 0.0
    leverages: tuple[float, ...] | None = None
    weights: tuple[float, ...] | None = None
    mmr: float = 0.004
    brackets: tuple[Bracket, ...] | None = None
    position_usd: float = 100_000.0
    intrabar: bool = True
    entry_points: int = 8
    entry_resolution: float = 0.002
    oi_decrease: Literal["proportional", "ignore"] = "proportional"
    decay_half_life_hours: float | None = None
    price_step: float | None = None

    @field_validator("leverages")
    @classmethod
    def _check_leverages(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("leverages must not be empty")
        if any(not (math.isfinite(v) and v > 1.0) for v in value):
            raise ValueError(f"leverages must be finite and > 1, got {value}")
        return tuple(float(v) for v in value)

    @field_validator("leveraged_share")
    @classmethod
    def _check_leveraged_share(cls, value: float) -> float:
        if not (math.isfinite(value) and 0.0 < value <= 1.0):
            raise ValueError(f"leveraged_share must be in (0, 1], got {value}")
        return float(value)

    @field_validator("closed_before_liquidation", "leverage_setting_share")
    @classmethod
    def _check_share(cls, value: float) -> float:
        if not (math.isfinite(value) and 0.0 <= value < 1.0 + 1e-12):
            raise ValueError(f"must be a share in [0, 1], got {value}")
        return float(value)

    @field_validator("leverage_settings")
    @classmethod
    def _check_settings(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        out = tuple(float(v) for v in value)
        if any(not (math.isfinite(v) and v > 1.0) for v in out):
            raise ValueError(f"leverage_settings must be finite and > 1, got {value}")
        if list(out) != sorted(set(out)):
            raise ValueError(f"leverage_settings must be increasing, got {value}")
        return out

    @field_validator("mmr")
    @classmethod
    def _check_mmr(cls, value: float) -> float:
        if not 0.0 <= value < 0.5:
            raise ValueError(f"mmr must be in [0, 0.5), got {value}")
        return value

    @field_validator("leverage_bins", "entry_points")
    @classmethod
    def _check_count(cls, value: int) -> int:
        if not 1 <= value <= 256:
            raise ValueError(f"must be in [1, 256], got {value}")
        return value

    @field_validator("decay_half_life_hours", "price_step", "turnover_half_life_hours")
    @classmethod
    def _check_positive(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be positive and finite when set, got {value}")
        return value

    @field_validator(
        "volume_mean_hours", "leverage_median", "leverage_sigma", "position_usd",
        "entry_resolution",
    )  # fmt: skip
    @classmethod
    def _check_strict_positive(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be positive and finite, got {value}")
        return float(value)

    @field_validator("side_tilt")
    @classmethod
    def _check_tilt(cls, value: float) -> float:
        if not (math.isfinite(value) and abs(value) <= 3.0):
            raise ValueError(f"side_tilt must be finite and within [-3, 3], got {value}")
        return float(value)

    @field_validator("brackets")
    @classmethod
    def _check_brackets(cls, value: tuple[Bracket, ...] | None) -> tuple[Bracket, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("brackets must not be empty when set")
        rows = tuple(tuple(float(x) for x in row) for row in value)
        caps = [r[0] for r in rows]
        if caps != sorted(caps) or len(set(caps)) != len(caps):
            raise ValueError("brackets must be sorted by increasing max notional")
        for cap, rate, amount, lev in rows:
            if not (cap > 0 and 0 <= rate < 0.5 and amount >= 0 and lev > 1):
                raise ValueError(f"bad bracket {(cap, rate, amount, lev)}")
        return rows  # type: ignore[return-value]

    @model_validator(mode="after")
    def _check_weights(self) -> ModelParams:
        if not 1.0 < self.leverage_min < self.leverage_max:
            raise ValueError(
                f"need 1 < leverage_min < leverage_max, got {self.leverage_min}, "
                f"{self.leverage_max}"
            )
        if self.closed_before_liquidation >= 1.0:
            raise ValueError("closed_before_liquidation must be below 1 (nothing would be left)")
        lev, w = self.leverages, self.weights
        if lev is None and w is None:
            return self
        if lev is None or w is None:
            raise ValueError("leverages and weights go together")
        if len(w) != len(lev):
            raise ValueError(f"weights ({len(w)}) and leverages ({len(lev)}) differ in length")
        if any(not (math.isfinite(x) and x > 0) for x in w):
            raise ValueError(f"weights must be positive and finite, got {w}")
        total = math.fsum(w)
        object.__setattr__(self, "weights", tuple(float(x) / total for x in w))
        return self

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, floats in Python's shortest repr.

        Examples
        --------
        >>> ModelParams().to_json()[:28]
        '{"brackets":null,"closed_bef'
        """
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def params_hash(self) -> str:
        """12 hex digits of the SHA-256 of `to_json` (stable across processes and versions).

        Examples
        --------
        >>> len(ModelParams().params_hash())
        12
        """
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()[:12]

    def resolve_price_step(self, bars: pl.DataFrame) -> float:
        """Return ``price_step`` or, when None, 0.1 % of the median close rounded to a nice tick.

        Examples
        --------
        >>> ModelParams().resolve_price_step(pl.DataFrame({"close": [64_000.0, 64_100.0]}))
        50.0
        """
        if self.price_step is not None:
            return self.price_step
        if "close" not in bars.columns or bars.height == 0:
            raise ValueError("cannot derive a price step: bars has no close prices")
        median = bars.get_column("close").cast(pl.Float64).median()
        if not isinstance(median, float) or not median > 0:
            raise ValueError("cannot derive a price step: median close is not positive")
        return nice_step(median * 0.001)
