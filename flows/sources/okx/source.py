"""OKX perpetual swaps as a :class:`~flows.sources.base.Source` (exchange ``"okx"``).

Datasets, one unit per canonical symbol and UTC day (symbols map to ``BTC-USDT-SWAP`` etc.
through :mod:`flows.sources.symbols`; sizes in contracts are turned into base units with the
contract size, e.g. 0.01 BTC):

``trades`` -> ``klines``
    Daily trade files ``{static_url}/cdn/okex/traderecords/trades/daily/{YYYYMMDD}/
    {instId}-trades-{YYYY-MM-DD}.zip`` (one CSV ``instrument_name,trade_id,side,price,size,
    created_time``; ``side`` is the taker's side, ``created_time`` epoch ms). **OKX file days are
    UTC+8 days**: the file dated D holds ``[D-1 16:00, D 16:00)`` UTC. A UTC day D therefore needs
    the files dated D (its 00:00-16:00) and D+1 (its 16:00-24:00); both are fetched, their rows
    inside the UTC day kept and aggregated to 1-minute bars with every minute present (an empty
    minute repeats the previous close with zero volume). Until OKX publishes the file dated D+1
    (some time after D+1 16:00 UTC) the UTC day is ``missing``, never loaded half-filled, so
    the nightly gap backfill picks it up a night later. Files are cached under
    ``raw_dir/okx/<url path>``; OKX publishes no checksums, so the unit's ``sha256`` is a digest
    of the two files' sha256 (lineage). There are no mark-price files: the model falls back to
    trade high/low for OKX.
``open_interest`` -> ``open_interest``
    ``GET {api_url}/api/v5/rubik/stat/contracts/open-interest-history?instId=..&period=5m&
    begin=..&end=..&limit=100`` pages backwards (newest first, 100 rows a page) ->
    ``ts, oi_base = oiCcy, oi_usd = oiUsd`` (ratios null). OKX keeps only a few days of 5-minute
    history; for an older day the unit falls back to ``period=1H`` (loaded with a warning), and a
    day with neither is ``missing``. A day that has not ended is ``skipped``.
``liquidations`` -> ``realized_liquidations``
    ``GET {api_url}/api/v5/public/liquidation-orders?instType=SWAP&instFamily=BTC-USDT&
    state=filled&limit=100`` paged backwards with ``after`` -> one row per filled liquidation:
    ``side`` = ``details.posSide`` (``long``/``short``; for net-mode orders ``side=sell`` means a
    long was liquidated), ``usd = sz * contract size * bkPx``, source
    ``"okx-liquidation-orders"``. **OKX serves recent orders only** (about a day to a week), so
    history only builds up by pulling every night: an older day comes back ``missing``. The
    unit's replace window is the span the answer provably covers -- from the day's start if the
    paging reached past it, else from the oldest order OKX still returned -- so a late pull never
    deletes rows an earlier pull stored. A day that has not ended is ``skipped`` (a loaded unit
    is never fetched again). The raw pages of every pull are kept in
    ``raw_dir/okx/liquidation-orders/<instFamily>/<day>-pulled-<time>.json``.

REST calls go through :class:`flows.sources.http.RestClient`: OKX's published limit for these
public endpoints is 5 requests / 2 s per IP, so the API client is limited to 2.5 requests/s
(shared by every thread of the process); the static file host gets 10 requests/s.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from flows.sources.base import (
    KLINES_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    REALIZED_SCHEMA,
    StagedUnit,
    UnitRequest,
)
from flows.sources.binance.client import ArchiveError, BadZipError, read_csv_member
from flows.sources.binance.parsing import ParseError, day_bounds, epoch_unit
from flows.sources.binance.source import write_staged_frame
from flows.sources.http import NotFoundError, RestClient, RestError
from flows.sources.symbols import contract_size, instrument

if TYPE_CHECKING:
    from flows.settings import Settings

EXCHANGE = "okx"
DATASETS = ("trades", "open_interest", "liquidations")
#: dataset -> warehouse table
TABLES = {
    "trades": "klines",
    "open_interest": "open_interest",
    "liquidations": "realized_liquidations",
}
LIQUIDATION_SOURCE = "okx-liquidation-orders"
#: OKX file days start at 16:00 UTC of the previous UTC day (UTC+8)
OKX_DAY_OFFSET = timedelta(hours=8)
#: 5 requests / 2 s per IP on the public rubik and liquidation endpoints
API_RATE_PER_S = 2.5
STATIC_RATE_PER_S = 10.0
PAGE_LIMIT = 100
MAX_PAGES = 200
OI_PERIODS = ("5m", "1H")
_OI_PER_DAY = {"5m": 288, "1H": 24}

TRADE_COLUMNS = ("instrument_name", "trade_id", "side", "price", "size", "created_time")
TS = pl.Datetime("us", "UTC")


class OkxApiError(RestError):
    """OKX answered HTTP 200 with a non-zero ``code`` (e.g. ``51001``, a bad parameter)."""

    kind = "http"


# -- paths and days ------------------------------------------------------------------------
def trades_path(inst_id: str, okx_day: date) -> str:
    """Return the URL path of the trades file OKX dates ``okx_day`` (a UTC+8 day).

    Examples
    --------
    >>> trades_path("BTC-USDT-SWAP", date(2025, 6, 1))
    'cdn/okex/traderecords/trades/daily/20250601/BTC-USDT-SWAP-trades-2025-06-01.zip'
    """
    return (
        f"cdn/okex/traderecords/trades/daily/{okx_day:%Y%m%d}/"
        f"{inst_id}-trades-{okx_day.isoformat()}.zip"
    )


def okx_file_days(day: date) -> tuple[date, date]:
    """Return the two OKX (UTC+8) file days whose trades cover the UTC ``day``.

    The file dated D covers ``[D-1 16:00, D 16:00)`` UTC, so UTC day D takes its first 16 hours
    from file D and its last 8 from file D+1.

    Examples
    --------
    >>> okx_file_days(date(2025, 6, 1))
    (datetime.date(2025, 6, 1), datetime.date(2025, 6, 2))
    """
    return day, day + timedelta(days=1)


def okx_file_span(okx_day: date) -> tuple[datetime, datetime]:
    """Return the UTC span ``[start, end)`` of the OKX file dated ``okx_day``.

    Examples
    --------
    >>> [t.isoformat() for t in okx_file_span(date(2025, 6, 1))]
    ['2025-05-31T16:00:00+00:00', '2025-06-01T16:00:00+00:00']
    """
    start, end = day_bounds(okx_day)
    return start - OKX_DAY_OFFSET, end - OKX_DAY_OFFSET


def inst_family(inst_id: str) -> str:
    """Return the instrument family of a swap, e.g. ``BTC-USDT`` for ``BTC-USDT-SWAP``.

    Examples
    --------
    >>> inst_family("ETH-USDT-SWAP")
    'ETH-USDT'
    """
    return inst_id.removesuffix("-SWAP")


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


# -- pure parsing --------------------------------------------------------------------------
def parse_trades_csv(data: bytes, ct_val: float) -> pl.DataFrame:
    """Parse an OKX trades CSV into ``ts, trade_id, price, base, buy`` (sizes in base units).

    The header is checked by name (a ``name/translation`` header such as
    ``price/成交价格`` is accepted); ``size`` (contracts) times ``ct_val`` gives base units.

    Raises
    ------
    ParseError
        For an unexpected header, a wrong column count, bad numbers, or an unknown side.

    Examples
    --------
    >>> csv = b"instrument_name,trade_id,side,price,size,created_time\\n"
    >>> csv += b"BTC-USDT-SWAP,1,buy,100.5,3,1748736000000\\n"
    >>> parse_trades_csv(csv, 0.01).row(0)[1:]
    (1, 100.5, 0.03, True)
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not first:
        raise ParseError("empty file")
    fields = [f.strip().strip('"') for f in first.split(",")]
    header = not fields[-1].isdigit()  # created_time is an epoch number in data rows
    if header:
        names = tuple(f.split("/")[0].strip().lower() for f in fields)
        if names != TRADE_COLUMNS:
            raise ParseError(f"unexpected header {first[:80]!r}")
    elif len(fields) != len(TRADE_COLUMNS):
        raise ParseError(f"{len(fields)} columns, expected {len(TRADE_COLUMNS)}")
    try:
        raw = pl.read_csv(
            data,
            has_header=False,
            skip_rows=1 if header else 0,
            new_columns=list(TRADE_COLUMNS),
            infer_schema=False,
            encoding="utf8-lossy",
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"unreadable CSV: {_short(exc)}") from exc
    if raw.width != len(TRADE_COLUMNS):
        raise ParseError(f"{raw.width} columns, expected {len(TRADE_COLUMNS)}")
    if raw.is_empty():
        return pl.DataFrame(
            schema={
                "ts": TS,
                "trade_id": pl.Int64(),
                "price": pl.Float64(),
                "base": pl.Float64(),
                "buy": pl.Boolean(),
            }
        )
    unit = epoch_unit(str(raw["created_time"][0]))
    sides = set(raw["side"].str.to_lowercase().unique().to_list())
    if not sides <= {"buy", "sell"}:
        raise ParseError(f"unknown trade side(s) {sorted(map(str, sides - {'buy', 'sell'}))}")
    try:
        return raw.select(
            pl.from_epoch(pl.col("created_time").cast(pl.Int64), time_unit=unit)
            .dt.replace_time_zone("UTC")
            .alias("ts"),
            pl.col("trade_id").cast(pl.Int64),
            pl.col("price").cast(pl.Float64),
            (pl.col("size").cast(pl.Float64) * ct_val).alias("base"),
            (pl.col("side").str.to_lowercase() == "buy").alias("buy"),
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"bad value: {_short(exc)}") from exc


