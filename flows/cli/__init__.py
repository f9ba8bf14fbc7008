"""The ``liqheat`` command line.

Usage errors (unknown command, bad date, end before start, malformed symbol, bad cron)
print one line and exit with code 2; runtime failures print one line and exit 1; every
error line starts with ``liqheat: error:``. Heavy modules (Prefect, polars, DuckDB) are
imported inside the commands so ``--help`` stays fast and Prefect's home is set before
Prefect is imported.

Read-only commands (``sql``, ``export``, ``model``, ``report``, ``backtest``, ``realized
list``) never create state: without a warehouse they say where they looked and how to set
``LIQHEAT_HOME``. ``--help`` and every summary show the resolved home.

The commands live by group in ``flows/cli/``: ``pipeline_commands`` (demo, nightly, backfill,
serve, today), ``data_commands`` (ingest, import, export, sql, realized, doctor),
``model_commands`` (model, calibrate, backtest, report); ``common`` holds what they share.
This module holds the group :func:`cli` and the entry point :func:`main`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click

from flows.cli import data_commands, model_commands, pipeline_commands
from flows.cli.common import resolved_home
from flows.errors import Failure

# Deliberately lazy: each command imports the modules it runs inside its body (Prefect, DuckDB
# and rich behind them), so --help and usage errors never pay for them.


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


for _command in (
    pipeline_commands.demo,
    pipeline_commands.nightly,
    pipeline_commands.backfill,
    pipeline_commands.serve,
    pipeline_commands.today,
    data_commands.ingest,
    data_commands.import_,
    data_commands.export,
    data_commands.sql,
    data_commands.realized,
    data_commands.doctor,
    model_commands.model,
    model_commands.calibrate,
    model_commands.backtest,
    model_commands.report,
):
    cli.add_command(_command)


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
