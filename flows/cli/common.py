"""What every ``liqheat`` command shares: the option types (symbol, day), the settings and
home checks, the pipeline lock, the console and progress bars, and the one-line usage errors
of shared options. Lazy like the commands: heavy modules load inside the helpers."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

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


def _source_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not SOURCE_RE.match(value):
        raise click.BadParameter(
            f"bad source name {value!r} (letters, digits and _.:- , at most 64)", ctx, param
        )
    return value
