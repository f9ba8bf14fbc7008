"""A small, polite REST client for exchanges' public endpoints.

One :class:`RestClient` talks to one host. Every request goes through the same policy:

* a **token-bucket rate limiter** (:class:`RateLimiter`) shared by all threads and, by default,
  by every client of the same host and rate in the process (:func:`shared_limiter`), so
  ``rate_per_s`` holds per host and process even when each task builds its own source (OKX:
  5 requests / 2 s -> ``rate_per_s=2.5``); every attempt, retries included, takes a token.
  Separate processes (e.g. Dask workers) each have their own bucket;
* **timeouts** on connect and read (``timeout_s``);
* **retries** with exponential backoff and jitter on ``429``, ``5xx`` and network errors (refused,
  reset, timeout, truncated body), at most ``retries`` extra attempts; a ``Retry-After`` header
  (seconds or an HTTP date) stretches the wait, never beyond ``backoff_max_s``;
* ``404`` raises :class:`NotFoundError` at once; any other ``4xx`` raises :class:`HttpError`
  at once.

Errors are those of :mod:`flows.sources.errors` (the family every source shares):
:class:`~flows.sources.errors.NetworkError`, :class:`~flows.sources.errors.HttpError`,
:class:`~flows.sources.errors.NotFoundError` and :class:`~flows.sources.errors.DecodeError`, each
with a ``kind`` that maps onto :attr:`flows.sources.base.StagedUnit.kind` and a one-line
``str()``.

Examples
--------
>>> with RestClient("https://www.okx.com", rate_per_s=2.5) as api:  # doctest: +SKIP
...     body = api.get_json("/api/v5/public/time")
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlparse

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from flows.sources.errors import (
    DecodeError,
    HttpError,
    NetworkError,
    NotFoundError,
    short_reason,
)

USER_AGENT = "liqheat (+https://github.com/liqheat/liqheat)"
#: largest JSON body accepted
MAX_JSON_BYTES = 64 * 1024**2
_CHUNK = 1 << 20

T = TypeVar("T")
Params = Mapping[str, str | int | float]


class _Transient(Exception):
    """Internal: a failure worth retrying; ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RateLimiter:
    """Thread-safe token bucket: at most ``burst`` requests at once, refilled at ``rate_per_s``.

    :meth:`acquire` reserves the next free slot under a lock and sleeps outside it, so callers
    are served in arrival order and never closer than ``1 / rate_per_s`` apart once the burst is
    spent. With ``burst=1`` (the default) any window of ``w`` seconds holds at most
    ``1 + w * rate_per_s`` requests -- e.g. ``rate_per_s=2.5`` keeps to OKX's 5 per 2 s.

    Examples
    --------
    >>> limiter = RateLimiter(1000.0)
    >>> limiter.acquire() >= 0.0
    True
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; return the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(
                float(self.burst), self._tokens + (now - self._stamp) * self.rate_per_s
            )
            self._stamp = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s
        if wait > 0:
            self._sleep(wait)
        return wait


_SHARED: dict[tuple[str, float, int], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(key: str, rate_per_s: float, burst: int = 1) -> RateLimiter:
    """Return this process's one :class:`RateLimiter` for ``(key, rate_per_s, burst)``.

    :class:`RestClient` keys it by host, so every client of a host in the process draws from
    the same bucket.

    Examples
    --------
    >>> shared_limiter("www.okx.com", 2.5) is shared_limiter("www.okx.com", 2.5)
    True
    """
    with _SHARED_LOCK:
        limiter = _SHARED.get((key, rate_per_s, burst))
        if limiter is None:
            limiter = _SHARED[(key, rate_per_s, burst)] = RateLimiter(rate_per_s, burst)
        return limiter


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Examples
    --------
    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC))
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def network_reason(exc: BaseException) -> str:
    """A short reason for an ``httpx`` transport error (refused, not resolved, timed out...).

    Examples
    --------
    >>> network_reason(httpx.ReadTimeout("read timed out"))
    'timed out'
    """
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        if "name" in text or "resolv" in text or "nodename" in text:
            return "host name not resolved"
        return f"cannot connect ({short_reason(exc)})"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection dropped mid-response"
    return short_reason(exc)


@dataclass(frozen=True)
class Download:
    """A file fetched by :meth:`RestClient.download`: where it is, its sha256 and size."""

    url: str
    path: Path
    sha256: str
    size: int


class RestClient:
    """GET JSON (or files) from one host with rate limiting, timeouts and bounded retries.

    Parameters
    ----------
    base_url
        ``http(s)://host[/prefix]``; request paths are appended to it.
    timeout_s
        Per-request timeout (connect, read, write, pool).
    retries
        Extra attempts after a retryable failure (``429``, ``5xx``, network); ``0`` disables.
    backoff_s, backoff_max_s
        First backoff delay and the cap of every wait (exponential, plus up to ``backoff_s`` of
        jitter; a ``Retry-After`` hint raises the wait up to the cap).
    rate_per_s, burst
        Token-bucket limit per host: shared by threads and by every client of the same host
        (and rate) in this process, unless ``limiter`` is given.
    limiter
        A :class:`RateLimiter` of its own (then ``rate_per_s``/``burst`` are ignored).
    user_agent
        Sent with every request.

    The client is safe to share between threads.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        rate_per_s: float,
        burst: int = 1,
        user_agent: str = USER_AGENT,
        limiter: RateLimiter | None = None,
    ) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base URL must be http(s)://host, got {base_url!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.limiter = limiter or shared_limiter(parsed.netloc, rate_per_s, burst)
        self._http = httpx.Client(
            timeout=timeout_s,
            follow_redirects=True,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        """Return the full URL of ``path`` (with or without a leading slash)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- retry policy ----------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        n = state.attempt_number
        delay = min(self.backoff_s * (2 ** (n - 1)), self.backoff_max_s)
        delay = min(delay + random.uniform(0, self.backoff_s), self.backoff_max_s)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self.backoff_max_s))
        return float(delay)

    def _with_retries(self, fn: Callable[[], T], url: str) -> T:
        retrying = Retrying(
            stop=lambda state: state.attempt_number > self.retries,
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            return retrying(fn)
        except _Transient as exc:
            tries = retrying.statistics.get("attempt_number", self.retries + 1)
            raise NetworkError(
                f"network: {exc} ({tries} tries) for {url}", url=url, status=exc.status
            ) from exc

    def _send(
        self, url: str, params: Params | None, raw_query: str | None = None
    ) -> httpx.Response:
        """One attempt: wait for a token, GET, classify the status. Streams the body."""
        self.limiter.acquire()
        if raw_query:
            # appended verbatim: a value the server handed out (e.g. Bybit's already
            # percent-encoded page cursor) must come back byte for byte, not encoded again
            query = "&".join(q for q in (urlencode(params or {}), raw_query) if q)
            request = self._http.build_request("GET", f"{url}?{query}")
        else:
            request = self._http.build_request("GET", url, params=params)
        try:
            resp = self._http.send(request, stream=True)
        except httpx.TooManyRedirects as exc:
            raise HttpError(
                f"too many redirects (a redirect loop?) for {url}", url=url, status=None
            ) from exc
        except httpx.TransportError as exc:
            raise _Transient(network_reason(exc)) from exc
        status = resp.status_code
        if status == 200:
            return resp
        resp.close()
        if status == 404:
            raise NotFoundError(f"404 not found: {url}", url=url, status=404)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            raise _Transient(f"HTTP {status}", status=status, retry_after=retry_after)
        raise HttpError(f"HTTP {status} for {url}", url=url, status=status)

    # -- public API ------------------------------------------------------------------------
    def get_json(
        self, path: str, params: Params | None = None, *, raw_query: str | None = None
    ) -> Any:
        """GET ``path`` with query ``params`` and return the decoded JSON body.

        ``raw_query`` (e.g. ``"cursor=lastid%3D5%26lasttime%3D9"``) is appended to the encoded
        ``params`` exactly as given, never encoded again.

        Raises
        ------
        SourceError
            :class:`NotFoundError`, :class:`HttpError`, :class:`NetworkError` (after the
            retries) or :class:`DecodeError` (a ``200`` that is not JSON).
        """
        url = self.url(path)

        def once() -> bytes:
            resp = self._send(url, params, raw_query)
            try:
                buf = bytearray()
                for chunk in resp.iter_bytes(_CHUNK):
                    buf.extend(chunk)
                    if len(buf) > MAX_JSON_BYTES:
                        raise DecodeError(f"body larger than {MAX_JSON_BYTES} bytes: {url}")
                return bytes(buf)
            except httpx.TransportError as exc:
                raise _Transient(network_reason(exc)) from exc
            finally:
                resp.close()

        body = self._with_retries(once, url)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            head = body[:40].decode("utf-8", "replace").strip().replace("\n", " ")
            raise DecodeError(f"not JSON ({head!r}…) from {url}", url=url, status=200) from None

    def download(self, path: str, target: Path, params: Params | None = None) -> Download:
        """GET ``path`` into ``target`` atomically (temp file + rename); return its sha256.

        A truncated body is retried like a network error; nothing partial is ever left at
        ``target``. Raises the same ``SourceError`` subclasses as :meth:`get_json`.
        """
        url = self.url(path)

        def once() -> Download:
            resp = self._send(url, params)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            digest = hashlib.sha256()
            size = 0
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in resp.iter_bytes(_CHUNK):
                        digest.update(chunk)
                        fh.write(chunk)
                        size += len(chunk)
                os.replace(tmp, target)
            except httpx.TransportError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise _Transient(network_reason(exc)) from exc
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            finally:
                resp.close()
            return Download(url, target, digest.hexdigest(), size)

        return self._with_retries(once, url)


class ClientPool:
    """One :class:`RestClient` per (base URL, rate), created on first use and shared by the
    threads of a process; it pickles empty (a Dask worker opens its own connections).

    Examples
    --------
    >>> pool = ClientPool(timeout_s=5.0, retries=1)
    >>> pool.get("https://www.okx.com", 2.5) is pool.get("https://www.okx.com", 2.5)
    True
    >>> import pickle
    >>> len(pickle.loads(pickle.dumps(pool))), len(pool)
    (0, 1)
    >>> pool.close()
    """

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._clients: dict[tuple[str, float], RestClient] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str, rate_per_s: float) -> RestClient:
        """The client of ``base_url`` at ``rate_per_s`` (created on first use)."""
        with self._lock:
            client = self._clients.get((base_url, rate_per_s))
            if client is None:
                client = self._clients[(base_url, rate_per_s)] = RestClient(
                    base_url,
                    timeout_s=self.timeout_s,
                    retries=self.retries,
                    backoff_s=self.backoff_s,
                    backoff_max_s=self.backoff_max_s,
                    rate_per_s=rate_per_s,
                )
            return client

    def __len__(self) -> int:
        return len(self._clients)

    def close(self) -> None:
        """Close every client (they are re-created on next use)."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_clients"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
