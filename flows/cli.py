"""The ``liqheat`` command line.

Usage errors (unknown command, bad date, end before start, malformed symbol, bad cron)
print one line and exit with code 2; runtime failures print one line and exit 1; every
error line starts with ``liqheat: error:``. Heavy modules (Prefect, polars, DuckDB) are
imported inside the commands so ``--help`` stays fast and Prefect's home is set before
Prefect is imported.

Read-only commands (``sql``, ``export``, ``model``, ``report``, ``backtest``, ``realized
list``) never create state: without a warehouse they say where they looked and how to set
``LIQHEAT_HOME``. ``--help`` and every summary show the resolved home.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click

from flows.errors import Failure
from flows.options import check_exchanges, check_task_runner
from flows.sources.binance.paths import SYMBOL_RE

# Deliberately lazy: each command imports the modules it runs inside its body (Prefect, DuckDB
# and rich behind them), so --help and usage errors never pay for them.

DATE_FORMAT = "%Y-%m-%d"
#: the days any command accepts (exchange data starts long after; epoch-ms must fit)
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(2999, 12, 31)
SOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class SymbolType(click.ParamType[str, Any]):
    """An exchange symbol such as BTCUSDT (upper-cased; letters and digits)."""

    name = "SYMBOL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().upper()
        if not SYMBOL_RE.match(text):
            self.fail(f"malformed symbol {value!r} (expected letters and digits, e.g. BTCUSDT)")
        return text


class DateType(click.ParamType[date, Any]):
    """A calendar day in ISO form, YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            day = datetime.strptime(str(value), DATE_FORMAT).date()
        except ValueError:
            self.fail(f"bad date {value!r} (expected YYYY-MM-DD)")
        if not FIRST_DAY <= day <= LAST_DAY:
            self.fail(f"date {value!r} is out of range (expected {FIRST_DAY} .. {LAST_DAY})")
        return day


SYMBOL = SymbolType()
DAY = DateType()


TODAY_HELP = "Top up the days not yet archived from the exchanges' REST endpoints."


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def _day_range(start: date, end: date) -> list[date]:
    if end < start:
        raise click.UsageError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _settings(*, prefect: bool = False) -> Any:
    """The settings; ``prefect=True`` (flow commands) also sets up Prefect's home and, unless
    ``LIQHEAT_DEBUG`` is set, keeps Prefect's log lines off the terminal (they stay in the
    Prefect run): the command prints its own summary, and one line on failure."""
    from flows.settings import Settings, configure_prefect_home

    settings = Settings()
    if prefect:
        _need_writable(settings)
        configure_prefect_home(settings)
        if not os.environ.get("LIQHEAT_DEBUG"):
            os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    return settings


def resolved_home() -> Path:
    """``$LIQHEAT_HOME`` (default ./data) as an absolute path, without creating it."""
    return Path(os.environ.get("LIQHEAT_HOME") or "./data").expanduser().resolve()


def _home_line(settings: Any) -> str:
    return f"home:     {Path(settings.home).resolve()}"


def _need_warehouse(settings: Any) -> None:
    """Read-only commands need an existing warehouse; never create one."""
    from warehouse.db import NoWarehouseError, no_warehouse_message

    if not settings.db_path.exists():
        raise NoWarehouseError(no_warehouse_message(settings.db_path))


def _check_symbols(settings: Any, symbols: Sequence[str]) -> None:
    """One rule for every command: a symbol the warehouse does not have is exit 1, one line,
    listing the symbols it has."""
    if not symbols:
        return
    from warehouse.reads import query

    frame = query(
        settings.db_path,
        "SELECT DISTINCT symbol FROM klines UNION SELECT DISTINCT symbol FROM model_runs "
        "ORDER BY 1",
    )
    known = [str(s) for s in frame["symbol"].to_list()]
    unknown = [s for s in symbols if s not in known]
    if unknown:
        has = ", ".join(known) if known else "no symbols yet"
        raise Failure(
            f"unknown symbol {unknown[0]}: the warehouse at {settings.db_path.resolve()} has {has}"
        )


