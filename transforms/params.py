"""Parameters of the open-interest liquidation model, with a stable hash to key stored results."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

__all__ = ["ModelParams", "nice_step"]

_NICE = (1.0, 2.0, 2.5, 5.0, 10.0)


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

    Parameters
    ----------
    leverages
        Leverage tiers (default ``(5, 10, 25, 50, 100)``).
    weights
        Share of opened notional per tier (default ``(0.30, 0.30, 0.20, 0.10, 0.10)``); same
        length as ``leverages``, positive; normalized to sum 1 when they do not already.
    mmr
        Maintenance margin rate of the first bracket (default 0.004, BTC/ETH on Binance).
    entry
        ``"bars"`` (default): spread an OI interval's opened notional over the typical prices
        ((high + low + close) / 3) of the bars inside it, weighted by volume (equal weights without
        volume), one level per bar and tier. ``"typical"``: one volume-weighted typical price per
        interval, created at the interval's last bar.
    side_tilt, tilt_strength
        ``"none"`` (default): both sides use ``weights``. ``"taker"``: with ``s`` the interval's
        taker-buy share of volume, long weights are multiplied by ``exp(a * z)`` and short weights
        by ``exp(-a * z)`` with ``a = tilt_strength * (2 s - 1)`` and ``z`` the tier's rank
        mapped onto [-1, 1] (aggressive buying -> more leveraged longs), then renormalized.
    oi_decrease
        ``"proportional"`` (default): an OI decrease of fraction ``f`` closes ``f`` of every open
        level. ``"ignore"``: levels only end by liquidation (or decay).
    decay_half_life_hours
        Optional exponential decay of open levels (positions closed without an OI signal).
    price_step
        Price bucket size; ``None`` = auto: 0.1 % of the median close rounded by `nice_step`.

    Examples
    --------
    >>> p = ModelParams()
    >>> p.params_hash() == ModelParams().params_hash()
    True
    >>> ModelParams(weights=(1, 1, 1, 1, 1)).weights
    (0.2, 0.2, 0.2, 0.2, 0.2)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    leverages: tuple[float, ...] = (5.0, 10.0, 25.0, 50.0, 100.0)
    weights: tuple[float, ...] = (0.30, 0.30, 0.20, 0.10, 0.10)
    mmr: float = 0.004
    entry: Literal["bars", "typical"] = "bars"
    side_tilt: Literal["none", "taker"] = "none"
    tilt_strength: float = 1.0
    oi_decrease: Literal["proportional", "ignore"] = "proportional"
    decay_half_life_hours: float | None = None
    price_step: float | None = None

    @field_validator("leverages")
    @classmethod
    def _check_leverages(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("leverages must not be empty")
        if any(not (math.isfinite(v) and v > 1.0) for v in value):
            raise ValueError(f"leverages must be finite and > 1, got {value}")
        return tuple(float(v) for v in value)

    @field_validator("mmr")
    @classmethod
    def _check_mmr(cls, value: float) -> float:
        if not 0.0 <= value < 0.5:
            raise ValueError(f"mmr must be in [0, 0.5), got {value}")
        return value

    @field_validator("tilt_strength")
    @classmethod
    def _check_tilt(cls, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"tilt_strength must be finite and >= 0, got {value}")
        return value

    @field_validator("decay_half_life_hours", "price_step")
    @classmethod
    def _check_positive(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be positive and finite when set, got {value}")
        return value

    @model_validator(mode="after")
    def _check_weights(self) -> ModelParams:
        w = self.weights
        if len(w) != len(self.leverages):
            raise ValueError(
                f"weights ({len(w)}) and leverages ({len(self.leverages)}) differ in length"
            )
        if any(not (math.isfinite(x) and x > 0) for x in w):
            raise ValueError(f"weights must be positive and finite, got {w}")
        total = math.fsum(w)
        if abs(total - 1.0) > 1e-9:
            object.__setattr__(self, "weights", tuple(float(x) / total for x in w))
        else:
            object.__setattr__(self, "weights", tuple(float(x) for x in w))
        return self

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, floats in Python's shortest repr.

        Examples
        --------
        >>> ModelParams().to_json()[:28]
        '{"decay_half_life_hours":nul'
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
