"""Every real sample in ``../shared/data/real-samples/`` through liqheat's own parsers (issue 12).

The samples are pieces of files and answers the exchanges themselves wrote (see that folder's
README); they are read in place, never copied. Next to them: the layouts liqheat refuses
(bilingual headers, no header, another time unit) fail with one line naming the file and the
header seen, and the OKX/Bybit "Done when" checks against a local fake serving the real layouts.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from flows.sources.base import UnitRequest
from flows.sources.binance.parsing import (
    ParseError,
    parse_aggtrades_profile,
    parse_funding,
    parse_klines,
    parse_metrics,
)
from flows.sources.binance_cm.parsing import parse_liquidation_snapshot
from flows.sources.bybit.parsing import (
    BybitDataError,
    linear_contract,
    oi_frame,
    parse_trades,
    single_side_oi,
)
from flows.sources.bybit.source import BybitSource
from flows.sources.okx.parsing import (
    contract_spec,
    parse_instruments,
    parse_trades_csv,
    trades_to_klines,
)
from flows.sources.okx.paths import okx_file_span
from flows.sources.okx.source import OkxSource
from flows.sources.symbols import UnknownContractSizeError
from tests.exchange_fakes import OKX_OI_PATH, serve_exchanges

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-samples"
UM = SAMPLES / "binance-um"
DAY = date(2026, 9, 30)


@pytest.fixture(scope="module")
def samples() -> Path:
    assert SAMPLES.is_dir(), f"expected the real samples at {SAMPLES}"
    return SAMPLES


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- Binance USD-M archive -------------------------------------------------------------------
def test_binance_klines_excerpt(samples: Path) -> None:
    parsed = parse_klines((UM / "BTCUSDT-1m-2026-09-30.excerpt.csv").read_bytes(), "BTCUSDT", DAY)
    frame = parsed.frame
    assert frame.height == 25  # header + first 20 + last 5 rows of the day
    assert parsed.warning is not None
    assert parsed.warning.startswith("short file: 25 of 1440 rows (00:00-23:59)")
    first = frame.row(0, named=True)
    assert first["ts"] == utc(2026, 9, 30)
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        83624.5,
        83652.0,
        83624.4,
        83639.9,
    )
    assert (first["volume"], first["trades"], first["taker_buy_volume"]) == (21.311, 1255, 13.461)
    assert frame["ts"].is_sorted()


def test_binance_metrics_excerpt_16_decimals_unsorted(samples: Path) -> None:
    text = (UM / "BTCUSDT-metrics-2026-09-30.excerpt.csv").read_bytes()
    assert b"92849.1660000000000000" in text  # the real file's 16-decimal open interest
    parsed = parse_metrics(text, "BTCUSDT", DAY)
    frame = parsed.frame
    assert frame.height == 25
    assert frame["ts"].is_sorted()  # the file's own order is not
    row = frame.filter(pl.col("ts") == utc(2026, 9, 30, 2, 30)).row(0, named=True)
    assert row["oi_base"] == 92849.166
    assert row["oi_usd"] == pytest.approx(7734131259.6348)
    assert row["taker_buy_sell_ratio"] == pytest.approx(0.419203)


def test_binance_aggtrades_with_and_without_header_agree(samples: Path) -> None:
    with_header = parse_aggtrades_profile(
        UM / "BTCUSDT-aggTrades-2026-09-30.excerpt.csv", "BTCUSDT", DAY
    )
    without = parse_aggtrades_profile(
        UM / "BTCUSDT-aggTrades-2026-09-30.noheader.csv", "BTCUSDT", DAY
    )
    assert with_header.frame.height > 0
    assert with_header.frame.equals(without.frame)
    assert with_header.frame["ts"].min() == utc(2026, 9, 30)


def test_binance_funding_jitter_and_exponent_form(samples: Path) -> None:
    parsed = parse_funding(
        (UM / "BTCUSDT-fundingRate-2026-08.excerpt.csv").read_bytes(), "BTCUSDT", 2026, 8
    )
    assert parsed.frame.height == 25
    assert parsed.frame["funding_rate"][0] == pytest.approx(0.00004123)
    # the exponent sample spans several months: parse each month's rows as a monthly file
    lines = (UM / "BTCUSDT-fundingRate-exponent.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    months: dict[tuple[int, int], list[str]] = {}
    for row in rows:
        t = datetime.fromtimestamp(int(row.split(",")[0]) / 1000, UTC)
        months.setdefault((t.year, t.month), []).append(row)
    rates: list[float] = []
    for (year, month), chunk in sorted(months.items()):
        got = parse_funding("\n".join([header, *chunk]).encode(), "BTCUSDT", year, month)
        rates += got.frame["funding_rate"].to_list()
    assert len(rates) == len(rows) == 12
    assert rates[:3] == pytest.approx([-1.8e-7, -3.2e-7, -6e-8], abs=1e-12)
    assert rates[-1] == pytest.approx(2.7e-7, abs=1e-12)


def test_binance_unknown_header_fails_with_the_header(samples: Path) -> None:
    text = (UM / "BTCUSDT-1m-2026-09-30.excerpt.csv").read_text()
    changed = text.replace("open_time,", "openTime,", 1)
    with pytest.raises(ParseError, match="unexpected header 'opentime,open") as info:
        parse_klines(changed.encode(), "BTCUSDT", DAY)
    assert "\n" not in str(info.value)


# -- Binance COIN-M liquidation snapshot -------------------------------------------------------
def test_coin_m_snapshot_drops_doubled_rows_and_sizes_in_contracts(samples: Path) -> None:
    path = SAMPLES / "binance-cm" / "BTCUSD_PERP-liquidationSnapshot-2024-10-01.head.csv"
    frame = parse_liquidation_snapshot(path.read_bytes(), date(2024, 10, 1), 100.0)
    assert frame.height == 7  # 14 rows, every one doubled
    assert frame["side"].to_list()[:3] == ["short", "long", "short"]
    assert frame["usd"].to_list()[:3] == [700.0, 100.0, 7600.0]  # contracts x 100 USD
    assert frame["ts"][0] == datetime(2024, 10, 1, 0, 1, 9, 82000, tzinfo=UTC)


# -- Bybit trade files -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "symbol", "ts", "price", "size"),
    [
        ("BTCUSDT2026-09-01.rpi.csv", "BTCUSDT", 1788220800.1169, 78541.7, 0.001),
        ("SOLUSDT2026-01-01.rpi.csv", "SOLUSDT", 1767225600.6864, 124.65, 0.2),
        ("FXSUSDT2022-04-04.old.csv", "FXSUSDT", 1649054912.0, 38.32, 0.01),
    ],
    ids=["btc-rpi-float-seconds", "sol-rpi", "old-no-rpi-integer-seconds"],
)
def test_bybit_trade_rows(
    samples: Path, tmp_path: Path, name: str, symbol: str, ts: float, price: float, size: float
) -> None:
    gz = tmp_path / f"{symbol}.csv.gz"
    gz.write_bytes(gzip.compress((SAMPLES / "bybit" / name).read_bytes()))
    frame = parse_trades(gz.read_bytes(), symbol, name=gz.name)
    assert frame.height == 1
    row = frame.row(0, named=True)
    assert row["ts"] == datetime.fromtimestamp(0, UTC) + timedelta(microseconds=round(ts * 1e6))
    assert (row["price"], row["size"]) == (price, size)


def test_bybit_trades_in_milliseconds_or_without_price_fail_naming_file_and_header(
    samples: Path, tmp_path: Path
) -> None:
    text = (SAMPLES / "bybit" / "SOLUSDT2026-01-01.rpi.csv").read_text()
    ms = text.replace("1767225600.6864", "1767225600686")
    gz = tmp_path / "SOLUSDT2026-01-01.csv.gz"
    gz.write_bytes(gzip.compress(ms.encode()))
    with pytest.raises(BybitDataError) as info:
        parse_trades(gz.read_bytes(), "SOLUSDT", name=gz.name)
    assert str(info.value).startswith(
        "SOLUSDT2026-01-01.csv.gz: timestamp 1767225600686 is not in epoch seconds (header "
        "'timestamp,symbol,side,size,price,"
    )
    gz.write_bytes(gzip.compress(text.replace(",price,", ",px,", 1).encode()))
    with pytest.raises(BybitDataError, match=r"unexpected header 'timestamp,symbol,side,size,px"):
        parse_trades(gz.read_bytes(), "SOLUSDT", name=gz.name)


# -- Bybit open interest ---------------------------------------------------------------------
def test_bybit_open_interest_answers_and_the_basis(samples: Path) -> None:
    docs = json.loads((SAMPLES / "bybit" / "open-interest.docs-example-2026.json").read_text())
    rows = docs["result"]["list"]
    # singleOpenInterest (one side) is used whenever present: half the both-sides figure
    assert [single_side_oi(r) for r in rows] == [31955346.0, 31955346.0]
    assert docs["result"]["nextPageCursor"] == "lastid%3D19408935%26lasttime%3D1780617600"

    capture = json.loads(
        (SAMPLES / "bybit" / "open-interest.capture-2026-BTCUSDT-1h.json").read_text()
    )
    rows = capture["result"]["list"]
    day = datetime.fromtimestamp(int(rows[0]["timestamp"]) / 1000, UTC).date()
    staged = oi_frame(rows, [], day)
    # no singleOpenInterest: openInterest is taken as one side (65k BTC next to Binance's 93k)
    assert sorted(staged.frame["oi_base"].to_list()) == [64992.054, 65041.568]
    assert staged.warning is not None  # 2 hourly samples of 288, no 5m closes for oi_usd
    assert "short: 2 of 288" in staged.warning


# -- OKX ---------------------------------------------------------------------------------------
def test_okx_instruments_give_the_contract_sizes(samples: Path) -> None:
    contracts = parse_instruments(
        json.loads((SAMPLES / "okx/instruments-swap.subset.json").read_text())
    )
    assert contract_spec(contracts, "BTCUSDT").contract_size == 0.01
    assert contract_spec(contracts, "ETHUSDT").contract_size == 0.1
    assert contracts["BTC-USD-SWAP"].ccy == "USD"  # inverse: 100 USD a contract
    assert contracts["BTC-USD-SWAP"].size == 100.0
    # a swap the answer does not list is refused in one line
    with pytest.raises(UnknownContractSizeError) as info:
        contract_spec(contracts, "XRPUSDT", date(2026, 9, 1))
    assert str(info.value) == (
        "okx contract size of XRPUSDT unknown: XRP-USDT-SWAP has no ctVal in "
        "/api/v5/public/instruments?instType=SWAP (read 2026-09-01)"
    )


@pytest.mark.parametrize(
    ("name", "trade_id", "price", "base", "ts"),
    [
        (
            "BTC-USDT-SWAP-trades-2026-09-01.source7.csv",
            2885385355,
            78542.2,
            0.1407,
            datetime(2026, 8, 31, 16, 0, 0, 21000, tzinfo=UTC),  # files are UTC+8 days
        ),
        (
            "BTC-USDT-SWAP-trades-2025-06-01.legacy6.csv",
            1566502282,
            104503.0,
            0.3014,
            datetime(2025, 5, 31, 16, 0, 0, 8000, tzinfo=UTC),
        ),
    ],
    ids=["7-columns", "6-columns"],
)
def test_okx_trade_files_both_layouts(
    samples: Path, name: str, trade_id: int, price: float, base: float, ts: datetime
) -> None:
    frame = parse_trades_csv((SAMPLES / "okx" / name).read_bytes(), 0.01, name=name)
    assert frame.height == 1
    row = frame.row(0, named=True)
    assert (row["ts"], row["trade_id"], row["price"], row["buy"]) == (ts, trade_id, price, False)
    assert row["base"] == pytest.approx(base)
    # the row sits in the first minute of its OKX (UTC+8) file day
    okx_day = date.fromisoformat(name.split("-trades-")[1][:10])
    assert okx_file_span(okx_day)[0] <= ts < okx_file_span(okx_day)[0] + timedelta(minutes=1)


def test_okx_bilingual_and_headerless_layouts_fail_naming_file_and_header(samples: Path) -> None:
    name = "BTC-USDT-SWAP-trades-2026-09-01.source7.csv"
    text = (SAMPLES / "okx" / name).read_text()
    header, row = text.splitlines()[:2]
    bilingual = ",".join(f"{c}/{c.upper()}" for c in header.split(","))
    with pytest.raises(ParseError) as info:
        parse_trades_csv(f"{bilingual}\n{row}\n".encode(), 0.01, name=name)
    assert str(info.value).startswith(f"{name}: unexpected header 'instrument_name/INSTRUMENT_NAME")
    assert "missing column(s) instrument_name" in str(info.value)
    with pytest.raises(ParseError, match=f"{name}: no header row"):
        parse_trades_csv(f"{row}\n".encode(), 0.01, name=name)


def test_okx_7_column_day_gives_1440_bars(samples: Path) -> None:
    """A UTC day from two 7-column files (the sample's row layout, one trade a minute)."""
    head, row = (SAMPLES / "okx/BTC-USDT-SWAP-trades-2026-09-01.source7.csv").read_text().split()
    fields = row.split(",")
    start = utc(2026, 9, 1)
    lines = [head]
    for i in range(1440):
        ms = int((start + timedelta(minutes=i, seconds=7)).timestamp() * 1000)
        lines.append(
            ",".join([fields[0], str(int(fields[1]) + i), fields[2], fields[3], "2", str(ms), "0"])
        )
    trades = parse_trades_csv("\n".join(lines).encode(), 0.01, name="day.csv")
    bars = trades_to_klines(trades, start, start + timedelta(days=1))
    assert bars.height == 1440
    assert bars["trades"].to_list() == [1] * 1440
    assert bars["volume"].sum() == pytest.approx(1440 * 0.02)


# -- against the fakes serving the real layouts ----------------------------------------------
NIGHT = date(2026, 6, 12)  # after 2026-06-11: Bybit answers carry singleOpenInterest


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("fakes")
    with serve_exchanges(root, ["BTCUSDT"], first=NIGHT - timedelta(days=1), days=2) as ex:
        yield ex


def test_okx_fake_day_yields_1440_bars_and_288_oi_samples(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 6, 14, tzinfo=UTC)
    with OkxSource(
        fakes.okx.base_url,
        fakes.okx.base_url,
        tmp_path / "raw",
        now=now,
        api_rate_per_s=1000,
        static_rate_per_s=1000,
    ) as src:
        trades = src.stage(UnitRequest("okx", "trades", "BTCUSDT", NIGHT), tmp_path / "s")
        oi = src.stage(UnitRequest("okx", "open_interest", "BTCUSDT", NIGHT), tmp_path / "s")
    assert (trades.status, trades.rows, trades.reason) == ("loaded", 1440, None)
    assert (trades.contract_size, trades.size_read_on) == (0.01, now.date())
    assert (oi.status, oi.rows, oi.reason) == ("loaded", 288, None)
    frame = pl.read_parquet(str(oi.parquet))
    assert frame["ts"].min() == utc(2026, 6, 12)  # the 00:00 sample is in, thanks to begin-1
    assert frame["ts"].max() == utc(2026, 6, 12, 23, 55)
    asked = [h.query for h in fakes.okx.hits if h.path == OKX_OI_PATH]
    assert asked[0]["begin"] == str(int(utc(2026, 6, 12).timestamp() * 1000) - 1)


def test_okx_symbol_without_a_published_size_is_refused_in_one_line(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 6, 14, tzinfo=UTC)
    with OkxSource(fakes.okx.base_url, fakes.okx.base_url, tmp_path / "raw", now=now) as src:
        unit = src.stage(UnitRequest("okx", "trades", "DOGEUSDT", NIGHT), tmp_path / "s")
    assert (unit.status, unit.kind, unit.rows) == ("failed", "contract", 0)
    assert unit.reason == (
        "okx contract size of DOGEUSDT unknown: DOGE-USDT-SWAP has no ctVal in "
        "/api/v5/public/instruments?instType=SWAP (read 2026-06-14)"
    )
    # the answer was kept for the day it was read
    assert (tmp_path / "raw/okx/instruments/SWAP-2026-06-14.json").is_file()


def test_bybit_fake_pages_with_the_real_cursor_and_single_side(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with BybitSource(
        fakes.bybit.base_url, fakes.bybit.base_url, tmp_path / "raw", rate_per_s=1000
    ) as src:
        unit = src.stage(UnitRequest("bybit", "open_interest", "BTCUSDT", NIGHT), tmp_path / "s")
        gone = src.stage(UnitRequest("bybit", "trades", "DOGEUSDT", NIGHT), tmp_path / "s")
    assert (unit.status, unit.rows, unit.reason) == ("loaded", 288, None)
    cursors = [
        h.query.get("cursor")
        for h in fakes.bybit.hits
        if h.path == "/v5/market/open-interest" and h.query.get("symbol") == "BTCUSDT"
    ]
    assert cursors[0] is None
    assert cursors[1] is not None
    assert cursors[1].startswith("lastid=200&lasttime=")  # sent back exactly as returned
    frame = pl.read_parquet(str(unit.parquet))
    market = fakes.markets["BTCUSDT"].metrics
    want = market.filter(pl.col("create_time") == utc(2026, 6, 12, 12))["sum_open_interest"][0]
    got = frame.filter(pl.col("ts") == utc(2026, 6, 12, 12))["oi_base"][0]
    assert got == pytest.approx(0.4 * want, rel=1e-6)  # singleOpenInterest, not both sides
    # a symbol Bybit does not list: refused in one line
    assert gone.status == "failed"
    assert gone.kind == "contract"
    assert gone.reason == (
        "bybit contract size of DOGEUSDT unknown: DOGEUSDT is not listed in "
        f"/v5/market/instruments-info?category=linear (read {datetime.now(UTC).date()})"
    )


def test_bybit_linear_contract_refuses_an_inverse_listing() -> None:
    result = {
        "list": [{"symbol": "BTCUSDT", "contractType": "InversePerpetual", "baseCoin": "BTC"}]
    }
    with pytest.raises(UnknownContractSizeError, match="expected a LinearPerpetual in BTC"):
        linear_contract(result, "BTCUSDT", None)