def _progress(label: str) -> Any:
    """A rich progress bar on stderr, quiet when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
        transient=True,
    )


def _need_writable(settings: Any) -> None:
    """A writing command on a home it cannot write: one line naming the folder, before any
    work (see :mod:`flows.homecheck`)."""
    from flows.homecheck import home_write_problem, read_only_home_message

    problem = home_write_problem(Path(settings.home))
    if problem is not None:
        ctx = click.get_current_context(silent=True)
        name = ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip() if ctx else ""
        raise Failure(read_only_home_message(Path(settings.home), name or "run", problem))


def _locked(settings: Any) -> Any:
    """The pipeline lock: one writing liqheat run per LIQHEAT_HOME at a time."""
    from flows.lock import pipeline_lock

    _need_writable(settings)
    return pipeline_lock(settings.home, wait_s=settings.lock_wait_s)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=True)


class _Group(click.Group):
    """The top-level group: its help shows where the state lives (the resolved home)."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        origin = "LIQHEAT_HOME" if os.environ.get("LIQHEAT_HOME") else "default ./data"
        with formatter.section("Home"):  # one line, never wrapped: it is a path to copy
            formatter.write(f"  {resolved_home()} ({origin}; set LIQHEAT_HOME to change)\n")


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="liqheat")
def cli() -> None:
    """liqheat: open, reproducible liquidation heatmaps from public exchange data.

    State lives in $LIQHEAT_HOME (default ./data): liqheat.duckdb, raw/ and site/.
    """


@cli.command()
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


@cli.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, required=True)
@click.option("--start", type=DAY, required=True)
@click.option("--end", type=DAY, required=True)
@click.option("--base-url", default=None, help="Archive root (env LIQHEAT_BINANCE_BASE_URL).")
@click.option("--with-trades", is_flag=True, help="Also ingest aggTrades (large).")
@click.option("--force", is_flag=True, help="Re-ingest days already loaded.")
@click.option(
    "--exchange",
    "exchanges",
    multiple=True,
    help="Exchange to ingest from (repeatable; default binance).",
)
@click.option("--yes", is_flag=True, help="Go ahead above LIQHEAT_MAX_DOWNLOADS files.")
def ingest(
    symbols: tuple[str, ...],
    start: date,
    end: date,
    base_url: str | None,
    with_trades: bool,
    force: bool,
    exchanges: tuple[str, ...],
    yes: bool,
) -> None:
    """Download, verify and load archive files for symbol-days.

    Exits 0 only when everything asked for was loaded; otherwise prints what is missing or
    failed and why, and exits 1. With several --exchange, --base-url is Binance's root.
    """
    days = _day_range(start, end)
    chosen = _check_exchanges(exchanges)
    settings = _settings()
    _guard_downloads(settings, symbols, days, chosen, base_url, with_trades, force, yes)
    from flows.ingest import IngestReport

    outcomes: list[Any] = []
    urls: list[str] = []
    with _locked(settings):
        for exchange in chosen:
            url = base_url if exchange == "binance" or len(chosen) == 1 else None
            from flows.ingest import run_ingest

            report = run_ingest(
                settings,
                list(symbols),
                days,
                exchange=exchange,
                base_url=url,
                with_trades=with_trades,
                force=force,
            )
            urls.append(url or (settings.binance_base_url if exchange == "binance" else exchange))
            outcomes += report.outcomes
    _finish_ingest(IngestReport(tuple(outcomes)), ", ".join(urls), settings)


def _guard_downloads(settings: Any, *plan_args: Any) -> None:
    """Above LIQHEAT_MAX_DOWNLOADS files: print the plan; without --yes exit 2 (flows.guards)."""
    from flows.guards import check_download_plan, download_plan

    symbols, days, exchanges, base_url, with_trades, force, yes = plan_args
    plan = download_plan(
        settings, list(symbols), days, exchanges,
        base_url=base_url, with_trades=with_trades, force=force,
    )  # fmt: skip
    console = _console()
    check_download_plan(plan, settings, yes=yes, echo=lambda s: console.print(s, markup=False))


def _finish_ingest(report: Any, base_url: str, settings: Any) -> None:
    console = _console()
    console.print(report.summary())
    console.print(_home_line(settings))
    if report.exit_code != 0:
        if report.unreachable:
            raise Failure(
                f"cannot reach the archive at {base_url}; check the network or "
                "try `liqheat demo` for offline data"
            )
        console.print(report.problems_table())
        raise Failure("some files are missing or failed (see the table above)")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--exchange", required=True, help="Any name for the data's venue or source.")
