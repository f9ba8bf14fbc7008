"""The file kit every exchange source shares: atomic writes, sha256, zip members, days, Parquet.

- :func:`atomic_write` (temp file in the same folder, then a rename: nothing half-written) and
  :func:`sha256_file` (a file's digest, read in chunks): the one copy of each for
  ``flows/`` (``reports/`` keeps its own writer, since it must not import ``flows``);
- :func:`open_csv_member` / :func:`read_csv_member` / :func:`extract_csv_member`: the single
  CSV member of a zip (Binance's archive, OKX's trade files), size-capped and path-safe;
- :func:`day_bounds` and :func:`epoch_unit` (13-digit ms vs 16-digit us epochs);
- :func:`write_staged_frame`: a canonical frame to Parquet for the single writer.

Errors are those of :mod:`flows.sources.errors` (:class:`BadZipError`, :class:`ParseError`, ...).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

import polars as pl

from flows.sources.errors import BadZipError, ParseError, TooLargeError, short_reason

#: largest CSV member accepted (a BTCUSDT aggTrades day is ~100 MB of CSV)
MAX_MEMBER_BYTES = 2 * 1024**3
_CHUNK = 1 << 20
#: largest expanded-to-compressed ratio accepted: archive CSVs compress 3-10x, a zip bomb
#: 100-1000x
MAX_ZIP_RATIO = 100
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, NotImplementedError)

EpochUnit = Literal["ms", "us"]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    The folder is created if needed; on any failure the temporary file is removed and ``path``
    keeps its old content (or stays absent).

    Examples
    --------
    >>> atomic_write(Path("raw/okx/instruments/SWAP-2026-01-01.json"), b"{}")  # doctest: +SKIP
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return ``[day 00:00 UTC, next day 00:00 UTC)``."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def epoch_unit(sample: str) -> EpochUnit:
    """Return ``"ms"`` for a 13-digit epoch, ``"us"`` for 16 digits, else raise.

    Examples
    --------
    >>> epoch_unit("1577836800000"), epoch_unit("1735689600000000")
    ('ms', 'us')
    """
    digits = sample.strip().strip('"')
    if digits.isdigit() and len(digits) == 13:
        return "ms"
    if digits.isdigit() and len(digits) == 16:
        return "us"
    raise ParseError(f"time {digits[:20]!r} is neither epoch ms (13 digits) nor us (16)")


def write_staged_frame(frame: pl.DataFrame, staging_dir: Path, stem: str) -> Path:
    """Write a canonical frame to ``staging_dir/<stem>-<random>.parquet`` atomically.

    The ``exchange`` and ``symbol`` columns are dropped (the loader adds them). Any source can
    use this helper.

    Examples
    --------
    >>> write_staged_frame(frame, Path("staging"), "binance-klines-BTCUSDT-2024-01-01")
    ... # doctest: +SKIP
    PosixPath('staging/binance-klines-BTCUSDT-2024-01-01-1f2e3d4c.parquet')
    """
    staging_dir.mkdir(parents=True, exist_ok=True)
    dest = staging_dir / f"{stem}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = dest.with_name(f".{dest.name}.tmp")
    frame.drop("exchange", "symbol", strict=False).write_parquet(tmp)
    os.replace(tmp, dest)
    return dest


# -- zip members ---------------------------------------------------------------------------
def _check_single_member(zf: zipfile.ZipFile, max_bytes: int) -> zipfile.ZipInfo:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) != 1 or len(zf.infolist()) != 1:
        raise BadZipError(f"zip holds {len(zf.infolist())} members, expected exactly one CSV")
    info = infos[0]
    name = info.filename
    if (
        "/" in name
        or "\\" in name
        or name.startswith(".")
        or ".." in name
        or ":" in name
        or not name.lower().endswith(".csv")
    ):
        raise BadZipError(f"bad member name {name[:60]!r} (expected a plain *.csv name)")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > 1024**2 and ratio > MAX_ZIP_RATIO:
        raise TooLargeError(
            f"zip bomb refused: the member expands {info.compress_size:,} to "
            f"{info.file_size:,} bytes ({ratio:.0f}x, cap {MAX_ZIP_RATIO}x)"
        )
    if info.file_size > max_bytes:
        raise TooLargeError(f"member too large: {info.file_size} bytes (cap {max_bytes})")
    return info


@contextmanager
def open_csv_member(zip_path: Path, max_bytes: int = MAX_MEMBER_BYTES) -> Iterator[IO[bytes]]:
    """Open the single CSV member of ``zip_path`` for streaming reads (CRC checked at EOF).

    Raises :class:`BadZipError` for a corrupt or truncated zip, zero or several members, a
    member name with a directory part (path traversal) or a member above ``max_bytes``.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except _ZIP_ERRORS as exc:
        raise BadZipError(f"corrupt zip: {short_reason(exc)}") from exc
    with zf:
        info = _check_single_member(zf, max_bytes)
        try:
            member = zf.open(info)
        except _ZIP_ERRORS as exc:
            raise BadZipError(f"corrupt zip: {short_reason(exc)}") from exc
        with member:
            yield member


def read_csv_member(zip_path: Path, max_bytes: int = MAX_MEMBER_BYTES) -> bytes:
    """Return the bytes of the single CSV member of ``zip_path`` (see :func:`open_csv_member`)."""
    buf = bytearray()
    with open_csv_member(zip_path, max_bytes) as member:
        try:
            while chunk := member.read(_CHUNK):
                buf.extend(chunk)
                if len(buf) > max_bytes:
                    raise BadZipError(f"member larger than the cap of {max_bytes} bytes")
        except _ZIP_ERRORS as exc:
            raise BadZipError(f"corrupt zip: {short_reason(exc)}") from exc
    return bytes(buf)


def extract_csv_member(zip_path: Path, dest: Path, max_bytes: int = MAX_MEMBER_BYTES) -> Path:
    """Stream the single CSV member of ``zip_path`` to the file ``dest`` (size-capped)."""
    written = 0
    with open_csv_member(zip_path, max_bytes) as member, dest.open("wb") as out:
        try:
            while chunk := member.read(_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise BadZipError(f"member larger than the cap of {max_bytes} bytes")
                out.write(chunk)
        except _ZIP_ERRORS as exc:
            raise BadZipError(f"corrupt zip: {short_reason(exc)}") from exc
    return dest
