"""Is ``$LIQHEAT_HOME`` writable? Asked once, before a writing command does any work.

A read-only home (a read-only mount, a folder of another user, a full quota) would otherwise
surface late, as an ``OSError`` on ``liqheat.lock`` or DuckDB's own error, after minutes of
download or fitting. :func:`home_write_problem` tries what the commands do: create the home,
create (and remove) a file in it, and open the warehouse for writing when it exists.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["home_write_problem", "read_only_home_message"]


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def home_write_problem(home: Path) -> str | None:
    """Why ``home`` cannot be written (e.g. ``"Read-only file system"``), or ``None``.

    Creates ``home`` when it is missing (as every writing command would).

    Examples
    --------
    >>> import tempfile
    >>> home_write_problem(Path(tempfile.mkdtemp()) / "home") is None
    True
    """
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _reason(exc)
    probe = home / f".liqheat-write-check-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        return _reason(exc)
    db = home / "liqheat.duckdb"
    if db.exists():
        try:
            with db.open("r+b"):
                pass
        except OSError as exc:
            return f"{db.name}: {_reason(exc)}"
    return None


def read_only_home_message(home: Path, command: str, problem: str) -> str:
    """The one line a writing command prints on a home it cannot write."""
    return (
        f"cannot write to {home.resolve()} ({problem}): `liqheat {command}` writes liqheat.lock "
        "and liqheat.duckdb there (and site/, raw/, staging/ as it goes); set LIQHEAT_HOME to a "
        "writable folder (`liqheat sql` and `liqheat doctor` read this one as it is)"
    )
