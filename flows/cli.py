"""The ``liqheat`` command line.

Usage errors (unknown command, bad date, end before start, malformed symbol) print one line
and exit with code 2; runtime failures print one line and exit 1. Heavy modules (Prefect,
polars, DuckDB) are imported inside the commands so ``--help`` stays fast and Prefect's home
is set before Prefect is imported.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click

from flows.errors import Failure
from flows.sources.binance.paths import SYMBOL_RE

DATE_FORMAT = "%Y-%m-%d"


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
            return datetime.strptime(str(value), DATE_FORMAT).date()
        except ValueError:
            self.fail(f"bad date {value!r} (expected YYYY-MM-DD)")


SYMBOL = SymbolType()
DAY = DateType()


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def _day_range(start: date, end: date) -> list[date]:
    if end < start:
        raise click.UsageError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _settings() -> Any:
    from flows.settings import Settings, configure_prefect_home

    settings = Settings()
    configure_prefect_home(settings)
    return settings


def _locked(settings: Any) -> Any:
    """The pipeline lock: one writing liqheat run per LIQHEAT_HOME at a time."""
    from flows.lock import pipeline_lock

    return pipeline_lock(settings.home, wait_s=settings.lock_wait_s)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="liqheat")
def cli() -> None:
    """liqheat: open, reproducible liquidation heatmaps from public exchange data.

    State lives in $LIQHEAT_HOME (default ./data): liqheat.duckdb, raw/ and site/.
    """


@cli.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Symbols (default 2).")
@click.option("--days", type=click.IntRange(1, 60), default=3, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--end", type=DAY, default=None, help="Last synthetic day (default yesterday).")
def demo(symbols: tuple[str, ...], days: int, seed: int, end: date | None) -> None:
    """Run the whole pipeline offline on a seeded synthetic market.

    Writes files in the exact Binance archive layout under $LIQHEAT_HOME/demo-archive-synthetic,
    ingests them through the normal code path (a file:// base URL), runs the model and the
    backtest, and renders the site. Everything it shows is labelled synthetic.
    """
    settings = _settings()
    from flows.server import start_early

    start_early(Path(os.environ.get("PREFECT_HOME", settings.prefect_home)))  # boots meanwhile
    from flows.pipeline import run_demo

    chosen = list(symbols) or ["BTCUSDT", "ETHUSDT"]
    summary = run_demo(settings, chosen, days=days, seed=seed, end=end or _yesterday())
    console = _console()
    console.print(summary.render())
    if not summary.ok:
        raise Failure("demo finished with problems (see above)")
    console.print(f"site:     {(settings.site_dir / 'index.html').resolve()}")
    console.print(f"database: {settings.db_path.resolve()}")
    console.print("(synthetic data: every page and table is labelled as such)")


@cli.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, required=True)
@click.option("--start", type=DAY, required=True)
@click.option("--end", type=DAY, required=True)
@click.option("--base-url", default=None, help="Archive root (env LIQHEAT_BINANCE_BASE_URL).")
@click.option("--with-trades", is_flag=True, help="Also ingest aggTrades (large).")
@click.option("--force", is_flag=True, help="Re-ingest days already loaded.")
@click.option("--exchange", default="binance", show_default=True, help="Exchange to ingest from.")
def ingest(
    symbols: tuple[str, ...],
    start: date,
    end: date,
    base_url: str | None,
    with_trades: bool,
    force: bool,
    exchange: str,
) -> None:
    """Download, verify and load archive files for symbol-days.

    Exits 0 only when everything asked for was loaded; otherwise prints what is missing or
    failed and why, and exits 1.
    """
    days = _day_range(start, end)
    _check_exchanges([exchange])
    settings = _settings()
    with _locked(settings):
        if exchange == "binance":
            from flows.steps import run_ingest

            report = run_ingest(
                settings,
                list(symbols),
                days,
                base_url=base_url,
                with_trades=with_trades,
                force=force,
            )
        else:
            from flows.ingest import ingest as run
            from flows.sources.registry import get_source

            report = run(
                settings.db_path,
                settings.raw_dir,
                base_url or "",
                list(symbols),
                days,
                with_trades=with_trades,
                force=force,
                source=get_source(exchange, settings, base_url=base_url),
            )
    _finish_ingest(
        report, base_url or (settings.binance_base_url if exchange == "binance" else exchange)
    )


def _finish_ingest(report: Any, base_url: str) -> None:
    console = _console()
    console.print(report.summary())
    if report.exit_code != 0:
        if report.unreachable:
            raise Failure(
                f"cannot reach the archive at {base_url}; check the network or "
                "try `liqheat demo` for offline data"
            )
        console.print(report.problems_table())
        raise Failure("some files are missing or failed (see the table above)")


@cli.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Default: all loaded.")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="History to model.")
@click.option(
    "--profile",
    default=None,
    help="Calibrated profile (see `liqheat calibrate`); default LIQHEAT_MODEL_PROFILE or defaults.",
)
def model(symbols: tuple[str, ...], days: int | None, profile: str | None) -> None:
    """Recompute liquidation levels, heatmap, map, key levels and backtest from the warehouse."""
    settings = _settings()
    from flows.calibration import CalibrationError, profile_params
    from flows.steps import run_models

    try:
        params = profile_params(settings, profile) if profile else None
    except CalibrationError as exc:
        raise Failure(str(exc)) from exc
    with _locked(settings):
        results = run_models(settings, list(symbols) or None, days=days, params=params)
    console = _console()
    for line in results:
        console.print(line)


class _RangeType(click.ParamType):  # type: ignore[type-arg]
    """A site range: 12h, 24h, 3d, 7d, 30d, 90d, 180d, 1y (or a number of days)."""

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
    help="Fit on one per-bar CSV: time, OHLC, optional volume, OI USD, realized long/short USD "
    "(column names: see docs/model.md).",
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
    from flows.calibration import (
        CalibrationError,
        read_calibration_csv,
        run_calibration,
        warehouse_input,
    )

    try:
        if csv_file is not None:
            data = read_calibration_csv(csv_file)
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
    from flows.steps import run_report

    with _locked(settings):
        result = run_report(settings, list(symbols) or None, days=list(ranges) or None, force=force)
    console = _console()
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(
        f"wrote {len(result.pages)} pages ({len(result.kept)} unchanged kept); "
        f"open {result.index.resolve()}",
        markup=False,
        highlight=False,
    )
    if result.failures:
        for symbol, error in result.failures:
            click.echo(f"error: report for {symbol} failed: {error}", err=True)
        raise SystemExit(1)


def _check_exchanges(exchanges: Sequence[str]) -> list[str]:
    from flows.sources.registry import EXCHANGES

    for name in exchanges:
        if name not in EXCHANGES:
            known = ", ".join(sorted(EXCHANGES))
            raise click.UsageError(f"unknown exchange {name!r} (expected one of {known})")
    return list(dict.fromkeys(exchanges)) or ["binance"]


def _check_runner(task_runner: str, dask_address: str | None) -> None:
    if dask_address is not None and task_runner != "dask":
        raise click.UsageError("--dask-address needs --task-runner dask")
    if dask_address is not None and not dask_address.startswith(("tcp://", "tls://")):
        raise click.UsageError(f"bad --dask-address {dask_address!r} (expected tcp://HOST:PORT)")


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


@cli.command()
@click.option(
    "--date", "day", type=DAY, default=None, help="Day to ingest (default yesterday UTC)."
)
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, help="Default: LIQHEAT_SYMBOLS.")
@click.option("--base-url", default=None, help="Archive root (env LIQHEAT_BINANCE_BASE_URL).")
@click.option("--backfill-days", type=click.IntRange(0, 366), default=None)
@scale_options
def nightly(
    day: date | None,
    symbols: tuple[str, ...],
    base_url: str | None,
    backfill_days: int | None,
    exchanges: tuple[str, ...],
    task_runner: str,
    dask_address: str | None,
) -> None:
    """Ingest one day (plus gaps in the backfill window), recompute the model, rebuild the site."""
    chosen = _check_exchanges(exchanges)
    _check_runner(task_runner, dask_address)
    settings = _settings()
    from flows.server import start_early

    start_early(Path(os.environ.get("PREFECT_HOME", settings.prefect_home)))  # boots meanwhile
    from flows.pipeline import nightly_flow, run_flow

    summary = run_flow(
        settings,
        nightly_flow,
        date=(day or _yesterday()).isoformat(),
        symbols=list(symbols) or list(settings.symbols),
        base_url=base_url,
        backfill_days=backfill_days,
        exchanges=chosen,
        task_runner=task_runner,
        dask_address=dask_address,
    )
    _console().print(summary, markup=False)  # "[okx] ..." is not markup


@cli.command()
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True, required=True)
@click.option("--start", type=DAY, required=True)
@click.option("--end", type=DAY, required=True)
@click.option("--base-url", default=None)
@scale_options
def backfill(
    symbols: tuple[str, ...],
    start: date,
    end: date,
    base_url: str | None,
    exchanges: tuple[str, ...],
    task_runner: str,
    dask_address: str | None,
) -> None:
    """Ingest history (resumable: skips loaded days), then model and report."""
    _day_range(start, end)
    chosen = _check_exchanges(exchanges)
    _check_runner(task_runner, dask_address)
    settings = _settings()
    from flows.server import start_early

    start_early(Path(os.environ.get("PREFECT_HOME", settings.prefect_home)))  # boots meanwhile
    from flows.pipeline import backfill_flow, run_flow

    summary = run_flow(
        settings,
        backfill_flow,
        symbols=list(symbols),
        start=start.isoformat(),
        end=end.isoformat(),
        base_url=base_url,
        exchanges=chosen,
        task_runner=task_runner,
        dask_address=dask_address,
    )
    _console().print(summary, markup=False)


@cli.command()
@click.argument("query", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table"
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def sql(query: str | None, fmt: str, output: Path | None) -> None:
    """Run a read-only SQL query (no QUERY: interactive prompt)."""
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs --output FILE")
    settings = _settings()
    from warehouse import sql as wsql

    console = _console()
    if query is None:
        wsql.interactive(settings.db_path, console)
        return
    code = wsql.run_sql(settings.db_path, query, fmt=fmt, output=output, console=console)
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
    from warehouse.export import export_parquet

    files = export_parquet(settings.db_path, out_dir, symbol=symbol, start=start, end=end)
    _console().print(f"wrote {len(files)} files under {out_dir}")


@cli.command()
@click.option("--symbol", type=SYMBOL, required=True)
@click.option(
    "--realized",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV: per-bar ts,long_usd,short_usd or per-event ts,side,usd.",
)
@click.option("--exchange", default="binance", show_default=True)
def backtest(symbol: str, realized: Path, exchange: str) -> None:
    """Score the model against realized liquidations, next to the baseline."""
    settings = _settings()
    from flows.steps import run_backtest

    with _locked(settings):
        table = run_backtest(settings, symbol, realized, exchange=exchange)
    _console().print(table)


@cli.command()
@click.option("--cron", default="30 8 * * *", show_default=True, help="Schedule (UTC).")
@click.option("--symbol", "symbols", type=SYMBOL, multiple=True)
@click.option("--base-url", default=None)
@scale_options
def serve(
    cron: str,
    symbols: tuple[str, ...],
    base_url: str | None,
    exchanges: tuple[str, ...],
    task_runner: str,
    dask_address: str | None,
) -> None:
    """Serve the nightly flow as a Prefect deployment on a cron schedule (UTC)."""
    chosen = _check_exchanges(exchanges)
    _check_runner(task_runner, dask_address)
    settings = _settings()
    from flows.pipeline import serve_nightly

    serve_nightly(
        settings,
        cron=cron,
        symbols=list(symbols) or None,
        base_url=base_url,
        exchanges=chosen if exchanges else None,
        task_runner=task_runner,
        dask_address=dask_address,
    )


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
        _fail(str(exc), 1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("LIQHEAT_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"{type(exc).__name__}: {first} (set LIQHEAT_DEBUG=1 for the traceback)", 1)


if __name__ == "__main__":
    main()