def trades_to_klines(trades: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """Aggregate trades (``ts, trade_id, price, base, buy``) into 1-minute ``klines`` rows.

    Only trades in ``[start, end)`` count; every minute of the range is present. A minute
    without trades repeats the previous close (before the first trade: the first trade's
    price) with zero volume and zero trades. Trades are ordered by ``(ts, trade_id)`` for
    open/close.

    Examples
    --------
    >>> t0 = datetime(2025, 6, 1, tzinfo=UTC)
    >>> trades = pl.DataFrame({"ts": [t0 + timedelta(seconds=s) for s in (5, 70)],
    ...     "trade_id": [1, 2], "price": [10.0, 12.0], "base": [1.0, 2.0], "buy": [True, False]})
    >>> bars = trades_to_klines(trades, t0, t0 + timedelta(minutes=3))
    >>> bars["close"].to_list(), bars["volume"].to_list()
    ([10.0, 12.0, 12.0], [1.0, 2.0, 0.0])
    """
    inside = trades.filter((pl.col("ts") >= start) & (pl.col("ts") < end)).sort("ts", "trade_id")
    quote = pl.col("base") * pl.col("price")
    bars = inside.group_by(pl.col("ts").dt.truncate("1m"), maintain_order=True).agg(
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        pl.col("base").sum().alias("volume"),
        quote.sum().alias("quote_volume"),
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("base").filter(pl.col("buy")).sum().alias("taker_buy_volume"),
        quote.filter(pl.col("buy")).sum().alias("taker_buy_quote_volume"),
    )
    grid = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                start, end, "1m", closed="left", time_unit="us", time_zone="UTC", eager=True
            )
        }
    )
    out = grid.join(bars, on="ts", how="left")
    fill = pl.col("close").forward_fill().fill_null(pl.col("open").backward_fill())
    zero = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")
    return out.with_columns(
        *(pl.col(c).fill_null(fill) for c in ("open", "high", "low", "close")),
        *(pl.col(c).fill_null(0.0) for c in zero),
        pl.col("trades").fill_null(0),
    ).select(pl.col(c).cast(t) for c, t in KLINES_SCHEMA.items())


