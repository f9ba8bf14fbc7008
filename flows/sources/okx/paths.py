"""OKX's file layout and days: trade-file paths on the static host and its UTC+8 file days.

Pure (no I/O); used by :mod:`flows.sources.okx.source` and the tests' stand-ins.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flows.sources.files import day_bounds

#: OKX file days start at 16:00 UTC of the previous UTC day (UTC+8)
OKX_DAY_OFFSET = timedelta(hours=8)


def trades_path(inst_id: str, okx_day: date) -> str:
    """Return the URL path of the trades file OKX dates ``okx_day`` (a UTC+8 day).

    Examples
    --------
    >>> trades_path("BTC-USDT-SWAP", date(2025, 6, 1))
    'cdn/okex/traderecords/trades/daily/20250601/BTC-USDT-SWAP-trades-2025-06-01.zip'
    """
    return (
        f"cdn/okex/traderecords/trades/daily/{okx_day:%Y%m%d}/"
        f"{inst_id}-trades-{okx_day.isoformat()}.zip"
    )


def okx_file_days(day: date) -> tuple[date, date]:
    """Return the two OKX (UTC+8) file days whose trades cover the UTC ``day``.

    The file dated D covers ``[D-1 16:00, D 16:00)`` UTC, so UTC day D takes its first 16 hours
    from file D and its last 8 from file D+1.

    Examples
    --------
    >>> okx_file_days(date(2025, 6, 1))
    (datetime.date(2025, 6, 1), datetime.date(2025, 6, 2))
    """
    return day, day + timedelta(days=1)


def okx_file_span(okx_day: date) -> tuple[datetime, datetime]:
    """Return the UTC span ``[start, end)`` of the OKX file dated ``okx_day``.

    Examples
    --------
    >>> [t.isoformat() for t in okx_file_span(date(2025, 6, 1))]
    ['2025-05-31T16:00:00+00:00', '2025-06-01T16:00:00+00:00']
    """
    start, end = day_bounds(okx_day)
    return start - OKX_DAY_OFFSET, end - OKX_DAY_OFFSET


def inst_family(inst_id: str) -> str:
    """Return the instrument family of a swap, e.g. ``BTC-USDT`` for ``BTC-USDT-SWAP``.

    Examples
    --------
    >>> inst_family("ETH-USDT-SWAP")
    'ETH-USDT'
    """
    return inst_id.removesuffix("-SWAP")
