"""Jinja rendering of the pages: the template environment and the filters that format USD,
prices, percentages, steps and UTC times the same way on every page."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import jinja2


def environment() -> jinja2.Environment:
    """Return the Jinja environment: package templates, autoescape on, StrictUndefined."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # package files: no need to stat them on every include
    )
    env.filters["usd"] = fmt_usd
    env.filters["price"] = fmt_price
    env.filters["pct"] = fmt_pct
    env.filters["utc"] = fmt_time
    env.filters["num"] = fmt_num
    env.filters["step"] = fmt_step
    env.filters["pstep"] = fmt_price_step
    env.filters["tick"] = fmt_tick
    env.filters["span"] = fmt_span
    env.filters["plural"] = plural
    return env


# ---------------------------------------------------------------------------- formatting


def fmt_usd(value: float | None) -> str:
    """Compact USD: $1.23B, $45.6M, $789K, $12."""
    if value is None or not math.isfinite(value):
        return "–"
    sign = "-" if value < 0 else ""
    v = abs(value)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            return f"{sign}${v / div:,.3g}{suffix}"
    return f"{sign}${v:,.0f}"


def fmt_price(value: float | None) -> str:
    """Price with sensible precision for its magnitude."""
    if value is None or not math.isfinite(value):
        return "–"
    v = abs(value)
    digits = 2 if v >= 100 else 4 if v >= 1 else 6
    return f"{value:,.{digits}f}"


def fmt_pct(value: float | None, signed: bool = True) -> str:
    """Percent with two decimals (signed by default)."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def fmt_price_step(value: float | None, step: float | None = None) -> str:
    """A price rounded to the model's price step, with the step's decimals (no stray cents).

    >>> fmt_price_step(61234.5678, 50.0), fmt_price_step(3050.123, 2.5)
    ('61,250', '3,050.0')
    >>> fmt_price_step(1.23456, 0.001)
    '1.235'
    """
    if value is None or not math.isfinite(value):
        return "–"
    if not step or step <= 0 or not math.isfinite(step):
        return fmt_price(value)
    rounded = round(value / step) * step
    text = f"{step:.10f}".rstrip("0")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{rounded:,.{decimals}f}"


def fmt_step(value: float | None) -> str:
    """A price step without trailing zeros: 50, 0.25, 0.0001."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.8g}"


def fmt_num(value: float | None, digits: int = 3) -> str:
    """Plain number with ``digits`` decimals."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def fmt_time(value: datetime | None) -> str:
    """UTC timestamp as ``YYYY-MM-DD HH:MM UTC``."""
    if value is None:
        return "–"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def tick_decimals(prices: Iterable[float], most: int = 8) -> int:
    """The decimals prices are quoted with (the instrument's tick), read from the prices
    themselves: the fewest decimals that write every one of them exactly.

    >>> tick_decimals([91912.7, 91913.0]), tick_decimals([2444.89]), tick_decimals([64000.0])
    (1, 2, 0)
    """
    values = [p for p in prices if p is not None and math.isfinite(p)]
    for d in range(most + 1):
        scale = 10**d
        if all(
            abs(p * scale - round(p * scale)) <= 1e-7 * max(1.0, abs(p * scale)) for p in values
        ):
            return d
    return most


def fmt_tick(value: float | None, decimals: int | None = None) -> str:
    """A price at the instrument's tick (``decimals`` from :func:`tick_decimals`; without
    them, :func:`fmt_price`).

    >>> fmt_tick(91912.7, 1), fmt_tick(91912.7)
    ('91,912.7', '91,912.70')
    """
    if value is None or not math.isfinite(value):
        return "–"
    if decimals is None:
        return fmt_price(value)
    return f"{value:,.{decimals}f}"


def fmt_span(span: timedelta | None) -> str:
    """The data's span, worded the same everywhere: '5d 22h', '11h 30m', '7d'.

    >>> fmt_span(timedelta(days=5, hours=22, minutes=10)), fmt_span(timedelta(hours=11, minutes=30))
    ('5d 22h', '11h 30m')
    """
    if span is None:
        return "–"
    minutes = int(span.total_seconds() // 60)
    d, rest = divmod(minutes, 1440)
    h, m = divmod(rest, 60)
    if d:
        return f"{d}d {h}h" if h else f"{d}d"
    if not h:
        return f"{m}m"
    return f"{h}h {m}m" if m else f"{h}h"


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 page', '2 pages' (``many`` for irregular plurals).

    >>> plural(1, "page"), plural(3, "page"), plural(2, "day")
    ('1 page', '3 pages', '2 days')
    """
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
