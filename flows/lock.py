"""One pipeline run at a time: an advisory ``flock`` on ``$LIQHEAT_HOME/liqheat.lock``.

The lock belongs to the open file, so the kernel releases it when the holder exits, even
after a crash or ``kill -9``: a stale lock file never blocks the next run. The holder writes
its pid and start time into the file so a second run can say who holds it.

Taking the lock also removes what interrupted runs left behind (partial downloads, staging
folders, site temp files; see :mod:`flows.leftovers`): no other run can be using them then.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILENAME = "liqheat.lock"
_log = logging.getLogger("liqheat")


class PipelineLockedError(RuntimeError):
    """Another liqheat run holds the pipeline lock."""


def _holder(fd: int) -> str:
    """Describe the current holder from the lock file ("pid N, started T")."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace")
    except OSError:
        text = ""
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    pid = fields.get("pid", "unknown")
    started = fields.get("started", "unknown time")
    return f"pid {pid}, started {started}"


@contextmanager
def pipeline_lock(home: Path, *, wait_s: float = 0.0, clean: bool = True) -> Iterator[Path]:
    """Hold the pipeline lock of ``home`` for the duration of the block.

    Waits up to ``wait_s`` seconds for another run to finish, then raises
    :class:`PipelineLockedError` with a one-line message naming the holder. ``home`` is
    created if needed. Once held, the leftovers of interrupted runs are removed (unless
    ``clean=False``). Yields the lock file's path.

    Examples
    --------
    >>> with pipeline_lock(settings.home, wait_s=60):  # doctest: +SKIP
    ...     run_nightly()
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILENAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PipelineLockedError(
                        f"another liqheat run ({_holder(fd)}) holds {path}; "
                        f"waited {wait_s:.0f}s, try again when it has finished"
                    ) from None
                time.sleep(0.1)
        try:
            started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid={os.getpid()} started={started}\n".encode(), 0)
            if clean:
                _clean(home)
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _clean(home: Path) -> None:
    from flows.leftovers import clean_leftovers, describe

    try:
        removed = clean_leftovers(home)
    except OSError as exc:  # never fail a run over housekeeping
        _log.warning("could not clean leftovers under %s: %s", home, exc)
        return
    if removed:
        _log.info("%s under %s", describe(removed), home)
