"""Top up the days the archive has not published yet from the exchanges' public REST endpoints.

The daily archives appear after their day ends (Binance's some hours later, OKX's trade files
the next afternoon), so a site built from them alone is a day old. :func:`top_up` fills the
last ``days`` UTC days (default 2: yesterday and today) of every (exchange, symbol) with 1-minute
bars, 1-minute mark-price bars and 5-minute open interest from REST
(:mod:`flows.sources.today.source`), for each table only on days without archive rows:

- rows are stored with ``origin = 'rest'`` and each pull is logged in ``ingest_log`` as
  ``rest-<table>`` (rows, sha256 of the answers, URL): the lineage of every row;
- a re-run replaces the day's ``rest`` rows (idempotent); bars still open are left out;
- once the archive day is loaded (the loader replaces every row of its day), the top-up stops
  writing that day and deletes any ``rest`` row left on it (Bybit and OKX mark bars have no
  archive, so they go with the klines day): the archive wins;
- a failing endpoint logs ``failed`` for that table and day and touches no row.

The nightly flow runs it as one step when called with ``today=True`` (``liqheat serve`` does:
with ``--cron "5 * * * *"`` the site is at most an hour old); ``liqheat today`` runs it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.sources.errors import SourceError, short_reason
from flows.sources.today.source import TABLES, VENUES, Fetcher, fetcher
from warehouse.db import migrate
from warehouse.today import archived_days, drop_rest_day, log_rest_failure, write_rest_day

if TYPE_CHECKING:
    from flows.settings import Settings as SettingsT

#: days topped up by default: yesterday (until its archive appears) and today
DEFAULT_DAYS = 2
#: the table whose archive day also retires a venue's rest rows of a table it has no archive
#: for (Bybit and OKX publish no mark-price files)
ARCHIVE_OF: dict[tuple[str, str], str] = {
    ("bybit", "mark_klines"): "klines",
    ("okx", "mark_klines"): "klines",
}


@dataclass(frozen=True)
class TopUp:
    """What happened to one (exchange, symbol, table, day): ``loaded`` (rows from REST),
    ``replaced`` (the archive has the day; ``rows`` rest rows deleted) or ``failed``."""

    exchange: str
    symbol: str
    table: str
    day: date
    status: str
    rows: int = 0
    reason: str | None = None

    def line(self) -> str:
        """One line for the run summary.

        Examples
        --------
        >>> TopUp("binance", "BTCUSDT", "klines", date(2026, 12, 6), "loaded", 545).line()
        'top-up binance BTCUSDT klines 2026-12-06: loaded 545 rows'
        """
        head = f"top-up {self.exchange} {self.symbol} {self.table} {self.day.isoformat()}"
        if self.status == "failed":
            return f"{head}: failed: {self.reason}"
        if self.status == "replaced":
            return f"{head}: archive day present ({self.rows} rest rows removed)"
        return f"{head}: loaded {self.rows} rows" + (f" ({self.reason})" if self.reason else "")


def topup_days(now: datetime, days: int = DEFAULT_DAYS) -> list[date]:
    """The UTC days a top-up at ``now`` covers, oldest first.

    Examples
    --------
    >>> topup_days(datetime(2026, 12, 6, 17, 55, tzinfo=UTC))
    [datetime.date(2026, 12, 5), datetime.date(2026, 12, 6)]
    """
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=i) for i in range(days - 1, -1, -1)]


def top_up(
    settings: SettingsT,
    symbols: Sequence[str],
    exchanges: Sequence[str] = ("binance",),
    *,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
    base_url: str | None = None,
    page_limit: int | None = None,
) -> list[TopUp]:
    """Top up the last ``days`` UTC days of ``symbols`` on ``exchanges`` (see the module doc).

    ``base_url`` replaces every venue's REST root (a stand-in); ``page_limit`` the page sizes
    (tests). Exchanges without a REST top-up are skipped. Never raises for a venue's failure:
    it is returned as ``failed``.
    """
    now = now or datetime.now(UTC)
    migrate(settings.db_path)
    wanted = topup_days(now, days)
    out: list[TopUp] = []
    for exchange in dict.fromkeys(exchanges):
        if exchange not in VENUES:
            continue
        venue = fetcher(exchange, settings, base_url=base_url, now=now, page_limit=page_limit)
        try:
            for symbol in dict.fromkeys(symbols):
                out += _top_up_symbol(settings, venue, symbol, wanted, now)
        finally:
            venue.close()
    return out


def _top_up_symbol(
    settings: SettingsT, venue: Fetcher, symbol: str, days: list[date], now: datetime
) -> list[TopUp]:
    db, exchange = settings.db_path, venue.exchange
    out: list[TopUp] = []
    for table in TABLES:
        reference = ARCHIVE_OF.get((exchange, table), table)
        archived = archived_days(db, reference, exchange, symbol, days)
        for day in days:
            if day in archived:
                removed = drop_rest_day(db, table, exchange, symbol, day)
                out.append(TopUp(exchange, symbol, table, day, "replaced", removed))
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = min(start + timedelta(days=1), now)
            try:
                got = venue.fetch(symbol, table, start, end)
                note = None if end - start == timedelta(days=1) else f"up to {end:%H:%M} UTC"
                rows = write_rest_day(
                    db,
                    table,
                    exchange,
                    symbol,
                    day,
                    got.frame,
                    sha256=got.sha256,
                    url=got.url,
                    note=note,
                )
                out.append(TopUp(exchange, symbol, table, day, "loaded", rows, note))
            except (SourceError, ValueError) as exc:  # ValueError: a symbol the venue lacks
                reason = short_reason(exc)
                url = getattr(exc, "url", None)
                log_rest_failure(db, table, exchange, symbol, day, reason=reason, url=url)
                out.append(TopUp(exchange, symbol, table, day, "failed", reason=reason))
    return out


def summary_lines(results: Sequence[TopUp]) -> list[str]:
    """The run summary's lines: one total, then every failure.

    Examples
    --------
    >>> day = date(2026, 12, 6)
    >>> lines = summary_lines([TopUp("okx", "BTCUSDT", "klines", day, "loaded", 545),
    ...     TopUp("okx", "BTCUSDT", "open_interest", day, "failed", reason="HTTP 503")])
    >>> print("\\n".join(lines))
    top-up from REST: 545 rows loaded, 0 days left to the archive, 1 failed
    top-up okx BTCUSDT open_interest 2026-12-06: failed: HTTP 503
    """
    rows = sum(r.rows for r in results if r.status == "loaded")
    replaced = sum(1 for r in results if r.status == "replaced")
    failed = [r for r in results if r.status == "failed"]
    head = (
        f"top-up from REST: {rows} rows loaded, {replaced} days left to the archive, "
        f"{len(failed)} failed"
    )
    return [head, *(r.line() for r in failed)]


@task(name="top-up-today", cache_policy=NO_CACHE)
def topup_task(home: str, symbols: list[str], exchanges: list[str]) -> list[str]:
    """Run :func:`top_up` for the flow; return lines for the run summary. Never fails the
    run (the archive data stands whatever REST answers): an unexpected error is a note."""
    from flows.settings import Settings

    logger = get_run_logger()
    try:
        lines = summary_lines(top_up(Settings(home=Path(home)), symbols, exchanges))
    except Exception as exc:  # the top-up is a convenience on top of the archive
        lines = [f"top-up from REST failed: {type(exc).__name__}: {short_reason(exc)}"]
    for line in lines:
        logger.info(line)
    return lines
