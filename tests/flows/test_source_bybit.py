"""The Bybit source against a local fake of public.bybit.com and api.bybit.com.

One real HTTP server on 127.0.0.1 serves trade files (gzip CSV) written by the tests and answers
the v5 REST endpoints from a script that honours startTime/endTime/limit/cursor, in Bybit's exact
JSON shapes. Nothing here talks to the live exchange.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.settings import Settings
from flows.sources.base import StagedUnit, UnitRequest
from flows.sources.bybit.parsing import OI_SAMPLES_PER_DAY, bars_from_trades
from flows.sources.bybit.source import BybitSource, from_settings, trades_path
from warehouse.db import migrate
from warehouse.reads import query

DAY = date(2026, 1, 1)
DAY_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
START = datetime(2026, 1, 1, tzinfo=UTC)
HEADER = (
    "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
    "foreignNotional"
)


# -- a fake Bybit ----------------------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hit:
    path: str
    query: dict[str, str]
    user_agent: str


Route = Callable[[dict[str, str]], Reply]


@dataclass
class FakeBybit:
    """Files under ``root`` are served as-is; ``routes`` answer REST paths; ``faults`` (path ->
    replies) are served first, one per request."""

    root: Path
    base_url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    faults: dict[str, list[Reply]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, params: dict[str, str], agent: str) -> Reply:
        with self.lock:
            self.hits.append(Hit(path, params, agent))
            queue = self.faults.get(path)
            if queue:
                return queue.pop(0)
        if path in self.routes:
            return self.routes[path](params)
        target = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() in target.parents and target.is_file():
            return Reply(body=target.read_bytes())
        return Reply(404, b"<html><body>404 Not Found</body></html>")

    def calls(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextmanager
def serve(fake: FakeBybit) -> Iterator[FakeBybit]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            reply = fake.answer(
                url.path, dict(parse_qsl(url.query)), self.headers.get("User-Agent", "")
            )
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    server = _Server(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def ok(result: dict[str, Any]) -> Reply:
    body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1}
    return Reply(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


def oi_value(ms: int) -> float:
    return 50_000.0 + (ms - DAY_MS) / 300_000


def close_of_bar(start_ms: int) -> float:
    return 40_000.0 + (start_ms - DAY_MS) / 300_000 * 10


def oi_route(*, samples: int = OI_SAMPLES_PER_DAY) -> Route:
    """/v5/market/open-interest: ``samples`` 5-minute rows from DAY_MS, newest first, paged by
    an opaque cursor; honours startTime/endTime/limit like Bybit."""

    def route(q: dict[str, str]) -> Reply:
        assert q["category"] == "linear"
        assert q["intervalTime"] == "5min"
        lo, hi, limit = int(q["startTime"]), int(q["endTime"]), int(q["limit"])
        stamps = [DAY_MS + 300_000 * i for i in range(samples)]
        rows = sorted((t for t in stamps if lo <= t <= hi), reverse=True)
        offset = 0
        if "cursor" in q:
            # Bybit's real cursor, "lastid%3D<n>%26lasttime%3D<s>", arrives decoded once when
            # sent back exactly as returned; one encoded again reads "lastid%3D..."
            lastid, _, lasttime = q["cursor"].partition("&lasttime=")
            assert lastid.startswith("lastid="), f"cursor not sent back as returned: {q['cursor']}"
            offset = int(lastid.removeprefix("lastid="))
            assert lasttime == str(rows[offset - 1] // 1000)
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        cursor = f"lastid%3D{offset + limit}%26lasttime%3D{page[-1] // 1000}" if more else ""
        return ok(
            {
                "symbol": q["symbol"],
                "category": "linear",
                "list": [{"openInterest": f"{oi_value(t):.8f}", "timestamp": str(t)} for t in page],
                "nextPageCursor": cursor,
            }
        )

    return route


def instruments_route(q: dict[str, str]) -> Reply:
    """/v5/market/instruments-info?category=linear: the listed linear perpetuals."""
    assert q["category"] == "linear"
    listed = [
        {"symbol": s, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": b}
        for s, b in (("SOLUSDT", "SOL"), ("BTCUSDT", "BTC"), ("ETHUSDT", "ETH"))
        if q.get("symbol", s) == s
    ]
    for item in listed:
        item.update(quoteCoin="USDT", settleCoin="USDT")
    return ok({"category": "linear", "list": listed, "nextPageCursor": ""})


def kline_route(q: dict[str, str]) -> Reply:
    """/v5/market/kline: 5-minute bars from ``start`` to ``end`` (inclusive), newest first."""
    assert q["category"] == "linear"
    assert q["interval"] == "5"
    lo, hi, limit = int(q["start"]), int(q["end"]), int(q["limit"])
    first = lo + (-lo) % 300_000
    starts = list(range(first, hi + 1, 300_000))[-limit:][::-1]
    rows = [[str(s), "1", "2", "0.5", f"{close_of_bar(s):.2f}", "10", "400000"] for s in starts]
    return ok({"symbol": q["symbol"], "category": "linear", "list": rows})


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeBybit]:
    root = tmp_path / "mirror"
    root.mkdir()
    fake = FakeBybit(
        root,
        routes={
            "/v5/market/open-interest": oi_route(),
            "/v5/market/kline": kline_route,
            "/v5/market/instruments-info": instruments_route,
        },
    )
    with serve(fake) as running:
        yield running


def source(fake: FakeBybit, tmp_path: Path) -> BybitSource:
    return BybitSource(
        fake.base_url,
        fake.base_url,
        tmp_path / "raw",
        timeout_s=5,
        retries=2,
        backoff_s=0.001,
        backoff_max_s=0.01,
        rate_per_s=1000,
    )


def stage(src: BybitSource, dataset: str, tmp_path: Path, symbol: str = "SOLUSDT") -> StagedUnit:
    return src.stage(UnitRequest("bybit", dataset, symbol, DAY), tmp_path / "staging")


# -- trade files -------------------------------------------------------------------------------
#: (seconds after midnight, side, size, price, foreignNotional)
TRADES = [
    (0.6864, "Buy", 0.2, 124.65, 24.93),
    (30.0, "Sell", 0.3, 124.60, 37.38),
    (59.9999, "Buy", 0.1, 124.70, 12.47),
    # 00:01 has no trade
    (120.0, "Sell", 1.0, 124.50, 124.5),
    (130.5, "Buy", 0.5, 124.80, 62.4),
]


def trade_csv(
    rows: list[tuple[float, str, float, float, float]],
    *,
    rpi: bool,
    integer_seconds: bool,
    symbol: str = "SOLUSDT",
    newest_first: bool = False,
) -> bytes:
    lines = [HEADER + (",RPI" if rpi else "")]
    ordered = list(reversed(rows)) if newest_first else rows
    for i, (sec, side, size, price, quote) in enumerate(ordered):
        ts = DAY_MS // 1000 + sec
        stamp = str(int(ts)) if integer_seconds else f"{ts:.4f}"
        tick = "PlusTick" if side == "Buy" else "MinusTick"
        gross = f"{quote * 1e8:.4g}"
        line = f"{stamp},{symbol},{side},{size},{price},{tick},7df520b4-f4a1-5eb9-86c2-{i:012d},"
        line += f"{gross},{size},{quote}" + (",0" if rpi else "")
        lines.append(line)
    return gzip.compress(("\n".join(lines) + "\n").encode())


def put(fake: FakeBybit, data: bytes, symbol: str = "SOLUSDT", day: date = DAY) -> Path:
    target = fake.root / trades_path(symbol, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def check_known_bars(frame: pl.DataFrame) -> None:
    assert frame.height == 1440
    assert frame["ts"].dtype == pl.Datetime("us", "UTC")
    assert frame["ts"].to_list() == [START + timedelta(minutes=i) for i in range(1440)]
    first, empty, third, last = (frame.row(i, named=True) for i in (0, 1, 2, 1439))
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        124.65,
        124.70,
        124.60,
        124.70,
    )
    assert first["volume"] == pytest.approx(0.6)
    assert first["quote_volume"] == pytest.approx(74.78)
    assert first["trades"] == 3
    assert first["taker_buy_volume"] == pytest.approx(0.3)
    assert first["taker_buy_quote_volume"] == pytest.approx(37.40)
    # the empty minute repeats the previous close with zero volume
    assert (empty["open"], empty["high"], empty["low"], empty["close"]) == (124.7,) * 4
    assert (empty["volume"], empty["quote_volume"], empty["trades"]) == (0.0, 0.0, 0)
    assert (empty["taker_buy_volume"], empty["taker_buy_quote_volume"]) == (0.0, 0.0)
    assert (third["open"], third["high"], third["low"], third["close"]) == (
        124.5,
        124.8,
        124.5,
        124.8,
    )
    assert third["volume"] == pytest.approx(1.5)
    assert third["quote_volume"] == pytest.approx(186.9)
    assert (third["trades"], third["taker_buy_volume"], third["taker_buy_quote_volume"]) == (
        2,
        0.5,
        62.4,
    )
    assert (last["open"], last["close"], last["volume"], last["trades"]) == (124.8, 124.8, 0, 0)
    assert sum(frame.null_count().row(0)) == 0


@pytest.mark.parametrize(
    ("rpi", "integer_seconds"),
    [(False, True), (True, False), (False, False), (True, True)],
    ids=["old-header-int-seconds", "rpi-header-float-seconds", "old-float", "rpi-int"],
)
def test_trade_file_becomes_known_1m_bars(
    fake: FakeBybit, tmp_path: Path, rpi: bool, integer_seconds: bool
) -> None:
    data = trade_csv(TRADES, rpi=rpi, integer_seconds=integer_seconds)
    put(fake, data)
    src = source(fake, tmp_path)
    unit = stage(src, "trades", tmp_path)
    assert unit.status == "loaded", unit.reason
    assert (unit.table, unit.rows, unit.kind, unit.reason) == ("klines", 1440, None, None)
    assert (unit.start, unit.end) == (START, START + timedelta(days=1))
    assert unit.url == f"{fake.base_url}/trading/SOLUSDT/SOLUSDT2026-01-01.csv.gz"
    assert unit.sha256 == hashlib.sha256(data).hexdigest()  # lineage without checksums
    assert unit.downloaded
    assert unit.parquet is not None
    frame = pl.read_parquet(unit.parquet)
    assert "exchange" not in frame.columns
    assert "symbol" not in frame.columns
    check_known_bars(frame)
    # the raw file is cached under raw/bybit/... and byte-identical
    cached = tmp_path / "raw" / "bybit" / "trading" / "SOLUSDT" / "SOLUSDT2026-01-01.csv.gz"
    assert cached.read_bytes() == data
    assert not [p for p in cached.parent.iterdir() if p.name.endswith(".part")]
    agents = {h.user_agent for h in fake.hits}
    assert agents
    assert all(a.startswith("liqheat") for a in agents)


def test_cached_file_is_reused_and_a_newest_first_file_gives_the_same_bars(
    fake: FakeBybit, tmp_path: Path
) -> None:
    data = trade_csv(TRADES, rpi=True, integer_seconds=False, newest_first=True)
    put(fake, data)
    src = source(fake, tmp_path)
    first = stage(src, "trades", tmp_path)
    again = stage(src, "trades", tmp_path)
    assert first.status == again.status == "loaded"
    assert (first.downloaded, again.downloaded) == (True, False)
    assert first.sha256 == again.sha256 == hashlib.sha256(data).hexdigest()
    assert len(fake.calls("/trading/SOLUSDT/SOLUSDT2026-01-01.csv.gz")) == 1
    assert first.parquet
    assert again.parquet
    assert first.parquet != again.parquet
    check_known_bars(pl.read_parquet(again.parquet))


@pytest.mark.parametrize("newest_first", [False, True])
def test_trades_sharing_a_timestamp_keep_their_chronological_order(newest_first: bool) -> None:
    t0, t1 = START + timedelta(seconds=10), START + timedelta(seconds=20)
    trades = pl.DataFrame(
        {
            "ts": [t0, t1, t1, t1],
            "side": ["Buy"] * 4,
            "size": [1.0] * 4,
            "price": [100.0, 101.0, 102.0, 103.0],  # chronological: 103 is the last trade
            "quote": [100.0, 101.0, 102.0, 103.0],
        }
    )
    frame = bars_from_trades(trades.reverse() if newest_first else trades, DAY).frame
    assert frame.row(0, named=True)["open"] == 100.0
    assert frame.row(0, named=True)["close"] == 103.0


def test_leading_empty_minutes_take_the_first_trade_price() -> None:
    trades = pl.DataFrame(
        {
            "ts": [
                START + timedelta(minutes=3, seconds=1),
                START + timedelta(minutes=3, seconds=2),
            ],
            "side": ["Sell", "Buy"],
            "size": [1.0, 1.0],
            "price": [10.0, 11.0],
            "quote": [10.0, 11.0],
        }
    )
    frame = bars_from_trades(trades, DAY).frame
    assert frame.head(3)["open"].to_list() == [10.0] * 3
    assert frame.head(3)["close"].to_list() == [10.0] * 3
    assert frame.row(3, named=True)["close"] == 11.0
    assert frame.row(4, named=True)["open"] == 11.0


def test_trades_outside_the_day_are_dropped_with_a_warning(fake: FakeBybit, tmp_path: Path) -> None:
    put(
        fake,
        trade_csv(
            [*TRADES, (86_400.5, "Buy", 9.0, 130.0, 1170.0)], rpi=False, integer_seconds=False
        ),
    )
    unit = stage(source(fake, tmp_path), "trades", tmp_path)
    assert (unit.status, unit.kind) == ("loaded", "warning")
    assert unit.reason == "1 trade(s) outside the day dropped"
    assert unit.parquet is not None
    check_known_bars(pl.read_parquet(unit.parquet))


def test_a_404_day_is_missing(fake: FakeBybit, tmp_path: Path) -> None:
    unit = stage(source(fake, tmp_path), "trades", tmp_path)
    assert (unit.status, unit.kind, unit.reason) == ("missing", "missing", "404 not published")
    assert unit.parquet is None
    assert len(fake.calls("/trading/SOLUSDT/SOLUSDT2026-01-01.csv.gz")) == 1  # no retry loop
    assert not (tmp_path / "raw" / "bybit" / "trading" / "SOLUSDT").exists() or not any(
        (tmp_path / "raw" / "bybit" / "trading" / "SOLUSDT").iterdir()
    )


def test_a_503_on_the_file_is_retried(fake: FakeBybit, tmp_path: Path) -> None:
    put(fake, trade_csv(TRADES, rpi=False, integer_seconds=True))
    fake.faults["/trading/SOLUSDT/SOLUSDT2026-01-01.csv.gz"] = [Reply(503, b"busy")]
    unit = stage(source(fake, tmp_path), "trades", tmp_path)
    assert unit.status == "loaded", unit.reason
    assert len(fake.calls("/trading/SOLUSDT/SOLUSDT2026-01-01.csv.gz")) == 2


@pytest.mark.parametrize(
    "body",
    [
        trade_csv(TRADES, rpi=False, integer_seconds=True)[:40],
        trade_csv(TRADES, rpi=False, integer_seconds=True)[:-12],
        b"<html><body>Access denied</body></html>",
    ],
    ids=["cut-in-header", "cut-at-end", "html-page"],
)
def test_corrupt_gzip_fails_and_is_not_cached(fake: FakeBybit, tmp_path: Path, body: bytes) -> None:
    put(fake, body)
    unit = stage(source(fake, tmp_path), "trades", tmp_path)
    assert (unit.status, unit.kind) == ("failed", "corrupt")
    assert unit.reason
    assert unit.reason.startswith("corrupt gzip")
    assert not (
        tmp_path / "raw" / "bybit" / "trading" / "SOLUSDT" / "SOLUSDT2026-01-01.csv.gz"
    ).exists()


def test_a_broken_cached_copy_is_downloaded_again(fake: FakeBybit, tmp_path: Path) -> None:
    data = trade_csv(TRADES, rpi=False, integer_seconds=True)
    put(fake, data)
    src = source(fake, tmp_path)
    cached = src.trades_cache_path("SOLUSDT", DAY)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data[:30])
    unit = stage(src, "trades", tmp_path)
    assert (unit.status, unit.downloaded) == ("loaded", True)
    assert cached.read_bytes() == data


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "timestamp,symbol,side,size\n1767225600,SOLUSDT,Buy,1\n",
            "SOLUSDT2026-01-01.csv.gz: unexpected header 'timestamp,symbol,side,size': "
            "missing column(s) price, foreignNotional",
        ),
        (
            HEADER + "\n1767225600,ETHUSDT,Buy,1,2,PlusTick,x,1,1,2\n",
            "SOLUSDT2026-01-01.csv.gz: holds trades of 'ETHUSDT'",
        ),
        (
            HEADER + "\n1767225600,SOLUSDT,Long,1,2,PlusTick,x,1,1,2\n",
            "SOLUSDT2026-01-01.csv.gz: 1 trade row(s) with a bad side",
        ),
        (
            HEADER + "\n1767225600,SOLUSDT,Buy,1,,PlusTick,x,1,1,2\n",
            "SOLUSDT2026-01-01.csv.gz: blank values in column(s) price",
        ),
        (
            HEADER + "\n1767225600,SOLUSDT,Buy,1,abc,PlusTick,x,1,1,2\n",
            "SOLUSDT2026-01-01.csv.gz: unparsable CSV",
        ),
        (HEADER + "\n", "no trades inside 2026-01-01 (0 in the file)"),
        (
            HEADER + "\n1767225600000,SOLUSDT,Buy,1,2,PlusTick,x,1,1,2\n",
            "SOLUSDT2026-01-01.csv.gz: timestamp 1767225600000 is not in epoch seconds",
        ),
    ],
    ids=["header", "symbol", "side", "blank", "text-price", "empty", "ms-timestamps"],
)
def test_bad_files_fail_with_a_reason(
    fake: FakeBybit, tmp_path: Path, text: str, reason: str
) -> None:
    put(fake, gzip.compress(text.encode()))
    unit = stage(source(fake, tmp_path), "trades", tmp_path)
    assert (unit.status, unit.kind) == ("failed", "parse"), unit.reason
    assert unit.reason is not None
    assert unit.reason.startswith(reason)
    assert "\n" not in unit.reason


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 86_399_999),
            st.sampled_from(["Buy", "Sell"]),
            st.integers(1, 1000),
            st.integers(1, 10_000),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_bars_conserve_volume_and_count_and_bound_prices(
    rows: list[tuple[int, str, int, int]],
) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    trades = pl.DataFrame(
        {
            "ts": [START + timedelta(milliseconds=ms) for ms, *_ in rows],
            "side": [r[1] for r in rows],
            "size": [r[2] / 100 for r in rows],
            "price": [r[3] / 10 for r in rows],
            "quote": [r[2] / 100 * r[3] / 10 for r in rows],
        }
    )
    bars = bars_from_trades(trades, DAY).frame
    assert bars.height == 1440
    assert bars["trades"].sum() == len(rows)
    assert bars["volume"].sum() == pytest.approx(trades["size"].sum())
    assert bars["taker_buy_volume"].sum() == pytest.approx(
        trades.filter(pl.col("side") == "Buy")["size"].sum()
    )
    assert (bars["low"] <= bars["open"]).all()
    assert (bars["open"] <= bars["high"]).all()
    assert (bars["low"] <= bars["close"]).all()
    assert (bars["close"] <= bars["high"]).all()
    assert bars["high"].max() == trades["price"].max()
    assert bars["low"].min() == trades["price"].min()
    assert bars["close"][-1] == trades["price"][-1]
    # every bar opens where the previous one closed or at its own first trade
    empty = bars.filter(pl.col("trades") == 0)
    assert (empty["open"] == empty["close"]).all()


# -- open interest -----------------------------------------------------------------------------
def expected_oi() -> pl.DataFrame:
    stamps = [DAY_MS + 300_000 * i for i in range(OI_SAMPLES_PER_DAY)]
    return pl.DataFrame(
        {
            "ts": [START + timedelta(minutes=5 * i) for i in range(OI_SAMPLES_PER_DAY)],
            "oi_base": [oi_value(t) for t in stamps],
            "oi_usd": [oi_value(t) * close_of_bar(t - 300_000) for t in stamps],
        },
        schema={"ts": pl.Datetime("us", "UTC"), "oi_base": pl.Float64, "oi_usd": pl.Float64},
    )


def test_open_interest_pages_and_prices(fake: FakeBybit, tmp_path: Path) -> None:
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert unit.status == "loaded", unit.reason
    assert (unit.table, unit.rows, unit.kind) == ("open_interest", OI_SAMPLES_PER_DAY, None)
    assert unit.url == f"{fake.base_url}/v5/market/open-interest"
    # two pages: 200 + 88 rows, the second asked for with the first page's cursor
    pages = fake.calls("/v5/market/open-interest")
    # Bybit returned "lastid%3D200%26lasttime%3D<s>"; sent back exactly as returned, the
    # server decodes it once to "lastid=200&lasttime=<s>" (re-encoded it would read
    # "lastid%3D200%26...", the bug of issue 12)
    last = (DAY_MS + 300_000 * (OI_SAMPLES_PER_DAY - 200)) // 1000
    assert [p.query.get("cursor") for p in pages] == [None, f"lastid=200&lasttime={last}"]
    first = pages[0].query
    assert first["symbol"] == "BTCUSDT"
    assert first["limit"] == "200"
    assert (int(first["startTime"]), int(first["endTime"])) == (DAY_MS, DAY_MS + 86_400_000 - 1)
    (kline,) = fake.calls("/v5/market/kline")
    assert int(kline.query["start"]) == DAY_MS - 300_000
    assert unit.parquet is not None
    frame = pl.read_parquet(unit.parquet)
    assert frame.columns == [
        "ts",
        "oi_base",
        "oi_usd",
        "top_trader_account_ratio",
        "top_trader_position_ratio",
        "global_account_ratio",
        "taker_buy_sell_ratio",
    ]
    assert frame.select("ts", "oi_base", "oi_usd").equals(expected_oi())
    assert frame.select(pl.nth(range(3, 7)).null_count().sum()).row(0) == (288,) * 4
    # the first sample, by hand: OI 50000 BTC x close 39990 of the 23:55-00:00 bar
    assert frame.row(0)[:3] == (START, 50_000.0, 50_000.0 * 39_990.0)
    # the raw answers are kept and their sha256 recorded
    raw = tmp_path / "raw" / "bybit" / "open_interest" / "BTCUSDT"
    (saved,) = raw.iterdir()
    assert unit.sha256 == hashlib.sha256(saved.read_bytes()).hexdigest()


def test_a_503_then_200_rest_page_is_retried(fake: FakeBybit, tmp_path: Path) -> None:
    fake.faults["/v5/market/open-interest"] = [Reply(503, b"<html>503</html>")]
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert unit.status == "loaded", unit.reason
    pages = fake.calls("/v5/market/open-interest")
    assert len(pages) == 3  # 503, then page 1 again, then page 2
    assert pages[0].query == pages[1].query


def test_a_rest_call_that_keeps_failing_fails_the_unit(fake: FakeBybit, tmp_path: Path) -> None:
    fake.faults["/v5/market/kline"] = [Reply(502, b"bad gateway")] * 3
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert (unit.status, unit.kind) == ("failed", "network")
    assert unit.reason
    assert "HTTP 502 (3 tries)" in unit.reason


def test_retcode_error_fails_with_bybits_message(fake: FakeBybit, tmp_path: Path) -> None:
    body = {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}, "time": 1}
    fake.faults["/v5/market/open-interest"] = [Reply(body=json.dumps(body).encode())]
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert (unit.status, unit.kind) == ("failed", "http")
    assert unit.reason == "bybit retCode 10001: params error: symbol invalid"
    assert unit.parquet is None


def test_too_many_visits_is_retried(fake: FakeBybit, tmp_path: Path) -> None:
    body = {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": 1}
    fake.faults["/v5/market/kline"] = [Reply(body=json.dumps(body).encode())]
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert unit.status == "loaded", unit.reason
    assert len(fake.calls("/v5/market/kline")) == 2


def test_no_open_interest_is_missing_and_a_short_day_warns(fake: FakeBybit, tmp_path: Path) -> None:
    fake.routes["/v5/market/open-interest"] = oi_route(samples=0)
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert (unit.status, unit.kind) == ("missing", "missing")
    assert unit.reason == "no open interest for this day"

    fake.routes["/v5/market/open-interest"] = oi_route(samples=100)
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert (unit.status, unit.kind, unit.rows) == ("loaded", "warning", 100)
    assert unit.reason == "short: 100 of 288 samples"


def test_samples_without_a_close_keep_oi_base_with_null_usd(
    fake: FakeBybit, tmp_path: Path
) -> None:
    fake.faults["/v5/market/kline"] = [ok({"symbol": "BTCUSDT", "category": "linear", "list": []})]
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert (unit.status, unit.kind) == ("loaded", "warning")
    assert unit.reason == "288 sample(s) without a 5m close: oi_usd null"
    assert unit.parquet is not None
    frame = pl.read_parquet(unit.parquet)
    assert frame["oi_usd"].null_count() == 288
    assert frame["oi_base"].null_count() == 0


def test_a_non_json_answer_fails_as_parse(fake: FakeBybit, tmp_path: Path) -> None:
    fake.faults["/v5/market/open-interest"] = [Reply(body=b"<html>maintenance</html>")]
    unit = stage(source(fake, tmp_path), "open_interest", tmp_path, symbol="BTCUSDT")
    assert (unit.status, unit.kind) == ("failed", "parse")


def test_staged_units_load_into_the_warehouse(fake: FakeBybit, tmp_path: Path) -> None:
    from flows.sources.loader import load_staged

    put(fake, trade_csv(TRADES, rpi=True, integer_seconds=False, symbol="BTCUSDT"), "BTCUSDT")
    src = source(fake, tmp_path)
    units = [src.stage(r, tmp_path / "staging") for r in src.plan(["BTCUSDT"], [DAY])]
    assert [(u.dataset, u.status) for u in units] == [
        ("trades", "loaded"),
        ("open_interest", "loaded"),
    ]
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    for _ in range(2):  # loading twice replaces, never duplicates
        outcomes = load_staged(db, units)
        assert [o.status for o in outcomes] == ["loaded", "loaded"]
        units = [src.stage(r, tmp_path / "staging") for r in src.plan(["BTCUSDT"], [DAY])]
    oi = query(
        db,
        "SELECT ts, oi_base, oi_usd FROM open_interest WHERE exchange = 'bybit' "
        "AND symbol = 'BTCUSDT' ORDER BY ts",
    )
    assert oi.equals(expected_oi())
    bars = query(db, "SELECT * FROM klines WHERE exchange = 'bybit' ORDER BY ts")
    assert bars.height == 1440
    assert bars["symbol"].unique().to_list() == ["BTCUSDT"]
    check_known_bars(bars.drop("exchange", "symbol"))
    log = query(
        db,
        "SELECT dataset, status, rows, sha256 IS NOT NULL AS has_sha FROM ingest_log "
        "WHERE exchange = 'bybit' ORDER BY dataset",
    )
    assert log.rows() == [("open_interest", "loaded", 288, True), ("trades", "loaded", 1440, True)]


# -- the source object -----------------------------------------------------------------------
def test_plan_covers_both_datasets_per_symbol_day_and_rejects_unknown_symbols() -> None:
    src = BybitSource("http://127.0.0.1:1", "http://127.0.0.1:1", Path("raw"))
    plan = src.plan(["BTCUSDT", "ETHUSDT", "BTCUSDT"], [DAY + timedelta(days=1), DAY])
    assert [(r.exchange, r.dataset, r.symbol, r.day.day) for r in plan] == [
        ("bybit", "trades", "BTCUSDT", 1),
        ("bybit", "open_interest", "BTCUSDT", 1),
        ("bybit", "trades", "BTCUSDT", 2),
        ("bybit", "open_interest", "BTCUSDT", 2),
        ("bybit", "trades", "ETHUSDT", 1),
        ("bybit", "open_interest", "ETHUSDT", 1),
        ("bybit", "trades", "ETHUSDT", 2),
        ("bybit", "open_interest", "ETHUSDT", 2),
    ]
    assert plan == src.plan(
        ["BTCUSDT", "ETHUSDT"], [DAY, DAY + timedelta(days=1)], with_trades=True
    )
    with pytest.raises(ValueError, match="symbol 'FOOUSDT' is not mapped for exchange 'bybit'"):
        src.plan(["FOOUSDT"], [DAY])


def test_unknown_dataset_and_symbol_fail_the_unit_without_raising(tmp_path: Path) -> None:
    src = BybitSource("http://127.0.0.1:1", "http://127.0.0.1:1", tmp_path)
    unit = src.stage(UnitRequest("bybit", "funding", "BTCUSDT", DAY), tmp_path)
    assert (unit.status, unit.kind) == ("failed", "internal")
    assert unit.reason
    assert "unknown dataset 'funding'" in unit.reason
    unit = src.stage(UnitRequest("bybit", "trades", "FOOUSDT", DAY), tmp_path)
    assert (unit.status, unit.kind) == ("failed", "internal")


def test_source_pickles_and_works_after(fake: FakeBybit, tmp_path: Path) -> None:
    put(fake, trade_csv(TRADES, rpi=False, integer_seconds=True))
    src = source(fake, tmp_path)
    assert stage(src, "trades", tmp_path).status == "loaded"  # a client now exists
    clone = pickle.loads(pickle.dumps(src))
    assert clone.exchange == "bybit"
    assert clone.raw_dir == src.raw_dir
    assert stage(clone, "trades", tmp_path).status == "loaded"
    src.close()
    clone.close()


def test_from_settings_and_base_url_override(tmp_path: Path) -> None:
    settings_ = Settings(home=tmp_path)
    src = from_settings(settings_)
    assert (src.public_url, src.api_url) == ("https://public.bybit.com", "https://api.bybit.com")
    assert src.raw_dir == settings_.raw_dir
    mirror = from_settings(settings_, base_url="http://127.0.0.1:9/")
    assert (mirror.public_url, mirror.api_url) == ("http://127.0.0.1:9", "http://127.0.0.1:9")


def test_registered_in_the_exchange_registry(tmp_path: Path) -> None:
    from flows.sources.registry import EXCHANGES, get_source

    assert "bybit" in EXCHANGES
    src = get_source("bybit", Settings(home=tmp_path), base_url="http://127.0.0.1:9")
    assert isinstance(src, BybitSource)
    assert (src.exchange, src.public_url, src.api_url) == (
        "bybit",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    )
