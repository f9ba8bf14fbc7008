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
    startTime=..&endTime=..&limit=200`` paged with ``cursor`` = ``result.nextPageCursor``
    (``result.list`` holds ``{openInterest, timestamp}`` newest first; ``openInterest`` is in
    base units for linear contracts). ``oi_usd`` = ``oi_base`` x the close of the 5-minute bar
    that *ends* at the sample time (the last traded price at that moment), from ``GET
    {api_url}/v5/market/kline?category=linear&interval=5`` (``result.list`` of ``[startTime,
    open, high, low, close, volume, turnover]``, newest first). Bybit has no long/short ratios
    in this feed: the ratio columns are null. A ``retCode != 0`` answer fails the unit with
    Bybit's ``retMsg``; ``retCode`` 10006 (too many visits) is retried with backoff. The raw
    answers are kept as one JSON file under ``raw_dir/bybit/open_interest/...`` and its sha256
    recorded.

Not available from Bybit: mark-price history (no public files; only live REST) and liquidation
history (no files, no REST history; only the live ``allLiquidation`` WebSocket). ``mark_klines``
and ``realized_liquidations`` therefore stay empty for ``bybit``; the model falls back to the
trade high/low for triggering levels (``transforms.bars.model_input``).

Politeness: every request sends a ``User-Agent`` and each host gets a token bucket of
:data:`RATE_PER_S` requests per second (Bybit publishes 600 requests per 5 s per IP for the
public API; we stay far below). The limit holds per process: with Dask, per worker.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from flows.sources.base import KLINES_SCHEMA, OPEN_INTEREST_SCHEMA, StagedUnit, Status, UnitRequest
from flows.sources.http import USER_AGENT, NotFoundError, RestClient, RestError
from flows.sources.symbols import instrument

if TYPE_CHECKING:
    from flows.settings import Settings

EXCHANGE = "bybit"
DATASETS = ("trades", "open_interest")
#: dataset -> warehouse table
TABLES = {"trades": "klines", "open_interest": "open_interest"}
#: requests per second per host (Bybit allows 120/s per IP on public endpoints)
RATE_PER_S = 10.0
#: OI samples per day at 5-minute intervals
OI_SAMPLES_PER_DAY = 288
OI_PAGE_LIMIT = 200
KLINE_LIMIT = 1000
#: safety bound on cursor pages for one day (288 samples need 2)
MAX_PAGES = 20
#: Bybit's "too many visits" code (rate limit answered with HTTP 200)
RATE_LIMIT_RETCODE = 10006

TS = pl.Datetime("us", "UTC")
#: columns every trade file must have (read by name: order and extra columns do not matter)
TRADE_COLUMNS = ("timestamp", "symbol", "side", "size", "price", "foreignNotional")
#: the full header of current files (``RPI`` is absent before ~2025)
TRADE_HEADER = (
    "timestamp",
    "symbol",
    "side",
    "size",
    "price",
    "tickDirection",
    "trdMatchID",
    "grossValue",
    "homeNotional",
    "foreignNotional",
    "RPI",
)


