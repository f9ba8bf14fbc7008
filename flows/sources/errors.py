"""The one error family of every exchange source (archive files and REST answers alike).

Every "this unit could not be fetched or used" error is a :class:`SourceError` with a ``kind``
that maps onto :attr:`flows.sources.base.StagedUnit.kind` and a one-line ``str()``:

=====================  ============  ==========================================================
class                  ``kind``      meaning
=====================  ============  ==========================================================
:class:`NetworkError`  ``network``   refused, reset, timed out, ``5xx``/``429`` after retries
:class:`HttpError`     ``http``      a non-retryable status (``4xx`` other than 404/429)
:class:`NotFoundError` ``missing``   the server answered ``404`` (not published, or a gap)
:class:`ParseError`    ``parse``     the body or file cannot be turned into a valid frame
:class:`DecodeError`   ``parse``     a ``200`` whose body is not the JSON expected
:class:`BadZipError`   ``corrupt``   corrupt or truncated archive, wrong member
:class:`TooLargeError` ``limit``     a body or member above its cap (or a zip bomb)
=====================  ============  ==========================================================

Venue modules subclass these (e.g. :class:`flows.sources.binance.client.NotPublishedError` is a
:class:`NotFoundError`, :class:`flows.sources.okx.parsing.OkxApiError` an :class:`HttpError`),
so a caller catches :class:`SourceError` once for any venue.

Examples
--------
>>> err = NotFoundError("404 not found: /x", url="http://h/x", status=404)
>>> isinstance(err, SourceError), err.kind, err.status
(True, 'missing', 404)
"""

from __future__ import annotations


def short_reason(exc: BaseException) -> str:
    """The first line of ``str(exc)`` (at most 120 characters), or the class name.

    Examples
    --------
    >>> short_reason(ValueError("bad value\\nsecond line"))
    'bad value'
    >>> short_reason(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


class SourceError(Exception):
    """Base class: one unit could not be fetched or used. ``str(exc)`` is a short reason.

    ``url`` and ``status`` say where it happened when known.
    """

    kind = "error"

    def __init__(
        self, message: str = "", *, url: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class NetworkError(SourceError):
    """Network failure, ``5xx`` or ``429`` that persisted through all retries."""

    kind = "network"


class HttpError(SourceError):
    """A non-retryable HTTP status (``4xx`` other than ``404`` and ``429``)."""

    kind = "http"


class NotFoundError(SourceError):
    """The server answered ``404`` (not yet published, or a gap)."""

    kind = "missing"


class ParseError(SourceError):
    """The body or file cannot be turned into a valid frame."""

    kind = "parse"


class DecodeError(ParseError):
    """A ``200`` whose body is not the JSON expected (e.g. an HTML maintenance page)."""


class BadZipError(SourceError):
    """Corrupt/truncated zip, wrong member count or name, member too large."""

    kind = "corrupt"


class TooLargeError(BadZipError):
    """A body or a zip member above its cap (or a zip bomb's expansion ratio): refused."""

    kind = "limit"
