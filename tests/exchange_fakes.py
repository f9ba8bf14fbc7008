"""Local stand-ins for Binance, Bybit and OKX, all fed by ONE seeded synthetic market per symbol.

Everything served here is SYNTHETIC (:mod:`transforms.synthetic`); nothing talks to a live
exchange. Each exchange gets a real HTTP server on 127.0.0.1 (started by the test, stopped when
the context manager exits), speaking that exchange's public layout:

- **Binance** USD-M archive (``data/futures/um/...`` zips + ``.CHECKSUM``), written by
  :func:`flows.demo_data.write_demo_archive` and served by :func:`tests.httpmirror.serve_mirror`.
- **Bybit**: ``/trading/{SYMBOL}/{SYMBOL}{YYYY-MM-DD}.csv.gz`` trade files (four trades per
  minute: the bar's open, high, low and close, so the rebuilt 1m bars have Binance's OHLC;
  sizes = ``volume_scale`` x Binance's volume; the real layouts: ``RPI`` column and float
  seconds from :data:`BYBIT_RPI_FROM`, no ``RPI`` and integer seconds before) and the v5 REST
  endpoints ``/v5/market/open-interest`` (5-minute samples = ``oi_scale`` x Binance's open
  interest, newest first, paged with Bybit's real cursor ``lastid%3D..%26lasttime%3D..``, which
  must come back exactly as issued; from :data:`BYBIT_SINGLE_FROM` the answers carry
  ``singleOpenInterest`` with ``openInterest`` twice that, as in the docs' example),
  ``/v5/market/kline`` (5-minute bars from the 1m bars) and ``/v5/market/instruments-info``.
- **OKX**: static trade zips on OKX's **UTC+8 days** (the file dated D holds ``[D-1 16:00,
  D 16:00)`` UTC; sizes in contracts; 7 columns with ``source`` from :data:`OKX_SOURCE_FROM`,
  the older 6 before), ``/api/v5/rubik/stat/contracts/open-interest-history``
  (``[ts, oi (contracts), oiCcy, oiUsd]``, ``scale`` x Binance's; ``begin``/``end`` exclusive as
  OKX documents them; 5m keeps the newest 1,440 samples, 1H answers hourly samples),
  ``/api/v5/public/liquidation-orders`` (the synthetic liquidation events summed per minute and
  side into one filled order, ``scale`` x the USD, sizes in contracts, newest first, paged with
  ``after``) and ``/api/v5/public/instruments?instType=SWAP`` (the real captured ``ctVal`` of
  BTC and ETH from ``../shared/data/real-samples/okx/instruments-swap.subset.json``, plus
  SOL-USDT-SWAP at 1 SOL).

Usage::

    with serve_exchanges(tmp_path / "fakes", ["BTCUSDT"], first=date(2026, 6, 8), days=2) as ex:
        for name, value in ex.env().items():
            monkeypatch.setenv(name, value)
        nightly_flow(date="2026-06-09", exchanges=["binance", "bybit", "okx"], ...)
        ex.bybit.paths()  # every request each fake received
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from flows.demo_data import write_demo_archive
from flows.sources.binance.paths import zip_csv
from flows.sources.okx.paths import okx_file_span
from flows.sources.okx.paths import trades_path as okx_trades_path
from flows.sources.symbols import instrument, lookup
from tests.flows.test_source_http import Api, Reply, serve_api
from tests.httpmirror import Mirror, serve_mirror
from transforms.synthetic import SyntheticMarket

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = ROOT.parent / "shared" / "data" / "real-samples"
#: Bybit trade files carry ``RPI`` and float seconds from this day on (2025 files have neither)
BYBIT_RPI_FROM = date(2025, 6, 1)
#: Bybit open-interest answers carry ``singleOpenInterest`` from this day on
BYBIT_SINGLE_FROM = date(2026, 6, 11)
#: OKX trade files have the 7th column ``source`` from this (UTC+8) file day on
OKX_SOURCE_FROM = date(2025, 9, 4)
#: OKX keeps at most this many open-interest samples per period
OKX_OI_KEPT = 1440

#: Bybit's and OKX's share of the synthetic (Binance-sized) market
BYBIT_OI_SCALE = 0.4
BYBIT_VOLUME_SCALE = 0.4
OKX_SCALE = 0.25

BYBIT_OI_PATH = "/v5/market/open-interest"
BYBIT_KLINE_PATH = "/v5/market/kline"
BYBIT_INSTRUMENTS_PATH = "/v5/market/instruments-info"
OKX_INSTRUMENTS_PATH = "/api/v5/public/instruments"
OKX_OI_PATH = "/api/v5/rubik/stat/contracts/open-interest-history"
OKX_LIQ_PATH = "/api/v5/public/liquidation-orders"
OKX_STATIC_PREFIX = "/cdn/okex/traderecords/trades/daily/"

TS = pl.Datetime("us", "UTC")
#: seconds into the minute of the four trades that rebuild a bar: open, high, low, close
_TRADE_SECONDS = (5.0, 20.0, 35.0, 50.0)
_BYBIT_HEADER = (
    "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
    "foreignNotional,RPI"
)
_OKX_HEADER = "instrument_name,trade_id,side,price,size,created_time"
_OKX_HEADER_V7 = _OKX_HEADER + ",source"


def okx_instruments() -> dict[str, Any]:
    """The OKX instruments answer the fake serves: the real captured subset plus SOL."""
    body = json.loads((REAL_SAMPLES / "okx" / "instruments-swap.subset.json").read_text())
    sol = dict(next(e for e in body["data"] if e["instId"] == "ETH-USDT-SWAP"))
    sol.update(instId="SOL-USDT-SWAP", instFamily="SOL-USDT", uly="SOL-USDT", ctVal="1")
    sol.update(ctValCcy="SOL")
    return {**body, "data": [*body["data"], sol]}


def okx_ct_val(inst_id: str) -> float:
    """The contract size the fake's instruments answer gives ``inst_id``."""
    for entry in okx_instruments()["data"]:
        if entry["instId"] == inst_id:
            return float(entry["ctVal"])
    raise KeyError(f"{inst_id} is not in the fake's OKX instruments")


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def minute_bars(market: SyntheticMarket) -> pl.DataFrame:
    """The market's 1m bars as ``ts, open, high, low, close, volume`` (UTC ``ts``)."""
    return market.klines.select(
        pl.from_epoch("open_time", time_unit="ms").dt.replace_time_zone("UTC").alias("ts"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    )


def bar_trades(bars: pl.DataFrame, size_scale: float) -> pl.DataFrame:
    """Four trades per bar (open, high, low, close at :data:`_TRADE_SECONDS`): ``ts, side
    ("Buy"/"Sell"), size (base), price, seq`` in time order. Each trade carries a quarter of
    ``size_scale`` x the bar's volume (at least 0.001)."""
    parts = []
    for k, (col, side) in enumerate(
        (("open", "Buy"), ("high", "Buy"), ("low", "Sell"), ("close", "Sell"))
    ):
        parts.append(
            bars.select(
                (pl.col("ts") + pl.duration(milliseconds=int(_TRADE_SECONDS[k] * 1000))).alias(
                    "ts"
                ),
                pl.lit(side).alias("side"),
                (pl.col("volume") * size_scale / 4).round(3).clip(lower_bound=0.001).alias("size"),
                pl.col(col).alias("price"),
                pl.lit(k).alias("k"),
            )
        )
    return (
        pl.concat(parts)
        .sort("ts", "k")
        .with_row_index("seq")
        .select("ts", "side", "size", "price", "seq")
    )


def five_minute_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """5-minute ``start, open, high, low, close, volume, turnover`` from 1m bars."""
    return (
        bars.group_by(pl.col("ts").dt.truncate("5m").alias("start"), maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            (pl.col("volume") * pl.col("close")).sum().alias("turnover"),
        )
        .sort("start")
    )


# -- Bybit -----------------------------------------------------------------------------------
@dataclass
class FakeBybitVenue:
    """Bybit's public files and v5 REST answers for ``markets`` on the UTC ``days``."""

    markets: dict[str, SyntheticMarket]
    days: list[date]
    oi_scale: float = BYBIT_OI_SCALE
    volume_scale: float = BYBIT_VOLUME_SCALE
    _files: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def trade_file(self, symbol: str, day: date) -> bytes:
        """The gzip CSV Bybit would publish for ``symbol`` on UTC ``day``."""
        start = _day_start(day)
        bars = minute_bars(self.markets[symbol]).filter(
            (pl.col("ts") >= start) & (pl.col("ts") < start + timedelta(days=1))
        )
        trades = bar_trades(bars, self.volume_scale)
        quote = pl.col("size") * pl.col("price")
        rpi = day >= BYBIT_RPI_FROM
        stamp = pl.col("ts").dt.epoch("us") / 1e6
        rows = trades.select(
            (stamp.round(4) if rpi else stamp.floor().cast(pl.Int64)).alias("timestamp"),
            pl.lit(symbol).alias("symbol"),
            "side",
            "size",
            "price",
            pl.when(pl.col("side") == "Buy")
            .then(pl.lit("PlusTick"))
            .otherwise(pl.lit("MinusTick"))
            .alias("tickDirection"),
            pl.format(
                "00000000-0000-5000-8000-{}", pl.col("seq").cast(pl.String).str.zfill(12)
            ).alias("trdMatchID"),
            (quote * 1e8).round(0).alias("grossValue"),
            pl.col("size").alias("homeNotional"),
            quote.round(6).alias("foreignNotional"),
            pl.lit(0).alias("RPI"),
        )
        if not rpi:
            rows = rows.drop("RPI")
        assert ",".join(rows.columns) == (_BYBIT_HEADER if rpi else _BYBIT_HEADER[: -len(",RPI")])
        return gzip.compress(rows.write_csv().encode())

    def _metrics(self, symbol: str) -> pl.DataFrame:
        return self.markets[symbol].metrics.select(
            pl.col("create_time").dt.epoch("ms").alias("ms"),
            (pl.col("sum_open_interest") * self.oi_scale).alias("oi"),
        )

    def __call__(self, path: str, q: dict[str, str]) -> Reply:
        if path.startswith("/trading/"):
            parts = path.strip("/").split("/")
            if len(parts) == 3:
                symbol, name = parts[1], parts[2]
                for day in self.days:
                    if symbol in self.markets and name == f"{symbol}{day.isoformat()}.csv.gz":
                        with self._lock:
                            if path not in self._files:
                                self._files[path] = self.trade_file(symbol, day)
                            return Reply(200, self._files[path])
            return Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>")
        if path == BYBIT_INSTRUMENTS_PATH:
            return self._instruments(q)
        if path in (BYBIT_OI_PATH, BYBIT_KLINE_PATH):
            symbol = q.get("symbol", "")
            if q.get("category") != "linear" or symbol not in self.markets:
                return _bybit(10001, "params error: symbol invalid", {})
            if path == BYBIT_OI_PATH:
                return self._open_interest(symbol, q)
            return self._kline(symbol, q)
        return Reply(404, {"retCode": 404, "retMsg": "no route"})

    def _open_interest(self, symbol: str, q: dict[str, str]) -> Reply:
        if q.get("intervalTime") != "5min":
            return _bybit(10001, "params error: intervalTime invalid", {})
        lo, hi = int(q["startTime"]), int(q["endTime"])
        limit = min(int(q.get("limit", 50)), 200)
        rows = (
            self._metrics(symbol)
            .filter((pl.col("ms") >= lo) & (pl.col("ms") <= hi))
            .sort("ms", descending=True)
        )
        offset = 0
        if q.get("cursor"):
            # the query arrives decoded once: a cursor sent back exactly as issued reads
            # "lastid=N&lasttime=T"; one encoded again reads "lastid%3DN%26lasttime%3DT"
            lastid, _, lasttime = q["cursor"].partition("&lasttime=")
            if not lastid.startswith("lastid=") or not lastid[7:].isdigit():
                return _bybit(10001, f"params error: cursor invalid {q['cursor'][:40]!r}", {})
            offset = int(lastid[7:])
            if offset >= rows.height or lasttime != str(rows["ms"][offset - 1] // 1000):
                return _bybit(10001, "params error: cursor invalid", {})
        page = rows.slice(offset, limit)
        more = offset + limit < rows.height
        last = int(page["ms"][-1]) // 1000 if page.height else 0
        items: list[dict[str, str]] = []
        for ms, oi in page.select("ms", "oi").iter_rows():
            day = datetime.fromtimestamp(ms / 1000, UTC).date()
            if day >= BYBIT_SINGLE_FROM:
                items.append(
                    {
                        "openInterest": f"{2 * oi:.8f}",
                        "singleOpenInterest": f"{oi:.8f}",
                        "timestamp": str(ms),
                    }
                )
            else:
                items.append({"openInterest": f"{oi:.8f}", "timestamp": str(ms)})
        return _bybit(
            0,
            "OK",
            {
                "symbol": symbol,
                "category": "linear",
                "list": items,
                "nextPageCursor": (
                    f"lastid%3D{offset + limit}%26lasttime%3D{last}" if more else ""
                ),
            },
        )

    def _instruments(self, q: dict[str, str]) -> Reply:
        symbol = q.get("symbol", "")
        if q.get("category") != "linear":
            return _bybit(10001, "params error: category invalid", {})
        listed = []
        if symbol in self.markets:
            inst = lookup("bybit", symbol)
            listed.append(
                {
                    "symbol": symbol,
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": inst.base,
                    "quoteCoin": "USDT",
                    "settleCoin": "USDT",
                    "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001"},
                }
            )
        return _bybit(0, "", {"category": "linear", "list": listed, "nextPageCursor": ""})

    def _kline(self, symbol: str, q: dict[str, str]) -> Reply:
        if q.get("interval") != "5":
            return _bybit(10001, "params error: interval invalid", {})
        lo, hi = int(q["start"]), int(q["end"])
        limit = min(int(q.get("limit", 200)), 1000)
        bars = five_minute_bars(minute_bars(self.markets[symbol])).with_columns(
            pl.col("start").dt.epoch("ms").alias("ms")
        )
        sel = bars.filter((pl.col("ms") >= lo) & (pl.col("ms") <= hi)).sort("ms").tail(limit)
        rows = [
            [str(ms), str(o), str(h), str(lo_), str(c), f"{v:.3f}", f"{t:.2f}"]
            for ms, o, h, lo_, c, v, t in sel.sort("ms", descending=True)
            .select("ms", "open", "high", "low", "close", "volume", "turnover")
            .iter_rows()
        ]
        return _bybit(0, "OK", {"symbol": symbol, "category": "linear", "list": rows})


def _bybit(code: int, msg: str, result: dict[str, Any]) -> Reply:
    return Reply(
        200, {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": 1}
    )


# -- OKX -------------------------------------------------------------------------------------
@dataclass
class FakeOkxVenue:
    """OKX's static trade files (UTC+8 days) and v5 REST answers for ``markets``.

    ``file_days`` are the OKX (UTC+8) days whose trade files are published: a UTC day D is
    complete only with the files dated D and D+1.
    """

    markets: dict[str, SyntheticMarket]
    file_days: list[date]
    scale: float = OKX_SCALE
    _files: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _symbol_of(self, inst_id: str) -> str | None:
        for symbol in self.markets:
            if instrument("okx", symbol) == inst_id:
                return symbol
        return None

    def trade_zip(self, symbol: str, okx_day: date) -> bytes:
        """The zip OKX would publish for ``symbol`` dated ``okx_day`` (a UTC+8 day)."""
        inst = instrument("okx", symbol)
        ct_val = okx_ct_val(inst)
        start, end = okx_file_span(okx_day)
        bars = minute_bars(self.markets[symbol]).filter(
            (pl.col("ts") >= start) & (pl.col("ts") < end)
        )
        trades = bar_trades(bars, self.scale)
        first_id = int(_ms(start) // 1000) * 10  # ids grow across files
        rows = trades.select(
            pl.lit(inst).alias("instrument_name"),
            (pl.col("seq") + first_id).alias("trade_id"),
            pl.col("side").str.to_lowercase(),
            "price",
            (pl.col("size") / ct_val).round(2).alias("size"),
            pl.col("ts").dt.epoch("ms").alias("created_time"),
            pl.lit(0).alias("source"),
        )
        if okx_day < OKX_SOURCE_FROM:
            rows = rows.drop("source")
        assert ",".join(rows.columns) == (
            _OKX_HEADER_V7 if okx_day >= OKX_SOURCE_FROM else _OKX_HEADER
        )
        return zip_csv(rows.write_csv(), f"{inst}-trades-{okx_day.isoformat()}.csv")

    def liquidation_details(self, symbol: str) -> pl.DataFrame:
        """The filled liquidation orders: one per (minute, side) of the synthetic events,
        ``ts`` (ms, the minute's first event), ``side``, ``posSide``, ``bkPx``, ``sz``
        (contracts) with ``sz * ct_val * bkPx = scale x the events' USD``."""
        ct_val = okx_ct_val(instrument("okx", symbol))
        events = self.markets[symbol].liquidations
        grouped = (
            events.group_by(pl.col("ts").dt.truncate("1m").alias("minute"), "side")
            .agg(
                pl.col("ts").min().alias("ts"),
                (pl.col("usd") * self.scale).sum().alias("usd"),
                ((pl.col("usd") * pl.col("price")).sum() / pl.col("usd").sum()).alias("px"),
            )
            .sort("ts", "side")
        )
        return grouped.select(
            pl.col("ts").dt.epoch("ms").alias("ms"),
            pl.col("side").alias("posSide"),
            pl.when(pl.col("side") == "long")
            .then(pl.lit("sell"))
            .otherwise(pl.lit("buy"))
            .alias("side"),
            pl.col("px").round(1).alias("bkPx"),
            (pl.col("usd") / (pl.col("px").round(1) * ct_val)).alias("sz"),
            "usd",
        )

    def __call__(self, path: str, q: dict[str, str]) -> Reply:
        if path.startswith(OKX_STATIC_PREFIX):
            for name in self.markets:
                inst = instrument("okx", name)
                for okx_day in self.file_days:
                    if path == "/" + okx_trades_path(inst, okx_day):
                        with self._lock:
                            if path not in self._files:
                                self._files[path] = self.trade_zip(name, okx_day)
                            return Reply(200, self._files[path])
            return Reply(404, b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>")
        if path == OKX_INSTRUMENTS_PATH:
            if q.get("instType") != "SWAP":
                return Reply(200, {"code": "51000", "msg": "Parameter instType error"})
            return Reply(200, okx_instruments())
        if path == OKX_OI_PATH:
            symbol = self._symbol_of(q.get("instId", ""))
            if symbol is None:
                return Reply(200, {"code": "51001", "msg": "Instrument ID does not exist"})
            return self._open_interest(symbol, q)
        if path == OKX_LIQ_PATH:
            if q.get("state") != "filled":
                return Reply(200, {"code": "50014", "msg": "Parameter state can not be empty."})
            family = q.get("instFamily", "")
            symbol = self._symbol_of(f"{family}-SWAP")
            if q.get("instType") != "SWAP" or symbol is None:
                return Reply(400, {"code": "51000", "msg": "Parameter instFamily error"})
            return self._liquidations(symbol, family, q)
        return Reply(404, {"code": "404", "msg": "no route"})

    def _open_interest(self, symbol: str, q: dict[str, str]) -> Reply:
        period = q.get("period")
        if period not in ("5m", "1H"):
            return Reply(200, {"code": "51000", "msg": "Parameter period error"})
        ct_val = okx_ct_val(instrument("okx", symbol))
        begin, end = int(q.get("begin", 0)), int(q.get("end", 2**62))
        limit = min(int(q.get("limit", 100)), 100)
        kept = self.markets[symbol].metrics.select(
            pl.col("create_time").dt.epoch("ms").alias("ms"),
            (pl.col("sum_open_interest") * self.scale).alias("ccy"),
            (pl.col("sum_open_interest_value") * self.scale).alias("usd"),
        )
        if period == "1H":
            kept = kept.filter(pl.col("ms") % 3_600_000 == 0)
        kept = kept.sort("ms").tail(OKX_OI_KEPT)
        rows = (
            # OKX: begin = "newer than", end = "earlier than": both exclusive
            kept.filter((pl.col("ms") > begin) & (pl.col("ms") < end))
            .sort("ms", descending=True)
            .head(limit)
        )
        data = [
            [str(ms), f"{ccy / ct_val:.2f}", f"{ccy:.6f}", f"{usd:.2f}"]
            for ms, ccy, usd in rows.iter_rows()
        ]
        return Reply(200, {"code": "0", "msg": "", "data": data})

    def _liquidations(self, symbol: str, family: str, q: dict[str, str]) -> Reply:
        after = int(q.get("after", 2**62))
        limit = min(int(q.get("limit", 100)), 100)
        page = (
            self.liquidation_details(symbol)
            .filter(pl.col("ms") < after)
            .sort("ms", descending=True)
            .head(limit)
        )
        details = [
            {
                "bkLoss": "0",
                "bkPx": f"{px}",
                "ccy": "",
                "posSide": pos,
                "side": side,
                "sz": f"{sz:.6f}",
                "ts": str(ms),
                "time": str(ms),
            }
            for ms, pos, side, px, sz in page.select(
                "ms", "posSide", "side", "bkPx", "sz"
            ).iter_rows()
        ]
        inst = instrument("okx", symbol)
        entry = {
            "details": details,
            "instFamily": family,
            "instId": inst,
            "instType": "SWAP",
            "uly": family,
        }
        return Reply(200, {"code": "0", "msg": "", "data": [entry] if details else []})


# -- all three -------------------------------------------------------------------------------
@dataclass
class Exchanges:
    """The running fakes: their base URLs, request logs and the generating markets."""

    binance: Mirror
    bybit: Api
    okx: Api
    bybit_venue: FakeBybitVenue
    okx_venue: FakeOkxVenue
    markets: dict[str, SyntheticMarket]
    days: list[date]

    def env(self) -> dict[str, str]:
        """``LIQHEAT_*`` settings pointing every exchange at its fake."""
        return {
            "LIQHEAT_BINANCE_BASE_URL": self.binance.base_url,
            "LIQHEAT_BYBIT_PUBLIC_URL": self.bybit.base_url,
            "LIQHEAT_BYBIT_API_URL": self.bybit.base_url,
            "LIQHEAT_OKX_STATIC_URL": self.okx.base_url,
            "LIQHEAT_OKX_API_URL": self.okx.base_url,
        }

    def requests(self) -> dict[str, int]:
        """Requests received so far per exchange."""
        return {
            "binance": self.binance.total(),
            "bybit": len(self.bybit.paths()),
            "okx": len(self.okx.paths()),
        }


@contextmanager
def serve_exchanges(
    root: Path, symbols: Sequence[str], *, first: date, days: int, seed: int = 4
) -> Iterator[Exchanges]:
    """Serve Binance, Bybit and OKX fakes of one synthetic market per symbol on 127.0.0.1.

    The UTC days ``first .. first + days - 1`` are published on every exchange (OKX also
    publishes the file dated the day after, which holds the last UTC day's 16:00-24:00; the
    market ends at that midnight, so that file is short). ``root`` receives the Binance archive.
    """
    archive = write_demo_archive(root / "binance", list(symbols), first, days, seed)
    day_list = list(archive.days)
    bybit = FakeBybitVenue(archive.markets, day_list)
    okx = FakeOkxVenue(archive.markets, [*day_list, day_list[-1] + timedelta(days=1)])
    with ExitStack() as stack:
        mirror = stack.enter_context(serve_mirror(archive.root))
        bybit_api = stack.enter_context(serve_api(bybit))
        okx_api = stack.enter_context(serve_api(okx))
        yield Exchanges(mirror, bybit_api, okx_api, bybit, okx, archive.markets, day_list)
