"""The pipeline commands: ``demo``, ``nightly``, ``backfill``, ``serve`` (the Prefect flows,
with their progress display) and ``today`` (the REST top-up)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import click

from flows.cli.common import (
    DAY,
    SYMBOL,
    _check_exchanges,
    _check_runner,
    _console,
    _day_range,
    _guard_downloads,
    _home_line,
    _locked,
    _need_writable,
    _progress,
    _settings,
    _yesterday,
)
from flows.errors import Failure

# Deliberately lazy, as every command module: see flows/cli/__init__.py.

TODAY_HELP = "Top up the days not yet archived from the exchanges' REST endpoints."


@click.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Symbols (default 2).")
@click.option("--days", type=click.IntRange(1, 60), default=7, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--end", type=DAY, default=None, help="Last synthetic day (default yesterday).")
def demo(symbols: tuple[str, ...], days: int, seed: int, end: date | None) -> None:
    """Run the whole pipeline offline on a seeded synthetic market.

    Writes files in the exact Binance archive layout under $LIQHEAT_HOME/demo-archive-synthetic,
    ingests them through the normal code path (a file:// base URL), runs the model and the
    backtest, and renders the site. Everything it shows is labelled synthetic.
    """
    settings = _settings(prefect=True)
    from flows.server import start_early

    start_early(Path(os.environ.get("PREFECT_HOME", settings.prefect_home)))  # boots meanwhile
    from flows.prefect_runtime import run_demo

    chosen = list(symbols) or ["BTCUSDT", "ETHUSDT"]
    with _flow_progress(f"demo: {len(chosen)} symbol(s) x {days} synthetic day(s)"):
        summary = run_demo(settings, chosen, days=days, seed=seed, end=end or _yesterday())
    console = _console()
    console.print(summary.render(), markup=False)
    if not summary.ok:
        raise Failure("demo finished with problems (see above)")
    console.print(f"site:     {(settings.site_dir / 'index.html').resolve()}")
    console.print(f"database: {settings.db_path.resolve()}")
    console.print(_home_line(settings))
    console.print("(synthetic data: every page and table is labelled as such)")


#: the rows of a flow's progress display, by the stage :mod:`flows.progress` reports
_FLOW_STAGES = {
    "staged": "symbol-days staged",
    "loaded": "files loaded",
    "modelled": "symbols modelled",
    "reported": "symbols' pages built",
}


@contextlib.contextmanager
def _flow_progress(text: str) -> Iterator[None]:
    """While a flow runs: a rich progress display on stderr (the label with a spinner, then
    one bar per stage as the flow reports it: symbol-days staged, files loaded, symbols
    modelled, each done of total); nothing at all when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from flows import progress

    bars = _progress(text)
    rows: dict[str, Any] = {}

    def show(stage: str, done: int, total: int) -> None:
        if stage not in rows:
            rows[stage] = bars.add_task(_FLOW_STAGES.get(stage, stage), total=total)
        bars.update(rows[stage], completed=done, total=total)

    with bars, progress.listening(show):
        yield


def scale_options(fn: Any) -> Any:
    """--exchange (repeatable), --task-runner and --dask-address for nightly and backfill."""
    fn = click.option(
        "--dask-address",
        default=None,
        metavar="tcp://HOST:PORT",
        help="Dask scheduler for --task-runner dask (default: a temporary local cluster).",
    )(fn)
    fn = click.option(
        "--task-runner",
        type=click.Choice(["thread", "dask"]),
        default="thread",
        show_default=True,
        help="Where the per symbol-day staging tasks run.",
    )(fn)
    return click.option(
        "--exchange",
        "exchanges",
        multiple=True,
        help="Exchange to ingest (repeatable; default binance).",
    )(fn)


def _run_flow(settings: Any, label: str, call: Any) -> None:
    """Run a flow, print its summary (or one line on failure) and the home."""
    from flows.run_summary import PipelineError

    try:
        with _flow_progress(label):
            summary = call()
    except PipelineError as exc:
        raise Failure(
            f"{exc} (details: the `runs` table, the Prefect run, or LIQHEAT_DEBUG=1); "
            f"home {Path(settings.home).resolve()}"
        ) from exc
    console = _console()
    console.print(summary, markup=False)  # "[okx] ..." is not markup
    console.print(_home_line(settings))


@click.command()
@click.option(
    "--date", "day", type=DAY, default=None, help="Day to ingest (default yesterday UTC)."
)
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Default: LIQHEAT_SYMBOLS.")
@click.option("--base-url", default=None, help="Archive root (env LIQHEAT_BINANCE_BASE_URL).")
@click.option("--backfill-days", type=click.IntRange(0, 366), default=None)
@click.option("--today", is_flag=True, help=TODAY_HELP)
@scale_options
def nightly(
    day: date | None,
    symbols: tuple[str, ...],
    base_url: str | None,
    backfill_days: int | None,
    today: bool,
    exchanges: tuple[str, ...],
    task_runner: str,
    dask_address: str | None,
) -> None:
    """Ingest one day (plus gaps in the backfill window), recompute the model, rebuild the site."""
    chosen = _check_exchanges(exchanges)
    _check_runner(task_runner, dask_address)
    settings = _settings(prefect=True)
    from flows.server import start_early

    start_early(Path(os.environ.get("PREFECT_HOME", settings.prefect_home)))  # boots meanwhile
    from flows.pipeline import nightly_flow
    from flows.prefect_runtime import run_flow

    the_day = day or _yesterday()
    _run_flow(
        settings,
        f"nightly {the_day}",
        lambda: run_flow(
            settings,
            nightly_flow,
            date=the_day.isoformat(),
            symbols=list(symbols) or list(settings.symbols),
            base_url=base_url,
            backfill_days=backfill_days,
            exchanges=chosen,
            task_runner=task_runner,
            dask_address=dask_address,
            today=today,
        ),
    )


@click.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, required=True)
@click.option("--start", type=DAY, required=True)
@click.option("--end", type=DAY, required=True)
@click.option("--base-url", default=None)
@click.option("--yes", is_flag=True, help="Go ahead above LIQHEAT_MAX_DOWNLOADS files.")
@scale_options
def backfill(
    symbols: tuple[str, ...],
    start: date,
    end: date,
    base_url: str | None,
    yes: bool,
    exchanges: tuple[str, ...],
    task_runner: str,
    dask_address: str | None,
) -> None:
    """Ingest history (resumable: skips loaded days), then model and report."""
    days = _day_range(start, end)
    chosen = _check_exchanges(exchanges)
    _check_runner(task_runner, dask_address)
    _guard_downloads(_settings(), symbols, days, chosen, base_url, False, False, yes)
    settings = _settings(prefect=True)
    from flows.server import start_early

    start_early(Path(os.environ.get("PREFECT_HOME", settings.prefect_home)))  # boots meanwhile
    from flows.pipeline import backfill_flow
    from flows.prefect_runtime import run_flow

    _run_flow(
        settings,
        f"backfill: {len(symbols)} symbol(s) x {len(days)} day(s), then model and report",
        lambda: run_flow(
            settings,
            backfill_flow,
            symbols=list(symbols),
            start=start.isoformat(),
            end=end.isoformat(),
            base_url=base_url,
            exchanges=chosen,
            task_runner=task_runner,
            dask_address=dask_address,
        ),
    )


