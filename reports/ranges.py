"""The time ranges of the site: 12h, 24h, 3d, 7d, 30d, 90d, 180d, 1y (as CoinGlass offers).

One range = one page per symbol view (``<SYMBOL>/<key>.html``). A range is *available* when
the data reaches into it: ranges ascend and stop at the first one that already shows all the
data, so a 3-day history has 12h, 24h and 3d. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, order=True)
class Range:
    """One display range: ``key`` names its page (``7d`` -> ``7d.html``)."""

    hours: int
    key: str

    @property
    def span(self) -> timedelta:
        """The range's length."""
        return timedelta(hours=self.hours)

    @property
    def label(self) -> str:
        """Button text, e.g. ``7D``."""
        return self.key.upper()

    @property
    def page(self) -> str:
        """File name of the range's page."""
        return f"{self.key}.html"


RANGES: tuple[Range, ...] = tuple(
    Range(h, k)
    for k, h in (
        ("12h", 12),
        ("24h", 24),
        ("3d", 72),
        ("7d", 168),
        ("30d", 720),
        ("90d", 2160),
        ("180d", 4320),
        ("1y", 8760),
    )
)
BY_KEY = {r.key: r for r in RANGES}
#: the range a symbol's ``index.html`` shows when the data covers it
DEFAULT_KEY = "7d"
_ALIASES = {"1d": "24h", "365d": "1y", "12": "12h"}
_RANGE_RE = re.compile(r"^\s*(\d+)\s*([hdy]?)\s*$", re.IGNORECASE)


def parse_range(text: str) -> Range:
    """Return the range named by ``text``: a key (``12h``, ``3d``, ``1y``), ``1d`` for 24h, or
    a number of days (``7`` = 7d, ``1`` = 24h). Raises ValueError naming the valid keys.

    Examples
    --------
    >>> parse_range("30").key, parse_range("1").key, parse_range("12H").key
    ('30d', '24h', '12h')
    >>> parse_range("5d")
    Traceback (most recent call last):
    ...
    ValueError: unknown range '5d' (expected one of 12h, 24h, 3d, 7d, 30d, 90d, 180d, 1y)
    """
    m = _RANGE_RE.match(text)
    key = None
    if m:
        n, unit = int(m.group(1)), m.group(2).lower()
        key = "24h" if unit == "" and n == 1 else f"{n}{unit or 'd'}"
        key = _ALIASES.get(key, key)
    if key not in BY_KEY:
        known = ", ".join(r.key for r in RANGES)
        raise ValueError(f"unknown range {text!r} (expected one of {known})")
    return BY_KEY[key]


def available_ranges(span: timedelta, ranges: Iterable[Range] = RANGES) -> list[Range]:
    """Ranges worth a page for data covering ``span``: ascending, stopping at the first range
    that already shows all the data.

    >>> [r.key for r in available_ranges(timedelta(days=3))]
    ['12h', '24h', '3d']
    >>> [r.key for r in available_ranges(timedelta(days=2, hours=12))]
    ['12h', '24h', '3d']
    >>> [r.key for r in available_ranges(timedelta(hours=6))]
    ['12h']
    """
    out: list[Range] = []
    for r in sorted(set(ranges)):
        out.append(r)
        if span <= r.span:
            break
    return out


def default_range(available: Sequence[Range]) -> Range | None:
    """The range of a symbol's ``index.html``: 7d when available, else the longest available.

    >>> default_range(available_ranges(timedelta(days=30))).key
    '7d'
    >>> default_range(available_ranges(timedelta(days=2))).key
    '3d'
    """
    if not available:
        return None
    keys = {r.key: r for r in available}
    return keys.get(DEFAULT_KEY, max(available))
