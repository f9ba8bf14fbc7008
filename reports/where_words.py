"""Where-scores in plain words (the CLI and the site say the same sentences)."""

from __future__ import annotations

import math

import polars as pl

__all__ = ["verdict", "where_sentences"]


def verdict(lo: float, hi: float) -> str:
    """``better`` / ``worse`` when the lift's 95 % interval lies above / below 1, ``same``
    when it contains 1, ``unknown`` without an interval (too few decisions for one).

    Examples
    --------
    >>> nan = float("nan")
    >>> verdict(0.97, 1.07), verdict(1.01, 1.10), verdict(0.8, 0.95), verdict(nan, nan)
    ('same', 'better', 'worse', 'unknown')
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "unknown"
    if lo > 1.0:
        return "better"
    if hi < 1.0:
        return "worse"
    return "same"


def _interval(lo: float, hi: float, fmt: str = ".2f", sep: str = "-") -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "too few decisions for a 95 % interval"
    return f"95 % interval {lo:{fmt}}{sep}{hi:{fmt}}"


def _row(frame: pl.DataFrame, name: str, side: str = "both") -> dict[str, object] | None:
    part = frame.filter(
        (pl.col("name") == name) & (pl.col("side") == side) & (pl.col("bin") == "all")
    )
    return part.row(0, named=True) if part.height else None


def _f(row: dict[str, object], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and value is not None else math.nan


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %" if math.isfinite(x) else "n/a"


def where_sentences(frame: pl.DataFrame) -> list[str]:
    """Plain-words sentences for a `transforms.where.WHERE_SCORE_SCHEMA` frame.

    Examples
    --------
    >>> f = pl.DataFrame({"name": ["magnet"], "side": ["both"], "bin": ["all"], "n": [100],
    ...     "model": [0.48], "null": [0.47], "lift": [1.02], "lo": [0.97], "hi": [1.07],
    ...     "horizon_hours": [24.0]})
    >>> text = where_sentences(f)[0]
    >>> text[:66]
    'Price reached the strongest cluster within 24 h in 48 % of decisio'
    >>> text[text.index("a level"):]  # doctest: +NORMALIZE_WHITESPACE
    'a level at the same distance: 47 % (lift 1.02, 95 % interval 0.97-1.07): no better than any
     level at the same distance.'

    """
    out: list[str] = []
    mag = _row(frame, "magnet")
    if mag is not None:
        h = _f(mag, "horizon_hours")
        lift, lo, hi = _f(mag, "lift"), _f(mag, "lo"), _f(mag, "hi")
        words = {
            "same": "no better than any level at the same distance",
            "better": "more often than a level at the same distance",
            "worse": "less often than a level at the same distance",
            "unknown": "too early to tell",
        }[verdict(lo, hi)]
        out.append(
            f"Price reached the strongest cluster within {h:g} h in {_pct(_f(mag, 'model'))} of "
            f"decisions; a level at the same distance: {_pct(_f(mag, 'null'))} (lift {lift:.2f}, "
            f"{_interval(lo, hi)}): {words}."
        )
    near = _row(frame, "realized_near")
    if near is not None:
        h = _f(near, "horizon_hours")
        lift, lo, hi = _f(near, "lift"), _f(near, "lo"), _f(near, "hi")
        words = {
            "same": "no more than levels at the same distances",
            "better": "more than levels at the same distances",
            "worse": "less than levels at the same distances",
            "unknown": "too early to tell",
        }[verdict(lo, hi)]
        out.append(
            f"{_pct(_f(near, 'model'))} of the next {h:g} h's realized liquidation USD happened "
            f"within 0.5 % of the top-3 clusters per side; at the same distances from another "
            f"time: {_pct(_f(near, 'null'))} (lift {lift:.2f}, {_interval(lo, hi)}): {words}."
        )
    corr = _row(frame, "direction_corr")
    agree = _row(frame, "direction_agree")
    if corr is not None and agree is not None:
        c, lo, hi = _f(corr, "model"), _f(corr, "lo"), _f(corr, "hi")
        says = "does not say" if not (lo > 0 or hi < 0) else "hints at"
        if not (math.isfinite(lo) and math.isfinite(hi)):
            says = "cannot yet say"
        out.append(
            f"The long/short imbalance near price {says} where price goes: correlation with the "
            f"next move {c:+.2f} ({_interval(lo, hi, '+.2f', ' to ')}); price moved toward the "
            f"bigger pool in {_pct(_f(agree, 'model'))} of decisions."
        )
    return out
