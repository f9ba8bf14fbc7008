"""Fetch today's bars from each venue's public REST endpoints (the I/O half of the top-up).

One :class:`Fetcher` per venue answers ``fetch(symbol, table, start, end)`` with the canonical
rows of ``table`` (``klines``, ``mark_klines`` or ``open_interest``) in ``[start, end)``, bars
that have not closed by ``now`` left out. Every request goes through
:class:`flows.sources.http.RestClient` (rate limit, timeouts, retries); a failure raises a
:class:`~flows.sources.errors.SourceError`.

=========  ====================================  ==========================================
venue      bars and mark bars (1 minute)         open interest (5 minutes)
=========  ====================================  ==========================================
binance    ``/fapi/v1/klines``,                  ``/futures/data/openInterestHist``
           ``/fapi/v1/markPriceKlines``          (``period=5m``; the latest 30 days only)
           (oldest first, paged forward with
           ``startTime``, 1,500 a page)
bybit      ``/v5/market/kline``,                 ``/v5/market/open-interest`` priced with
           ``/v5/market/mark-price-kline``       5-minute closes, as the archive route does
           (newest first, paged backwards with   (:class:`flows.sources.bybit.source.BybitSource`)
           ``end``, 1,000 a page)
okx        ``/api/v5/market/candles``,           ``/api/v5/rubik/stat/contracts/
           ``mark-price-candles`` (newest        open-interest-history`` (``period=5m``,
           first, paged backwards with           :class:`flows.sources.okx.source.OkxSource`)
           ``after``; 300 and 100 a page; the
           ``history-`` endpoints beyond the
           latest 1,440 bars)
=========  ====================================  ==========================================
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import polars as pl

from flows.sources.bybit.parsing import oi_frame, result_of
from flows.sources.bybit.source import BybitSource
from flows.sources.errors import ParseError
from flows.sources.http import RestClient
from flows.sources.okx.parsing import okx_data, parse_open_interest
from flows.sources.okx.source import OkxSource
from flows.sources.symbols import instrument
from flows.sources.today.parsing import (
    binance_klines,
    binance_mark_klines,
    binance_open_interest,
    bybit_klines,
    bybit_mark_klines,
    okx_candles,
    okx_mark_candles,
)

if TYPE_CHECKING:
    from flows.settings import Settings

#: the tables a top-up fills
TABLES = ("klines", "mark_klines", "open_interest")
MINUTE = timedelta(minutes=1)
#: safety bound on the pages of one window
MAX_PAGES = 100


@dataclass(frozen=True)
class Fetched:
    """Rows of one table for one window, with where they came from (URL, sha256 of the
    answers' JSON: lineage)."""

    frame: pl.DataFrame
    url: str
    sha256: str
    pages: int


class Fetcher(Protocol):
    """What :mod:`flows.today` needs of a venue."""

    exchange: str

    def fetch(self, symbol: str, table: str, start: datetime, end: datetime) -> Fetched: ...

    def close(self) -> None: ...


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _digest(pages: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(pages, sort_keys=True).encode()).hexdigest()


def _window(frame: pl.DataFrame, start: datetime, end: datetime, *, bars: bool) -> pl.DataFrame:
    """Rows in ``[start, end)``; with ``bars``, only bars that closed by ``end``."""
    last = pl.col("ts") + MINUTE if bars else pl.col("ts")
    return frame.filter((pl.col("ts") >= start) & (last <= end) & (pl.col("ts") < end))


def _client(base_url: str, settings: Settings | None, rate_per_s: float) -> RestClient:
    return RestClient(
        base_url,
        timeout_s=settings.http_timeout_s if settings else 30.0,
        retries=settings.http_retries if settings else 4,
        rate_per_s=rate_per_s,
    )


class BinanceRest:
    """Binance USD-M public REST (``https://fapi.binance.com``)."""

    exchange = "binance"
    KLINE_LIMIT = 1500
    OI_LIMIT = 500

    def __init__(self, client: RestClient, *, page_limit: int | None = None) -> None:
        self.client = client
        self.page_limit = page_limit

    def close(self) -> None:
        self.client.close()

    def _forward(
        self, path: str, params: dict[str, str | int], start: datetime, end: datetime, limit: int
    ) -> list[Any]:
        """Page forward: each answer is oldest first from ``startTime``; the next page starts
        one millisecond after the newest row seen."""
        rows: list[Any] = []
        cursor = _ms(start)
        for _ in range(MAX_PAGES):
            query = {**params, "startTime": cursor, "endTime": _ms(end) - 1, "limit": limit}
            page = self.client.get_json(path, query)
            if not isinstance(page, list):
                raise ParseError(f"{path}: expected a list, got {str(page)[:60]!r}")
            rows.extend(page)
            if len(page) < limit:
                break
            stamps = [_first_ms(r) for r in page]
            newest = max(stamps)
            if newest + 1 <= cursor or newest + 1 >= _ms(end):
                break
            cursor = newest + 1
        return rows

    def fetch(self, symbol: str, table: str, start: datetime, end: datetime) -> Fetched:
        name = instrument(self.exchange, symbol)
        if table == "open_interest":
            path, limit = "/futures/data/openInterestHist", self.page_limit or self.OI_LIMIT
            params: dict[str, str | int] = {"symbol": name, "period": "5m"}
            rows = self._forward(path, params, start, end, limit)
            frame = _window(binance_open_interest(rows), start, end, bars=False)
        else:
            path = "/fapi/v1/klines" if table == "klines" else "/fapi/v1/markPriceKlines"
            limit = self.page_limit or self.KLINE_LIMIT
            rows = self._forward(path, {"symbol": name, "interval": "1m"}, start, end, limit)
            parse = binance_klines if table == "klines" else binance_mark_klines
            frame = _window(parse(rows), start, end, bars=True)
        url = self.client.url(f"{path}?symbol={name}")
        return Fetched(frame, url, _digest(rows), -(-max(len(rows), 1) // limit))


def _first_ms(row: Any) -> int:
    value = row.get("timestamp") if isinstance(row, dict) else row[0]
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise ParseError(f"bad time {str(value)[:30]!r}") from None


def _backwards(
    get_page: Callable[[int], list[Any]], start: datetime, end: datetime, limit: int
) -> tuple[list[Any], int]:
    """Page backwards through a newest-first answer: ``get_page(cursor)`` returns rows older
    than ``cursor`` (ms, exclusive); stop at ``start`` or at a short or empty page."""
    rows: list[Any] = []
    cursor = _ms(end)
    pages = 0
    for _ in range(MAX_PAGES):
        page = get_page(cursor)
        pages += 1
        rows.extend(page)
        if not page:
            break
        oldest = min(_first_ms(r) for r in page)
        if oldest <= _ms(start) or len(page) < limit or oldest >= cursor:
            break
        cursor = oldest
    return rows, pages


class BybitRest:
    """Bybit v5 public REST (``https://api.bybit.com``), linear contracts."""

    exchange = "bybit"
    KLINE_LIMIT = 1000

    def __init__(self, source: BybitSource, *, page_limit: int | None = None) -> None:
        self.source = source
        self.page_limit = page_limit

    def close(self) -> None:
        self.source.close()

    def fetch(self, symbol: str, table: str, start: datetime, end: datetime) -> Fetched:
        name = instrument(self.exchange, symbol)
        client = self.source.api()
        if table == "open_interest":
            day = start.date()
            pages = self.source.fetch_open_interest(name, day)
            closes = self.source.fetch_closes(name, day)
            oi_rows = [row for page in pages for row in page["list"]]
            frame = _window(oi_frame(oi_rows, closes["list"], day).frame, start, end, bars=False)
            url = client.url(f"/v5/market/open-interest?category=linear&symbol={name}")
            return Fetched(frame, url, _digest([pages, closes]), len(pages) + 1)
        path = "/v5/market/kline" if table == "klines" else "/v5/market/mark-price-kline"
        limit = self.page_limit or self.KLINE_LIMIT

        def page(cursor: int) -> list[Any]:
            params: dict[str, str | int] = {
                "category": "linear",
                "symbol": name,
                "interval": "1",
                "start": _ms(start),
                "end": cursor - 1,
                "limit": limit,
            }
            return list(result_of(client.get_json(path, params), path)["list"])

        rows, pages_read = _backwards(page, start, end, limit)
        parse = bybit_klines if table == "klines" else bybit_mark_klines
        frame = _window(parse(rows), start, end, bars=True)
        return Fetched(frame, client.url(f"{path}?symbol={name}"), _digest(rows), pages_read)


class OkxRest:
    """OKX v5 public REST (``https://www.okx.com``), USDT swaps."""

    exchange = "okx"
    LIMITS: ClassVar[dict[str, int]] = {"candles": 300, "mark-price-candles": 100}
    #: the recent endpoints keep the latest 1,440 bars; older ones come from ``history-*``
    RECENT_BARS = 1440

    def __init__(self, source: OkxSource, *, page_limit: int | None = None) -> None:
        self.source = source
        self.page_limit = page_limit

    def close(self) -> None:
        self.source.close()

    def fetch(self, symbol: str, table: str, start: datetime, end: datetime) -> Fetched:
        inst_id = instrument(self.exchange, symbol)
        api = self.source.api()
        if table == "open_interest":
            rows = self.source.fetch_open_interest_rows(inst_id, "5m", start, end)
            frame = _window(parse_open_interest(rows), start, end, bars=False)
            path = "/api/v5/rubik/stat/contracts/open-interest-history"
            return Fetched(frame, api.url(f"{path}?instId={inst_id}&period=5m"), _digest(rows), 1)
        kind = "candles" if table == "klines" else "mark-price-candles"
        limit = self.page_limit or self.LIMITS[kind]
        now = self.source.now or datetime.now(UTC)
        recent = start >= now - self.RECENT_BARS * MINUTE
        path = f"/api/v5/market/{kind if recent else 'history-' + kind}"

        def page(cursor: int) -> list[Any]:
            params: dict[str, str | int] = {
                "instId": inst_id,
                "bar": "1m",
                "after": cursor,
                "limit": limit,
            }
            return okx_data(api.get_json(path, params))

        rows, pages_read = _backwards(page, start, end, limit)
        parse = okx_candles if table == "klines" else okx_mark_candles
        frame = _window(parse(rows), start, end, bars=True)
        return Fetched(frame, api.url(f"{path}?instId={inst_id}"), _digest(rows), pages_read)


#: the venues with a REST top-up
VENUES = ("binance", "bybit", "okx")


def fetcher(
    exchange: str,
    settings: Settings,
    *,
    base_url: str | None = None,
    now: datetime | None = None,
    page_limit: int | None = None,
) -> Fetcher:
    """The :class:`Fetcher` of ``exchange`` configured from ``settings``; ``base_url`` (a
    stand-in) replaces the venue's REST root. Raises ``ValueError`` for other exchanges."""
    if exchange == "binance":
        client = _client(base_url or settings.binance_api_url, settings, 5.0)
        return BinanceRest(client, page_limit=page_limit)
    if exchange == "bybit":
        root = base_url or settings.bybit_api_url
        bybit = BybitSource(
            root,
            root,
            Path(settings.raw_dir),
            timeout_s=settings.http_timeout_s,
            retries=settings.http_retries,
        )
        return BybitRest(bybit, page_limit=page_limit)
    if exchange == "okx":
        root = base_url or settings.okx_api_url
        okx = OkxSource(
            root,
            root,
            Path(settings.raw_dir),
            timeout_s=settings.http_timeout_s,
            retries=settings.http_retries,
            now=now,
        )
        return OkxRest(okx, page_limit=page_limit)
    raise ValueError(f"no REST top-up for exchange {exchange!r}; expected one of {VENUES}")