class BybitDataError(Exception):
    """A Bybit file or answer that cannot be used; ``kind`` as in :class:`StagedUnit`."""

    def __init__(self, message: str, kind: str = "parse") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Staged:
    """A parsed unit before it is written: its canonical frame and notes."""

    frame: pl.DataFrame
    warning: str | None = None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return ``[start, end)`` of a UTC day as tz-aware datetimes.

    Examples
    --------
    >>> day_bounds(date(2026, 1, 1))[1].isoformat()
    '2026-01-02T00:00:00+00:00'
    """
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


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


# -- trades -> 1m bars ---------------------------------------------------------------------
def read_trades(path: Path, instrument_name: str) -> pl.DataFrame:
    """Read a Bybit trade file (gzip CSV) into ``ts, side, size, price, quote`` in file order.

    Raises :class:`BybitDataError` (``kind`` ``corrupt`` or ``parse``) for an unreadable file,
    a header without the needed columns, bad values or another symbol's trades.
    """
    try:
        with gzip.open(path, "rb") as fh:
            first = fh.readline(64 * 1024)
    except (OSError, EOFError) as exc:
        raise BybitDataError(f"corrupt gzip: {_first_line(exc)}", "corrupt") from exc
    header = [c.strip() for c in first.decode("utf-8-sig", "replace").strip().split(",")]
    missing = [c for c in TRADE_COLUMNS if c not in header]
    if missing:
        got = ",".join(header)[:80]
        raise BybitDataError(f"bad header: missing {', '.join(missing)} (got {got!r})")
    try:
        raw = pl.read_csv(
            path,
            columns=list(TRADE_COLUMNS),
            schema_overrides={
                "timestamp": pl.Float64,
                "symbol": pl.String,
                "side": pl.String,
                "size": pl.Float64,
                "price": pl.Float64,
                "foreignNotional": pl.Float64,
            },
        )
    except (OSError, EOFError) as exc:
        raise BybitDataError(f"corrupt gzip: {_first_line(exc)}", "corrupt") from exc
    except pl.exceptions.PolarsError as exc:
        raise BybitDataError(f"unparsable CSV: {_first_line(exc)}") from exc
    nulls = raw.null_count().row(0)
    if any(nulls):
        bad = [c for c, n in zip(raw.columns, nulls, strict=True) if n]
        raise BybitDataError(f"blank values in column(s) {', '.join(bad)}")
    others = raw.filter(pl.col("symbol") != instrument_name)["symbol"].unique().to_list()
    if others:
        raise BybitDataError(f"file holds trades of {others[0]!r}, expected {instrument_name!r}")
    bad_rows = raw.select(
        (
            ~pl.col("side").is_in(["Buy", "Sell"])
            | ~(pl.col("price").is_finite() & (pl.col("price") > 0))
            | ~(pl.col("size").is_finite() & (pl.col("size") >= 0))
            | ~pl.col("foreignNotional").is_finite()
            | ~pl.col("timestamp").is_finite()
        ).sum()
    ).item()
    if bad_rows:
        raise BybitDataError(f"{bad_rows} trade row(s) with a bad side, price, size or time")
    return raw.select(
        (pl.col("timestamp") * 1_000_000).round(0).cast(pl.Int64).cast(TS).alias("ts"),
        "side",
        "size",
        "price",
        pl.col("foreignNotional").alias("quote"),
    )


def bars_from_trades(trades: pl.DataFrame, day: date) -> Staged:
    """Aggregate one day of trades into 1440 one-minute bars (columns of ``KLINES_SCHEMA``).

    ``trades`` has ``ts`` (UTC datetime), ``side`` (taker side ``Buy``/``Sell``), ``size`` (base),
    ``price`` and ``quote`` (USDT notional), in file order (ascending or descending in time;
    trades sharing a timestamp keep their chronological file order). Trades outside the day are
    dropped with a warning; a day without any trade raises :class:`BybitDataError`.

    Examples
    --------
    >>> t = pl.DataFrame({"ts": [datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    ...                          datetime(2026, 1, 1, 0, 2, 1, tzinfo=UTC)],
    ...                   "side": ["Buy", "Sell"], "size": [1.0, 2.0],
    ...                   "price": [100.0, 101.0], "quote": [100.0, 202.0]})
    >>> bars = bars_from_trades(t, date(2026, 1, 1)).frame
    >>> bars.height, bars["close"].head(3).to_list(), bars["volume"].head(3).to_list()
    (1440, [100.0, 100.0, 101.0], [1.0, 0.0, 2.0])
    """
    start, end = day_bounds(day)
    frame = trades.with_columns(pl.col("ts").cast(TS))
    if frame.height > 1 and frame["ts"][0] > frame["ts"][-1]:
        frame = frame.reverse()  # newest-first file: restore chronological order
    frame = frame.sort("ts", maintain_order=True)
    inside = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    outside = frame.height - inside.height
    if inside.height == 0:
        raise BybitDataError(f"no trades inside {day.isoformat()} ({frame.height} in the file)")
    buy = pl.col("side") == "Buy"
    bars = inside.group_by(pl.col("ts").dt.truncate("1m"), maintain_order=True).agg(
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        pl.col("size").sum().alias("volume"),
        pl.col("quote").sum().alias("quote_volume"),
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("size").filter(buy).sum().alias("taker_buy_volume"),
        pl.col("quote").filter(buy).sum().alias("taker_buy_quote_volume"),
    )
    grid = pl.DataFrame(
        {"ts": pl.datetime_range(start, end, "1m", closed="left", time_unit="us", eager=True)}
    ).with_columns(pl.col("ts").cast(TS))
    full = grid.join(bars, on="ts", how="left").sort("ts")
    carry = pl.col("close").forward_fill().fill_null(pl.col("open").backward_fill())
    full = full.with_columns(carry.alias("_carry")).with_columns(
        *[pl.col(c).fill_null(pl.col("_carry")) for c in ("open", "high", "low", "close")],
        *[
            pl.col(c).fill_null(0.0)
            for c in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")
        ],
        pl.col("trades").fill_null(0),
    )
    warning = f"{outside} trade(s) outside the day dropped" if outside else None
    return Staged(full.select(list(KLINES_SCHEMA)).cast(pl.Schema(KLINES_SCHEMA)), warning)


# -- open interest -------------------------------------------------------------------------
def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BybitDataError(f"bad {what} {value!r} in Bybit answer") from None


def oi_frame(oi_rows: Sequence[Any], kline_rows: Sequence[Any], day: date) -> Staged:
    """Build the canonical ``open_interest`` rows of ``day`` from Bybit's answers.

    ``oi_rows``: ``result.list`` entries ``{"openInterest": str, "timestamp": str(ms)}`` of all
    pages; ``kline_rows``: 5-minute ``[startTime, open, high, low, close, volume, turnover]``
    lists. ``oi_usd`` uses the close of the bar ending at each sample (``startTime = ts - 5m``);
    without that bar it is null (and a warning says so). Samples outside the day are dropped,
    duplicates keep the first, ``openInterest <= 0`` becomes null.

    Examples
    --------
    >>> oi = [{"openInterest": "2", "timestamp": "1767225600000"}]
    >>> k = [["1767225300000", "99", "101", "98", "100", "5", "500"]]
    >>> oi_frame(oi, k, date(2026, 1, 1)).frame.select("oi_base", "oi_usd").row(0)
    (2.0, 200.0)
    """
    start, end = day_bounds(day)
    if not all(isinstance(r, dict) for r in oi_rows):
        raise BybitDataError("open-interest list entries are not objects")
    if not all(isinstance(r, list | tuple) and len(r) >= 5 for r in kline_rows):
        raise BybitDataError("kline list entries are not [startTime, o, h, l, c, ...] lists")
    oi = pl.DataFrame(
        {
            "ms": [int(_number(r.get("timestamp"), "timestamp")) for r in oi_rows],
            "oi_base": [_number(r.get("openInterest"), "openInterest") for r in oi_rows],
        },
        schema={"ms": pl.Int64, "oi_base": pl.Float64},
    )
    closes = pl.DataFrame(
        {
            "ms": [int(_number(r[0], "kline startTime")) + 300_000 for r in kline_rows],
            "price": [_number(r[4], "kline close") for r in kline_rows],
        },
        schema={"ms": pl.Int64, "price": pl.Float64},
    ).unique("ms", keep="first")
    frame = (
        oi.with_columns((pl.col("ms") * 1000).cast(TS).alias("ts"))
        .filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .unique("ts", keep="first", maintain_order=True)
        .join(closes, on="ms", how="left")
        .sort("ts")
    )
    positive = pl.col("oi_base").is_finite() & (pl.col("oi_base") > 0)
    good_price = pl.col("price").is_finite() & (pl.col("price") > 0)
    frame = frame.with_columns(pl.when(positive).then(pl.col("oi_base")).alias("oi_base"))
    frame = frame.with_columns(
        pl.when(good_price).then(pl.col("oi_base") * pl.col("price")).alias("oi_usd"),
        *[
            pl.lit(None, pl.Float64).alias(c)
            for c in list(OPEN_INTEREST_SCHEMA)[3:]  # the ratios Bybit does not publish
        ],
    )
    notes: list[str] = []
    if frame.height < OI_SAMPLES_PER_DAY:
        notes.append(f"short: {frame.height} of {OI_SAMPLES_PER_DAY} samples")
    unpriced = frame.filter(pl.col("oi_base").is_not_null() & pl.col("oi_usd").is_null()).height
    if unpriced:
        notes.append(f"{unpriced} sample(s) without a 5m close: oi_usd null")
    out = frame.select(list(OPEN_INTEREST_SCHEMA)).cast(pl.Schema(OPEN_INTEREST_SCHEMA))
    return Staged(out, "; ".join(notes) or None)


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return (text or type(exc).__name__)[:120]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_staged(frame: pl.DataFrame, staging_dir: Path, stem: str) -> Path:
    staging_dir.mkdir(parents=True, exist_ok=True)
    dest = staging_dir / f"{stem}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = dest.with_name(f".{dest.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, dest)
    return dest


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
        self._clients: dict[str, RestClient] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def _client(self, base_url: str) -> RestClient:
        with self._lock:
            client = self._clients.get(base_url)
            if client is None:
                client = RestClient(
                    base_url,
                    timeout_s=self.timeout_s,
                    retries=self.retries,
                    backoff_s=self.backoff_s,
                    backoff_max_s=self.backoff_max_s,
                    rate_per_s=self.rate_per_s,
                    user_agent=USER_AGENT,
                )
                self._clients[base_url] = client
            return client

    def close(self) -> None:
        """Close the HTTP clients (they are re-created on next use)."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __enter__(self) -> BybitSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_clients"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

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
            parquet = _write_staged(staged.frame, staging_dir, stem)
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
            )
        except NotFoundError:
            return unit("missing", reason="404 not published", url=url, kind="missing")
        except RestError as exc:
            return unit("failed", reason=_first_line(exc), url=url, kind=exc.kind)
        except BybitDataError as exc:
            status: Status = "missing" if exc.kind == "missing" else "failed"
            return unit(status, reason=_first_line(exc), url=url, kind=exc.kind)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug or an unforeseen answer: record it, keep going
            reason = f"internal error: {type(exc).__name__}: {_first_line(exc)[:100]}"
            return unit("failed", reason=reason, url=url, kind="internal")

    # -- trades ----------------------------------------------------------------------------
    def trades_cache_path(self, instrument_name: str, day: date) -> Path:
        """Where the raw trade file of one day is cached."""
        return self.raw_dir / EXCHANGE / trades_path(instrument_name, day)

    def _download_trades(self, instrument_name: str, day: date, target: Path) -> str:
        got = self._client(self.public_url).download(trades_path(instrument_name, day), target)
        return got.sha256

    def _stage_trades(self, instrument_name: str, day: date) -> tuple[Staged, str, bool]:
        target = self.trades_cache_path(instrument_name, day)
        downloaded = not target.is_file()
        sha256 = self._download_trades(instrument_name, day, target) if downloaded else ""
        if not downloaded:
            sha256 = _sha256(target)
        try:
            staged = bars_from_trades(read_trades(target, instrument_name), day)
        except BybitDataError as exc:
            if downloaded or exc.kind != "corrupt":
                if exc.kind == "corrupt":
                    target.unlink(missing_ok=True)  # never keep a broken file in the cache
                raise
            # a cached copy that no longer reads: fetch it once more
            sha256 = self._download_trades(instrument_name, day, target)
            downloaded = True
            try:
                staged = bars_from_trades(read_trades(target, instrument_name), day)
            except BybitDataError as again:
                if again.kind == "corrupt":
                    target.unlink(missing_ok=True)
                raise
        return staged, sha256, downloaded

    # -- open interest ---------------------------------------------------------------------
    def _get_result(self, path: str, params: dict[str, str | int]) -> dict[str, Any]:
        """GET a Bybit v5 endpoint; return ``result`` (retrying ``retCode`` 10006)."""
        client = self._client(self.api_url)
        attempt = 0
        while True:
            body = client.get_json(path, params)
            if not isinstance(body, dict) or "retCode" not in body:
                raise BybitDataError(f"unexpected answer from {path} (no retCode)")
            code, message = body.get("retCode"), str(body.get("retMsg", "")).strip()
            if code == RATE_LIMIT_RETCODE and attempt < self.retries:
                attempt += 1
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s))
                continue
            if code != 0:
                raise BybitDataError(f"bybit retCode {code}: {message or 'no message'}", "http")
            result = body.get("result")
            if not isinstance(result, dict) or not isinstance(result.get("list"), list):
                raise BybitDataError(f"unexpected answer from {path} (no result.list)")
            return result

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
        while True:
            result = self._get_result("/v5/market/open-interest", params)
            pages.append(result)
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor or not result["list"]:
                return pages
            if cursor in seen or len(pages) >= MAX_PAGES:
                raise BybitDataError(f"open-interest paging did not end after {len(pages)} pages")
            seen.add(cursor)
            params["cursor"] = cursor

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
        _atomic_write(cache / f"{instrument_name}-open_interest-{day.isoformat()}.json", raw)
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