@click.option("--symbol", type=SYMBOL, required=True)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="ROLE=COLUMN,...",
    help="Column overrides, e.g. ts=open_time_ms,oi_usd=oi (roles: docs/importing.md).",
)
@click.option(
    "--oi-at",
    type=click.Choice(["open", "close"]),
    default="open",
    show_default=True,
    help="Whether the file's open interest is sampled at the bar's open or its close.",
)
def import_(file: Path, exchange: str, symbol: str, maps: tuple[str, ...], oi_at: str) -> None:
    """Import a per-bar CSV or Parquet file (price, open interest, optional mark price,
    funding, ratios, realized liquidations) for one exchange name and symbol.

    The bar size (1m .. 1d) is detected from the times; gaps and duplicates are reported; a
    bad value stops the import naming its rows (exit 2). Importing again replaces.
    """
    from flows.importing import run_import

    settings = _settings()
    with _locked(settings):
        lines = run_import(settings, file, exchange=exchange, symbol=symbol, maps=maps, oi_at=oi_at)
    console = _console()
    for line in lines:
        console.print(line, markup=False, highlight=False)
    console.print(_home_line(settings))


@cli.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Default: all loaded.")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="History to model.")
@click.option(
    "--profile",
    default=None,
    help="Calibrated profile (see `liqheat calibrate`); default LIQHEAT_MODEL_PROFILE or defaults.",
)
def model(symbols: tuple[str, ...], days: int | None, profile: str | None) -> None:
    """Recompute liquidation levels, heatmap, map, key levels and backtest from the warehouse:
    every exchange with data for each symbol, then their sum (exchange "all"), as the nightly
    flow does."""
    settings = _settings()
    _need_warehouse(settings)
    _check_symbols(settings, symbols)
    from flows.calibration import CalibrationError, profile_params
    from flows.model_route import model_plan, outcome_line, run_model_plan, short_day_lines
    from warehouse.reads import symbols_loaded

    try:
        params = profile_params(settings, profile) if profile else None
    except CalibrationError as exc:
        raise Failure(str(exc)) from exc
    console = _console()
    failed: list[str] = []
    with _locked(settings):
        chosen = list(symbols) or symbols_loaded(settings.db_path)
        if not chosen:
            lines = [
                "no symbols in the warehouse yet: run `liqheat ingest`, `liqheat import` or "
                "`liqheat demo`"
            ]
        else:
            plan = model_plan(settings, chosen)
            with _progress("model") as bar:
                task = bar.add_task("", total=plan.steps)

                def done(outcome: Any) -> None:
                    bar.update(task, description=f"{outcome.exchange} {outcome.symbol}")
                    bar.advance(task)

                outcomes = run_model_plan(settings, plan, days=days, params=params, on_done=done)
            lines = []
            for o in outcomes:  # with a note on days loaded incomplete (short archive files)
                lines.append(outcome_line(o))
                if o.summary is not None and o.summary.bars and o.exchange != "all":
                    lines += short_day_lines(settings, o.symbol, o.exchange, days)
            failed = [f"{o.exchange} {o.symbol}" for o in outcomes if o.error is not None]
    for line in lines:
        console.print(line, markup=False)
    console.print(_home_line(settings))
    if failed:
        raise Failure(f"the model failed for {', '.join(failed)} (see above)")


class _RangeType(click.ParamType):  # type: ignore[type-arg]
    """A site range: 12h, 24h, 3d, 7d, 30d, 90d, 180d, 1y (a bare number is a number of days
    and must be one of them: 3 = 3d; 5 is refused)."""

    name = "RANGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from reports.ranges import parse_range

        try:
            return parse_range(str(value)).key
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@cli.command()
@click.option("--symbol", type=SYMBOL, default=None, help="Fit on this symbol's warehouse data.")
@click.option(
    "--file",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Fit on one per-bar CSV or Parquet file: time, OHLC, optional volume, OI USD, realized "
    "long/short USD (accepted column names: docs/importing.md; an error lists them).",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="ROLE=COLUMN,...",
    help="With --file: column overrides, e.g. ts=time,oi_usd=oi (as for `liqheat import`).",
)
@click.option("--exchange", default="binance", show_default=True, help="With --symbol.")
@click.option("--days", type=click.IntRange(2, 3650), default=None, help="With --symbol.")
@click.option("--name", default=None, help="Profile name (default: the symbol or file stem).")
@click.option(
    "--train-share",
    type=click.FloatRange(0.1, 0.9),
    default=0.7,
    show_default=True,
    help="Share of the history (in time order) to fit on; the rest is held back.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Search order seed.")
