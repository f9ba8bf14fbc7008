"""Ingest exchange data into the warehouse (no Prefect here; the flows call this).

An ingest is **plan -> skip already loaded -> stage -> load**: the exchange's
:class:`~flows.sources.base.Source` (from :mod:`flows.sources.registry`; Binance by default)
plans ``(dataset, symbol, day)`` units, units already ``loaded`` in ``ingest_log`` are skipped
(unless ``force``), a thread pool fetches, verifies and parses the rest into Parquet files under
a staging folder, and the calling thread -- the single DuckDB writer -- loads them with
:func:`flows.sources.loader.load_staged` (one transaction per unit: rows replaced and the
outcome logged in ``ingest_log``) in batches as they arrive, then deletes the staged files.

For Binance the units are ``klines``, ``markPriceKlines`` and ``metrics`` for each symbol-day,
``aggTrades`` with ``with_trades`` (stored as a per-minute price profile in ``trade_profile``)
and one ``fundingRate`` file per month touched (its ``day`` is the first of the month); see
:mod:`flows.sources.binance.source`.

Outcome policy
--------------
* ``loaded``: rows written. A usable but incomplete file (fewer than 1,440 minutes, fewer than 288
  metrics labels, aggTrades not covering the day) is loaded *with a warning*: the reason (e.g.
  ``"short file: 1380 of 1440 rows (00:00-22:59)"``) is kept in ``ingest_log.error`` and shown in
  :meth:`IngestReport.problems_table`; it does not change the exit code. Re-run with ``force``
  once the archive republishes the day.
* ``missing``: the archive answered 404 (not yet published, or a gap). Exit code 1.
* ``failed``: network trouble after retries, checksum mismatch (after one re-download), a bad
  ``.CHECKSUM``, a corrupt zip or an unparsable CSV. Previously loaded rows stay. Exit code 1.
* ``skipped``: already ``loaded`` in ``ingest_log`` (unless ``force``), or a ``fundingRate``
  month that has not ended yet (the archive publishes monthly files after the month; the current
  month is not requested, and not logged, so it is fetched once it is complete).

Metrics partitions are keyed by the labels a file actually carries, see
:mod:`flows.sources.binance.parsing`.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.settings import Settings
from flows.sources.base import Source, StagedUnit, UnitRequest
from flows.sources.binance.client import ArchiveClient
from flows.sources.binance.source import (
    CORE_DATASETS,
    DAILY_DATASETS,
    DATASETS,
    EXCHANGE,
    MONTH_IN_PROGRESS,
    MONTHLY_DATASETS,
    TABLES,
    BinanceSource,
    archive_path,
    check_symbol,
    month_complete,
    plan_units,
    unit_day,
)
from flows.sources.loader import BATCH_UNITS, Outcome, load_staged
from warehouse.writes import WRITE_LOCK

__all__ = [
    "CORE_DATASETS",
    "DAILY_DATASETS",
    "DATASETS",
    "DB_LOCK",
    "MONTHLY_DATASETS",
    "TABLES",
    "IngestReport",
    "Outcome",
    "archive_path",
    "gap_days",
    "ingest",
    "ingest_one",
    "loaded_units",
    "plan_units",
    "split_loaded",
    "stage_units",
]

Status = Literal["loaded", "missing", "failed", "skipped"]

_ORDER = {name: i for i, name in enumerate(DATASETS)}

#: serializes this process's DuckDB access (the warehouse's writer lock): DuckDB refuses a
#: read-only and a read-write connection to one file at once inside a process
DB_LOCK = WRITE_LOCK


@dataclass(frozen=True)
class IngestReport:
    """All outcomes of one :func:`ingest` call."""

    outcomes: tuple[Outcome, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Everything asked for was loaded, or skipped as already loaded / not due."""
        return all(o.ok for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def unreachable(self) -> bool:
        """Every attempted unit failed with a network error (the archive cannot be reached)."""
        tried = [o for o in self.outcomes if o.status != "skipped"]
        return bool(tried) and all(o.kind == "network" for o in tried)

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.status for o in self.outcomes)

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes if o.status == "loaded")

    @property
    def downloads(self) -> int:
        return sum(o.downloaded for o in self.outcomes)

    def problems(self) -> list[Outcome]:
        """Missing, failed and loaded-with-warning outcomes."""
        return [o for o in self.outcomes if o.noteworthy]

    def problems_table(self) -> Table:
        """A rich table of what is missing, failed or loaded with a warning, and why: one row
        per span of consecutive days (months for monthly files) of one dataset and symbol with
        the same outcome and reason (see :func:`problem_spans`)."""
        problems = self.problems()
        spans = problem_spans(problems)
        title = "ingest problems"
        if len(spans) < len(problems):
            title += f": {len(problems):,} files in {len(spans):,} span(s)"
        table = Table(title=title, title_justify="left")
        for name in ("dataset", "symbol", "days", "status", "reason"):
            table.add_column(name, no_wrap=name != "reason")
        styles = {"missing": "yellow", "failed": "red", "loaded": "cyan"}
        for o, last, count in spans:
            monthly = o.dataset in MONTHLY_DATASETS
            fmt = "%Y-%m" if monthly else "%Y-%m-%d"
            days = o.day.strftime(fmt)
            if count > 1:
                days += f" .. {last.strftime(fmt)} ({count:,} {'months' if monthly else 'days'})"
            status = "warning" if o.status == "loaded" else o.status
            table.add_row(
                o.dataset,
                o.symbol,
                days,
                f"[{styles.get(o.status, '')}]{status}[/]",
                o.reason or "",
            )
        return table

    def summary(self) -> str:
        """One line, e.g. ``"ingest: 12 loaded (17,280 rows, 12 downloaded), 1 missing"``."""
        c = self.counts
        parts = [f"{c['loaded']} loaded ({self.rows:,} rows, {self.downloads} downloaded)"]
        parts += [f"{c[s]} {s}" for s in ("skipped", "missing", "failed") if c[s]]
        warned = sum(1 for o in self.outcomes if o.kind == "warning")
        if warned:
            parts.append(f"{warned} with warnings")
        return "ingest: " + ", ".join(parts)


