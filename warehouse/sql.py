"""Ad-hoc, read-only SQL against the warehouse: ``liqheat sql``.

:func:`run_sql` runs one or more statements on a read-only connection and prints the
results as a table (or writes CSV / JSON / Parquet). Every failure is one line and an exit
code of 1, never a traceback: statements that could write are refused before anything is
opened, SQL errors print DuckDB's own message, and a database held by the nightly writer is
waited for (a few seconds) and then reported as busy. :func:`interactive` is a small prompt
on top of it.

Read-only is enforced three ways. (1) DuckDB's own parser (``duckdb.extract_statements``)
classifies every statement and only queries pass: SELECT (which covers WITH, FROM-first,
VALUES, DESCRIBE, SHOW, SUMMARIZE, PIVOT with an IN list) and EXPLAIN of such a query;
SET, PRAGMA, CALL, COPY, ATTACH, INSTALL, LOAD, ... are refused before anything is opened.
(2) The connection
is read-only and its configuration is locked (``lock_configuration``), so a query cannot
switch on query logging, profiling output or file logging (``SELECT * FROM
enable_logging(...)`` is a query). (3) External access is off (``enable_external_access =
false``): a query reads the warehouse and nothing else, and writes only the ``--output``
file it was given; ``allow_files=True`` (``--allow-files``) lets queries read other files.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from warehouse.db import (
    DatabaseBusyError,
    NoWarehouseError,
    WarehouseError,
    no_warehouse_message,
    read_connection,
)

#: output formats of :func:`run_sql`
FORMATS = ("table", "csv", "json", "parquet")
#: statement kinds that only read (EXPLAIN only when what it explains is a SELECT)
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
#: what the refusal message lists as allowed
ALLOWED_TEXT = "SELECT, WITH, DESCRIBE, SHOW, EXPLAIN, SUMMARIZE and the dot-commands"
#: the prefix of every error line (the same as the CLI's)
ERROR_PREFIX = "liqheat: error: "
#: rows printed by the table format before the output is cut
DEFAULT_MAX_ROWS = 200
#: seconds a reader waits for the nightly writer before reporting "database is busy"
DEFAULT_WAIT_S = 5.0

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPLAIN_RE = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)
_NUMERIC_PREFIXES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)


class SqlRefusedError(WarehouseError):
    """A statement that could write was given to the read-only ``sql`` command."""


def one_line(exc: BaseException) -> str:
    """Return an exception's message on one line (DuckDB's caret context dropped).

    Examples
    --------
    >>> one_line(ValueError('Catalog Error: no table\\nDid you mean "x"?\\n\\nLINE 1: ...'))
    'Catalog Error: no table Did you mean "x"?'
    """
    lines: list[str] = []
    for line in str(exc).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines) or type(exc).__name__


def read_statements(query: str) -> list[tuple[duckdb.StatementType, str]]:
    """Split ``query`` into statements, refusing any that could write.

    Raises :class:`SqlRefusedError` (one-line message) for a non-read statement and
    ``duckdb.Error`` for a syntax error.

    Examples
    --------
    >>> [text for _, text in read_statements("SELECT 1; SELECT 2")]
    ['SELECT 1', 'SELECT 2']
    >>> read_statements("DELETE FROM klines")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    warehouse.sql.SqlRefusedError: liqheat sql is read-only: DELETE statements are refused ...
    """
    statements: list[tuple[duckdb.StatementType, str]] = []
    for kind, text in _classified(query):
        if kind == duckdb.StatementType.EXPLAIN:
            inner = _EXPLAIN_RE.sub("", text, count=1)
            if [k for k, _ in _classified(inner)] != [duckdb.StatementType.SELECT]:
                raise SqlRefusedError(
                    "liqheat sql is read-only: EXPLAIN is allowed only for a query "
                    f"(allowed: {ALLOWED_TEXT})"
                )
        elif kind not in READ_STATEMENTS:
            name = kind.name.replace("_", " ") if kind is not None else "this kind of"
            hint = (
                "; use --format csv|json|parquet --output FILE to export"
                if kind in (duckdb.StatementType.COPY, duckdb.StatementType.EXPORT)
                else ""
            )
            raise SqlRefusedError(
                f"liqheat sql is read-only: {name} statements are refused "
                f"(allowed: {ALLOWED_TEXT}){hint}"
            )
        if text:
            statements.append((kind, text))
    return statements


def _classified(query: str) -> list[tuple[duckdb.StatementType | None, str]]:
    """DuckDB's own split and classification of ``query`` (``None``: a type this duckdb
    module cannot name, which is refused)."""
    out: list[tuple[duckdb.StatementType | None, str]] = []
    for statement in duckdb.extract_statements(query):
        try:
            kind: duckdb.StatementType | None = statement.type
        except ValueError:  # e.g. UPDATE EXTENSIONS: "29 is not a valid StatementType"
            kind = None
        out.append((kind, statement.query.strip().rstrip(";").strip()))
    return out


def sandbox(
    con: duckdb.DuckDBPyConnection, *, allow_files: bool = False, writable: Sequence[Path] = ()
) -> None:
    """Lock down an open read-only connection: external access off (except the ``writable``
    output files) unless ``allow_files``, then the configuration locked for good.

    Examples
    --------
    >>> con = duckdb.connect()
    >>> sandbox(con)
    >>> con.sql("SET log_query_path = 'x.log'")
    Traceback (most recent call last):
    ...
    _duckdb.InvalidInputException: Invalid Input Error: Cannot change configuration option \
