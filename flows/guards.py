"""Guard rails of the downloading commands: how many files a range would download, asked
before anything starts (``ingest`` and ``backfill`` above ``LIQHEAT_MAX_DOWNLOADS`` files need
``--yes``; without it they print the plan and exit 2)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from flows.errors import Failure
from flows.settings import Settings

__all__ = ["DownloadPlan", "TooManyDownloads", "check_download_plan", "download_plan"]


class TooManyDownloads(Failure):
    """The range needs more downloads than ``LIQHEAT_MAX_DOWNLOADS`` and ``--yes`` was not
    given (a usage error: exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class DownloadPlan:
    """Files a range would download, per (exchange, dataset), already loaded ones left out."""

    files: Counter[tuple[str, str]]
    loaded: int
    symbols: int
    days: tuple[date, date] | None

    @property
    def total(self) -> int:
        """Files to download."""
        return sum(self.files.values())

    def lines(self) -> list[str]:
        """The plan, one line per (exchange, dataset)."""
        span = f"{self.days[0]} .. {self.days[1]}" if self.days else "no days"
        out = [
            f"plan: {self.total:,} file(s) to download for {self.symbols} symbol(s), {span} "
            f"({self.loaded:,} already loaded, skipped)"
        ]
        out += [f"  {ex} {ds}: {n:,}" for (ex, ds), n in sorted(self.files.items())]
        return out


def download_plan(
    settings: Settings,
    symbols: Sequence[str],
    days: Sequence[date],
    exchanges: Sequence[str],
    *,
    base_url: str | None = None,
    with_trades: bool = False,
    force: bool = False,
) -> DownloadPlan:
    """Plan the units of ``symbols`` x ``days`` per exchange (as the ingest does) and leave
    out those ``ingest_log`` has as loaded (unless ``force``). Reads only; no network."""
    from flows.ingest import plan_requests, split_loaded
    from flows.sources.registry import get_source
    from warehouse.reads import query

    files: Counter[tuple[str, str]] = Counter()
    loaded = 0
    db = settings.db_path
    pairs = [(s, d) for s in symbols for d in days]
    for exchange in exchanges:
        url = base_url if exchange == "binance" or len(exchanges) == 1 else None
        source = get_source(exchange, settings, base_url=url)
        try:
            requests = plan_requests(source, pairs, with_trades=with_trades)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        done: dict[tuple[str, str], set[date]] = {}
        if not force and db.exists() and requests:
            # read-only (the guard never creates the warehouse), unlike flows.ingest.loaded_units
            frame = query(
                db,
                "SELECT dataset, symbol, day FROM ingest_log WHERE exchange = ? "
                "AND status = 'loaded' AND list_contains(?, symbol)",
                [source.exchange, list(symbols)],
            )
            for d, s, day in frame.iter_rows():
                done.setdefault((str(d), str(s)), set()).add(day)
        skipped, todo = split_loaded(requests, done)
        loaded += len(skipped)
        for r in todo:
            files[(r.exchange, r.dataset)] += 1
    span = (min(days), max(days)) if days else None
    return DownloadPlan(files, loaded, len(set(symbols)), span)


def check_download_plan(
    plan: DownloadPlan, settings: Settings, *, yes: bool, echo: Callable[[str], object]
) -> None:
    """Above ``LIQHEAT_MAX_DOWNLOADS`` files: ``echo`` the plan, then go ahead with ``yes`` or
    raise :class:`TooManyDownloads` (one line) without it."""
    limit = settings.max_downloads
    if plan.total <= limit:
        return
    for line in plan.lines():
        echo(line)
    if not yes:
        raise TooManyDownloads(
            f"this would download {plan.total:,} files, more than LIQHEAT_MAX_DOWNLOADS="
            f"{limit:,}: add --yes to go ahead, or narrow --start/--end"
        )
