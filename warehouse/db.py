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

import errno
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


class NoWarehouseError(WarehouseError):
    """A read-only command found no warehouse (read-only commands never create one)."""


class CorruptDatabaseError(WarehouseError):
    """The database file is not a valid (or not a complete) liqheat warehouse."""


class NoSpaceError(WarehouseError):
    """A write failed because the disk (or the quota) is full."""


#: a file this small holds no data: what an interrupted first creation leaves behind
STUB_MAX_BYTES = 16 * 1024
#: DuckDB messages that mean the file itself is damaged (not busy, not a permission problem)
_CORRUPT_MARKERS = (
    "not a valid duckdb database file",
    "could not read enough bytes",
    "corrupt",
    "checksum",
    "invalid block",
    "failed to read database header",
    "serialization error",
    "internal error",
)


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is a full disk or an exceeded quota.

    Examples
    --------
    >>> is_no_space(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_no_space(ValueError("cannot rollback - no transaction is active"))
    False
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(seen).lower()
        if "no space left on device" in text or "disk quota exceeded" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def no_space_message(path: Path) -> str:
    """The one line for a full disk while writing under ``path``'s folder."""
    return (
        f"no space left on device writing {path}: free some space on that disk and re-run "
        "(nothing half-written was kept; loads are idempotent)"
    )


def corrupt_message(path: Path, detail: str) -> str:
    """The one line for a damaged database file, saying what to do."""
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    if 0 <= size <= STUB_MAX_BYTES:
        return (
            f"corrupt database {path}: a {size:,}-byte stub with no data (left by an "
            "interrupted first run?): remove it, or run `liqheat doctor`, which removes it"
        )
    return (
        f"corrupt database {path} ({detail}): restore it from a backup or remove it "
        "(`liqheat doctor` checks it and reports what it found)"
    )


def _is_corrupt_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _CORRUPT_MARKERS)


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, ignoring a transaction DuckDB already aborted (so the
    original error, e.g. a full disk, is the one reported, not "no transaction is active")."""
    with suppress(duckdb.Error):
        con.execute("ROLLBACK")


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
            except duckdb.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                if is_no_space(exc):
                    raise NoSpaceError(no_space_message(path)) from exc
                if _is_corrupt_error(exc) or not isinstance(exc, duckdb.IOException):
                    raise CorruptDatabaseError(corrupt_message(path, first)) from exc
                if not _is_lock_error(exc):
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


#: bytes before the first block of a DuckDB file (its three header blocks)
_HEADER_BYTES = 3 * 4096
#: files whose blocks were checked (or written by this process), by path: the file's
#: (device, inode, size, mtime) then; an unchanged file is not checked again
_VERIFIED: dict[str, tuple[int, int, int, int]] = {}


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def trust_file(path: Path) -> None:
    """Record ``path`` as checked: this process just wrote it through DuckDB (cleanly closed),
    so the next open skips :func:`check_blocks` unless someone changed the file since."""
    sig = _signature(path)
    if sig is not None:
        _VERIFIED[str(path)] = sig


def check_blocks(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Check that the file holds every block the database uses (a truncated file does not).

    DuckDB trims free blocks off the end of the file, so the file is often shorter than the
    block count in its header; what must be in it is every *used* block. Two checks, both on
    metadata only (milliseconds, no data is read): the file has room for at least
    ``used_blocks`` blocks, and the highest block that any table's storage or the metadata
    references lies inside the file. Raise :class:`CorruptDatabaseError`.
    """
    sig = _signature(path)
    if sig is None or _VERIFIED.get(str(path)) == sig:
        return
    size = sig[2]
    rows = con.execute(
        "SELECT block_size, total_blocks - free_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchall()
    if not rows or not int(rows[0][0]):
        return
    block_size, used = int(rows[0][0]), int(rows[0][1])
    in_file = max(0, size - _HEADER_BYTES) // block_size
    tables = [
        str(r[0])
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND NOT temporary"
        ).fetchall()
    ]
    parts = ["SELECT max(block_id) AS b FROM pragma_metadata_info()"]
    parts += [
        "SELECT max(greatest(block_id, coalesce(list_max(additional_block_ids), -1))) "
        f"FROM pragma_storage_info('{table.replace(chr(39), chr(39) * 2)}') WHERE persistent"
        for table in tables
    ]
    got = con.execute(f"SELECT max(b) FROM ({' UNION ALL '.join(parts)})").fetchall()
    highest = int(got[0][0]) if got and got[0][0] is not None else -1
    if used > in_file or highest >= in_file:
        needed = _HEADER_BYTES + max(used, highest + 1) * block_size
        raise CorruptDatabaseError(
            corrupt_message(path, f"truncated: {size:,} bytes, its blocks need {needed:,}")
        )
    _VERIFIED[str(path)] = sig