@click.command()
@click.option("--cron", default="30 8 * * *", show_default=True, help="Schedule (UTC).")
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True)
@click.option("--base-url", default=None)
@click.option("--today", is_flag=True, help=TODAY_HELP)
@scale_options
def serve(
    cron: str,
    symbols: tuple[str, ...],
    base_url: str | None,
    today: bool,
    exchanges: tuple[str, ...],
    task_runner: str,
    dask_address: str | None,
) -> None:
    """Serve the nightly flow as a Prefect deployment on a cron schedule (UTC)."""
    chosen = _check_exchanges(exchanges)
    _check_runner(task_runner, dask_address)
    settings = _settings()
    _need_writable(settings)
    from flows.settings import configure_prefect_home

    configure_prefect_home(settings)
    _check_cron(cron)  # before any server starts
    from flows.prefect_runtime import serve_nightly

    serve_nightly(
        settings,
        cron=cron,
        symbols=list(symbols) or None,
        base_url=base_url,
        exchanges=chosen if exchanges else None,
        task_runner=task_runner,
        dask_address=dask_address,
        today=today,
    )


@click.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Default: LIQHEAT_SYMBOLS.")
@click.option("--exchange", "exchanges", multiple=True, help="binance, bybit, okx (repeatable).")
@click.option("--days", type=click.IntRange(1, 7), default=2, show_default=True)
def today(symbols: tuple[str, ...], exchanges: tuple[str, ...], days: int) -> None:
    """Top up the last DAYS UTC days not yet archived from the exchanges' REST endpoints."""
    chosen = _check_exchanges(exchanges)
    settings = _settings()
    from flows.today import summary_lines, top_up

    with _locked(settings):
        results = top_up(settings, list(symbols) or list(settings.symbols), chosen, days=days)
    console = _console()
    for result in results:
        console.print(result.line(), markup=False)
    console.print(summary_lines(results)[0], markup=False)
    console.print(_home_line(settings))
    if any(r.status == "failed" for r in results):
        raise Failure("some REST pulls failed (see above); archive rows are unchanged")


def _check_cron(cron: str) -> None:
    """Validate the cron expression with Prefect's own rules before anything starts (a bad
    one is a usage error, exit 2)."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone="UTC")
    except ValidationError:
        raise click.UsageError(
            f"bad --cron {cron!r} (expected 5 fields: minute hour day month weekday, e.g. "
            '"30 8 * * *")'
        ) from None
