"""Bybit (USDT linear perpetuals) as a :class:`~flows.sources.base.Source`.

Units are ``(dataset, canonical symbol, UTC day)``; :meth:`BybitSource.plan` returns both
datasets for every symbol-day:

``trades`` -> ``klines``
    The daily trade file ``{public_url}/trading/{SYMBOL}/{SYMBOL}{YYYY-MM-DD}.csv.gz`` (gzip CSV
    with header ``timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,
    homeNotional,foreignNotional[,RPI]``; ``timestamp`` in epoch seconds, float or integer;
    ``side`` is the taker side). It is rebuilt into 1-minute bars (:func:`bars_from_trades`):
    OHLC of the trade prices, ``volume`` = sum of ``size`` (base units), ``quote_volume`` = sum
    of ``foreignNotional`` (USDT), ``trades`` = count, taker-buy volumes from ``side == "Buy"``.
    Every minute of the day is present: a minute without trades repeats the previous close with
    zero volume (minutes before the day's first trade take that trade's price). Parsing is
    header-driven (the ``RPI`` column only exists in newer files; extra columns are ignored).
    Bybit publishes no checksums: the sha256 of the downloaded file is still recorded (lineage),
    and the file is cached under ``raw_dir/bybit/trading/...`` (temp name, then rename).
    A 404 is ``missing``.

``open_interest`` -> ``open_interest``
    ``GET {api_url}/v5/market/open-interest?category=linear&symbol=..&intervalTime=5min&
    startTime=..&endTime=..&limit=200`` paged with ``cursor`` = ``result.nextPageCursor``, sent
    back exactly as Bybit returned it (it is already percent-encoded,
    ``lastid%3D19408935%26lasttime%3D1780617600``; encoding it again breaks the paging).
    ``result.list`` holds ``{openInterest, timestamp}`` (plus ``singleOpenInterest`` since
    2026-06-11) newest first, in base units for linear contracts; the basis -- one side, taken
    from ``singleOpenInterest`` when present, else from ``openInterest`` -- is decided and
    written down in :func:`single_side_oi`, and the loader cross-checks it against Binance.
    ``oi_usd`` = ``oi_base`` x the close of the 5-minute bar
    that *ends* at the sample time (the last traded price at that moment), from ``GET
    {api_url}/v5/market/kline?category=linear&interval=5`` (``result.list`` of ``[startTime,
    open, high, low, close, volume, turnover]``, newest first). Bybit has no long/short ratios
    in this feed: the ratio columns are null. A ``retCode != 0`` answer fails the unit with
    Bybit's ``retMsg``; ``retCode`` 10006 (too many visits) is retried with backoff. The raw
    answers are kept as one JSON file under ``raw_dir/bybit/open_interest/...`` and its sha256
    recorded.

Contract size: before staging a symbol the source reads
``{api_url}/v5/market/instruments-info?category=linear&symbol=..`` (once per symbol and day);
a listed ``LinearPerpetual`` of the symbol's base coin trades in base units (size 1, cached in
``symbol_map`` with the day read); anything else fails the unit in one line.

Not available from Bybit: mark-price history (no public files; only live REST) and liquidation
history (no files, no REST history; only the live ``allLiquidation`` WebSocket). ``mark_klines``
and ``realized_liquidations`` therefore stay empty for ``bybit``; the model falls back to the
trade high/low for triggering levels (``transforms.bars.model_input``).

Politeness: every request sends a ``User-Agent`` and each host gets a token bucket of
:data:`RATE_PER_S` requests per second (Bybit publishes 600 requests per 5 s per IP for the
public API; we stay far below). The limit holds per process: with Dask, per worker.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from flows.sources.base import StagedUnit, Status, UnitRequest
from flows.sources.bybit.parsing import (
    EXCHANGE,
    INSTRUMENTS_PATH,
    BybitDataError,
    Staged,
    bars_from_trades,
    linear_contract,
    oi_frame,
    parse_trades,
    result_of,
)
from flows.sources.errors import NotFoundError, SourceError, short_reason
from flows.sources.files import atomic_write, day_bounds, sha256_file, write_staged_frame
from flows.sources.http import ClientPool, RestClient
from flows.sources.symbols import ContractSpec, UnknownContractSizeError, instrument

if TYPE_CHECKING:
    from flows.settings import Settings

DATASETS = ("trades", "open_interest")
#: dataset -> warehouse table
TABLES = {"trades": "klines", "open_interest": "open_interest"}
#: requests per second per host (Bybit allows 120/s per IP on public endpoints)
RATE_PER_S = 10.0
OI_PAGE_LIMIT = 200
KLINE_LIMIT = 1000
#: safety bound on cursor pages for one day (288 samples need 2)
MAX_PAGES = 20
#: Bybit's "too many visits" code (rate limit answered with HTTP 200)
RATE_LIMIT_RETCODE = 10006


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def trades_path(instrument_name: str, day: date) -> str:
    """Return the path of one daily trade file under the public-data root.

    Examples
    --------
    >>> trades_path("BTCUSDT", date(2026, 1, 1))
    'trading/BTCUSDT/BTCUSDT2026-01-01.csv.gz'
    """
    return f"trading/{instrument_name}/{instrument_name}{day.isoformat()}.csv.gz"


class BybitSource:
    """Bybit's public data: trade files at ``public_url``, REST answers at ``api_url``.

    Parameters
    ----------
    public_url
        Root of the daily files, e.g. ``https://public.bybit.com`` or a local mirror.
    api_url
        REST root, e.g. ``https://api.bybit.com``.
    raw_dir
        Cache root; files land under ``raw_dir / "bybit"``.
    timeout_s, retries, backoff_s, backoff_max_s
        HTTP policy of :class:`flows.sources.http.RestClient` (and of ``retCode`` 10006).
    rate_per_s
        Requests per second per host.

    Clients are created on first use and shared by the threads of a process; the object pickles
    without them (for Dask workers).

    Examples
    --------
    >>> src = BybitSource("https://public.bybit.com", "https://api.bybit.com", Path("raw"))
    >>> [(r.dataset, r.symbol) for r in src.plan(["BTCUSDT"], [date(2026, 1, 1)])]
    [('trades', 'BTCUSDT'), ('open_interest', 'BTCUSDT')]
    """

    exchange = EXCHANGE

    def __init__(
        self,
        public_url: str,
        api_url: str,
        raw_dir: Path,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        rate_per_s: float = RATE_PER_S,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.raw_dir = Path(raw_dir)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.rate_per_s = rate_per_s
        self._pool = ClientPool(
            timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, backoff_max_s=backoff_max_s
        )
        self._contracts: dict[tuple[str, date], ContractSpec] = {}
        self._contracts_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def _client(self, base_url: str) -> RestClient:
        return self._pool.get(base_url, self.rate_per_s)

    def api(self) -> RestClient:
        """The REST client of ``api_url`` (created on first use, shared by threads)."""
        return self._client(self.api_url)

    def close(self) -> None:
        """Close the HTTP clients (they are re-created on next use)."""
        self._pool.close()

    def __enter__(self) -> BybitSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_contracts_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._contracts_lock = threading.Lock()

    # -- contract sizes --------------------------------------------------------------------
    def contract(self, symbol: str) -> ContractSpec:
        """The contract size of canonical ``symbol`` as Bybit lists it today.

        Read from ``/v5/market/instruments-info?category=linear&symbol=..`` once per symbol,
        day and process (the answer is kept under ``raw_dir/bybit/instruments/``).
        """
        today = datetime.now(UTC).date()
        name = instrument(EXCHANGE, symbol)
        with self._contracts_lock:
            known = self._contracts.get((symbol, today))
            if known is not None:
                return known
            params: dict[str, str | int] = {"category": "linear", "symbol": name}
            result = self._get_result(INSTRUMENTS_PATH, params)
            cache = self.raw_dir / EXCHANGE / "instruments" / f"linear-{name}-{today}.json"
            atomic_write(cache, json.dumps(result, sort_keys=True).encode())
            spec = linear_contract(result, symbol, today)
            self._contracts[(symbol, today)] = spec
            return spec

    # -- the Source interface --------------------------------------------------------------
    def plan(
        self, symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
    ) -> list[UnitRequest]:
        """Return ``trades`` and ``open_interest`` for every symbol-day.

        ``with_trades`` changes nothing: Bybit's bars are always built from the trade files.
        Raises ``ValueError`` for a symbol the symbol map does not know for Bybit.
        """
        for symbol in symbols:
            instrument(EXCHANGE, symbol)
        return [
            UnitRequest(EXCHANGE, dataset, symbol, day)
            for symbol in dict.fromkeys(symbols)
            for day in sorted(set(days))
            for dataset in DATASETS
        ]

    def stage(self, request: UnitRequest, staging_dir: Path) -> StagedUnit:
        """Fetch and parse one unit; write its rows to Parquet under ``staging_dir``.

        Never raises for data problems: 404 or an empty REST answer is ``missing``; network
        trouble after retries, a ``retCode`` error, a corrupt or unparsable file is ``failed``.
        """
        dataset, symbol, day = request.dataset, request.symbol, request.day

        def unit(status: Status, **extra: Any) -> StagedUnit:
            return StagedUnit(EXCHANGE, dataset, symbol, day, status, **extra)

        url: str | None = None
        try:
            name = instrument(EXCHANGE, symbol)
            if dataset in DATASETS:
                url = self._client(self.api_url).url(f"{INSTRUMENTS_PATH}?category=linear")
                spec = self.contract(symbol)
            if dataset == "trades":
                url = f"{self.public_url}/{trades_path(name, day)}"
                staged, sha256, downloaded = self._stage_trades(name, day)
            elif dataset == "open_interest":
                url = self._client(self.api_url).url("/v5/market/open-interest")
                staged, sha256, downloaded = self._stage_open_interest(name, day)
            else:
                raise ValueError(
                    f"unknown dataset {dataset!r}; expected one of trades, open_interest"
                )
            start, end = day_bounds(day)
            stem = f"{EXCHANGE}-{dataset}-{symbol}-{day.isoformat()}"
            parquet = write_staged_frame(staged.frame, staging_dir, stem)
            return unit(
                "loaded",
                table=TABLES[dataset],
                parquet=str(parquet),
                start=start,
                end=end,
                rows=staged.frame.height,
                sha256=sha256,
                reason=staged.warning,
                url=url,
                kind="warning" if staged.warning else None,
                downloaded=downloaded,
                contract_size=spec.contract_size,
                contract_unit=spec.contract_unit,
                size_read_on=spec.read_on,
            )
        except UnknownContractSizeError as exc:
            return unit("failed", reason=str(exc), url=url, kind=exc.kind)
        except NotFoundError:
            return unit("missing", reason="404 not published", url=url, kind="missing")
        except BybitDataError as exc:
            status: Status = "missing" if exc.kind == "missing" else "failed"
            return unit(status, reason=short_reason(exc), url=url, kind=exc.kind)
        except SourceError as exc:
            return unit("failed", reason=short_reason(exc), url=url, kind=exc.kind)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug or an unforeseen answer: record it, keep going
            reason = f"internal error: {type(exc).__name__}: {short_reason(exc)[:100]}"
            return unit("failed", reason=reason, url=url, kind="internal")

    # -- trades ----------------------------------------------------------------------------
    def trades_cache_path(self, instrument_name: str, day: date) -> Path:
        """Where the raw trade file of one day is cached."""
        return self.raw_dir / EXCHANGE / trades_path(instrument_name, day)

    @staticmethod
    def _parse_trades(path: Path, instrument_name: str) -> pl.DataFrame:
        return parse_trades(path.read_bytes(), instrument_name, name=path.name)

    def _download_trades(self, instrument_name: str, day: date, target: Path) -> str:
        got = self._client(self.public_url).download(trades_path(instrument_name, day), target)
        return got.sha256

    def _stage_trades(self, instrument_name: str, day: date) -> tuple[Staged, str, bool]:
        target = self.trades_cache_path(instrument_name, day)
        downloaded = not target.is_file()
        sha256 = self._download_trades(instrument_name, day, target) if downloaded else ""
        if not downloaded:
            sha256 = sha256_file(target)
        try:
            staged = bars_from_trades(self._parse_trades(target, instrument_name), day)
        except BybitDataError as exc:
            if downloaded or exc.kind != "corrupt":
                if exc.kind == "corrupt":
                    target.unlink(missing_ok=True)  # never keep a broken file in the cache
                raise
            # a cached copy that no longer reads: fetch it once more
            sha256 = self._download_trades(instrument_name, day, target)
            downloaded = True
            try:
                staged = bars_from_trades(self._parse_trades(target, instrument_name), day)
            except BybitDataError as again:
                if again.kind == "corrupt":
                    target.unlink(missing_ok=True)
                raise
        return staged, sha256, downloaded

    # -- open interest ---------------------------------------------------------------------
    def _get_result(
        self, path: str, params: dict[str, str | int], *, raw_query: str | None = None
    ) -> dict[str, Any]:
        """GET a Bybit v5 endpoint; return ``result`` (retrying ``retCode`` 10006)."""
        client = self._client(self.api_url)
        attempt = 0
        while True:
            body = client.get_json(path, params, raw_query=raw_query)
            code = body.get("retCode") if isinstance(body, dict) else None
            if code == RATE_LIMIT_RETCODE and attempt < self.retries:
                attempt += 1
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s))
                continue
            return result_of(body, path)

    def fetch_open_interest(self, instrument_name: str, day: date) -> list[dict[str, Any]]:
        """Return the raw pages (``result`` objects) of one day's 5-minute open interest."""
        start, end = day_bounds(day)
        params: dict[str, str | int] = {
            "category": "linear",
            "symbol": instrument_name,
            "intervalTime": "5min",
            "startTime": _ms(start),
            "endTime": _ms(end) - 1,
            "limit": OI_PAGE_LIMIT,
        }
        pages: list[dict[str, Any]] = []
        seen: set[str] = set()
        cursor = ""
        while True:
            # the cursor goes back exactly as Bybit returned it (already percent-encoded,
            # e.g. "lastid%3D19408935%26lasttime%3D1780617600"): encoding it again breaks it
            raw = f"cursor={cursor}" if cursor else None
            result = self._get_result("/v5/market/open-interest", params, raw_query=raw)
            pages.append(result)
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor or not result["list"]:
                return pages
            if cursor in seen or len(pages) >= MAX_PAGES:
                raise BybitDataError(f"open-interest paging did not end after {len(pages)} pages")
            seen.add(cursor)

    def fetch_closes(self, instrument_name: str, day: date) -> dict[str, Any]:
        """Return the raw ``result`` of the 5-minute klines ending inside ``day``."""
        start, end = day_bounds(day)
        params: dict[str, str | int] = {
            "category": "linear",
            "symbol": instrument_name,
            "interval": "5",
            "start": _ms(start - timedelta(minutes=5)),
            "end": _ms(end - timedelta(minutes=5)) - 1,
            "limit": KLINE_LIMIT,
        }
        return self._get_result("/v5/market/kline", params)

    def _stage_open_interest(self, instrument_name: str, day: date) -> tuple[Staged, str, bool]:
        pages = self.fetch_open_interest(instrument_name, day)
        oi_rows = [row for page in pages for row in page["list"]]
        if not oi_rows:
            raise BybitDataError("no open interest for this day", "missing")
        klines = self.fetch_closes(instrument_name, day)
        raw = json.dumps(
            {"open_interest": pages, "kline": klines}, sort_keys=True, separators=(",", ":")
        ).encode()
        cache = self.raw_dir / EXCHANGE / "open_interest" / instrument_name
        atomic_write(cache / f"{instrument_name}-open_interest-{day.isoformat()}.json", raw)
        staged = oi_frame(oi_rows, klines["list"], day)
        if staged.frame.height == 0:
            raise BybitDataError("no open interest inside this day", "missing")
        return staged, hashlib.sha256(raw).hexdigest(), True


def from_settings(settings: Settings, *, base_url: str | None = None) -> BybitSource:
    """The registry factory: a :class:`BybitSource` configured from ``settings``.

    ``base_url`` (a local mirror serving both the files and the REST paths) overrides both
    ``bybit_public_url`` and ``bybit_api_url``.
    """
    return BybitSource(
        base_url or settings.bybit_public_url,
        base_url or settings.bybit_api_url,
        settings.raw_dir,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