"log_query_path" - the configuration has been locked
    """
    if not allow_files:
        if writable:
            paths = ", ".join("'" + str(p.absolute()).replace("'", "''") + "'" for p in writable)
            con.execute(f"SET allowed_paths = [{paths}]")
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if value == 0 or 1e-4 <= abs(value) < 1e15:
            text = f"{value:.6f}".rstrip("0").rstrip(".")
            return text if text not in ("", "-0") else "0"
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _render_table(rel: duckdb.DuckDBPyRelation, console: Console, max_rows: int) -> None:
    columns = list(rel.columns)
    types = [str(t) for t in rel.types]
    rows = rel.limit(max_rows + 1).fetchall()
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, dtype in zip(columns, types, strict=True):
        numeric = dtype.startswith(_NUMERIC_PREFIXES)
        table.add_column(
            f"{name}\n[dim]{dtype.lower()}[/dim]",
            justify="right" if numeric else "left",
            no_wrap=True,
        )
    for row in rows[:max_rows]:
        table.add_row(*(_cell(v) if v is not None else "[dim]NULL[/dim]" for v in row))
    # wide results are printed at their natural width rather than folded into the terminal
    unbounded = console.options.update_width(1_000_000)
    natural = Measurement.get(console, unbounded, table).maximum
    if natural <= console.width:
        console.print(table)
    else:
        wide = Console(
            width=natural,
            file=io.StringIO(),
            force_terminal=console.is_terminal,
            no_color=console.no_color,
            color_system=console.color_system or None,  # type: ignore[arg-type]
        )
        wide.print(table)
        console.file.write(wide.file.getvalue())  # type: ignore[attr-defined]
        console.file.flush()
    shown = min(len(rows), max_rows)
    more = " (more rows not shown; add LIMIT or use --format csv)" if len(rows) > max_rows else ""
    console.print(f"[dim]{shown} row{'s' if shown != 1 else ''}{more}[/dim]")


def _write_result(
    rel: duckdb.DuckDBPyRelation, fmt: str, output: Path | None, console: Console, scratch: Path
) -> None:
    if fmt == "json":
        columns = list(rel.columns)
        records = [
            {c: _jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rel.fetchall()
        ]
        text = json.dumps(records, indent=2, ensure_ascii=False) + "\n"
        if output is None:
            console.out(text, highlight=False, end="")
        else:
            output.write_text(text, encoding="utf-8")
        return
    if output is not None:
        if fmt == "parquet":
            rel.write_parquet(str(output.absolute()))
        else:
            rel.write_csv(str(output.absolute()), header=True)
        return
    rel.write_csv(str(scratch), header=True)
    console.out(scratch.read_text(encoding="utf-8"), highlight=False, end="")


def _hint(message: str) -> str:
    if "file system operations are disabled" in message:
        return (
            message + " (liqheat sql reads only the warehouse; add --allow-files to read "
            "other files)"
        )
    if "configuration has been locked" in message:
        return message + " (liqheat sql is read-only: settings cannot be changed)"
    return message


def run_sql(
    db_path: Path,
    query: str,
    *,
    fmt: str = "table",
    output: Path | None = None,
    console: Console | None = None,
    err_console: Console | None = None,
    wait_s: float = DEFAULT_WAIT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    allow_files: bool = False,
) -> int:
    """Run read-only SQL against the warehouse and print or write the result; return an
    exit code (0 ok, 1 error).

    ``fmt="table"`` prints every statement's result as a table (at most ``max_rows`` rows).
    ``csv`` and ``json`` print the last statement's result to ``console``, or write it to
    ``output``; ``parquet`` needs ``output``. Errors go to ``err_console`` (stderr by
    default) as one line. A query that is a dot-command (``.tables``, ``.schema T``,
    ``.help``) runs that command. Queries read the warehouse only, unless ``allow_files``.

    Examples
    --------
    >>> run_sql(db_path, "SELECT symbol, count(*) FROM klines GROUP BY 1")  # doctest: +SKIP
    0
    >>> run_sql(db_path, "SELECT 1", fmt="parquet", output=Path("one.parquet"))  # doctest: +SKIP
    0
    """
    console = console or Console()
    err_console = err_console or Console(stderr=True)

    def fail(message: str) -> int:
        err_console.print(ERROR_PREFIX + escape(message), highlight=False, soft_wrap=True)
        return 1

    if fmt not in FORMATS:
        return fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        return fail("--format parquet needs --output FILE")
    if query.strip().startswith("."):
        action, payload, table = dot_command(query)
        if action == "error":
            return fail(payload)
        if action != "sql":
            if payload:
                console.print(payload, highlight=False)
            return 0
        query = payload
        if table is not None and _check_exists(db_path, table, wait_s, fail):
            return 1
    try:
        statements = read_statements(query)
    except (duckdb.Error, WarehouseError) as exc:
        return fail(one_line(exc))
    if not statements:
        return fail("no SQL statement given")
    try:
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(prefix="liqheat-sql-") as tmp,
            read_connection(db_path, wait_s=wait_s) as con,
        ):
            scratch = Path(tmp) / "result.csv"
            writable = [p for p in (output, scratch) if p is not None]
            sandbox(con, allow_files=allow_files, writable=writable)
            for index, (_kind, text) in enumerate(statements):
                rel = con.sql(text)
                if rel is None:
                    continue
                if fmt == "table":
                    _render_table(rel, console, max_rows)
                elif index == len(statements) - 1:
                    _write_result(rel, fmt, output, console, scratch)
                else:
                    rel.limit(0).fetchall()
    except DatabaseBusyError as exc:
        return fail(str(exc))
    except (duckdb.Error, WarehouseError, OSError) as exc:
        return fail(_hint(one_line(exc)))
    except Exception as exc:  # never a traceback for a user's query
        return fail(f"{type(exc).__name__}: {one_line(exc)}")
    return 0


def _check_exists(db_path: Path, name: str, wait_s: float, fail: Callable[[str], int]) -> int:
    """``.schema NAME``: fail (1) when there is no such table or view."""
    try:
        with read_connection(db_path, wait_s=wait_s) as con:
            found = con.execute(
                "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'main' "
                "AND table_name = ?",
                [name],
            ).fetchall()
    except (duckdb.Error, WarehouseError) as exc:
        return fail(one_line(exc))
    if not found or not found[0][0]:
        return fail(f"no table or view named {name!r} (see .tables)")
    return 0


def dot_command(text: str) -> tuple[str, str, str | None]:
    """Resolve a dot-command into ``(action, payload, table)``: ``("sql", query, table to
    check or None)``, ``("print", text, None)``, ``("quit", "", None)`` or ``("error",
    message, None)``.

    Examples
    --------
    >>> dot_command(".schema klines")[0], dot_command(".schema klines")[2]
    ('sql', 'klines')
    >>> dot_command(".nope")
    ('error', 'unknown command .nope; try .help', None)
    """
    command, _, arg = text.strip().partition(" ")
    arg = arg.strip().rstrip(";").strip()
    if command in (".quit", ".exit", ".q"):
        return "quit", "", None
    if command == ".help":
        return "print", _HELP, None
    if command == ".tables":
        return "sql", _TABLES_SQL, None
    if command == ".schema":
        if not _IDENT_RE.match(arg):
            return "error", "usage: .schema TABLE_OR_VIEW", None
        return "sql", _schema_sql(arg), arg
    return "error", f"unknown command {command}; try .help", None


_TABLES_SQL = """
SELECT table_name AS name, 'table' AS kind, estimated_size AS rows, comment
FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main'
UNION ALL
SELECT view_name, 'view', NULL, comment
FROM duckdb_views() WHERE NOT internal AND schema_name = 'main'
ORDER BY kind, name
"""

_HELP = """\
Enter SQL ending with ';' (it may span several lines). Commands:
  .tables      list tables and views with their descriptions
  .schema T    columns, types and descriptions of table or view T
  .help        this text
  .quit        leave (also Ctrl-D)"""


def _history(db_path: Path) -> tuple[Callable[[], None], bool]:
    """Enable readline history if available; return (save function, enabled)."""
    try:
        import readline
    except ImportError:  # pragma: no cover - platform without readline
        return (lambda: None), False
    history = db_path.parent / ".liqheat_sql_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    readline.set_history_length(1000)

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(history)

    return save, True


def interactive(
    db_path: Path,
    console: Console | None = None,
    *,
    input_fn: Callable[[str], str] = input,
    wait_s: float = DEFAULT_WAIT_S,
    allow_files: bool = False,
) -> int:
    """A small SQL prompt: statements end with ``;``; ``.tables``, ``.schema T``,
    ``.help`` and ``.quit``. Results print as in :func:`run_sql`; return 0.

    Examples
    --------
    >>> interactive(db_path)  # doctest: +SKIP
    liqheat> SELECT count(*) FROM klines;
    """
    console = console or Console()
    if not db_path.exists():
        raise NoWarehouseError(no_warehouse_message(db_path))
    save, _ = _history(db_path) if input_fn is input else ((lambda: None), False)
    console.print(f"liqheat sql on {db_path} (read-only). Type .help for help, .quit to leave.")

    def run(query: str) -> None:
        run_sql(
            db_path,
            query,
            console=console,
            err_console=console,
            wait_s=wait_s,
            allow_files=allow_files,
        )

    buffer: list[str] = []
    try:
        while True:
            try:
                line = input_fn("liqheat> " if not buffer else "   ...> ")
            except EOFError:
                console.print()
                break
            except KeyboardInterrupt:
                console.print()
                buffer.clear()
                continue
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                if dot_command(stripped)[0] == "quit":
                    break
                run(stripped)
                continue
            if not stripped and not buffer:
                continue
            buffer.append(line)
            if stripped.endswith(";"):
                run("\n".join(buffer))
                buffer.clear()
    finally:
        save()
    return 0


def _schema_sql(name: str) -> str:
    return (
        "SELECT column_name AS column, data_type AS type, "
        "CASE WHEN is_nullable THEN '' ELSE 'not null' END AS nullable, comment "
        f"FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = '{name}' "
        "ORDER BY column_index"
    )