def problem_spans(outcomes: Sequence[Outcome]) -> list[tuple[Outcome, date, int]]:
    """Merge outcomes into spans of consecutive days (months for monthly datasets) with the
    same exchange, dataset, symbol, status and reason: ``(first outcome, last day, count)``,
    ordered by symbol, dataset and first day.

    Examples
    --------
    >>> miss = [Outcome("klines", "BTCUSDT", date(2019, 1, d), "missing", reason="404")
    ...         for d in (1, 2, 3, 9)]
    >>> [(o.day.day, last.day, n) for o, last, n in problem_spans(miss)]
    [(1, 3, 3), (9, 9, 1)]
    """

    def key(o: Outcome) -> tuple[str, str, str, str, str]:
        return (o.symbol, o.dataset, o.exchange, o.status, o.reason or "")

    def following(day: date, monthly: bool) -> date:
        if not monthly:
            return day + timedelta(days=1)
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)

    spans: list[tuple[Outcome, date, int]] = []
    for o in sorted(outcomes, key=lambda o: (*key(o), o.day)):
        if spans:
            first, last, count = spans[-1]
            if key(first) == key(o) and o.day == following(last, o.dataset in MONTHLY_DATASETS):
                spans[-1] = (first, o.day, count + 1)
                continue
        spans.append((o, o.day, 1))
    order = {name: i for i, name in enumerate(DATASETS)}
    spans.sort(key=lambda s: (s[0].symbol, order.get(s[0].dataset, len(order)), s[0].day))
    return spans


# -- helpers -------------------------------------------------------------------------------
#: after this long without a finished unit, the units staged so far are loaded
IDLE_LOAD_S = 1.0


def _utc_today() -> date:
    return datetime.now(UTC).date()


def _new_staging_dir(db_path: Path, label: str) -> Path:
    return db_path.parent / "staging" / f"{label}-{uuid.uuid4().hex[:12]}"