def okx_data(body: Any) -> list[Any]:
    """Return ``body["data"]`` of an OKX answer; raise :class:`OkxApiError` on ``code != 0``.

    Examples
    --------
    >>> okx_data({"code": "0", "msg": "", "data": [["1", "2"]]})
    [['1', '2']]
    """
    if not isinstance(body, dict) or "code" not in body:
        raise OkxApiError(f"unexpected OKX answer: {str(body)[:60]!r}")
    if str(body["code"]) != "0":
        raise OkxApiError(f"OKX error {body['code']}: {str(body.get('msg', ''))[:100]}")
    data = body.get("data")
    if not isinstance(data, list):
        raise OkxApiError("OKX answer without a data list")
    return data


def parse_open_interest(rows: Sequence[Sequence[Any]]) -> pl.DataFrame:
    """Turn OKX open-interest-history rows ``[ts, oi, oiCcy, oiUsd]`` into canonical
    ``open_interest`` rows (``oi_base = oiCcy``, ``oi_usd = oiUsd``; ratios null), sorted,
    one row per minute-truncated ``ts``.

    Examples
    --------
    >>> parse_open_interest([["1748736300000", "1000", "10", "1050000"]]).row(0)[1:3]
    (10.0, 1050000.0)
    """
    if any(len(r) < 4 for r in rows):
        raise ParseError("open-interest row with fewer than 4 fields")
    try:
        frame = pl.DataFrame(
            {
                "ts": [int(r[0]) for r in rows],
                "oi_base": [float(r[2]) for r in rows],
                "oi_usd": [float(r[3]) for r in rows],
            },
            schema={"ts": pl.Int64(), "oi_base": pl.Float64(), "oi_usd": pl.Float64()},
        )
    except (TypeError, ValueError) as exc:
        raise ParseError(f"bad open-interest value: {_short(exc)}") from exc
    frame = frame.with_columns(
        pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC").dt.truncate("1m")
    )
    frame = frame.sort("ts").unique(subset=["ts"], keep="last", maintain_order=True)
    return frame.with_columns(
        pl.lit(None, pl.Float64()).alias(c) for c in list(OPEN_INTEREST_SCHEMA)[3:]
    ).select(pl.col(c).cast(t) for c, t in OPEN_INTEREST_SCHEMA.items())


