"""The data commands: ``ingest``, ``import``, ``export``, ``sql``, ``realized list|remove`` and
``doctor``."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from flows.cli.common import (
    DAY,
    SYMBOL,
    _check_exchanges,
    _check_symbols,
    _console,
    _day_range,
    _guard_downloads,
    _home_line,
    _locked,
    _need_warehouse,
    _settings,
    _source_name,
)
from flows.errors import Failure

# Deliberately lazy, as every command module: see flows/cli/__init__.py.


@click.command()
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


@click.command("import")
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


@click.command()
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


@click.command()
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


@click.group()
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


@click.command()
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