@click.option("--no-store", is_flag=True, help="Print the table without storing a profile.")
def calibrate(
    symbol: str | None,
    csv_file: Path | None,
    maps: tuple[str, ...],
    exchange: str,
    days: int | None,
    name: str | None,
    train_share: float,
    seed: int,
    no_store: bool,
) -> None:
    """Fit the model's free parameters on the first part of a realized history and score the
    held-back last part (time split), model vs defaults vs baseline; store a named profile."""
    if (symbol is None) == (csv_file is None):
        raise click.UsageError("give exactly one of --symbol or --file")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise click.UsageError(f"bad --name {name!r} (letters, digits, _ . -; up to 64)")
    settings = _settings()
    _need_writable(settings)
    from flows.calibration import (
        CalibrationError,
        read_calibration_csv,
        run_calibration,
        warehouse_input,
    )

    try:
        if csv_file is not None:
            from transforms.importing import ImportDataError, parse_mapping

            try:
                mapping = parse_mapping(maps)
            except ImportDataError as exc:
                raise click.UsageError(str(exc)) from exc
            data = read_calibration_csv(csv_file, mapping)
            default_name = re.sub(r"[^A-Za-z0-9_.-]", "_", csv_file.stem)[:64]
        else:
            assert symbol is not None
            data = warehouse_input(settings, symbol, exchange, days)
            default_name = symbol
        console = _console()
        console.print(f"calibrating on {data.fitted_on} ({data.bars.height} bars) ...")
        with _locked(settings):
            table, lines = run_calibration(
                settings,
                data,
                name=None if no_store else (name or default_name),
                train_share=train_share,
                seed=seed,
                store=not no_store,
            )
    except CalibrationError as exc:
        raise Failure(str(exc)) from exc
    console.print(table)
    for line in lines:
        console.print(line)