def loaded_units(
    db_path: Path, symbols: Sequence[str], *, exchange: str = EXCHANGE
) -> dict[tuple[str, str], set[date]]:
    """Return ``{(dataset, symbol): days loaded}`` from ``ingest_log`` for ``symbols``.

    Reads through a short read-write connection under :data:`DB_LOCK` (creating the database if
    needed): inside one process DuckDB refuses a read-only connection while a read-write one is
    open, and ingest threads write concurrently.
    """
    from warehouse.db import write_connection

    out: dict[tuple[str, str], set[date]] = {}
    if not symbols:
        return out
    marks = ", ".join("?" for _ in symbols)
    with DB_LOCK, write_connection(db_path) as con:
        rows = con.execute(
            "SELECT dataset, symbol, day FROM ingest_log WHERE exchange = ? "
            f"AND status = 'loaded' AND symbol IN ({marks})",
            [exchange, *symbols],
        ).fetchall()
    for dataset, symbol, day in rows:
        out.setdefault((str(dataset), str(symbol)), set()).add(day)
    return out


def split_loaded(
    requests: Sequence[UnitRequest], loaded: dict[tuple[str, str], set[date]]
) -> tuple[list[Outcome], list[UnitRequest]]:
    """Split planned units into ``skipped`` outcomes (already loaded) and units to stage.

    Examples
    --------
    >>> req = UnitRequest("binance", "klines", "BTCUSDT", date(2024, 1, 1))
    >>> skipped, todo = split_loaded([req], {("klines", "BTCUSDT"): {date(2024, 1, 1)}})
    >>> skipped[0].reason, todo
    ('already loaded', [])
    """
    skipped: list[Outcome] = []
    todo: list[UnitRequest] = []
    for r in requests:
        if r.day in loaded.get((r.dataset, r.symbol), set()):
            skipped.append(
                Outcome(
                    r.dataset,
                    r.symbol,
                    r.day,
                    "skipped",
                    reason="already loaded",
                    exchange=r.exchange,
                )
            )
        else:
            todo.append(r)
    return skipped, todo


def plan_requests(
    source: Source, pairs: Sequence[tuple[str, date]], *, with_trades: bool = False
) -> list[UnitRequest]:
    """Plan ``source``'s units for (symbol, day) pairs: symbols asking for the same days are
    planned in one call of ``source.plan``. The one planner of ``liqheat ingest``, the flows
    (:func:`plan_ingest`) and the download guard (:func:`flows.guards.download_plan`).

    Examples
    --------
    >>> from flows.sources.binance.source import BinanceSource
    >>> src = BinanceSource("file:///mirror", Path("raw"))
    >>> [(r.dataset, r.day.day) for r in plan_requests(src, [("BTCUSDT", date(2024, 2, 2))])]
    [('klines', 2), ('markPriceKlines', 2), ('metrics', 2), ('fundingRate', 1)]
    """
    by_symbol: dict[str, list[date]] = {}
    for symbol, day in pairs:
        by_symbol.setdefault(symbol, []).append(day)
    by_days: dict[tuple[date, ...], list[str]] = {}
    for symbol, days in by_symbol.items():
        by_days.setdefault(tuple(sorted(set(days))), []).append(symbol)
    requests: list[UnitRequest] = []
    for days_key, symbols in by_days.items():
        requests += source.plan(symbols, list(days_key), with_trades=with_trades)
    return requests


def plan_ingest(
    source: Source,
    db_path: Path,
    pairs: Sequence[tuple[str, date]],
    *,
    with_trades: bool = False,
    force: bool = False,
) -> tuple[list[Outcome], list[UnitRequest]]:
    """Plan ``source``'s units for (symbol, day) pairs (:func:`plan_requests`) and split off
    those already ``loaded`` in ``ingest_log`` (unless ``force``): return ``(skipped outcomes,
    units to stage)``. Used by :func:`ingest` and the flows (:mod:`flows.staging`).

    Examples
    --------
    >>> skipped, todo = plan_ingest(source, db, [("BTCUSDT", day)])  # doctest: +SKIP
    """
    requests = plan_requests(source, pairs, with_trades=with_trades)
    symbols = list(dict.fromkeys(symbol for symbol, _ in pairs))
    # the id rows are stored under (binance-cm stores as "binance"), not the registry name
    loaded = loaded_units(db_path, symbols, exchange=source.exchange)
    return split_loaded(requests, {} if force else loaded)