def check_schema(con: duckdb.DuckDBPyConnection, path: Path, *, blocks: bool = True) -> int | None:
    """Check an open database: DuckDB can read its catalog, ``schema_version`` is sane
    (the packaged migrations' versions 1..N in order, the core tables present) and, unless
    ``blocks`` is false, the file is not truncated (:func:`check_blocks`). Return the version
    (``None`` for a file without any table, i.e. a brand-new database); raise
    :class:`CorruptDatabaseError`.
    """
    try:
        tables = {
            str(r[0])
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
                "AND database_name = current_database()"
            ).fetchall()
        }
        if "schema_version" not in tables:
            if tables:
                raise CorruptDatabaseError(
                    f"{path} is a DuckDB file but not a liqheat warehouse (tables "
                    f"{', '.join(sorted(tables)[:5])} but no schema_version): point "
                    "LIQHEAT_HOME at a liqheat home, or move the file away"
                )
            return None
        rows = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        versions = [int(r[0]) for r in rows]
        if blocks:
            check_blocks(con, path)
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CorruptDatabaseError(corrupt_message(path, first)) from exc
    # the packaged migrations' versions in order (numbers are assigned ahead, so the list may
    # skip one); versions above the newest packaged one are judged by _refuse_newer
    known = [m[0] for m in migrations()]
    applied = [v for v in versions if v <= known[-1]]
    if (
        versions != sorted(set(versions))
        or applied != [v for v in known if v <= (applied[-1] if applied else 0)]
        or (versions and not applied)
    ):
        raise CorruptDatabaseError(
            corrupt_message(path, f"schema_version holds {versions}, expected 1..N")
        )
    missing = {"ingest_log", "klines"} - tables if versions else set()
    if missing:
        raise CorruptDatabaseError(
            corrupt_message(path, f"schema version {versions[-1]} but no {sorted(missing)[0]}")
        )
    return versions[-1] if versions else 0


def _refuse_newer(path: Path, current: int) -> None:
    latest = latest_version()
    if current > latest:
        raise SchemaTooNewError(
            f"database {path} has schema version {current}, newer than this liqheat "
            f"understands ({latest}); upgrade liqheat or point LIQHEAT_HOME elsewhere"
        )


def no_warehouse_message(path: Path) -> str:
    """Where a read-only command looked for the warehouse, and how to point it elsewhere."""
    return (
        f"no warehouse at {path.resolve()} (LIQHEAT_HOME is {path.parent.resolve()}): "
        "set LIQHEAT_HOME to the folder holding liqheat.duckdb, or create one here with "
        "`liqheat demo` or `liqheat ingest`"
    )


def _migrate_open(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Bring an open read-write connection to the latest schema; return the version."""
    current = check_schema(con, path)
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
            rollback(con)
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
    if not path.exists():
        created = _create(path)
        if created is not None:
            return created
    con = _connect(path, read_only=False, wait_s=wait_s)
    try:
        return _migrate_open(con, path)
    finally:
        con.close()


def creating_name(path: Path) -> Path:
    """The temporary name a new database is built under before it is renamed into place."""
    return path.with_name(f".{path.name}.new-{os.getpid()}")


def _create(path: Path) -> int | None:
    """Create the database atomically: build it fully migrated under a temporary name, then
    link it into place, so an interruption (a full disk, ``kill -9``) never leaves a stub at
    ``path``. Return the version, or ``None`` when another process created it first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_no_space(exc):
            raise NoSpaceError(no_space_message(path)) from exc
        raise WarehouseError(f"cannot create {path.parent}: {exc.strerror or exc}") from exc
    tmp = creating_name(path)
    leftovers = (tmp, tmp.with_name(tmp.name + ".wal"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("SET TimeZone = 'UTC'")
            version = _migrate_open(con, tmp)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a database someone else made
        except FileExistsError:
            return None
        return version
    except (duckdb.Error, OSError) as exc:
        if is_no_space(exc):
            raise NoSpaceError(no_space_message(path)) from exc
        raise
    finally:
        for leftover in leftovers:
            with suppress(OSError):
                leftover.unlink()


def schema_version(path: Path, wait_s: float = 10.0) -> int:
    """Return the schema version of an existing database (0 if it has none).

    Examples
    --------
    >>> schema_version(db_path)  # doctest: +SKIP
    2
    """
    con = _connect(path, read_only=True, wait_s=wait_s)
    try:
        return check_schema(con, path) or 0
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
    if not path.exists():
        migrate(path, wait_s=wait_s)
    con = _connect(path, read_only=False, wait_s=wait_s)
    checked = False
    try:
        _migrate_open(con, path)
        checked = True
        yield con
    except duckdb.Error as exc:
        if is_no_space(exc):
            raise NoSpaceError(no_space_message(path)) from exc
        raise
    finally:
        try:
            con.close()
        except duckdb.Error as exc:  # the final checkpoint on close can hit a full disk too
            if is_no_space(exc):
                raise NoSpaceError(no_space_message(path)) from exc
            raise
        if checked:  # what DuckDB just wrote and closed cleanly needs no check on reopen
            trust_file(path)


@contextmanager
def read_connection(path: Path, wait_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path`` read-only, waiting up to ``wait_s`` seconds while a writer holds it.

    A missing database is never created (read-only commands leave no state behind): it raises
    :class:`NoWarehouseError` saying where it looked. An older one is migrated forward first
    (one short write); a newer one is refused; a damaged one raises
    :class:`CorruptDatabaseError`.

    Examples
    --------
    >>> with read_connection(db_path) as con:  # doctest: +SKIP
    ...     con.sql("SELECT count(*) FROM klines").fetchone()
    (1440,)
    """
    if not path.exists():
        raise NoWarehouseError(no_warehouse_message(path))
    con = _connect(path, read_only=True, wait_s=wait_s)
    try:
        current = check_schema(con, path) or 0
        if current != latest_version():
            _refuse_newer(path, current)
            con.close()
            migrate(path, wait_s=wait_s)
            con = _connect(path, read_only=True, wait_s=wait_s)
        yield con
    finally:
        con.close()
