"""The model commands: ``model``, ``calibrate``, ``backtest`` and ``report``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from flows.cli.common import (
    SYMBOL,
    _check_symbols,
    _console,
    _home_line,
    _locked,
    _need_warehouse,
    _need_writable,
    _progress,
    _settings,
    _source_name,
)
from flows.errors import Failure

# Deliberately lazy, as every command module: see flows/cli/__init__.py.


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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
