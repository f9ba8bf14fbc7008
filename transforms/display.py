"""The heatmap's time buckets: the display resolution, decided in one place.

`display_tiers_for` (a history's stored buckets) and `FINEST_DISPLAY_STEP` are used by the
model (`transforms.model.run_model`), the exchanges' sum (`transforms.aggregate`) and the
pages' grid (`reports.frames.grid_geometry`). Light on imports (no model code), so the reports
can import it; `transforms.heatmap` re-exports every name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

__all__ = [
    "DISPLAY_AGES",
    "FINEST_DISPLAY_STEP",
    "FINE_DIVISOR",
    "FINE_SPAN",
    "SHORT_HISTORY",
    "TimeTiers",
    "as_timedelta",
    "display_tiers",
    "display_tiers_for",
    "fine_price_window",
    "traded_window",
]

_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000

#: the site's time resolution by age (see `display_tiers`): bars older than ``age`` before the
#: anchor are bucketed by ``step``. Matched to the site's ranges (180 columns): 12h..3d pages
#: need the finest step, 7d hourly, 30d 4-hourly, 90d 12-hourly, 180d and 1y daily; each age
#: is the range plus a day, as the anchor lies up to a day after the last bar.
DISPLAY_AGES: tuple[tuple[timedelta, timedelta], ...] = (
    (timedelta(days=4), timedelta(hours=1)),
    (timedelta(days=8), timedelta(hours=4)),
    (timedelta(days=31), timedelta(hours=12)),
    (timedelta(days=91), timedelta(days=1)),
)


@dataclass(frozen=True)
class TimeTiers:
    """Heatmap time buckets that coarsen with age.

    Bars get ``step`` buckets, except those older than ``age`` before the *anchor* (the UTC
    midnight after the last bar, so the exchanges of one night share their cuts), which get that
    tier's coarser ``step`` (the oldest tier they fall in wins). A tier starts at a multiple of
    its step, and every step divides the next, so no bucket straddles two tiers. Cost: O(n)
    for n timestamps.

    Examples
    --------
    >>> t = TimeTiers(timedelta(minutes=15), ((timedelta(days=1), timedelta(hours=1)),))
    >>> anchor = TimeTiers.anchor_us(np.array([_DAY_US + 1]))  # a bar on day 1 -> end of day 1
    >>> starts = t.bucket_starts(np.array([_DAY_US // 2 + 1, _DAY_US + 60_000_000 * 20]), anchor)
    >>> [int(v // 60_000_000) for v in starts]  # minutes: hour bucket on day 0, 15m on day 1
    [720, 1455]
    """

    step: timedelta
    coarser: tuple[tuple[timedelta, timedelta], ...] = ()

    def __post_init__(self) -> None:
        prev_age, prev_step = timedelta(0), self.step
        if self.step <= timedelta(0):
            raise ValueError(f"time step must be positive, got {self.step}")
        for age, step in self.coarser:
            if age <= prev_age or step % prev_step or step < prev_step:
                raise ValueError(
                    "tiers must have increasing ages and steps that are multiples of the "
                    f"previous step, got {self.coarser}"
                )
            prev_age, prev_step = age, step

    @staticmethod
    def anchor_us(ts_us: npt.NDArray[np.int64]) -> int:
        """The UTC midnight after the last of ``ts_us`` (epoch microseconds)."""
        return (int(ts_us.max()) // _DAY_US + 1) * _DAY_US if ts_us.shape[0] else 0

    def _cuts(self, anchor_us: int) -> list[tuple[int, int]]:
        """(cut, step) per coarser tier, in microseconds: timestamps before the cut use step."""
        out = []
        for age, step in self.coarser:
            s = step // _US
            out.append(((anchor_us - age // _US) // s * s, s))
        return out

    def steps_us(self, ts_us: npt.NDArray[np.int64], anchor_us: int) -> npt.NDArray[np.int64]:
        """The bucket length (microseconds) of each timestamp."""
        out = np.full(ts_us.shape[0], self.step // _US, dtype=np.int64)
        for cut, step in self._cuts(anchor_us):  # oldest tier last: it wins
            out[ts_us < cut] = step
        return out

    def bucket_starts(self, ts_us: npt.NDArray[np.int64], anchor_us: int) -> npt.NDArray[np.int64]:
        """The start (epoch microseconds) of each timestamp's bucket."""
        steps = self.steps_us(ts_us, anchor_us)
        return np.asarray(ts_us // steps * steps, dtype=np.int64)


def display_tiers(step: str | timedelta) -> TimeTiers:
    """`TimeTiers` for the site: ``step`` for the last 4 days, then `DISPLAY_AGES` (only the
    tiers coarser than ``step``).

    Examples
    --------
    >>> [str(s) for _, s in display_tiers("15m").coarser]
    ['1:00:00', '4:00:00', '12:00:00', '1 day, 0:00:00']
    """
    fine = as_timedelta(step)
    return TimeTiers(fine, tuple((a, s) for a, s in DISPLAY_AGES if s > fine and not s % fine))


#: the finest time bucket of a stored heatmap (a history of at most `SHORT_HISTORY`)
FINEST_DISPLAY_STEP = timedelta(minutes=5)
#: histories up to this long are stored at `FINEST_DISPLAY_STEP`, longer ones at 15 minutes
SHORT_HISTORY = timedelta(days=3)


def display_tiers_for(
    first: datetime | None, last: datetime | None, bar: timedelta | None = None
) -> TimeTiers:
    """The stored heatmap's time buckets for a history of bars from ``first`` to ``last``:
    `display_tiers` of 5 minutes on a history of 3 days or less, else of 15 minutes (the last
    4 days; coarser further back), never finer than the bars' size ``bar`` when given (an
    imported 1-hour history: 1-hour buckets). The one decision of the display resolution: the
    model (`transforms.model.run_model`), the exchanges' sum and the pages' grid use it.

    Examples
    --------
    >>> t = datetime(2024, 1, 1)
    >>> [display_tiers_for(t, t + timedelta(days=d)).step for d in (3, 4)]
    [datetime.timedelta(seconds=300), datetime.timedelta(seconds=900)]
    >>> display_tiers_for(t, t + timedelta(days=30), timedelta(hours=4)).step
    datetime.timedelta(seconds=14400)
    """
    short = first is not None and last is not None and last - first <= SHORT_HISTORY
    fine = FINEST_DISPLAY_STEP if short else timedelta(minutes=15)
    return display_tiers(max(fine, bar) if bar is not None else fine)


#: the fine cells (issue 20): the last ``FINE_SPAN`` before the end of the data (the 12h and
#: 24h pages, with room for a page ending a little after the last bar) at the model's price
#: step divided by ``FINE_DIVISOR``
FINE_SPAN = timedelta(hours=26)
FINE_DIVISOR = 5


def traded_window(
    low: float, high: float, bar_range: float, *, share: float = 0.3, bars: float = 3.0
) -> tuple[float, float]:
    """A price window around a traded ``low`` .. ``high`` with an average bar range of
    ``bar_range``: padded on each side by the larger of ``share`` x the range and ``bars``
    average bars (the pages' price axis, `reports.heatmap_context.axis_window`).

    Examples
    --------
    >>> traded_window(100.0, 110.0, 0.5)
    (97.0, 113.0)
    >>> traded_window(100.0, 110.0, 2.0)
    (94.0, 116.0)
    """
    rng = max(high - low, abs(high) * 1e-4, 1e-12)
    pad = max(share * rng, bars * bar_range)
    return low - pad, high + pad


def fine_price_window(low: float, high: float, bar_range: float) -> tuple[float, float]:
    """The prices of the fine cells: the last `FINE_SPAN`'s traded ``low`` .. ``high``
    padded as widely as a page's axis can be (`traded_window` with the largest margin a
    page's edge markers ask for, twice the range, and 6 average bars of ``bar_range``), so a
    12h or 24h page's axis lies inside it.

    Examples
    --------
    >>> fine_price_window(100.0, 110.0, 0.5)
    (80.0, 130.0)
    """
    lo, hi = traded_window(low, high, bar_range, share=2.0, bars=6.0)
    return max(lo, 0.0), hi


_DURATION_RE = re.compile(r"^\s*(\d+)\s*(m|h|d)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def as_timedelta(step: str | timedelta) -> timedelta:
    """Return a time step (``"5m"``, ``"1h"``, ``"1d"`` or a timedelta) as a positive timedelta.

    Examples
    --------
    >>> as_timedelta("15m"), as_timedelta(timedelta(hours=1))
    (datetime.timedelta(seconds=900), datetime.timedelta(seconds=3600))
    """
    if isinstance(step, timedelta):
        value = step
    else:
        m = _DURATION_RE.match(step)
        if m is None:
            raise ValueError(f"time step must look like 5m, 1h or 1d, got {step!r}")
        value = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    if value <= timedelta(0):
        raise ValueError(f"time step must be positive, got {step!r}")
    return value