def stage_units(
    source: Source,
    requests: Sequence[UnitRequest],
    staging_dir: Path,
    *,
    workers: int = 4,
    idle_s: float | None = None,
) -> Iterator[StagedUnit | None]:
    """Stage ``requests`` on a pool of ``workers`` threads; yield units as they finish.

    With ``idle_s``, ``None`` is yielded whenever no unit finished for that long (the caller
    loads what it has instead of waiting for a slow download).

    Examples
    --------
    >>> staged = list(stage_units(source, requests, Path("staging")))  # doctest: +SKIP
    """
    if workers <= 1 or len(requests) <= 1:
        for r in requests:
            yield source.stage(r, staging_dir)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="liqheat-stage") as pool:
        pending: set[Future[StagedUnit]] = {
            pool.submit(source.stage, r, staging_dir) for r in requests
        }
        try:
            while pending:
                done, pending = wait(pending, timeout=idle_s, return_when=FIRST_COMPLETED)
                if not done:
                    yield None
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()


# -- public API ----------------------------------------------------------------------------
def ingest_one(
    db_path: Path,
    raw_dir: Path,
    base_url: str,
    dataset: str,
    symbol: str,
    day: date,
    *,
    force: bool = False,
    timeout_s: float = 30.0,
    retries: int = 4,
    backoff_s: float = 0.5,
    client: ArchiveClient | None = None,
    today: date | None = None,
) -> Outcome:
    """Ingest one Binance ``(dataset, symbol, day)`` unit and record it in ``ingest_log``.

    Safe to call from several threads at once (database access is serialized by
    :data:`DB_LOCK`). Pass ``client`` to share one HTTP connection pool between calls.
    For ``fundingRate``, ``day`` may be any day of the month; a month that has not ended
    (relative to ``today``, default the UTC date) is ``skipped``.
    """
    check_symbol(symbol)
    archive_path(dataset, symbol, day)  # validates the dataset name
    day = unit_day(dataset, day)
    if dataset in MONTHLY_DATASETS and not month_complete(day, today or _utc_today()):
        return Outcome(dataset, symbol, day, "skipped", reason=MONTH_IN_PROGRESS)
    if not force and day in loaded_units(db_path, [symbol]).get((dataset, symbol), set()):
        return Outcome(dataset, symbol, day, "skipped", reason="already loaded")
    staging = _new_staging_dir(db_path, "one")
    source = BinanceSource(
        base_url,
        raw_dir,
        timeout_s=timeout_s,
        retries=retries,
        backoff_s=backoff_s,
        today=today,
        client=client,
    )
    try:
        with source:
            staged = source.stage(UnitRequest(EXCHANGE, dataset, symbol, day), staging)
        return load_staged(db_path, [staged])[0]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _source_for(
    exchange: str,
    raw_dir: Path,
    base_url: str,
    *,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    backoff_max_s: float,
    today: date,
) -> Source:
    if exchange == EXCHANGE:
        # built here rather than from settings: callers pass the HTTP policy directly
        return BinanceSource(
            base_url,
            raw_dir,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            today=today,
        )
    from flows.sources.registry import get_source

    settings = Settings(home=raw_dir.parent, http_timeout_s=timeout_s, http_retries=retries)
    return get_source(exchange, settings, base_url=base_url)


