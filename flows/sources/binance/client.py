"""Client for the Binance public-data archive (``data.binance.vision`` or any mirror of it).

One :class:`ArchiveClient` fetches archive paths (see :mod:`flows.sources.binance.paths`) from an
``http(s)://`` or ``file://`` base URL, verifies every zip against its ``.CHECKSUM`` and keeps
verified zips in a raw cache laid out by archive path.

Failure policy (what callers can rely on):

* ``404`` raises :class:`NotPublishedError` at once (never retried in a loop).
* ``5xx``, ``429`` and network errors (refused, reset, timeout, short body) are retried with
  exponential backoff and jitter, at most ``retries`` extra attempts; then :class:`NetworkError`.
  Other ``4xx`` raise :class:`HttpError` without retry.
* After ``give_up_after`` consecutive fetches that could not connect at all (refused, DNS,
  connect timeout; each after its retries, with no success in between) the client stops trying
  and fails fast, so an unreachable archive costs one backoff sequence, not one per file.
* The ``.CHECKSUM`` is parsed strictly (``<64 hex>  <zip name>``); anything else (an HTML or S3
  XML error page served with 200, a checksum for another file) raises :class:`BadChecksumFileError`.
* A zip whose sha256 does not match is downloaded once more; a second mismatch raises
  :class:`ChecksumMismatchError`. Nothing unverified ever lands in the cache.
* A cached zip is re-hashed against a freshly fetched ``.CHECKSUM`` before use, so files the
  archive republished are downloaded again.
* :func:`flows.sources.files.open_csv_member` accepts only a zip with exactly one ``.csv``
  member whose name has no directory part (no path traversal) and whose size is below a cap.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
)

from flows.sources.errors import (
    HttpError,
    NetworkError,
    NotFoundError,
    SourceError,
    TooLargeError,
    short_reason,
)
from flows.sources.files import MAX_MEMBER_BYTES, sha256_file
from flows.sources.http import USER_AGENT, network_reason, parse_retry_after

#: largest expanded member per dataset: a day of 1m klines is ~150 KB, of metrics ~30 KB, a
#: month of funding ~10 KB; only aggTrades are large (streamed to disk, never held in memory)
MEMBER_CAPS: dict[str, int] = {
    "klines": 64 * 1024**2,
    "markPriceKlines": 64 * 1024**2,
    "metrics": 16 * 1024**2,
    "fundingRate": 16 * 1024**2,
    "aggTrades": MAX_MEMBER_BYTES,
}
#: largest download per dataset (the zip as served): real ones are a few times smaller than
#: their member, so the member cap bounds them too
DOWNLOAD_CAPS: dict[str, int] = dict(MEMBER_CAPS)
#: largest ``.CHECKSUM`` body accepted (real ones are ~100 bytes)
MAX_CHECKSUM_BYTES = 4096
_CHUNK = 1 << 20
_CHECKSUM_RE = re.compile(r"^([0-9a-fA-F]{64}) [ *]([^\s/\\]+)\r?\n?$")


def _dataset_of(archive_path: str) -> str | None:
    """The dataset folder of an archive path (``data/futures/um/daily/<dataset>/...``)."""
    parts = archive_path.split("/")
    return parts[4] if len(parts) > 4 else None


def member_cap(dataset: str) -> int:
    """The largest expanded CSV member accepted for ``dataset``.

    Examples
    --------
    >>> member_cap("klines") // 1024**2, member_cap("aggTrades") // 1024**3
    (64, 2)
    """
    return MEMBER_CAPS.get(dataset, MAX_MEMBER_BYTES)


def download_cap(archive_path: str) -> int:
    """The largest body accepted for ``archive_path`` (from its dataset's known sizes).

    Examples
    --------
    >>> download_cap("data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-01-01.zip")
    16777216
    """
    return DOWNLOAD_CAPS.get(_dataset_of(archive_path) or "", MAX_MEMBER_BYTES)


class NotPublishedError(NotFoundError):
    """The archive answered 404 (not yet published, or a gap)."""


class BadChecksumFileError(SourceError):
    """The ``.CHECKSUM`` body is not a sha256sum line for the expected zip."""

    kind = "checksum"


class ChecksumMismatchError(SourceError):
    """The zip's sha256 differs from its ``.CHECKSUM`` twice in a row."""

    kind = "checksum"


class DeadlineError(SourceError):
    """A download did not finish within its overall deadline (a stalled or trickling
    server); not retried, since the same server would stall again."""

    kind = "timeout"


class _Unchanged(SourceError):
    """Internal: a conditional re-request answered 304 (the same body as before)."""

    kind = "checksum"


class _Transient(Exception):
    """Internal: a failure worth retrying (5xx, 429, network). ``connect`` marks failures to
    reach the host at all (refused, DNS, connect timeout), which trip the fail-fast breaker."""

    def __init__(
        self, message: str, *, connect: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.connect = connect
        self.retry_after = retry_after


@dataclass(frozen=True)
class VerifiedZip:
    """A zip in the raw cache whose sha256 matched the archive's ``.CHECKSUM``."""

    archive_path: str
    url: str
    path: Path
    sha256: str
    downloaded: bool
    republished: bool = False


def parse_checksum(text: str | bytes, zip_name: str) -> str:
    """Return the lowercase sha256 hex digest from a ``.CHECKSUM`` body for ``zip_name``.

    Examples
    --------
    >>> parse_checksum("ab" * 32 + "  X-1m-2024-01-01.zip\\n", "X-1m-2024-01-01.zip") == "ab" * 32
    True
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise BadChecksumFileError("bad .CHECKSUM: not ASCII text") from None
    m = _CHECKSUM_RE.match(text)
    if m is None:
        head = text.strip().splitlines()[0][:40] if text.strip() else "<empty>"
        raise BadChecksumFileError(f"bad .CHECKSUM: not a sha256sum line ({head!r})")
    if m.group(2) != zip_name:
        raise BadChecksumFileError(f"bad .CHECKSUM: names {m.group(2)!r}, expected {zip_name!r}")
    return m.group(1).lower()


def _default_deadline() -> float:
    """``LIQHEAT_DOWNLOAD_DEADLINE_S`` (see :class:`flows.settings.Settings`)."""
    from flows.settings import Settings

    return Settings().download_deadline_s


def _too_large(size: int, cap: int, *, announced: bool = False) -> str:
    what = "announced body" if announced else "body"
    return f"{what} of {size:,} bytes is above the cap of {cap:,} for this dataset: refused"


def _deadline_reason(deadline_s: float) -> str:
    return (
        f"download did not finish within its {deadline_s:.0f}s deadline (a stalled or "
        "trickling server; LIQHEAT_DOWNLOAD_DEADLINE_S sets it)"
    )


def _bounded(
    chunks: Iterator[bytes], cap: int | None, deadline: float | None, deadline_s: float
) -> Iterator[bytes]:
    """Pass ``chunks`` through, stopping at ``cap`` bytes or at ``deadline``."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if cap is not None and total > cap:
            raise TooLargeError(_too_large(total, cap))
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineError(_deadline_reason(deadline_s))
        yield chunk


class ArchiveClient:
    """Fetch and verify archive files from ``base_url`` into ``raw_dir``.

    Parameters
    ----------
    base_url
        Archive root, e.g. ``https://data.binance.vision`` or ``file:///srv/mirror``.
    raw_dir
        Cache root; a zip lands at ``raw_dir / archive_path``.
    timeout_s, retries
        Per-request timeout and extra attempts for retryable failures.
    backoff_s, backoff_max_s
        First backoff delay and its cap (exponential with up to ``backoff_s`` of jitter); tests
        pass tiny values.
    give_up_after
        Consecutive fetches that could not connect at all (refused, DNS, connect timeout,
        after their retries) after which the client fails fast; ``0`` disables this.

    The client is safe to share between threads (httpx's client is thread-safe).
    """

    def __init__(
        self,
        base_url: str,
        raw_dir: Path,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        give_up_after: int = 2,
        max_member_bytes: int = MAX_MEMBER_BYTES,
        deadline_s: float | None = None,
    ) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https", "file"):
            raise ValueError(f"base URL must be http(s):// or file://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.raw_dir = raw_dir
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.give_up_after = give_up_after
        self.max_member_bytes = max_member_bytes
        self.deadline_s = deadline_s if deadline_s is not None else _default_deadline()
        self._file_root: Path | None = None
        self._http: httpx.Client | None = None
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise ValueError(f"file:// URL with a host is not supported: {base_url!r}")
            self._file_root = Path(url2pathname(parsed.path))
        else:
            self._http = httpx.Client(
                timeout=timeout_s,
                follow_redirects=True,
                headers={"User-Agent": USER_AGENT},
            )
        self._lock = threading.Lock()
        self._network_failures = 0

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> ArchiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, archive_path: str) -> str:
        """Return the full URL of ``archive_path``."""
        return f"{self.base_url}/{archive_path}"

    # -- low level fetching ----------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, stretched to a server's ``Retry-After`` (capped)."""
        n = state.attempt_number
        delay = min(self.backoff_s * (2 ** (n - 1)), self.backoff_max_s)
        delay += random.uniform(0, self.backoff_s)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self.backoff_max_s))
        return float(delay)

    def _tripped(self) -> bool:
        with self._lock:
            return bool(self.give_up_after) and self._network_failures >= self.give_up_after

    def _unreachable(self) -> NetworkError:
        return NetworkError(
            f"network: archive unreachable (gave up after {self._network_failures} files "
            "could not connect)"
        )

    def _stop(self, state: RetryCallState) -> bool:
        # stop after the last attempt, or early once other fetches found the host unreachable
        return state.attempt_number > self.retries or self._tripped()

    def _with_retries(self, fn: Any) -> Any:
        """Call ``fn()``, retrying :class:`_Transient`; map errors to a ``SourceError``."""
        if self._tripped():
            raise self._unreachable()
        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            result = retrying(fn)
        except _Transient as exc:
            tries = retrying.statistics.get("attempt_number", self.retries + 1)
            with self._lock:
                self._network_failures = self._network_failures + 1 if exc.connect else 0
            raise NetworkError(f"network: {exc} ({tries} tries)") from exc
        except SourceError:
            # the archive answered (e.g. 404): it is reachable
            with self._lock:
                self._network_failures = 0
            raise
        with self._lock:
            self._network_failures = 0
        return result

    @contextmanager
    def _open_stream(
        self,
        archive_path: str,
        *,
        cap: int | None = None,
        deadline: float | None = None,
        seen: dict[str, str] | None = None,
    ) -> Iterator[Iterator[bytes]]:
        """Yield an iterator of body chunks; raise 404/HTTP errors or :class:`_Transient`.

        ``cap`` refuses a body above that many bytes (up front from its Content-Length, and
        while reading); ``deadline`` (``time.monotonic()``) stops a body that has not arrived
        by then, however slowly it trickles. ``seen`` carries the ETag of an earlier answer:
        it is sent as ``If-None-Match`` and the new one stored; a 304 (the same body again)
        raises :class:`_Unchanged`."""
        if self._file_root is not None:
            if not self._file_root.is_dir():
                raise NetworkError(f"network: mirror folder {self._file_root} does not exist")
            target = self._file_root / archive_path
            try:
                fh: IO[bytes] = target.open("rb")
            except FileNotFoundError:
                raise NotPublishedError("404 not published (no such file in mirror)") from None
            except OSError as exc:
                raise _Transient(short_reason(exc)) from exc
            with fh:
                size = os.fstat(fh.fileno()).st_size
                if cap is not None and size > cap:
                    raise TooLargeError(_too_large(size, cap))
                yield iter(lambda: fh.read(_CHUNK), b"")
            return
        assert self._http is not None
        headers = {"If-None-Match": seen["etag"]} if seen and seen.get("etag") else {}
        try:
            with self._http.stream("GET", self.url(archive_path), headers=headers) as resp:
                status = resp.status_code
                if seen is not None:
                    if status == 304:
                        raise _Unchanged(seen.get("etag", ""))
                    seen["etag"] = resp.headers.get("ETag", "")
                if status == 404:
                    raise NotPublishedError("404 not published")
                if status == 429 or status >= 500:
                    raise _Transient(
                        f"HTTP {status}",
                        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                    )
                if status != 200:
                    raise HttpError(f"HTTP {status}")
                announced = resp.headers.get("Content-Length", "")
                if cap is not None and announced.isdigit() and int(announced) > cap:
                    raise TooLargeError(_too_large(int(announced), cap, announced=True))
                yield _bounded(resp.iter_bytes(), cap, deadline, self.deadline_s)
        except httpx.TooManyRedirects as exc:
            raise HttpError(f"too many redirects (a redirect loop?): {short_reason(exc)}") from exc
        except httpx.TransportError as exc:
            connect = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise _Transient(network_reason(exc), connect=connect) from exc

    def fetch_bytes(self, archive_path: str, max_bytes: int = MAX_CHECKSUM_BYTES) -> bytes:
        """Return the body of a small file (e.g. a ``.CHECKSUM``), with retries."""

        def once() -> bytes:
            buf = bytearray()
            with self._open_stream(archive_path) as chunks:
                for chunk in chunks:
                    buf.extend(chunk)
                    if len(buf) > max_bytes:
                        raise BadChecksumFileError(
                            f"bad .CHECKSUM: body larger than {max_bytes} bytes"
                        )
            return bytes(buf)

        data: bytes = self._with_retries(once)
        return data

    def _download_to_tmp(
        self, archive_path: str, target: Path, seen: dict[str, str] | None = None
    ) -> tuple[Path, str]:
        """Download to a temp file next to ``target``; return ``(temp path, sha256)``.

        The body is capped (:func:`download_cap`) and the whole download, retries included,
        must finish within ``deadline_s``. The caller renames the temp file into place or
        deletes it."""
        deadline = time.monotonic() + self.deadline_s
        cap = download_cap(archive_path)

        def once() -> tuple[Path, str]:
            if time.monotonic() >= deadline:
                raise DeadlineError(_deadline_reason(self.deadline_s))
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            digest = hashlib.sha256()
            try:
                with (
                    os.fdopen(fd, "wb") as fh,
                    self._open_stream(
                        archive_path, cap=cap, deadline=deadline, seen=seen
                    ) as chunks,
                ):
                    for chunk in chunks:
                        digest.update(chunk)
                        fh.write(chunk)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return Path(tmp), digest.hexdigest()

        result: tuple[Path, str] = self._with_retries(once)
        return result

    # -- verified zips ---------------------------------------------------------------------
    def expected_sha256(self, archive_path: str) -> str:
        """Fetch and strictly parse the ``.CHECKSUM`` of ``archive_path``."""
        body = self.fetch_bytes(archive_path + ".CHECKSUM")
        return parse_checksum(body, archive_path.rsplit("/", 1)[-1])

    def fetch_verified(self, archive_path: str) -> VerifiedZip:
        """Return ``archive_path`` as a verified zip in the raw cache, downloading if needed.

        Raises
        ------
        SourceError
            :class:`NotPublishedError`, :class:`NetworkError`, :class:`HttpError`,
            :class:`BadChecksumFileError` or :class:`ChecksumMismatchError`.
        """
        expected = self.expected_sha256(archive_path)
        target = self.raw_dir / archive_path
        url = self.url(archive_path)
        republished = False
        if target.exists():
            if sha256_file(target) == expected:
                return VerifiedZip(archive_path, url, target, expected, downloaded=False)
            republished = True
        seen: dict[str, str] = {}
        tmp, got = self._download_to_tmp(archive_path, target, seen)
        if got != expected:
            # Once more, but never the same body twice: the request carries the first
            # answer's ETag, and a server that would send the same bytes again answers 304
            # (then the checksum cannot match and nothing more is downloaded).
            tmp.unlink(missing_ok=True)
            try:
                tmp, got = self._download_to_tmp(archive_path, target, seen)
            except _Unchanged:
                raise ChecksumMismatchError(
                    f"checksum mismatch (sha256 {got[:8]}…, .CHECKSUM {expected[:8]}…); the "
                    "server has no other body (same ETag), so it was not downloaded again"
                ) from None
            if got != expected:
                tmp.unlink(missing_ok=True)
                raise ChecksumMismatchError(
                    f"checksum mismatch after one re-download (sha256 {got[:8]}…, "
                    f".CHECKSUM {expected[:8]}…)"
                )
        os.replace(tmp, target)
        return VerifiedZip(archive_path, url, target, expected, True, republished)


def copy_file(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` (helper for mirrors and tests)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
