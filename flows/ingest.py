"""Ingest the Binance USD-M archive into the warehouse (no Prefect here; the flows call this).

Units of work are ``(dataset, symbol, day)``: ``klines``, ``markPriceKlines`` and ``metrics`` for
each symbol-day, ``aggTrades`` with ``with_trades`` (stored as a per-minute price profile in
``trade_profile``) and one ``fundingRate`` file per month touched (its ``day`` is the first of the
month). Each unit is fetched and verified by :class:`flows.binance.ArchiveClient`, parsed by
:mod:`flows.parse` and written by :func:`warehouse.writes.write_ingest_result`, which replaces the
unit's rows and records its outcome in ``ingest_log`` in one transaction.

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

Metrics partitions are keyed by the labels a file actually carries, see :mod:`flows.parse`.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flows.archive import SYMBOL_RE, daily_path, monthly_path
from flows.binance import (
    ArchiveClient,
    ArchiveError,
    NotPublishedError,
    extract_csv_member,
    read_csv_member,
)
from flows.parse import (
    EXCHANGE,
    Parsed,
    parse_aggtrades_profile,
    parse_funding,
    parse_klines,
    parse_metrics,
)
from warehouse.db import WarehouseError, write_connection
from warehouse.writes import WRITE_LOCK, IngestWrite, write_ingest_results

Status = Literal["loaded", "missing", "failed", "skipped"]

CORE_DATASETS = ("klines", "markPriceKlines", "metrics")
DAILY_DATASETS = (*CORE_DATASETS, "aggTrades")
MONTHLY_DATASETS = ("fundingRate",)
DATASETS = (*DAILY_DATASETS, *MONTHLY_DATASETS)
#: dataset -> warehouse table
TABLES = {
    "klines": "klines",
    "markPriceKlines": "mark_klines",
    "metrics": "open_interest",
    "aggTrades": "trade_profile",
    "fundingRate": "funding_rates",
}
_ORDER = {name: i for i, name in enumerate(DATASETS)}

#: serializes this process's DuckDB access (the warehouse's writer lock): DuckDB refuses a
#: read-only and a read-write connection to one file at once inside a process
DB_LOCK = WRITE_LOCK


@dataclass(frozen=True)
class Outcome:
    """What happened to one ``(dataset, symbol, day)`` unit.

    ``kind`` classifies failures: ``"missing"``, ``"network"``, ``"http"``, ``"checksum"``,
    ``"corrupt"``, ``"parse"``, ``"internal"``, or ``"warning"`` for a loaded short file.
    """

    dataset: str
    symbol: str
    day: date
    status: Status
    rows: int = 0
    sha256: str | None = None
    reason: str | None = None
    url: str | None = None
    kind: str | None = None
    downloaded: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("loaded", "skipped")

    @property
    def noteworthy(self) -> bool:
        """True for anything the problems table should show."""
        return not self.ok or self.kind == "warning"


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
        """A rich table of what is missing, failed or loaded with a warning, and why."""
        table = Table(title="ingest problems", title_justify="left")
        for name in ("dataset", "symbol", "day", "status", "reason"):
            table.add_column(name, no_wrap=name != "reason")
        styles = {"missing": "yellow", "failed": "red", "loaded": "cyan"}
        for o in self.problems():
            day = o.day.strftime("%Y-%m") if o.dataset in MONTHLY_DATASETS else o.day.isoformat()
            status = "warning" if o.status == "loaded" else o.status
            table.add_row(
                o.dataset,
                o.symbol,
                day,
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


# -- helpers -------------------------------------------------------------------------------
def _utc_today() -> date:
    return datetime.now(UTC).date()


def _month_complete(day: date, today: date) -> bool:
    """True when the month of ``day`` ended before ``today``."""
    return (day.year, day.month) < (today.year, today.month)


def archive_path(dataset: str, symbol: str, day: date) -> str:
    """Return the archive path of one unit (``fundingRate`` uses the month of ``day``).

    Examples
    --------
    >>> archive_path("fundingRate", "BTCUSDT", date(2026, 4, 17))
    'data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2026-04.zip'
    """
    if dataset in MONTHLY_DATASETS:
        return monthly_path(dataset, symbol, day.year, day.month)
    if dataset in DAILY_DATASETS:
        return daily_path(dataset, symbol, day)
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")


def _unit_day(dataset: str, day: date) -> date:
    return day.replace(day=1) if dataset in MONTHLY_DATASETS else day


def _parse(dataset: str, zip_path: Path, symbol: str, day: date, tmp_dir: Path) -> Parsed:
    if dataset == "aggTrades":
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
            csv_path = extract_csv_member(zip_path, Path(tmp) / "member.csv")
            return parse_aggtrades_profile(csv_path, symbol, day)
    data = read_csv_member(zip_path)
    if dataset == "klines":
        return parse_klines(data, symbol, day)
    if dataset == "markPriceKlines":
        return parse_klines(data, symbol, day, mark=True)
    if dataset == "metrics":
        return parse_metrics(data, symbol, day)
    if dataset == "fundingRate":
        return parse_funding(data, symbol, day.year, day.month)
    raise ValueError(f"unknown dataset {dataset!r}")


def _record(db_path: Path, results: Sequence[tuple[Outcome, Parsed | None]]) -> None:
    """Write units (rows if loaded + ingest_log) over one connection, one transaction each."""
    writes: list[IngestWrite] = []
    for outcome, parsed in results:
        if outcome.status == "skipped":
            continue
        loaded = outcome.status == "loaded" and parsed is not None
        writes.append(
            IngestWrite(
                exchange=EXCHANGE,
                dataset=outcome.dataset,
                symbol=outcome.symbol,
                day=outcome.day,
                status=outcome.status,
                table=TABLES[outcome.dataset] if loaded else None,
                keys=(
                    {
                        "exchange": EXCHANGE,
                        "symbol": outcome.symbol,
                        "ts": (parsed.start, parsed.end),
                    }
                    if loaded and parsed is not None
                    else None
                ),
                frame=parsed.frame if loaded and parsed is not None else None,
                rows=outcome.rows if outcome.status == "loaded" else None,
                sha256=outcome.sha256,
                error=outcome.reason,
                source_url=outcome.url,
            )
        )
    write_ingest_results(db_path, writes)


def loaded_units(db_path: Path, symbols: Sequence[str]) -> dict[tuple[str, str], set[date]]:
    """Return ``{(dataset, symbol): days loaded}`` from ``ingest_log`` for ``symbols``.

    Reads through a short read-write connection under :data:`DB_LOCK` (creating the database if
    needed): inside one process DuckDB refuses a read-only connection while a read-write one is
    open, and ingest threads write concurrently.
    """
    out: dict[tuple[str, str], set[date]] = {}
    if not symbols:
        return out
    marks = ", ".join("?" for _ in symbols)
    with DB_LOCK, write_connection(db_path) as con:
        rows = con.execute(
            "SELECT dataset, symbol, day FROM ingest_log WHERE exchange = ? "
            f"AND status = 'loaded' AND symbol IN ({marks})",
            [EXCHANGE, *symbols],
        ).fetchall()
    for dataset, symbol, day in rows:
        out.setdefault((str(dataset), str(symbol)), set()).add(day)
    return out


def _fetch_parse(
    client: ArchiveClient, dataset: str, symbol: str, day: date
) -> tuple[Outcome, Parsed | None]:
    """Fetch, verify and parse one unit; every expected failure becomes an Outcome."""
    path = archive_path(dataset, symbol, day)
    url = client.url(path)
    parsed: Parsed | None = None
    try:
        got = client.fetch_verified(path)
        parsed = _parse(dataset, got.path, symbol, day, client.raw_dir / ".tmp")
        notes = [parsed.warning] if parsed.warning else []
        if got.republished:
            notes.append("republished: cached copy replaced")
        outcome = Outcome(
            dataset,
            symbol,
            day,
            "loaded",
            rows=parsed.rows,
            sha256=got.sha256,
            reason="; ".join(notes) or None,
            url=url,
            kind="warning" if parsed.warning else None,
            downloaded=got.downloaded,
        )
    except NotPublishedError as exc:
        outcome = Outcome(dataset, symbol, day, "missing", reason=str(exc), url=url, kind="missing")
    except ArchiveError as exc:
        outcome = Outcome(dataset, symbol, day, "failed", reason=str(exc), url=url, kind=exc.kind)
    except (WarehouseError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug or an unforeseen file: record it, keep going
        text = (str(exc).splitlines() or [""])[0][:100]
        reason = f"internal error: {type(exc).__name__}: {text}"
        outcome = Outcome(dataset, symbol, day, "failed", reason=reason, url=url, kind="internal")
        parsed = None
    return outcome, parsed if outcome.status == "loaded" else None


def _run_job(
    db_path: Path, client: ArchiveClient, units: Sequence[tuple[str, str, date]]
) -> list[Outcome]:
    """Fetch and parse the units of one job (e.g. one symbol-day), then write them together."""
    results = [_fetch_parse(client, ds, sym, day) for ds, sym, day in units]
    _record(db_path, results)
    return [outcome for outcome, _ in results]


def _check_symbol(symbol: str) -> None:
    if not SYMBOL_RE.match(symbol):
        raise ValueError(f"bad symbol {symbol!r} (expected e.g. BTCUSDT)")


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
    """Ingest one ``(dataset, symbol, day)`` unit and record it in ``ingest_log``.

    Safe to call from several threads at once (database access is serialized by
    :data:`DB_LOCK`). Pass ``client`` to share one HTTP connection pool between calls.
    For ``fundingRate``, ``day`` may be any day of the month; a month that has not ended
    (relative to ``today``, default the UTC date) is ``skipped``.
    """
    _check_symbol(symbol)
    archive_path(dataset, symbol, day)  # validates the dataset name
    day = _unit_day(dataset, day)
    if dataset in MONTHLY_DATASETS and not _month_complete(day, today or _utc_today()):
        return Outcome(dataset, symbol, day, "skipped", reason="month in progress: not archived")
    if not force and day in loaded_units(db_path, [symbol]).get((dataset, symbol), set()):
        return Outcome(dataset, symbol, day, "skipped", reason="already loaded")
    if client is not None:
        return _run_job(db_path, client, [(dataset, symbol, day)])[0]
    with ArchiveClient(
        base_url, raw_dir, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s
    ) as own:
        return _run_job(db_path, own, [(dataset, symbol, day)])[0]


def plan_units(
    symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
) -> list[tuple[str, str, date]]:
    """Return the ``(dataset, symbol, day)`` units for a request, monthly units de-duplicated.

    Examples
    --------
    >>> len(plan_units(["BTCUSDT"], [date(2024, 1, 31), date(2024, 2, 1)]))
    8
    """
    daily = DAILY_DATASETS if with_trades else CORE_DATASETS
    units: list[tuple[str, str, date]] = []
    for symbol in dict.fromkeys(symbols):
        months = sorted({d.replace(day=1) for d in days})
        for day in sorted(set(days)):
            units += [(ds, symbol, day) for ds in daily]
        units += [(ds, symbol, m) for m in months for ds in MONTHLY_DATASETS]
    return units


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
) -> IngestReport:
    """Ingest ``symbols`` x ``days`` (klines, mark klines, metrics, optional aggTrades, and the
    funding months touched) from the archive at ``base_url``; return an :class:`IngestReport`.

    Units already ``loaded`` are skipped unless ``force``. One bad file never stops the others.
    ``progress=None`` shows a rich progress bar only when stderr is a terminal. ``workers``
    threads fetch in parallel (database writes are serialized). ``retries``/``backoff_s`` follow
    the settings ``http_retries``; tests pass tiny backoffs. ``today`` (UTC date) decides which
    funding months are complete.
    """
    for symbol in symbols:
        _check_symbol(symbol)
    today = today or _utc_today()
    units = plan_units(symbols, days, with_trades=with_trades)
    loaded = loaded_units(db_path, list(dict.fromkeys(symbols)))  # also creates the database
    if force:
        loaded = {}
    outcomes: list[Outcome] = []
    todo: list[tuple[str, str, date]] = []
    for ds, sym, day in units:
        if ds in MONTHLY_DATASETS and not _month_complete(day, today):
            reason = "month in progress: not archived"
            outcomes.append(Outcome(ds, sym, day, "skipped", reason=reason))
        elif day in loaded.get((ds, sym), set()):
            outcomes.append(Outcome(ds, sym, day, "skipped", reason="already loaded"))
        else:
            todo.append((ds, sym, day))

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
    with (
        ArchiveClient(
            base_url,
            raw_dir,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
        ) as client,
        bar,
    ):
        task = bar.add_task("", total=len(todo))

        def run(job: list[tuple[str, str, date]]) -> list[Outcome]:
            result = _run_job(db_path, client, job)
            _, sym, day = job[0]
            bar.update(task, advance=len(job), description=f"{sym} {day.isoformat()}")
            return result

        for done in _map(run, _jobs(todo), workers):
            outcomes += done
    outcomes.sort(key=lambda o: (o.symbol, o.day, _ORDER[o.dataset]))
    return IngestReport(tuple(outcomes))


def _jobs(units: list[tuple[str, str, date]]) -> list[list[tuple[str, str, date]]]:
    """Group daily units by symbol-day (written in one connection); monthly units alone."""
    jobs: dict[tuple[str, str, date], list[tuple[str, str, date]]] = {}
    for ds, sym, day in units:
        key = (ds if ds in MONTHLY_DATASETS else "", sym, day)
        jobs.setdefault(key, []).append((ds, sym, day))
    return list(jobs.values())


def _map(
    fn: Callable[[list[tuple[str, str, date]]], list[Outcome]],
    jobs: list[list[tuple[str, str, date]]],
    workers: int,
) -> list[list[Outcome]]:
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="liqheat-ingest") as pool:
        return list(pool.map(fn, jobs))


def gap_days(
    db_path: Path, symbols: Sequence[str], end_day: date, window_days: int
) -> dict[str, list[date]]:
    """Return, per symbol, the days in ``[end_day - window_days, end_day]`` for which any of
    the core datasets (klines, markPriceKlines, metrics) is not ``loaded``.

    Examples
    --------
    >>> gap_days(Path("/nonexistent.duckdb"), ["BTCUSDT"], date(2024, 1, 2), 1)
    {'BTCUSDT': [datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)]}
    """
    window = [end_day - timedelta(days=n) for n in range(window_days, -1, -1)]
    gaps: dict[str, list[date]] = {}
    loaded = loaded_units(db_path, list(symbols)) if db_path.exists() else {}
    for symbol in symbols:
        done = [loaded.get((ds, symbol), set()) for ds in CORE_DATASETS]
        gaps[symbol] = [d for d in window if not all(d in s for s in done)]
    return gaps
