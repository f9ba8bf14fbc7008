"""Prefect flows: nightly, backfill and the offline demo.

Tasks are thin: they take keys and paths (exchange, symbol, ISO day, folders), call one step
(:mod:`flows.modelling`, :mod:`flows.model_route`, :mod:`flows.exchange_sum`,
:mod:`flows.reporting`, :mod:`flows.realized`) or a source from
:mod:`flows.sources.registry`, and return small dicts, never DataFrames. Each flow ingests
(:func:`flows.staging.ingest_all`: plan -> skip loaded -> stage, fanned out on a task runner
-> load in this process, the single writer), models and reports (:func:`_model_and_report`,
in this process too because they write), and records its
:class:`flows.run_summary.RunSummary`. Running them on a Prefect API (a server tied to this
process) and serving the nightly deployment is :mod:`flows.prefect_runtime`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import modelling, progress
from flows.alerts import alerts_task
from flows.demo_data import SYNTHETIC_DIR, write_demo_archive
from flows.errors import first_line
from flows.exchange_sum import aggregate_symbol
from flows.ingest import gap_days
from flows.lock import pipeline_lock
from flows.model_route import model_plan
from flows.options import check_exchanges, check_task_runner
from flows.realized import import_realized
from flows.reporting import run_report
from flows.run_summary import RunSummary, finish_run, record_run
from flows.settings import Settings
from flows.sources.registry import get_source
from flows.staging import daily_datasets, ingest_all
from flows.today import topup_task

DEMO_ARCHIVE_DIR = "demo-archive-synthetic"


@task(name="model-symbols", cache_policy=NO_CACHE)
def model_symbols_task(
    home: str, jobs: list[tuple[str, str]], days: int | None = None
) -> list[dict[str, Any]]:
    """Model many (exchange, symbol) pairs: compute in a pool of worker processes, write in
    this process (the single writer), one transaction per pair; a failing pair is returned
    with its error and never stops the others (:func:`flows.modelling.model_symbols`)."""
    settings = Settings(home=Path(home))
    logger = get_run_logger()

    pairs = [(str(exchange), str(symbol)) for exchange, symbol in jobs]
    modelled = 0
    progress.report("modelled", 0, len(pairs))

    def log(o: modelling.ModelOutcome) -> None:
        nonlocal modelled
        modelled += 1
        progress.report("modelled", modelled, len(pairs))
        if o.error is not None:
            logger.warning("model %s %s failed: %s", o.exchange, o.symbol, o.error)

    out = []
    for o in modelling.model_symbols(settings, pairs, days=days, on_done=log):
        line = o.summary.line() if o.summary is not None else ""
        if line and o.exchange != "binance":
            line = f"[{o.exchange}] {line}"
        out.append(
            {
                "exchange": o.exchange,
                "symbol": o.symbol,
                "line": line,
                "error": o.error,
                "seconds": o.seconds,
            }
        )
    return out


@task(name="aggregate-symbol", cache_policy=NO_CACHE)
def aggregate_symbol_task(home: str, symbol: str, exchanges: list[str]) -> str:
    """Sum the exchanges' model outputs of one symbol (exchange "all"); return its line."""
    settings = Settings(home=Path(home))
    summary = aggregate_symbol(settings, symbol, exchanges)
    return f"[all] {summary.line()}"


@task(name="build-report", cache_policy=NO_CACHE)
def report_task(home: str, symbols: list[str] | None = None) -> str:
    """Rebuild the static site; return the index path. A symbol whose pages fail is logged
    (and named on the index); the other symbols and the index are still built."""
    settings = Settings(home=Path(home))
    result = run_report(
        settings, symbols, progress=lambda done, total: progress.report("reported", done, total)
    )
    for symbol, error in result.failures:
        get_run_logger().error("report for %s failed: %s", symbol, error)
    return str(result.index)


@task(name="write-demo-archive", cache_policy=NO_CACHE)
def demo_archive_task(
    root: str, symbols: list[str], start: str, days: int, seed: int, written: bool = False
) -> dict[str, Any]:
    """Write the seeded synthetic market as a local archive mirror (unless ``written``: the
    caller wrote it while the Prefect server started); return its URL and CSVs."""
    first = date.fromisoformat(start)
    if not written:
        write_demo_archive(Path(root), symbols, first, days, seed)
    liquidations = Path(root) / SYNTHETIC_DIR / "liquidations"
    return {
        "base_url": Path(root).resolve().as_uri(),
        "days": [(first + timedelta(days=i)).isoformat() for i in range(days)],
        "liquidations": {s: str(liquidations / f"{s}.csv") for s in dict.fromkeys(symbols)},
    }


@task(name="import-realized", cache_policy=NO_CACHE)
def import_realized_task(home: str, symbol: str, csv_path: str, source: str) -> int:
    """Load realized liquidations for one symbol from a CSV."""
    settings = Settings(home=Path(home))
    return import_realized(settings, symbol, Path(csv_path), source=source)