@cli.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Default: all symbols.")
@click.option(
    "--days",
    "ranges",
    type=_RangeType(),
    multiple=True,
    help="Only these ranges (repeatable): 12h, 24h, 3d, 7d, 30d, 90d, 180d, 1y. "
    "Default: every range the data covers.",
)
@click.option("--force", is_flag=True, help="Rebuild pages whose inputs did not change.")
def report(symbols: tuple[str, ...], ranges: tuple[str, ...], force: bool) -> None:
    """Rebuild the static site from the warehouse (does not touch the data)."""
    settings = _settings()
    _need_warehouse(settings)
    _check_symbols(settings, symbols)
    from flows.reporting import run_report

    with _locked(settings), _progress("report") as bar:
        task = bar.add_task("symbols", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = run_report(
            settings,
            list(symbols) or None,
            days=list(ranges) or None,
            force=force,
            progress=step,
        )
    console = _console()
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    n = len(result.pages)
    console.print(
        f"wrote {n} page{'' if n == 1 else 's'} ({len(result.kept)} unchanged kept); "
        f"open {result.index.resolve()}",
        markup=False,
        highlight=False,
    )
    console.print(_home_line(settings))
    if result.failures:
        for symbol, error in result.failures:
            click.echo(f"error: report for {symbol} failed: {error}", err=True)
        raise SystemExit(1)


def _check_exchanges(exchanges: Sequence[str]) -> list[str]:
    try:
        return check_exchanges(exchanges)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _check_runner(task_runner: str, dask_address: str | None) -> None:
    try:
        check_task_runner(task_runner, dask_address)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


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


@cli.command()
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


@cli.command()
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


@cli.command()
@click.argument("query", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--allow-files",
    is_flag=True,
    help="Let queries read files other than the warehouse (read_csv, read_parquet, ...).",
)
def sql(query: str | None, fmt: str, output: Path | None, allow_files: bool) -> None:
    """Run a read-only SQL query (no QUERY: interactive prompt).

    Only queries run (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN, SUMMARIZE); QUERY may also be a
    dot-command: .tables, .schema TABLE. Queries read the warehouse and nothing else unless
    --allow-files; nothing can write except --output.
    """
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs --output FILE")
    settings = _settings()
    _need_warehouse(settings)
    from warehouse import sql as wsql

    console = _console()
    if query is None:
        wsql.interactive(settings.db_path, console, allow_files=allow_files)
        return
    code = wsql.run_sql(
        settings.db_path, query, fmt=fmt, output=output, console=console, allow_files=allow_files
    )
    if code:
        sys.exit(code)


@cli.command()
@click.option("--symbol", type=SYMBOL, required=True)
@click.option("--start", type=DAY, required=True)
@click.option("--end", type=DAY, required=True)
@click.option("--to", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def export(symbol: str, start: date, end: date, out_dir: Path) -> None:
    """Export tables as hive-partitioned Parquet (exchange/symbol/day)."""
    _day_range(start, end)
    settings = _settings()
    _need_warehouse(settings)
    _check_symbols(settings, [symbol])
    from warehouse.export import export_parquet

    files = export_parquet(settings.db_path, out_dir, symbol=symbol, start=start, end=end)
    console = _console()
    console.print(f"wrote {len(files)} files under {out_dir}")
    console.print(_home_line(settings))


def _source_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not SOURCE_RE.match(value):
        raise click.BadParameter(
            f"bad source name {value!r} (letters, digits and _.:- , at most 64)", ctx, param
        )
    return value


@cli.command()
@click.option("--symbol", type=SYMBOL, default=None, help="With --realized.")
@click.option(
    "--realized",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV: per-bar ts,long_usd,short_usd or per-event ts,side,usd (scored against the "
    "symbol's warehouse bars).",
)
@click.option(
    "--file",
    "bars_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Score a per-bar CSV on its own (time, OHLC, optional volume/funding, OI USD, optional "
    "realized long/short USD; column mapping: docs/model.md). No warehouse needed.",
)
@click.option(
    "--coverage",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="With --file: share of the OI's market the realized feed covers (default: from the "
    "column mapping, 0.12 for all-exchange OI with Binance realized, else 1).",
)
@click.option(
    "--step",
    "step_hours",
    type=click.IntRange(1, 24),
    default=4,
    show_default=True,
    help="With --file: hours between where-score decision times.",
)
@click.option("--exchange", default="binance", show_default=True)
@click.option(
    "--store",
    "store",
    default=None,
    metavar="SOURCE",
    callback=_source_name,
    help="Also keep the file's events under this source name (a later --store of the same "
    "name replaces them); the model's stored backtest then scores every stored source.",
)
def backtest(
    symbol: str | None,
    realized: Path | None,
    bars_file: Path | None,
    coverage: float | None,
    step_hours: int,
    exchange: str,
    store: str | None,
) -> None:
    """Score the model: against the realized liquidations in --realized FILE (with --symbol's
    warehouse bars), or a whole per-bar CSV with --file (per-bar scores when it has realized
    columns, where-scores always).

    Nothing is stored unless --store SOURCE; see `liqheat realized list` for stored sources.
    """
    if bars_file is not None:
        if symbol is not None or realized is not None or store is not None:
            raise click.UsageError("--file scores the file alone: no --symbol/--realized/--store")
        _backtest_file(bars_file, coverage, step_hours)
        return
    if symbol is None or realized is None:
        raise click.UsageError("give --symbol and --realized, or --file")
    if coverage is not None:
        raise click.UsageError("--coverage goes with --file")
    settings = _settings()
    _need_warehouse(settings)
    _check_symbols(settings, [symbol])
    from flows.realized import backtest_file, scores_table

    with _locked(settings):
        result = backtest_file(settings, symbol, realized, exchange=exchange, store=store)
    console = _console()
    console.print(scores_table(result))
    for line in result.notes:
        console.print(line, markup=False)
    console.print(_home_line(settings))


def _backtest_file(path: Path, coverage: float | None, step_hours: int) -> None:
    from flows.calibration import CalibrationError
    from flows.file_scores import file_score_lines, score_file

    try:
        result = score_file(path, coverage=coverage, step_hours=float(step_hours))
    except CalibrationError as exc:
        raise Failure(str(exc)) from exc
    console = _console()
    for line in file_score_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@cli.group()
def realized() -> None:
    """Stored realized liquidations, by source: list them, remove one."""


@realized.command("list")
def realized_list() -> None:
    """List the stored realized-liquidation sources per exchange and symbol."""
    settings = _settings()
    _need_warehouse(settings)
    from flows.realized import sources_table, stored_sources

    frame = stored_sources(settings.db_path)
    console = _console()
    if frame.height:
        console.print(sources_table(frame))
    else:
        console.print("no realized liquidations stored")
    console.print(_home_line(settings))


@realized.command("remove")
@click.argument("source", callback=_source_name)
@click.option("--symbol", type=SYMBOL, default=None, help="Only this symbol.")
@click.option("--exchange", default=None, help="Only this exchange.")
def realized_remove(source: str, symbol: str | None, exchange: str | None) -> None:
    """Remove every stored realized liquidation of SOURCE (optionally one symbol/exchange)."""
    settings = _settings()
    _need_warehouse(settings)
    from flows.realized import remove_source

    with _locked(settings):
        removed = remove_source(settings.db_path, source, symbol=symbol, exchange=exchange)
    console = _console()
    console.print(
        f"removed {removed:,} realized liquidation(s) of source {source}; "
        "run `liqheat model` to rescore the backtest",
        markup=False,
    )
    console.print(_home_line(settings))


@cli.command()
def doctor() -> None:
    """Check the warehouse (every block read and verified), clean leftovers, report.

    Exits 1 when a problem remains (e.g. a corrupt database to restore or remove).
    """
    settings = _settings()
    from flows.leftovers import clean_leftovers, describe, find_leftovers
    from flows.lock import PipelineLockedError, pipeline_lock
    from warehouse.doctor import Finding, check_database

    home = Path(settings.home)
    console = _console()
    console.print(_home_line(settings))
    findings: list[Finding] = []
    if not home.is_dir():
        findings.append(Finding("ok", f"no liqheat home at {home.resolve()} yet"))
    else:
        try:
            with pipeline_lock(home, wait_s=0, clean=False):
                removed = clean_leftovers(home)
                findings += check_database(settings.db_path)
        except OSError as exc:  # a read-only home: check the warehouse as it is
            findings.append(
                Finding("ok", f"home not writable ({exc.strerror}): leftovers not cleaned")
            )
            removed = []
            findings += check_database(settings.db_path)
        except PipelineLockedError as exc:
            left = list(find_leftovers(home))
            findings.append(Finding("ok", f"a run is active, leftovers not cleaned: {exc}"))
            if left:
                findings.append(Finding("ok", f"{len(left)} leftover(s) wait for cleanup"))
            removed = []
            findings += check_database(settings.db_path)
        findings.insert(
            0,
            Finding("fixed", describe(removed))
            if removed
            else Finding("ok", "no leftovers of interrupted runs"),
        )
    for finding in findings:
        console.print(finding.line(), markup=False)
    problems = [f for f in findings if f.status == "problem"]
    if problems:
        raise Failure(f"doctor found {len(problems)} problem(s) (see above)")


@cli.command()
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


@cli.command()
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


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"liqheat: error: {message}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``liqheat`` console script."""
    from flows.lock import PipelineLockedError
    from warehouse.db import WarehouseError

    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except click.Abort:
        _fail("aborted", 130)
    except (Failure, WarehouseError, PipelineLockedError, ValueError) as exc:
        _fail(str(exc), int(getattr(exc, "exit_code", 1)))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        from warehouse.db import is_no_space, no_space_message

        if os.environ.get("LIQHEAT_DEBUG"):
            raise
        if is_no_space(exc):
            where = getattr(exc, "filename", None) or resolved_home()
            _fail(no_space_message(Path(str(where))), 1)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"{type(exc).__name__}: {first} (set LIQHEAT_DEBUG=1 for the traceback)", 1)


if __name__ == "__main__":
    main()
