"""Connections and schema migrations.

DuckDB lets one process hold a database file read-write, and that process locks out every
other process, readers included. liqheat therefore never keeps a read-write connection
open: :func:`write_connection` opens the file for one short unit of work and closes it.
Both kinds of connection retry with a bounded wait while another process holds the file,
and then raise :class:`DatabaseBusyError` with a one-line message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

DB_FILENAME = "liqheat.duckdb"
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class WarehouseError(Exception):
    """Base class for warehouse errors with a user-facing one-line message."""


class DatabaseBusyError(WarehouseError):
    """Another process holds the database file for writing."""


class SchemaTooNewError(WarehouseError):
    """The database was written by a newer liqheat than this one."""


def migrations() -> list[tuple[int, str, str]]:
    """Return the packaged migrations as ``(version, name, sql)``, in order.

    Examples
    --------
    >>> migrations()[0][:2]
    (1, 'core')
    """
    found: list[tuple[int, str, str]] = []
    for entry in resources.files("warehouse.migrations").iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def latest_version() -> int:
    """Return the schema version this liqheat writes."""
    return migrations()[-1][0]


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "being used" in text


def _connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET TimeZone = 'UTC'")
            return con
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise WarehouseError(f"cannot open {path}: {str(exc).splitlines()[0]}") from exc
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(
                    f"database {path} is busy (another liqheat process is writing); "
                    f"waited {wait_s:.0f}s, try again shortly"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def migrate(path: Path, wait_s: float = 30.0) -> int:
    """Create or migrate the database at ``path`` to the latest schema; return its version.

    A database written by a newer liqheat is refused with :class:`SchemaTooNewError`.
    Each migration runs in its own transaction together with its version row.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False, wait_s=wait_s)
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0
        latest = latest_version()
        if current > latest:
            raise SchemaTooNewError(
                f"database {path} has schema version {current}, newer than this liqheat "
                f"understands ({latest}); upgrade liqheat"
            )
        for version, name, sql in migrations():
            if version <= current:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql)
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [version, name, datetime.now(UTC).replace(tzinfo=None)],
                )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return latest
    finally:
        con.close()


@contextmanager
def write_connection(path: Path, wait_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path`` read-write for one short unit of work (migrating it first if needed)."""
    migrate(path, wait_s=wait_s)
    con = _connect(path, read_only=False, wait_s=wait_s)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def read_connection(path: Path, wait_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path`` read-only, waiting up to ``wait_s`` seconds while a writer holds it."""
    if not path.exists():
        raise WarehouseError(f"no database at {path}; run `liqheat demo` or `liqheat ingest` first")
    con = _connect(path, read_only=True, wait_s=wait_s)
    try:
        yield con
    finally:
        con.close()