def ingest(
    db_path: Path,
    raw_dir: Path,
    base_url: str,
    symbols: Sequence[str],
    days: Sequence[date],
    *,
    with_trades: bool = False,
    force: bool = False,
    progress: bool | None = None,
    timeout_s: float = 30.0,
    retries: int = 4,
    backoff_s: float = 0.5,
    backoff_max_s: float = 30.0,
    workers: int = 4,
    today: date | None = None,
    console: Console | None = None,
    exchange: str = EXCHANGE,
    source: Source | None = None,
    staging_dir: Path | None = None,
) -> IngestReport:
    """Ingest ``symbols`` x ``days`` from ``exchange`` (Binance: klines, mark klines, metrics,
    optional aggTrades, and the funding months touched) from ``base_url``; return an
    :class:`IngestReport`.

    Units already ``loaded`` are skipped unless ``force``. One bad file never stops the others.
    ``progress=None`` shows a rich progress bar only when stderr is a terminal. ``workers``
    threads fetch and parse in parallel into ``staging_dir`` (default: a fresh folder under
    ``<db folder>/staging``, removed afterwards); this thread is the only writer.
    ``retries``/``backoff_s`` follow the settings ``http_retries``; tests pass tiny backoffs.
    ``today`` (UTC date) decides which funding months are complete. ``exchange`` picks the
    source from :mod:`flows.sources.registry` (``base_url`` is that exchange's public-data
    root); ``source`` passes a ready :class:`~flows.sources.base.Source` instead.
    """
    for symbol in symbols:
        check_symbol(symbol)
    today = today or _utc_today()
    src = source or _source_for(
        exchange,
        raw_dir,
        base_url,
        timeout_s=timeout_s,
        retries=retries,
        backoff_s=backoff_s,
        backoff_max_s=backoff_max_s,
        today=today,
    )
    # also creates the database
    outcomes, todo = plan_ingest(
        src, db_path, [(s, d) for s in symbols for d in days], with_trades=with_trades, force=force
    )

    show = sys.stderr.isatty() if progress is None else progress
    bar = Progress(
        TextColumn("[bold]ingest[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        disable=not show,
        transient=False,
    )
    staging = staging_dir or _new_staging_dir(db_path, "ingest")
    try:
        with bar:
            task = bar.add_task("", total=len(todo))
            batch: list[StagedUnit] = []
            # finished units are loaded as they arrive: when a batch is full, and whenever
            # the others are still downloading (a slow file never holds back finished ones)
            for unit in stage_units(src, todo, staging, workers=workers, idle_s=IDLE_LOAD_S):
                if unit is None:
                    outcomes += load_staged(db_path, batch)
                    batch = []
                    continue
                batch.append(unit)
                bar.update(task, advance=1, description=f"{unit.symbol} {unit.day.isoformat()}")
                if len(batch) >= BATCH_UNITS:
                    outcomes += load_staged(db_path, batch)
                    batch = []
            outcomes += load_staged(db_path, batch)
    finally:
        close: Callable[[], None] | None = getattr(src, "close", None)
        if source is None and close is not None:
            close()
        if staging_dir is None:
            shutil.rmtree(staging, ignore_errors=True)
    outcomes.sort(key=lambda o: (o.symbol, o.day, _ORDER.get(o.dataset, len(_ORDER)), o.dataset))
    return IngestReport(tuple(outcomes))


def gap_days(
    db_path: Path,
    symbols: Sequence[str],
    end_day: date,
    window_days: int,
    *,
    exchange: str = EXCHANGE,
    datasets: Sequence[str] = CORE_DATASETS,
) -> dict[str, list[date]]:
    """Return, per symbol, the days in ``[end_day - window_days, end_day]`` for which any of
    ``datasets`` (default Binance's core: klines, markPriceKlines, metrics) is not ``loaded``.

    Examples
    --------
    >>> gap_days(Path("/nonexistent.duckdb"), ["BTCUSDT"], date(2024, 1, 2), 1)
    {'BTCUSDT': [datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)]}
    """
    window = [end_day - timedelta(days=n) for n in range(window_days, -1, -1)]
    gaps: dict[str, list[date]] = {}
    loaded = loaded_units(db_path, list(symbols), exchange=exchange) if db_path.exists() else {}
    for symbol in symbols:
        done = [loaded.get((ds, symbol), set()) for ds in datasets]
        gaps[symbol] = [d for d in window if not all(d in s for s in done)]
    return gaps


def run_ingest(
    settings: Settings,
    symbols: Sequence[str],
    days: Sequence[date],
    *,
    exchange: str = EXCHANGE,
    base_url: str | None = None,
    with_trades: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> IngestReport:
    """:func:`ingest` of ``exchange`` with the paths and the source of ``settings`` (built by
    :func:`flows.sources.registry.get_source`, as the flows build theirs; ``base_url`` is that
    exchange's root, default Binance's ``settings.binance_base_url``): the ``liqheat ingest``
    door."""
    from flows.sources.registry import get_source

    source = get_source(exchange, settings, base_url=base_url)
    try:
        return ingest(
            settings.db_path,
            settings.raw_dir,
            base_url or settings.binance_base_url,
            list(symbols),
            list(days),
            with_trades=with_trades,
            force=force,
            progress=progress,
            exchange=exchange,
            source=source,
        )
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
