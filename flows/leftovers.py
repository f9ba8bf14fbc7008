"""Leftovers of interrupted runs: partial downloads, staging folders, site temp files.

A run that is killed (``kill -9``, a full disk, a power cut) cannot clean up after itself.
Everything it leaves behind has a recognisable name, so the next run removes it when it takes
the pipeline lock (:func:`flows.lock.pipeline_lock`), at which point no other run can be
using it; ``liqheat doctor`` does the same and reports it.

- ``raw/**/.<name>.*.part``: a download that did not finish (complete files are renamed
  into place, so a ``.part`` file is never a finished one), and ``raw/.tmp/``: unpacked
  members being parsed;
- ``staging/*``: Parquet staged by a run for its loader (each run stages under a fresh
  folder and removes it when done);
- ``site/**/.<name>.tmp-<pid>``: pages being written (renamed into place when complete);
- ``.liqheat.duckdb.new-<pid>`` (and its ``.wal``): a warehouse being created, when that
  process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_CREATING_RE = re.compile(r"^\.liqheat\.duckdb\.new-(\d+)(\.wal)?$")
_SITE_TMP_RE = re.compile(r"^\..+\.tmp-\d+$")
_RAW_PART_RE = re.compile(r"^\..+\.part$")


@dataclass(frozen=True)
class Leftover:
    """One leftover file or folder and its size in bytes."""

    path: Path
    size: int
    what: str


def _size(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())
        return path.lstat().st_size
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_leftovers(home: Path) -> Iterator[Leftover]:
    """Yield the leftovers of interrupted runs under ``home`` (nothing is removed).

    Examples
    --------
    >>> list(find_leftovers(Path("/nonexistent-liqheat-home")))
    []
    """
    raw, staging, site = home / "raw", home / "staging", home / "site"
    if raw.is_dir():
        for path in raw.rglob(".*.part"):
            if _RAW_PART_RE.match(path.name) and path.is_file():
                yield Leftover(path, _size(path), "partial download")
        tmp = raw / ".tmp"
        if tmp.is_dir():
            for path in tmp.iterdir():
                yield Leftover(path, _size(path), "unpacked archive member")
    if staging.is_dir():
        for path in staging.iterdir():
            yield Leftover(path, _size(path), "staging folder")
    if site.is_dir():
        for path in site.rglob(".*.tmp-*"):
            if _SITE_TMP_RE.match(path.name) and path.is_file():
                yield Leftover(path, _size(path), "site temp file")
    if home.is_dir():
        for path in home.iterdir():
            m = _CREATING_RE.match(path.name)
            if m and not _alive(int(m.group(1))):
                yield Leftover(path, _size(path), "unfinished warehouse creation")


def clean_leftovers(home: Path) -> list[Leftover]:
    """Remove the leftovers of interrupted runs under ``home``; return what was removed.

    Call it only while holding the pipeline lock (no run is using them then). A leftover
    that cannot be removed is skipped (it is reported again next time).

    Examples
    --------
    >>> clean_leftovers(Path("/nonexistent-liqheat-home"))
    []
    """
    removed: list[Leftover] = []
    for leftover in list(find_leftovers(home)):
        try:
            if leftover.path.is_dir() and not leftover.path.is_symlink():
                shutil.rmtree(leftover.path)
            else:
                leftover.path.unlink()
        except FileNotFoundError:
            continue
        except OSError:
            continue
        removed.append(leftover)
    return removed


def describe(removed: list[Leftover]) -> str:
    """One line summarising removed leftovers.

    Examples
    --------
    >>> describe([Leftover(Path("raw/.a.zip.x.part"), 2_500_000, "partial download")])
    'removed 1 leftover of an interrupted run (2.5 MB): 1 partial download'
    """
    kinds: dict[str, int] = {}
    for leftover in removed:
        kinds[leftover.what] = kinds.get(leftover.what, 0) + 1
    total = sum(leftover.size for leftover in removed) / 1e6
    parts = ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for what, n in kinds.items())
    plural = "s" if len(removed) != 1 else ""
    return (
        f"removed {len(removed)} leftover{plural} of an interrupted run ({total:.1f} MB): {parts}"
    )
