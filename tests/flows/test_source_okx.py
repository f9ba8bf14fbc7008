"""The OKX source against a local fake of static.okx.com and www.okx.com.

One real HTTP server on 127.0.0.1 serves trade zips written by the tests (OKX's CSV layout and
UTC+8 file days) and answers the v5 REST endpoints from a script honouring begin/end/after/limit,
in OKX's exact JSON shapes. Nothing here talks to the live exchange.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.ingest import ingest
from flows.settings import Settings
from flows.sources.base import StagedUnit, UnitRequest
from flows.sources.binance.paths import zip_csv
from flows.sources.errors import ParseError
from flows.sources.loader import load_staged
from flows.sources.okx.parsing import LIQUIDATION_SOURCE, parse_trades_csv, trades_to_klines
from flows.sources.okx.paths import okx_file_span, trades_path
from flows.sources.okx.source import OkxSource, from_settings
from flows.sources.registry import get_source
from tests.flows.test_source_http import Reply, serve_api
from warehouse.reads import query

DAY = date(2025, 6, 1)
START = datetime(2025, 6, 1, tzinfo=UTC)
END = START + timedelta(days=1)
INST = "BTC-USDT-SWAP"
OI_PATH = "/api/v5/rubik/stat/contracts/open-interest-history"
LIQ_PATH = "/api/v5/public/liquidation-orders"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
INSTRUMENTS = (
    Path(__file__).resolve().parents[3]
    / "shared/data/real-samples/okx/instruments-swap.subset.json"
)
HEADER = "instrument_name,trade_id,side,price,size,created_time"
NOW = datetime(2025, 6, 3, 1, 0, tzinfo=UTC)


def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def at(hhmmss: str, day: datetime = START, millis: int = 0) -> datetime:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return day + timedelta(hours=h, minutes=m, seconds=s, milliseconds=millis)


Trade = tuple[int, str, float, float, datetime]  # trade_id, side, price, size (contracts), time


def trades_zip(okx_day: date, trades: list[Trade], *, header: str = HEADER) -> bytes:
    lines = [header] + [
        f"{INST},{tid},{side},{price},{size},{ms(ts)}" for tid, side, price, size, ts in trades
    ]
    return zip_csv("\n".join(lines) + "\n", f"{INST}-trades-{okx_day.isoformat()}.csv")


# -- a fake OKX ------------------------------------------------------------------------------
@dataclass
class FakeOkx:
    """Static files by URL path, open interest rows per period, liquidation details."""

    files: dict[str, bytes] = field(default_factory=dict)
    oi: dict[str, list[list[str]]] = field(default_factory=dict)
    liquidations: list[dict[str, str]] = field(default_factory=list)
    faults: dict[str, list[Reply]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the real captured instruments answer (BTC-USDT-SWAP ctVal 0.01 BTC)
    instruments: dict[str, Any] = field(default_factory=lambda: json.loads(INSTRUMENTS.read_text()))

    def put_trades(self, okx_day: date, trades: list[Trade], **kw: Any) -> str:
        path = "/" + trades_path(INST, okx_day)
        self.files[path] = trades_zip(okx_day, trades, **kw)
        return path

    def __call__(self, path: str, q: dict[str, str]) -> Reply:
        with self.lock:
            queue = self.faults.get(path)
            if queue:
                return queue.pop(0)
        if path.startswith("/cdn/"):
            if path in self.files:
                return Reply(200, self.files[path])
            return Reply(404, b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>")
        if path == INSTRUMENTS_PATH:
            if q.get("instType") != "SWAP":
                return Reply(200, {"code": "51000", "msg": "Parameter instType error"})
            return Reply(200, self.instruments)
        if path == OI_PATH:
            if q.get("instId") != INST:
                return Reply(
                    200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
                )
            rows = self.oi.get(q.get("period", ""), [])
            begin, end = int(q.get("begin", 0)), int(q.get("end", 2**62))
            # OKX: begin = "newer than", end = "earlier than" (both exclusive)
            sel = sorted((r for r in rows if begin < int(r[0]) < end), key=lambda r: -int(r[0]))
            return Reply(200, {"code": "0", "msg": "", "data": sel[: int(q.get("limit", 100))]})
        if path == LIQ_PATH:
            if q.get("state") != "filled":
                msg = "Parameter state can not be empty."
                return Reply(200, {"code": "50014", "msg": msg, "data": []})
            if (q.get("instType"), q.get("instFamily")) != ("SWAP", "BTC-USDT"):
                return Reply(400, {"code": "51000", "msg": "Parameter error", "data": []})
            after = int(q.get("after", 2**62))
            details = sorted(
                (d for d in self.liquidations if int(d["ts"]) < after), key=lambda d: -int(d["ts"])
            )[: int(q.get("limit", 100))]
            entry = {
                "details": details,
                "instFamily": "BTC-USDT",
                "instId": INST,
                "instType": "SWAP",
                "uly": "BTC-USDT",
            }
            return Reply(200, {"code": "0", "msg": "", "data": [entry] if details else []})
        return Reply(404, {"msg": "no route"})


def source(base_url: str, raw: Path, **kw: Any) -> OkxSource:
    opts: dict[str, Any] = {
        "backoff_s": 0.001,
        "backoff_max_s": 0.01,
        "api_rate_per_s": 1000.0,
        "static_rate_per_s": 1000.0,
        "now": NOW,
    }
    opts.update(kw)
    return OkxSource(base_url, base_url, raw, **opts)


def stage(src: OkxSource, dataset: str, staging: Path, day: date = DAY) -> StagedUnit:
    return src.stage(UnitRequest("okx", dataset, "BTCUSDT", day), staging)


# -- trades -> klines ------------------------------------------------------------------------
FILE_A: list[Trade] = [  # OKX day 2025-06-01 = [05-31 16:00, 06-01 16:00) UTC
    (10, "buy", 99.0, 7, at("23:59:30", START - timedelta(days=1))),  # previous UTC day
    (12, "sell", 101.0, 2, at("00:00:50")),
    (11, "buy", 100.0, 3, at("00:00:10")),
    (13, "buy", 99.5, 1, at("00:02:05")),
    (15, "sell", 102.0, 5, at("15:59:59", millis=999)),
    (14, "buy", 98.0, 4, at("15:59:59", millis=999)),  # same ms: trade_id orders them
]
FILE_B: list[Trade] = [  # OKX day 2025-06-02 = [06-01 16:00, 06-02 16:00) UTC
    (16, "buy", 103.0, 4, at("16:00:00")),
    (17, "sell", 104.0, 1, at("23:59:59")),
    (18, "buy", 105.0, 9, at("00:00:00", END)),  # next UTC day
]


def test_okx_file_days_are_utc_plus_8() -> None:
    assert okx_file_span(DAY) == (at("16:00:00", START - timedelta(days=1)), at("16:00:00"))
    assert all(okx_file_span(DAY)[0] <= t[4] < okx_file_span(DAY)[1] for t in FILE_A)
    nxt = okx_file_span(DAY + timedelta(days=1))
    assert all(nxt[0] <= t[4] < nxt[1] for t in FILE_B)


def test_trades_across_the_utc8_boundary_give_exact_bars(tmp_path: Path) -> None:
    fake = FakeOkx()
    path_a = fake.put_trades(DAY, FILE_A)
    path_b = fake.put_trades(DAY + timedelta(days=1), FILE_B)
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "trades", tmp_path / "staging")
        again = stage(src, "trades", tmp_path / "staging")
        # second stage: raw cache; the contract size is read once per day
        assert sorted(api.paths()) == sorted([INSTRUMENTS_PATH, path_a, path_b])
    assert unit.status == "loaded", unit.reason
    assert (unit.table, unit.start, unit.end, unit.rows) == ("klines", START, END, 1440)
    # the size came from the instruments answer, with the day it was read
    assert (unit.contract_size, unit.contract_unit, unit.size_read_on) == (0.01, "base", NOW.date())
    assert unit.downloaded
    assert not again.downloaded
    digests = [hashlib.sha256(fake.files[p]).hexdigest() for p in (path_a, path_b)]
    assert unit.sha256 == hashlib.sha256("\n".join(digests).encode()).hexdigest()
    assert unit.url is not None
    assert "20250601" in unit.url
    assert "20250602" in unit.url
    assert (tmp_path / "raw" / "okx" / path_a.lstrip("/")).exists()

    bars = pl.read_parquet(str(unit.parquet))
    assert "exchange" not in bars.columns
    assert bars.height == 1440
    assert bars["ts"].to_list()[:2] == [START, START + timedelta(minutes=1)]
    assert bars["ts"].is_sorted()
    by_ts = {r["ts"]: r for r in bars.iter_rows(named=True)}
    m0 = by_ts[START]
    assert (m0["open"], m0["high"], m0["low"], m0["close"]) == (100.0, 101.0, 100.0, 101.0)
    assert m0["volume"] == pytest.approx(0.05)  # (3 + 2) contracts x 0.01 BTC
    assert m0["quote_volume"] == pytest.approx(0.03 * 100 + 0.02 * 101)
    assert m0["trades"] == 2
    assert m0["taker_buy_volume"] == pytest.approx(0.03)
    assert m0["taker_buy_quote_volume"] == pytest.approx(3.0)
    m1 = by_ts[at("00:01:00")]  # no trades: previous close, zero volume
    assert (m1["open"], m1["high"], m1["low"], m1["close"], m1["volume"], m1["trades"]) == (
        101.0,
        101.0,
        101.0,
        101.0,
        0.0,
        0,
    )
    m2 = by_ts[at("00:02:00")]
    assert (m2["open"], m2["close"], m2["volume"]) == (99.5, 99.5, pytest.approx(0.01))
    last_a = by_ts[at("15:59:00")]  # two trades in the same ms: id 14 (98) before id 15 (102)
    assert (last_a["open"], last_a["close"], last_a["low"], last_a["high"]) == (
        98.0,
        102.0,
        98.0,
        102.0,
    )
    assert last_a["taker_buy_volume"] == pytest.approx(0.04)
    first_b = by_ts[at("16:00:00")]
    assert (first_b["open"], first_b["volume"], first_b["trades"]) == (103.0, 0.04, 1)
    assert by_ts[at("23:59:00")]["close"] == 104.0
    # only the day's 7 trades count: the ones before 00:00 and at 24:00 are left out
    assert bars["trades"].sum() == 7
    assert bars["volume"].sum() == pytest.approx((3 + 2 + 1 + 5 + 4 + 4 + 1) * 0.01)


def test_trades_wait_for_the_next_okx_file(tmp_path: Path) -> None:
    fake = FakeOkx()
    fake.put_trades(DAY, FILE_A)  # the file dated 06-02 (UTC 06-01 16:00-24:00) is not out yet
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "trades", tmp_path / "staging")
    assert unit.status == "missing"
    assert unit.kind == "missing"
    assert unit.reason is not None
    assert "2025-06-02" in unit.reason
    assert "UTC+8" in unit.reason
    assert unit.parquet is None


def test_corrupt_trade_zip_fails_and_is_not_cached(tmp_path: Path) -> None:
    fake = FakeOkx()
    path_a = fake.put_trades(DAY, FILE_A)
    fake.put_trades(DAY + timedelta(days=1), FILE_B)
    fake.files[path_a] = fake.files[path_a][:-30]  # truncated zip, served complete
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "trades", tmp_path / "staging")
    assert unit.status == "failed"
    assert unit.kind == "corrupt"
    assert not (tmp_path / "raw" / "okx" / path_a.lstrip("/")).exists()


def test_corrupt_cached_zip_is_fetched_again(tmp_path: Path) -> None:
    fake = FakeOkx()
    path_a = fake.put_trades(DAY, FILE_A)
    fake.put_trades(DAY + timedelta(days=1), FILE_B)
    cached = tmp_path / "raw" / "okx" / path_a.lstrip("/")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 not really a zip")
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "trades", tmp_path / "staging")
        assert api.paths().count(path_a) == 1
    assert unit.status == "loaded", unit.reason
    assert unit.downloaded
    assert cached.read_bytes() == fake.files[path_a]


def test_unexpected_trade_header_is_a_parse_failure(tmp_path: Path) -> None:
    fake = FakeOkx()
    fake.put_trades(DAY, FILE_A, header="instrument,id,side,px,qty,time")
    fake.put_trades(DAY + timedelta(days=1), FILE_B)
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "trades", tmp_path / "staging")
    assert unit.status == "failed"
    assert unit.kind == "parse"
    assert unit.reason is not None
    assert "unexpected header" in unit.reason


def test_trades_by_column_name_and_refused_layouts() -> None:
    rows = f"{INST},1,buy,100.5,3,{ms(START)}\n{INST},2,SELL,100,1,{ms(START) + 5}\n"
    six = parse_trades_csv(f"{HEADER}\n{rows}".encode(), 0.01)
    seven_rows = rows.replace("\n", ",0\n")
    seven = parse_trades_csv(f"{HEADER},source\n{seven_rows}".encode(), 0.01)
    assert six.equals(seven)
    assert six["buy"].to_list() == [True, False]
    assert six["base"].to_list() == pytest.approx([0.03, 0.01])
    # columns in another order, plus an unknown one: still matched by name
    shuffled = "created_time,size,price,side,trade_id,instrument_name,extra\n"
    shuffled += f"{ms(START)},3,100.5,buy,1,{INST},x\n{ms(START) + 5},1,100,SELL,2,{INST},y\n"
    assert parse_trades_csv(shuffled.encode(), 0.01).equals(six)
    bilingual = (
        "instrument_name/交易对,trade_id/成交id,side/方向,price/价格,size/数量,created_time/时间"
    )
    with pytest.raises(ParseError) as info:
        parse_trades_csv(f"{bilingual}\n{rows}".encode(), 0.01, name="X-trades-2021-01-01.csv")
    text = str(info.value)
    assert text.startswith("X-trades-2021-01-01.csv: unexpected header 'instrument_name/交易对")
    assert "missing column(s) instrument_name, trade_id" in text
    assert "\n" not in text
    with pytest.raises(ParseError, match="no header row"):
        parse_trades_csv(rows.encode(), 0.01)
    no_size = HEADER.replace(",size", "")
    with pytest.raises(ParseError, match=r"missing column\(s\) size"):
        parse_trades_csv(f"{no_size}\n{INST},1,buy,100.5,{ms(START)}\n".encode(), 0.01)
    with pytest.raises(ParseError, match="created_time"):  # seconds, not ms
        parse_trades_csv(f"{HEADER}\n{INST},1,buy,1,1,{ms(START) // 1000}\n".encode(), 0.01)
    with pytest.raises(ParseError, match="side"):
        parse_trades_csv(f"{HEADER}\n{rows}{INST},3,hold,1,1,{ms(START)}\n".encode(), 0.01)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3 * 3600 * 1000 - 1),
            st.floats(50, 150, allow_nan=False),
            st.integers(1, 500),
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_trades_to_klines_properties(rows: list[tuple[int, float, int, bool]]) -> None:
    start = START
    end = START + timedelta(hours=2)  # trades up to 3 h: the last hour lies outside
    trades = pl.DataFrame(
        {
            "ts": [start + timedelta(milliseconds=r[0]) for r in rows],
            "trade_id": list(range(len(rows))),
            "price": [r[1] for r in rows],
            "base": [r[2] * 0.01 for r in rows],
            "buy": [r[3] for r in rows],
        },
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "trade_id": pl.Int64,
            "price": pl.Float64,
            "base": pl.Float64,
            "buy": pl.Boolean,
        },
    )
    inside = trades.filter(pl.col("ts") < end)
    bars = trades_to_klines(trades, start, end)
    assert bars.height == 120
    assert bars["ts"].is_sorted()
    assert bars["trades"].sum() == inside.height
    assert bars["volume"].sum() == pytest.approx(inside["base"].sum())
    assert bars["taker_buy_volume"].sum() == pytest.approx(
        inside.filter(pl.col("buy"))["base"].sum()
    )
    if inside.height:
        assert bars.null_count().sum_horizontal().item() == 0
        assert (bars["low"] <= bars["open"]).all()
        assert (bars["open"] <= bars["high"]).all()
        assert (bars["low"] <= bars["close"]).all()
        assert (bars["close"] <= bars["high"]).all()
        assert bars["high"].max() == inside["price"].max()
        assert bars["low"].min() == inside["price"].min()


# -- open interest ---------------------------------------------------------------------------
def oi_rows(first: datetime, n: int, step: timedelta) -> list[list[str]]:
    """OKX rows [ts, oi (contracts), oiCcy (BTC), oiUsd], oldest first."""
    out = []
    for i in range(n):
        ccy = 25000.0 + i
        out.append(
            [str(ms(first + i * step)), f"{ccy * 100:.0f}", f"{ccy:.2f}", f"{ccy * 105000:.1f}"]
        )
    return out


def test_open_interest_pages_and_maps_columns(tmp_path: Path) -> None:
    fake = FakeOkx()
    # the day's 288 samples plus neighbours on both sides
    fake.oi["5m"] = oi_rows(START - timedelta(hours=1), 288 + 24, timedelta(minutes=5))
    fake.faults[OI_PATH] = [Reply(503)]
    with (
        serve_api(fake) as api,
        source(api.base_url, tmp_path / "raw", api_rate_per_s=10.0) as src,
    ):
        unit = stage(src, "open_interest", tmp_path / "staging")
    assert unit.status == "loaded", unit.reason
    assert (unit.table, unit.rows, unit.start, unit.end, unit.kind) == (
        "open_interest",
        288,
        START,
        END,
        None,
    )
    frame = pl.read_parquet(str(unit.parquet))
    assert frame["ts"].to_list() == [START + timedelta(minutes=5 * i) for i in range(288)]
    first = frame.row(0, named=True)
    assert first["oi_base"] == 25012.0  # oiCcy of the 13th row (the first inside the day)
    assert first["oi_usd"] == pytest.approx(25012.0 * 105000)
    assert first["top_trader_account_ratio"] is None
    hits = [h for h in api.hits if h.path == OI_PATH]
    assert len(hits) == 1 + 3  # one 503, then 3 pages of <= 100 rows
    assert {h.query["period"] for h in hits} == {"5m"}
    # begin/end are exclusive: ask from 1 ms before the day's start up to (not incl.) its end
    assert hits[1].query["begin"] == str(ms(START) - 1)
    assert hits[1].query["end"] == str(ms(END))
    assert hits[1].query["limit"] == "100"
    # the client's rate limit spaced the requests (server-side arrival times, generous bound)
    assert hits[-1].at - hits[0].at >= 0.75 * 3 / 10.0  # 4 requests at 10/s: >= 3 intervals


def test_open_interest_falls_back_to_hourly_then_missing(tmp_path: Path) -> None:
    fake = FakeOkx()
    fake.oi["1H"] = oi_rows(START, 24, timedelta(hours=1))[:20]
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "open_interest", tmp_path / "staging")
        older = stage(src, "open_interest", tmp_path / "staging", DAY - timedelta(days=30))
    assert unit.status == "loaded"
    assert unit.rows == 20
    assert unit.kind == "warning"
    assert unit.reason == "5m history gone: 1H samples; short: 20 of 24 1H samples"
    assert older.status == "missing"
    assert older.reason is not None
    assert "recent" in older.reason


def test_okx_error_code_fails_with_its_message(tmp_path: Path) -> None:
    fake = FakeOkx()
    bad = {"code": "50011", "msg": "Too Many Requests", "data": []}
    fake.faults[OI_PATH] = [Reply(200, bad)]
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "open_interest", tmp_path / "staging")
    assert unit.status == "failed"
    assert unit.kind == "http"
    assert unit.reason == "OKX error 50011: Too Many Requests"


def test_api_down_is_a_network_failure(tmp_path: Path) -> None:
    fake = FakeOkx()
    fake.faults[LIQ_PATH] = [Reply(503)] * 10
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw", retries=2) as src:
        unit = stage(src, "liquidations", tmp_path / "staging")
    assert unit.status == "failed"
    assert unit.kind == "network"
    assert unit.reason is not None
    assert "3 tries" in unit.reason


# -- liquidations ----------------------------------------------------------------------------
def detail(ts: datetime, side: str, pos: str, px: str, sz: str) -> dict[str, str]:
    return {
        "bkLoss": "0",
        "bkPx": px,
        "ccy": "",
        "posSide": pos,
        "side": side,
        "sz": sz,
        "ts": str(ms(ts)),
    }


HAND = [  # the liquidated side and USD worked out by hand
    (detail(at("00:00:01"), "sell", "long", "57102.9", "10000"), "long", 5_710_290.0),
    (detail(at("08:30:00"), "buy", "short", "60000", "3"), "short", 1_800.0),
    (detail(at("12:00:00"), "sell", "net", "50000", "2"), "long", 1_000.0),
    (detail(at("23:59:59", millis=999), "buy", "", "40000", "1"), "short", 400.0),
]


def filler(n: int, first: datetime, step: timedelta) -> list[dict[str, str]]:
    return [detail(first + i * step, "sell", "long", "50000", "1") for i in range(n)]


def test_liquidations_sides_usd_and_paging(tmp_path: Path) -> None:
    fake = FakeOkx()
    fake.liquidations = [d for d, _, _ in HAND]
    fake.liquidations += filler(240, at("01:00:00"), timedelta(minutes=2))  # in the day
    fake.liquidations += filler(30, START - timedelta(hours=3), timedelta(minutes=1))  # before
    fake.liquidations += filler(5, END + timedelta(hours=1), timedelta(minutes=1))  # after
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        unit = stage(src, "liquidations", tmp_path / "staging")
    assert unit.status == "loaded", unit.reason
    assert (unit.table, unit.start, unit.end, unit.rows, unit.kind) == (
        "realized_liquidations",
        START,
        END,
        244,
        None,
    )
    events = pl.read_parquet(str(unit.parquet))
    assert events.columns == ["ts", "side", "usd", "source"]
    hand = events.filter(pl.col("usd") != 500.0)
    assert hand.select("side", "usd").rows() == [(s, u) for _, s, u in HAND]
    assert hand["ts"].to_list() == [
        datetime.fromtimestamp(int(d["ts"]) / 1000, UTC) for d, _, _ in HAND
    ]
    assert set(events["source"]) == {LIQUIDATION_SOURCE}
    pages = [h for h in api.hits if h.path == LIQ_PATH]
    assert pages[0].query["after"] == str(ms(END))
    assert len(pages) == 3  # 100 + 100 + (44 in the day, then past the start: stop)
    raw = tmp_path / "raw" / "okx" / "liquidation-orders" / "BTC-USDT"
    assert [p.name for p in raw.iterdir()] == ["2025-06-01-pulled-20250603T010000Z.json"]


def test_liquidations_retention_edge_and_day_in_progress(tmp_path: Path) -> None:
    fake = FakeOkx()
    fake.liquidations = filler(50, at("06:00:00", millis=250), timedelta(minutes=10))
    with serve_api(fake) as api:
        with source(api.base_url, tmp_path / "raw") as src:
            edge = stage(src, "liquidations", tmp_path / "staging")
            gone = stage(src, "liquidations", tmp_path / "staging", DAY - timedelta(days=10))
        with source(api.base_url, tmp_path / "raw", now=START + timedelta(hours=12)) as src:
            today = stage(src, "liquidations", tmp_path / "staging")
            oi_today = stage(src, "open_interest", tmp_path / "staging")
        assert [p for p in api.paths() if p not in (LIQ_PATH, INSTRUMENTS_PATH)] == []
        assert sum(1 for p in api.paths() if p == LIQ_PATH) == 2  # none for the running day
    # OKX no longer has the start of the day: the unit covers only what it returned
    assert edge.status == "loaded"
    assert edge.start == at("06:00:00")
    assert edge.end == END
    assert edge.rows == 50
    assert edge.kind == "warning"
    assert edge.reason == "partial: OKX returned orders from 06:00:00 only"
    assert gone.status == "missing"
    assert gone.reason is not None
    assert "recent" in gone.reason
    assert today.status == "skipped"
    assert today.reason is not None
    assert "day not over" in today.reason
    assert oi_today.status == "skipped"


def test_staged_units_land_in_the_warehouse(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    fake = FakeOkx()
    fake.put_trades(DAY, FILE_A)
    fake.put_trades(DAY + timedelta(days=1), FILE_B)
    fake.oi["5m"] = oi_rows(START, 288, timedelta(minutes=5))
    fake.liquidations = [d for d, _, _ in HAND]
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        reqs = src.plan(["BTCUSDT"], [DAY])
        units = [src.stage(r, tmp_path / "staging") for r in reqs]
    outcomes = load_staged(db, units)
    assert [(o.dataset, o.status, o.rows) for o in outcomes] == [
        ("trades", "loaded", 1440),
        ("open_interest", "loaded", 288),
        ("liquidations", "loaded", 4),
    ]
    counts = query(
        db,
        "SELECT (SELECT count(*) FROM klines WHERE exchange = 'okx' AND symbol = 'BTCUSDT') AS k,"
        " (SELECT count(*) FROM open_interest WHERE exchange = 'okx') AS o,"
        " (SELECT sum(usd) FROM realized_liquidations WHERE exchange = 'okx'"
        "  AND symbol = 'BTCUSDT' AND source = 'okx-liquidation-orders') AS usd",
    )
    assert counts.row(0) == (1440, 288, pytest.approx(sum(u for _, _, u in HAND)))
    log = query(db, "SELECT dataset, status FROM ingest_log WHERE exchange = 'okx' ORDER BY 1")
    assert log.rows() == [
        ("liquidations", "loaded"),
        ("open_interest", "loaded"),
        ("trades", "loaded"),
    ]

    # a later pull that no longer reaches the start of the day keeps the earlier rows
    fake.liquidations = [HAND[2][0], HAND[3][0]]  # OKX now only returns from 12:00 on
    with serve_api(fake) as api, source(api.base_url, tmp_path / "raw") as src:
        later = stage(src, "liquidations", tmp_path / "staging")
    assert later.start == at("12:00:00")
    load_staged(db, [later])
    again = query(db, "SELECT count(*) AS n, sum(usd) AS usd FROM realized_liquidations")
    assert again.row(0) == (4, pytest.approx(sum(u for _, _, u in HAND)))


def test_ingest_through_the_registry(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    fake = FakeOkx()
    fake.put_trades(DAY, FILE_A)
    fake.put_trades(DAY + timedelta(days=1), FILE_B)
    fake.oi["5m"] = oi_rows(START, 288, timedelta(minutes=5))
    fake.liquidations = [d for d, _, _ in HAND]
    with serve_api(fake) as api:
        # `--exchange okx` with a mirror: base_url serves both the files and the API
        first = ingest(db, tmp_path / "raw", api.base_url, ["BTCUSDT"], [DAY], exchange="okx")
        second = ingest(db, tmp_path / "raw", api.base_url, ["BTCUSDT"], [DAY], exchange="okx")
        assert sum(1 for p in api.paths() if p.startswith("/cdn/")) == 2
    assert sorted((o.dataset, o.status) for o in first.outcomes) == [
        ("liquidations", "loaded"),
        ("open_interest", "loaded"),
        ("trades", "loaded"),
    ]
    assert first.ok
    assert {o.status for o in second.outcomes} == {"skipped"}
    bars = query(db, "SELECT count(*) AS n FROM klines WHERE exchange = 'okx'")
    assert bars.item() == 1440


def test_plan_pickle_settings_and_unknown_symbol(tmp_path: Path) -> None:
    src = OkxSource("http://127.0.0.1:1", "http://127.0.0.1:1", tmp_path)
    reqs = src.plan(["BTCUSDT", "ETHUSDT", "BTCUSDT"], [DAY, DAY])
    assert [(r.symbol, r.dataset) for r in reqs] == [
        ("BTCUSDT", "trades"),
        ("BTCUSDT", "open_interest"),
        ("BTCUSDT", "liquidations"),
        ("ETHUSDT", "trades"),
        ("ETHUSDT", "open_interest"),
        ("ETHUSDT", "liquidations"),
    ]
    assert all(r.exchange == "okx" for r in reqs)
    with pytest.raises(ValueError, match="not mapped"):
        src.plan(["FOOUSDT"], [DAY])
    src.api()
    clone = pickle.loads(pickle.dumps(src))
    assert clone.api_url == src.api_url
    assert len(clone._pool) == 0  # no live connection crosses a pickle
    src.close()
    cfg = Settings(
        home=tmp_path, okx_api_url="https://api.example", okx_static_url="https://s.example"
    )
    built = from_settings(cfg)
    assert (built.api_url, built.static_url, built.raw_dir) == (
        "https://api.example",
        "https://s.example",
        tmp_path / "raw",
    )
    mirror = from_settings(cfg, base_url="http://127.0.0.1:9")
    assert isinstance(get_source("okx", cfg), OkxSource)
    assert mirror.api_url == mirror.static_url == "http://127.0.0.1:9"
    bad = src.stage(UnitRequest("okx", "candles", "BTCUSDT", DAY), tmp_path)
    assert bad.status == "failed"
    assert bad.kind == "internal"
