"""``liqheat doctor``: check the warehouse file end to end and report what was found.

:func:`check_database` opens the database read-only and runs DuckDB's own checks: the file
header and catalog must load, ``schema_version`` must be 1..N with the core tables present,
and every table is scanned in full (every column of every row), which verifies the checksum
of every data block. A stub left by an interrupted first creation (a file too small to hold
data that DuckDB does not accept) is removed; a real but damaged database is never touched:
the report says to restore it from a backup or move it away.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.db import (
    STUB_MAX_BYTES,
    CorruptDatabaseError,
    DatabaseBusyError,
    SchemaTooNewError,
    WarehouseError,
    _connect,
    check_blocks,
    check_schema,
    latest_version,
)

#: statuses of a :class:`Finding`
STATUSES = ("ok", "fixed", "problem")


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    status: str
    text: str

    def line(self) -> str:
        return f"{self.status:<8} {self.text}"


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_database(path: Path, *, wait_s: float = 5.0) -> list[Finding]:
    """Check the warehouse at ``path``; return the findings (a missing file is one "ok").

    Examples
    --------
    >>> check_database(Path("/nonexistent/liqheat.duckdb"))[0].text  # doctest: +ELLIPSIS
    'no warehouse at /nonexistent/liqheat.duckdb yet...'
    """
    if not path.exists():
        return [Finding("ok", f"no warehouse at {path} yet (created by the first ingest)")]
    size = path.stat().st_size
    try:
        con = _connect(path, read_only=True, wait_s=wait_s)
    except DatabaseBusyError as exc:
        return [Finding("problem", f"{exc} (run `liqheat doctor` again when it is free)")]
    except CorruptDatabaseError as exc:
        if size <= STUB_MAX_BYTES:
            path.unlink()
            for extra in (path.with_name(path.name + ".wal"),):
                extra.unlink(missing_ok=True)
            return [
                Finding(
                    "fixed",
                    f"removed {path}: a {size:,}-byte stub with no data (an interrupted first "
                    "run); the next ingest creates the warehouse again",
                )
            ]
        return [Finding("problem", str(exc))]
    except WarehouseError as exc:
        return [Finding("problem", str(exc))]
    findings: list[Finding] = []
    try:
        try:
            version = check_schema(con, path, blocks=False)
        except CorruptDatabaseError as exc:
            return [Finding("problem", str(exc))]
        try:
            check_blocks(con, path)
        except CorruptDatabaseError as exc:
            findings.append(Finding("problem", str(exc)))  # the scan says which tables
        except duckdb.Error as exc:
            findings.append(Finding("problem", f"corrupt database {path}: {_first(exc)}"))
        latest = latest_version()
        if version is None:
            findings.append(Finding("ok", f"{path}: an empty DuckDB file (no schema yet)"))
            return findings
        if version > latest:
            findings.append(
                Finding("problem", str(SchemaTooNewError(f"schema version {version} > {latest}")))
            )
        else:
            note = "" if version == latest else f" (migrated to {latest} on the next write)"
            findings.append(Finding("ok", f"schema version {version}{note}"))
        findings += _scan_tables(con, path)
    finally:
        con.close()
    return findings


def _scan_tables(con: duckdb.DuckDBPyConnection, path: Path) -> list[Finding]:
    """Read every column of every row of every table (verifying each block's checksum)."""
    tables = [
        str(r[0])
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "AND database_name = current_database() ORDER BY 1"
        ).fetchall()
    ]
    bad: list[Finding] = []
    rows = 0
    for table in tables:
        try:
            result = con.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{table}" AS t')
            got = result.fetchall()
            rows += int(got[0][0]) if got else 0
        except duckdb.Error as exc:
            bad.append(
                Finding(
                    "problem",
                    f"corrupt database {path}: table {table} cannot be read ({_first(exc)}): "
                    "restore it from a backup or remove it",
                )
            )
    if bad:
        return bad
    size_mb = path.stat().st_size / 1e6
    return [
        Finding(
            "ok",
            f"{path}: {len(tables)} tables, {rows:,} rows, {size_mb:.1f} MB, every block "
            "read and checksum-verified",
        )
    ]
