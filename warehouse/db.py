"""Connections and schema migrations.

DuckDB lets one process hold a database file read-write, and that process locks out every
other process, readers included. liqheat therefore never keeps a read-write connection
open: :func:`write_connection` opens the file for one short unit of work and closes it.
Both kinds of connection retry with a bounded wait while another process holds the file,
and then raise :class:`DatabaseBusyError` with a one-line message.

Readers get priority over a busy writer: a reader that finds the file locked takes a
shared ``flock`` on the sidecar file ``<db>.readers`` while it waits, and a writer about to
open the file first waits (bounded) until no reader is waiting. So a writer doing many
short transactions back to back hands the file over to a waiting reader after at most one
transaction instead of starving it.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

DB_FILENAME = "liqheat.duckdb"
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: longest pause between two attempts to open a busy database file
_MAX_RETRY_DELAY_S = 0.2
#: longest a writer defers to waiting readers before trying anyway
_WRITER_DEFER_S = 10.0


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
    >>> [m[:2] for m in migrations()][:2]
    [(1, 'core'), (2, 'docs_and_views')]
    """
    found: list[tuple[int, str, str]] = []
    for entry in resources.files("warehouse.migrations").iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def latest_version() -> int:
    """Return the schema version this liqheat writes.

    Examples
    --------
    >>> latest_version() >= 2
    True
    """
    return migrations()[-1][0]


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "being used" in text


def _readers_path(path: Path) -> Path:
    return path.with_name(path.name + ".readers")


def _open_sidecar(path: Path) -> int | None:
    """Open (creating if possible) the readers sidecar; ``None`` when it cannot be opened."""
    try:
        return os.open(_readers_path(path), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        try:
            return os.open(_readers_path(path), os.O_RDONLY)
        except OSError:
            return None


def _announce_reader(path: Path) -> int | None:
    """Take a shared lock on the sidecar: "a reader is waiting". Return the fd to release."""
    fd = _open_sidecar(path)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        # a writer is checking the sidecar this very moment; try again on the next attempt
        os.close(fd)
        return None
    return fd


def _release(fd: int | None) -> None:
    if fd is not None:
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _defer_to_readers(path: Path, deadline: float) -> None:
    """Wait (until ``deadline`` at the latest) while some reader is waiting for the file."""
    fd = _open_sidecar(path)
    if fd is None:
        return
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.01)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)


def _busy_message(path: Path, wait_s: float, read_only: bool) -> str:
    if read_only:
        return (
            f"database is busy: another liqheat process is writing {path}; "
            f"waited {wait_s:.0f}s, try again shortly"
        )
    return (
        f"database is busy: another process has {path} open (a DuckDB shell or a long "
        f"query?); waited {wait_s:.0f}s, close it and re-run (loads are idempotent)"
    )


def _connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    start = time.monotonic()
    deadline = start + wait_s
    delay = 0.02
    announced: int | None = None
    try:
        while True:
            if not read_only:
                _defer_to_readers(path, min(deadline, start + _WRITER_DEFER_S))
            try:
                con = duckdb.connect(str(path), read_only=read_only)
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    first = str(exc).splitlines()[0]
                    raise WarehouseError(f"cannot open {path}: {first}") from exc
                if time.monotonic() >= deadline:
                    raise DatabaseBusyError(_busy_message(path, wait_s, read_only)) from exc
                if read_only and announced is None:
                    announced = _announce_reader(path)
                time.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_DELAY_S)
                continue
            con.execute("SET TimeZone = 'UTC'")
            return con
    finally:
        _release(announced)


def _current_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """Return the applied schema version, or ``None`` when the file has no schema_version."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version' "
        "AND database_name = current_database() AND schema_name = 'main'"
    ).fetchall()
    if not exists or not exists[0][0]:
        return None
    rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    return int(rows[0][0]) if rows else 0


def _refuse_newer(path: Path, current: int) -> None:
    latest = latest_version()
    if current > latest:
        raise SchemaTooNewError(
            f"database {path} has schema version {current}, newer than this liqheat "
            f"understands ({latest}); upgrade liqheat or point LIQHEAT_HOME elsewhere"
        )


def _migrate_open(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Bring an open read-write connection to the latest schema; return the version."""
    current = _current_version(con)
    latest = latest_version()
    if current == latest:
        return latest
    if current is None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        current = 0
    _refuse_newer(path, current)
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


def migrate(path: Path, wait_s: float = 30.0) -> int:
    """Create or migrate the database at ``path`` to the latest schema; return its version.

    The parent folder (``LIQHEAT_HOME``) is created on first use. A database written by a
    newer liqheat is refused with :class:`SchemaTooNewError`. Each migration runs in its own
    transaction together with its ``schema_version`` row.

    Examples
    --------
    >>> migrate(tmp_path / "home" / "liqheat.duckdb")  # doctest: +SKIP
    2
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False, wait_s=wait_s)
    try:
        return _migrate_open(con, path)
    finally:
        con.close()


def schema_version(path: Path, wait_s: float = 10.0) -> int:
    """Return the schema version of an existing database (0 if it has none).

    Examples
    --------
    >>> schema_version(db_path)  # doctest: +SKIP
    2
    """
    con = _connect(path, read_only=True, wait_s=wait_s)
    try:
        return _current_version(con) or 0
    finally:
        con.close()


@contextmanager
def write_connection(path: Path, wait_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path`` read-write for one short unit of work (creating or migrating it first).

    Examples
    --------
    >>> with write_connection(db_path) as con:  # doctest: +SKIP
    ...     con.execute("DELETE FROM klines WHERE symbol = 'X'")
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False, wait_s=wait_s)
    try:
        _migrate_open(con, path)
        yield con
    finally:
        con.close()


@contextmanager
def read_connection(path: Path, wait_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path`` read-only, waiting up to ``wait_s`` seconds while a writer holds it.

    A missing database is created empty (first use of a fresh ``LIQHEAT_HOME``) and an older
    one is migrated forward first (one short write); a newer one is refused.

    Examples
    --------
    >>> with read_connection(db_path) as con:  # doctest: +SKIP
    ...     con.sql("SELECT count(*) FROM klines").fetchone()
    (1440,)
    """
    if not path.exists():
        migrate(path, wait_s=wait_s)
    con = _connect(path, read_only=True, wait_s=wait_s)
    try:
        current = _current_version(con) or 0
        if current != latest_version():
            _refuse_newer(path, current)
            con.close()
            migrate(path, wait_s=wait_s)
            con = _connect(path, read_only=True, wait_s=wait_s)
        yield con
    finally:
        con.close()