def _model_and_report(
    settings: Settings,
    symbols: Sequence[str],
    summary: RunSummary,
    exchanges: Sequence[str] = ("binance",),
) -> None:
    """The model route (:func:`flows.model_route.model_plan`, the same as ``liqheat model``): model
    each (exchange, symbol) with data (binance always) -- computed in parallel worker
    processes, written here -- sum the exchanges (exchange "all") when several have data, then
    rebuild the site. A symbol whose model or sum fails is recorded as failed with the reason;
    the other symbols and the site are still done."""
    t0 = time.perf_counter()
    plan = model_plan(settings, symbols, exchanges)
    outcomes = model_symbols_task(str(settings.home), plan.jobs)
    for o in outcomes:
        run = summary.symbol(o["symbol"])
        run.model_seconds = (run.model_seconds or 0.0) + o["seconds"]
        if o["error"] is not None:
            run.fail(f"model {o['exchange']} {o['symbol']}: {o['error']}")
        else:
            run.model = "\n".join(filter(None, [run.model, o["line"]]))
    for symbol, found in plan.sums.items():
        run = summary.symbol(symbol)
        t1 = time.perf_counter()
        try:
            line = aggregate_symbol_task(str(settings.home), symbol, found)
        except Exception as exc:
            run.fail(f"model all {symbol}: {first_line(exc)}")
        else:
            run.model = "\n".join(filter(None, [run.model, line]))
        run.model_seconds = (run.model_seconds or 0.0) + time.perf_counter() - t1
    summary.model_seconds = time.perf_counter() - t0
    summary.notes += alerts_task(str(settings.home), list(symbols))
    t0 = time.perf_counter()
    try:
        summary.site = report_task(str(settings.home))
    except Exception as exc:
        summary.report_error = f"report: {first_line(exc)}"
    summary.report_seconds = time.perf_counter() - t0


@flow(name="liqheat-nightly", log_prints=True)
def nightly_flow(
    date: str | None = None,
    symbols: list[str] | None = None,
    base_url: str | None = None,
    backfill_days: int | None = None,
    exchanges: list[str] | None = None,
    task_runner: str = "thread",
    dask_address: str | None = None,
    today: bool = False,
) -> str:
    """Ingest one day (default: yesterday, UTC) plus any gap in the backfill window for each
    exchange (default binance), with ``today`` top up the days not yet archived from REST
    (:mod:`flows.today`), recompute the model, rebuild the site. Staging fans out per
    symbol-day on ``task_runner`` ("thread", or "dask" on ``dask_address``); one load task
    writes. Ends Failed when any file failed; other symbols still run. ``base_url`` is the
    Binance archive root (or, with a single exchange, that exchange's)."""
    settings = Settings()
    day = _parse_day(date) if date else _yesterday()
    chosen = symbols or list(settings.symbols)
    window = settings.backfill_days if backfill_days is None else backfill_days
    chosen_exchanges = check_exchanges(exchanges or ["binance"])
    check_task_runner(task_runner, dask_address)
    url = base_url or (settings.binance_base_url if chosen_exchanges == ["binance"] else None)
    summary = RunSummary(flow="liqheat-nightly")
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        pairs = {(s, day) for s in chosen}
        for exchange in chosen_exchanges:
            source = get_source(exchange, settings, base_url=url)
            daily = daily_datasets(source, chosen[0], day)
            gaps = gap_days(
                settings.db_path,
                chosen,
                day - timedelta(days=1),
                window,
                exchange=exchange,
                datasets=daily,
            )
            pairs |= {(s, d) for s, ds in gaps.items() for d in ds}
        ingest_all(
            settings,
            sorted(pairs),
            url,
            summary,
            exchanges=chosen_exchanges,
            task_runner=task_runner,
            dask_address=dask_address,
        )
        if today:
            summary.notes += topup_task(str(settings.home), chosen, chosen_exchanges)
        _model_and_report(settings, chosen, summary, chosen_exchanges)
        return finish_run(settings, summary)


@flow(name="liqheat-backfill", log_prints=True)
def backfill_flow(
    symbols: list[str],
    start: str,
    end: str,
    base_url: str | None = None,
    exchanges: list[str] | None = None,
    task_runner: str = "thread",
    dask_address: str | None = None,
) -> str:
    """Ingest a history range for each exchange (resumable: days already loaded are skipped),
    then model and report. Staging runs on ``task_runner`` as in :func:`nightly_flow`."""
    settings = Settings()
    first, last = _parse_day(start), _parse_day(end)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    chosen_exchanges = check_exchanges(exchanges or ["binance"])
    check_task_runner(task_runner, dask_address)
    summary = RunSummary(flow="liqheat-backfill")
    url = base_url or (settings.binance_base_url if chosen_exchanges == ["binance"] else None)
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        ingest_all(
            settings,
            [(s, d) for s in symbols for d in days],
            url,
            summary,
            exchanges=chosen_exchanges,
            task_runner=task_runner,
            dask_address=dask_address,
        )
        _model_and_report(settings, symbols, summary, chosen_exchanges)
        return finish_run(settings, summary)


@flow(name="liqheat-demo", log_prints=True)
def demo_flow(
    home: str, symbols: list[str], start: str, days: int, seed: int, written: bool = False
) -> RunSummary:
    """Offline demo: synthetic archive -> the normal ingest path -> model + backtest -> site.
    ``written``: the archive was already written (by :func:`run_demo`)."""
    settings = Settings(home=Path(home))
    summary = RunSummary(flow="liqheat-demo")
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        archive = demo_archive_task(
            str(settings.home / DEMO_ARCHIVE_DIR), symbols, start, days, seed, written
        )
        pairs = [(s, date.fromisoformat(d)) for s in symbols for d in archive["days"]]
        ingest_all(settings, pairs, archive["base_url"], summary)
        for symbol, csv_path in archive["liquidations"].items():
            import_realized_task(str(settings.home), symbol, csv_path, "synthetic")
        _model_and_report(settings, symbols, summary)
        record_run(settings, summary)
    return summary


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"bad date {text!r} (expected YYYY-MM-DD)") from exc