def parse_liquidations(data: Sequence[Any], inst_id: str, ct_val: float) -> pl.DataFrame:
    """Flatten OKX liquidation-orders ``data`` into ``ts, side, usd, source`` rows.

    ``side`` is the liquidated side: ``posSide`` when it is ``long``/``short``, else (net
    mode) ``sell`` -> ``long``, ``buy`` -> ``short``. ``usd = sz * ct_val * bkPx``. Entries of
    other instruments are ignored; exact duplicate rows (page overlaps) are dropped.

    Examples
    --------
    >>> d = [{"instId": "BTC-USDT-SWAP", "details": [{"side": "sell", "posSide": "long",
    ...       "bkPx": "50000", "sz": "2", "ts": "1723038122631"}]}]
    >>> parse_liquidations(d, "BTC-USDT-SWAP", 0.01).row(0)[1:]
    ('long', 1000.0, 'okx-liquidation-orders')
    """
    ts: list[int] = []
    sides: list[str] = []
    usd: list[float] = []
    for entry in data:
        if not isinstance(entry, dict):
            raise ParseError("liquidation entry is not an object")
        if entry.get("instId", inst_id) != inst_id:
            continue
        for d in entry.get("details") or []:
            try:
                pos = str(d.get("posSide", "")).lower()
                side = str(d.get("side", "")).lower()
                if pos in ("long", "short"):
                    sides.append(pos)
                elif side in ("sell", "buy"):
                    sides.append("long" if side == "sell" else "short")
                else:
                    raise ParseError(f"liquidation without a side ({side!r}, {pos!r})")
                ts.append(int(d["ts"]))
                usd.append(float(d["sz"]) * ct_val * float(d["bkPx"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ParseError(f"bad liquidation order: {_short(exc)}") from exc
    frame = pl.DataFrame(
        {"ts": ts, "side": sides, "usd": usd},
        schema={"ts": pl.Int64(), "side": pl.String(), "usd": pl.Float64()},
    )
    return (
        frame.unique(maintain_order=True)
        .with_columns(
            pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC"),
            pl.lit(LIQUIDATION_SOURCE).alias("source"),
        )
        .sort("ts", maintain_order=True)
        .select(pl.col(c).cast(t) for c, t in REALIZED_SCHEMA.items())
    )


def _detail_stamps(data: Sequence[Any]) -> list[int]:
    """Return the ``ts`` (ms) of every liquidation detail in one page of ``data``."""
    try:
        return [
            int(d["ts"])
            for entry in data
            if isinstance(entry, dict)
            for d in entry.get("details") or []
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(f"bad liquidation order: {_short(exc)}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class OkxSource:
    """OKX swaps: trade files on ``static_url``, open interest and liquidations on ``api_url``.

    Parameters
    ----------
    static_url, api_url
        ``https://static.okx.com`` and ``https://www.okx.com`` (or local mirrors).
    raw_dir
        Cache root; OKX files land under ``raw_dir/okx/``.
    timeout_s, retries, backoff_s, backoff_max_s
        HTTP policy of the :class:`~flows.sources.http.RestClient` instances.
    api_rate_per_s, static_rate_per_s
        Request rates per process (OKX: 5 requests / 2 s on the public API).
    now
        The current time (UTC) deciding which days have begun; default: the clock.

    The object pickles without its clients, so it can be shipped to a Dask worker.

    Examples
    --------
    >>> src = OkxSource("https://static.okx.com", "https://www.okx.com", Path("raw"))
    >>> [r.dataset for r in src.plan(["BTCUSDT"], [date(2025, 6, 1)])]
    ['trades', 'open_interest', 'liquidations']
    """

    exchange = EXCHANGE

    def __init__(
        self,
        static_url: str,
        api_url: str,
        raw_dir: Path,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        api_rate_per_s: float = API_RATE_PER_S,
        static_rate_per_s: float = STATIC_RATE_PER_S,
        now: datetime | None = None,
    ) -> None:
        self.static_url = static_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.raw_dir = Path(raw_dir)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.api_rate_per_s = api_rate_per_s
        self.static_rate_per_s = static_rate_per_s
        self.now = now
        self._api: RestClient | None = None
        self._static: RestClient | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def _client(self, url: str, rate: float) -> RestClient:
        return RestClient(
            url,
            timeout_s=self.timeout_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            rate_per_s=rate,
        )

    def api(self) -> RestClient:
        """The REST client of ``api_url`` (created on first use, shared by threads)."""
        with self._lock:
            if self._api is None:
                self._api = self._client(self.api_url, self.api_rate_per_s)
            return self._api

    def static(self) -> RestClient:
        """The client of ``static_url`` (created on first use, shared by threads)."""
        with self._lock:
            if self._static is None:
                self._static = self._client(self.static_url, self.static_rate_per_s)
            return self._static

    def close(self) -> None:
        with self._lock:
            for client in (self._api, self._static):
                if client is not None:
                    client.close()
            self._api = self._static = None

    def __enter__(self) -> OkxSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_api"] = state["_static"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC)

    # -- the Source interface --------------------------------------------------------------
    def plan(
        self, symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
    ) -> list[UnitRequest]:
        """Return ``trades``, ``open_interest`` and ``liquidations`` per symbol-day.

        ``with_trades`` changes nothing: OKX bars always come from trades.
        """
        for symbol in symbols:
            instrument(EXCHANGE, symbol)  # raises for unmapped symbols
        return [
            UnitRequest(EXCHANGE, ds, symbol, day)
            for symbol in dict.fromkeys(symbols)
            for day in sorted(set(days))
            for ds in DATASETS
        ]

    def stage(self, request: UnitRequest, staging_dir: Path) -> StagedUnit:
        """Fetch and parse one unit; write its rows to Parquet under ``staging_dir``.

        Never raises for data problems: a 404 (or a day OKX no longer serves) is ``missing``,
        anything else that goes wrong is ``failed`` with a short ``reason``.
        """
        base: dict[str, Any] = {
            "exchange": EXCHANGE,
            "dataset": request.dataset,
            "symbol": request.symbol,
            "day": request.day,
        }
        if request.dataset not in DATASETS:
            reason = f"unknown dataset {request.dataset!r}; expected one of {', '.join(DATASETS)}"
            return StagedUnit(**base, status="failed", reason=reason, kind="internal")
        url: str | None = None
        try:
            inst_id = instrument(EXCHANGE, request.symbol)
            ct_val = contract_size(EXCHANGE, request.symbol)
            if request.dataset == "trades":
                url = self.static().url(trades_path(inst_id, request.day))
                return self._stage_trades(base, inst_id, ct_val, request.day, staging_dir)
            if request.dataset == "open_interest":
                url = self.api().url("/api/v5/rubik/stat/contracts/open-interest-history")
                return self._stage_open_interest(base, inst_id, request.day, staging_dir)
            url = self.api().url("/api/v5/public/liquidation-orders")
            return self._stage_liquidations(base, inst_id, ct_val, request.day, staging_dir)
        except NotFoundError as exc:
            return StagedUnit(**base, status="missing", reason=str(exc), url=url, kind="missing")
        except (RestError, ArchiveError) as exc:
            return StagedUnit(**base, status="failed", reason=str(exc), url=url, kind=exc.kind)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug or an unforeseen answer: record it, keep going
            reason = f"internal error: {type(exc).__name__}: {_short(exc)[:100]}"
            return StagedUnit(**base, status="failed", reason=reason, url=url, kind="internal")

    # -- trades ----------------------------------------------------------------------------
    def _trades_file(self, inst_id: str, okx_day: date) -> tuple[Path, str, bool]:
        """Return ``(path, sha256, downloaded)`` of a cached (or freshly fetched) trades zip."""
        path = trades_path(inst_id, okx_day)
        target = self.raw_dir / EXCHANGE / path
        if target.exists():
            with target.open("rb") as fh:
                return target, hashlib.file_digest(fh, "sha256").hexdigest(), False
        got = self.static().download(path, target)
        return got.path, got.sha256, True

    def _trades(self, inst_id: str, okx_day: date, ct_val: float) -> tuple[pl.DataFrame, str, bool]:
        """Parse one OKX trades file: ``(trades, sha256, downloaded)``. A cached zip that turns
        out corrupt is deleted and fetched again once; a fresh corrupt one fails the unit and
        never stays in the cache."""
        for _attempt in range(2):
            path, digest, fresh = self._trades_file(inst_id, okx_day)
            try:
                return parse_trades_csv(read_csv_member(path), ct_val), digest, fresh
            except BadZipError:
                path.unlink(missing_ok=True)
                if fresh:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _stage_trades(
        self, base: dict[str, Any], inst_id: str, ct_val: float, day: date, staging_dir: Path
    ) -> StagedUnit:
        start, end = day_bounds(day)
        frames: list[pl.DataFrame] = []
        digests: list[str] = []
        urls: list[str] = []
        downloaded = False
        for okx_day in okx_file_days(day):
            urls.append(self.static().url(trades_path(inst_id, okx_day)))
            try:
                frame, digest, fresh = self._trades(inst_id, okx_day, ct_val)
            except NotFoundError:
                reason = (
                    f"404 not published: OKX trades file {okx_day.isoformat()} (UTC+8 day; "
                    f"needed for {day.isoformat()} UTC)"
                )
                return StagedUnit(
                    **base, status="missing", reason=reason, url=urls[-1], kind="missing"
                )
            downloaded |= fresh
            digests.append(digest)
            frames.append(frame)
        trades = pl.concat(frames).unique(subset=["trade_id"], keep="first")
        inside = trades.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        if inside.is_empty():
            raise ParseError(f"no trades inside {day.isoformat()} UTC in the two OKX files")
        bars = trades_to_klines(inside, start, end)
        stem = f"{EXCHANGE}-trades-{base['symbol']}-{day.isoformat()}"
        parquet = write_staged_frame(bars, staging_dir, stem)
        lineage = hashlib.sha256("\n".join(digests).encode()).hexdigest()
        return StagedUnit(
            **base,
            status="loaded",
            table=TABLES["trades"],
            parquet=str(parquet),
            start=start,
            end=end,
            rows=bars.height,
            sha256=lineage,
            url=" + ".join(urls),
            downloaded=downloaded,
        )

    # -- open interest ---------------------------------------------------------------------
    def _oi_rows(self, inst_id: str, period: str, start: datetime, end: datetime) -> list[Any]:
        """Page backwards through open-interest-history for ``[start, end)``."""
        begin_ms, cursor = _ms(start), _ms(end) - 1
        rows: list[Any] = []
        for _page in range(MAX_PAGES):
            params: dict[str, str | int | float] = {
                "instId": inst_id,
                "period": period,
                "begin": begin_ms,
                "end": cursor,
                "limit": PAGE_LIMIT,
            }
            page = okx_data(
                self.api().get_json("/api/v5/rubik/stat/contracts/open-interest-history", params)
            )
            if not page:
                break
            rows.extend(page)
            try:
                oldest = min(int(r[0]) for r in page)
            except (TypeError, ValueError, IndexError) as exc:
                raise ParseError(f"bad open-interest row: {_short(exc)}") from exc
            if oldest <= begin_ms or len(page) < PAGE_LIMIT or oldest > cursor:
                break  # reached the day's start, the end of history, or a cursor-less server
            cursor = oldest - 1
        return rows

    def _stage_open_interest(
        self, base: dict[str, Any], inst_id: str, day: date, staging_dir: Path
    ) -> StagedUnit:
        start, end = day_bounds(day)
        if end > self._now():
            # a loaded unit is never fetched again: pull a day once it is over
            reason = "day not over: open interest is pulled once the UTC day has ended"
            return StagedUnit(**base, status="skipped", reason=reason)
        for period in OI_PERIODS:
            rows = self._oi_rows(inst_id, period, start, end)
            frame = parse_open_interest(rows).filter((pl.col("ts") >= start) & (pl.col("ts") < end))
            if frame.height:
                break
        else:
            reason = f"no open interest for {day.isoformat()} (OKX keeps only recent history)"
            return StagedUnit(**base, status="missing", reason=reason, kind="missing")
        notes: list[str] = []
        expected = _OI_PER_DAY[period]
        if period != OI_PERIODS[0]:
            notes.append(f"5m history gone: {period} samples")
        if frame.height < expected:
            notes.append(f"short: {frame.height} of {expected} {period} samples")
        stem = f"{EXCHANGE}-open_interest-{base['symbol']}-{day.isoformat()}"
        parquet = write_staged_frame(frame, staging_dir, stem)
        return StagedUnit(
            **base,
            status="loaded",
            table=TABLES["open_interest"],
            parquet=str(parquet),
            start=start,
            end=end,
            rows=frame.height,
            reason="; ".join(notes) or None,
            url=self.api().url(
                "/api/v5/rubik/stat/contracts/open-interest-history"
                f"?instId={inst_id}&period={period}"
            ),
            kind="warning" if notes else None,
        )

    # -- liquidations ----------------------------------------------------------------------
    def _stage_liquidations(
        self, base: dict[str, Any], inst_id: str, ct_val: float, day: date, staging_dir: Path
    ) -> StagedUnit:
        start, end = day_bounds(day)
        now = self._now()
        if end > now:
            # a loaded unit is never fetched again: pull a day once it is over
            reason = "day not over: liquidations are pulled once the UTC day has ended"
            return StagedUnit(**base, status="skipped", reason=reason)
        family = inst_family(inst_id)
        path = "/api/v5/public/liquidation-orders"
        url = self.api().url(f"{path}?instType=SWAP&instFamily={family}&state=filled")
        cursor = _ms(end)
        pages: list[Any] = []
        oldest: int | None = None
        reached_start = False
        for _page in range(MAX_PAGES):
            params: dict[str, str | int | float] = {
                "instType": "SWAP",
                "instFamily": family,
                "state": "filled",
                "limit": PAGE_LIMIT,
                "after": cursor,
            }
            data = okx_data(self.api().get_json(path, params))
            pages.extend(data)
            stamps = _detail_stamps(data)
            if not stamps:
                break
            page_oldest = min(stamps)
            oldest = page_oldest if oldest is None else min(oldest, page_oldest)
            if page_oldest < _ms(start):
                reached_start = True
                break
            if len(stamps) < PAGE_LIMIT or page_oldest >= cursor:
                break
            cursor = page_oldest
        _write_atomic(
            self.raw_dir
            / EXCHANGE
            / "liquidation-orders"
            / family
            / f"{day.isoformat()}-pulled-{now:%Y%m%dT%H%M%SZ}.json",
            json.dumps({"fetched_at": now.isoformat(), "data": pages}).encode(),
        )
        lineage = hashlib.sha256(json.dumps(pages, sort_keys=True).encode()).hexdigest()
        if oldest is None:
            reason = (
                f"no liquidation orders returned for {day.isoformat()} "
                "(OKX serves recent ones only)"
            )
            return StagedUnit(**base, status="missing", reason=reason, url=url, kind="missing")
        notes: list[str] = []
        if reached_start:
            covered_from = start
        else:
            covered_from = max(
                start, datetime.fromtimestamp(oldest / 1000, tz=UTC).replace(microsecond=0)
            )
            if covered_from > start:
                notes.append(f"partial: OKX returned orders from {covered_from:%H:%M:%S} only")
        events = parse_liquidations(pages, inst_id, ct_val).filter(
            (pl.col("ts") >= covered_from) & (pl.col("ts") < end)
        )
        stem = f"{EXCHANGE}-liquidations-{base['symbol']}-{day.isoformat()}"
        parquet = write_staged_frame(events, staging_dir, stem)
        return StagedUnit(
            **base,
            status="loaded",
            table=TABLES["liquidations"],
            parquet=str(parquet),
            replaces_source=LIQUIDATION_SOURCE,
            start=covered_from,
            end=end,
            rows=events.height,
            sha256=lineage,
            reason="; ".join(notes) or None,
            url=url,
            kind="warning" if notes else None,
        )


def from_settings(settings: Settings, *, base_url: str | None = None) -> OkxSource:
    """The registry factory: an :class:`OkxSource` from ``settings``.

    ``base_url`` (a local mirror) replaces both the static-file and the API root.
    """
    return OkxSource(
        base_url or settings.okx_static_url,
        base_url or settings.okx_api_url,
        settings.raw_dir,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
