"""Parsing archive CSV members: real files, headers, time units, dedupe, coverage, failures."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.sources.binance.parsing import (
    KLINE_COLUMNS,
    KLINES_SCHEMA,
    MARK_KLINES_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    ParseError,
    epoch_unit,
    parse_aggtrades_profile,
    parse_funding,
    parse_klines,
    parse_metrics,
    sniff_header,
)
from flows.sources.files import read_csv_member
from tests.httpmirror import (
    AGGTRADES_HEADER,
    KLINE_HEADER,
    aggtrades_csv,
    funding_csv,
    klines_csv,
    metrics_csv,
)

DAY = date(2024, 1, 1)
SPOT = "binance-vision/data/spot/daily/klines/BTCUSDT/1m"
FUNDING = (
    "binance-vision/data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2026-04.zip"
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- real files ----------------------------------------------------------------------------
@pytest.mark.parametrize("day", [1, 2, 3])
def test_real_spot_klines_headerless(shared_data: Path, day: int) -> None:
    d = date(2020, 1, day)
    data = read_csv_member(shared_data / SPOT / f"BTCUSDT-1m-{d.isoformat()}.zip")
    assert not sniff_header(data.split(b"\n", 1)[0].decode(), KLINE_COLUMNS)
    parsed = parse_klines(data, "BTCUSDT", d)
    frame = parsed.frame
    assert parsed.warning is None
    assert frame.height == 1440
    assert dict(frame.schema) == KLINES_SCHEMA
    assert frame["ts"][0] == utc(2020, 1, day)
    assert frame["ts"][-1] == utc(2020, 1, day, 23, 59)
    assert frame["ts"].is_sorted()
    assert frame["ts"].diff().drop_nulls().unique().to_list() == [timedelta(minutes=1)]
    assert (frame["high"] >= frame["low"]).all()
    assert (parsed.start, parsed.end) == (utc(2020, 1, day), utc(2020, 1, day) + timedelta(days=1))


def test_real_spot_klines_known_values(shared_data: Path) -> None:
    data = read_csv_member(shared_data / SPOT / "BTCUSDT-1m-2020-01-01.zip")
    row = parse_klines(data, "BTCUSDT", date(2020, 1, 1)).frame.row(0, named=True)
    # first line: 1577836800000,7195.24,7196.25,7183.14,7186.68,51.642812,...,493,19.59823,...
    assert row["open"] == 7195.24
    assert row["close"] == 7186.68
    assert row["volume"] == pytest.approx(51.642812)
    assert row["trades"] == 493
    assert row["taker_buy_volume"] == pytest.approx(19.59823)
    assert row["symbol"] == "BTCUSDT"
    assert row["exchange"] == "binance"


def test_real_usdm_funding(shared_data: Path) -> None:
    parsed = parse_funding(read_csv_member(shared_data / FUNDING), "BTCUSDT", 2026, 4)
    frame = parsed.frame
    assert frame.height == 90
    assert frame["ts"][0] == utc(2026, 4, 1)  # 1775001600000 ms, jitter truncated
    assert frame["funding_rate"][0] == pytest.approx(-0.00003449)
    assert frame["funding_interval_hours"].unique().to_list() == [8]
    assert frame["ts"].diff().drop_nulls().unique().to_list() == [timedelta(hours=8)]
    with pytest.raises(ParseError, match="outside 2026-05"):
        parse_funding(read_csv_member(shared_data / FUNDING), "BTCUSDT", 2026, 5)


# -- headers, units, shapes ----------------------------------------------------------------
def test_headed_and_headerless_klines_are_identical() -> None:
    headed = parse_klines(klines_csv(DAY, header=True).encode(), "BTCUSDT", DAY)
    bare = parse_klines(klines_csv(DAY, header=False).encode(), "BTCUSDT", DAY)
    assert headed.frame.equals(bare.frame)
    assert headed.frame.height == 1440


def test_microsecond_times_parse_like_milliseconds() -> None:
    ms = parse_klines(klines_csv(DAY, unit="ms").encode(), "BTCUSDT", DAY).frame
    us = parse_klines(klines_csv(DAY, unit="us").encode(), "BTCUSDT", DAY).frame
    assert ms.equals(us)


def test_epoch_unit() -> None:
    assert epoch_unit("1704067200000") == "ms"
    assert epoch_unit("1704067200000000") == "us"
    for bad in ("170406720000", "17040672000000", "1704067200", "abc"):
        with pytest.raises(ParseError, match="neither epoch ms"):
            epoch_unit(bad)


def test_mixed_time_units_rejected() -> None:
    lines = klines_csv(DAY, header=False, rows=3).splitlines()
    first = lines[1].split(",")
    first[0] += "000"
    lines[1] = ",".join(first)
    with pytest.raises(ParseError, match="mixes time units"):
        parse_klines("\n".join(lines).encode(), "BTCUSDT", DAY)


def test_mark_klines_schema() -> None:
    parsed = parse_klines(klines_csv(DAY, mark=True).encode(), "BTCUSDT", DAY, mark=True)
    assert dict(parsed.frame.schema) == MARK_KLINES_SCHEMA


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        (KLINE_HEADER + "\n", "header only"),
        ("open_time,open,high\n1,2,3\n", "unexpected header"),
        ("1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6\n", "11 columns, expected 12"),
        (
            "1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6,0\n"
            "1704067260000,1,2,0.5,1.5,10,1704067319999,15,3,4\n",
            "ragged rows",
        ),
        ("1704067200000,1,2,x,1.5,10,1704067259999,15,3,4,6,0\n", "bad value"),
        ("1704067200000,1,,0.5,1.5,10,1704067259999,15,3,4,6,0\n", "blank values in column high"),
        ("1704153600000,1,2,0.5,1.5,10,1704153659999,15,3,4,6,0\n", "outside 2024-01-01"),
        ("1704067201000,1,2,0.5,1.5,10,1704067260999,15,3,4,6,0\n", "1-minute grid"),
    ],
)
def test_klines_failures(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_klines(text.encode(), "BTCUSDT", DAY)


def test_short_klines_file_is_flagged() -> None:
    lines = klines_csv(DAY).splitlines()
    text = "\n".join(lines[:1381]) + "\n"  # header + 1380 rows
    parsed = parse_klines(text.encode(), "BTCUSDT", DAY)
    assert parsed.rows == 1380
    assert parsed.warning == "short file: 1380 of 1440 rows (00:00-22:59)"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), extra=st.integers(0, 50))
def test_klines_order_and_duplicates_do_not_matter(seed: int, extra: int) -> None:
    """Property: shuffling rows and repeating some gives the same sorted, unique frame."""
    lines = klines_csv(DAY, header=False, rows=120).splitlines()
    rng = random.Random(seed)
    messy = lines + [rng.choice(lines) for _ in range(extra)]
    rng.shuffle(messy)
    clean = parse_klines("\n".join(lines).encode(), "BTCUSDT", DAY).frame
    parsed = parse_klines("\n".join(messy).encode(), "BTCUSDT", DAY)
    assert parsed.frame.equals(clean)
    assert parsed.warning == "short file: 120 of 1440 rows (00:00-01:59)"


def test_conflicting_duplicate_minutes_are_noted() -> None:
    lines = klines_csv(DAY, header=False).splitlines()
    changed = lines[5].split(",")
    changed[5] = "1.0"  # a different volume (a valid bar)
    text = "\n".join([*lines, ",".join(changed)])
    parsed = parse_klines(text.encode(), "BTCUSDT", DAY)
    assert parsed.rows == 1440
    assert parsed.warning == "1 conflicting duplicate minutes dropped"


# -- metrics -------------------------------------------------------------------------------
def test_metrics_unsorted_and_doubled_rows() -> None:
    text = metrics_csv("BTCUSDT", DAY, shuffle=True, double=True)
    assert len(text.splitlines()) == 1 + 576
    parsed = parse_metrics(text.encode(), "BTCUSDT", DAY)
    frame = parsed.frame
    assert dict(frame.schema) == OPEN_INTEREST_SCHEMA
    assert frame.height == 288
    assert parsed.warning is None
    assert frame["ts"].is_sorted()
    assert frame["ts"].n_unique() == 288
    clean = parse_metrics(metrics_csv("BTCUSDT", DAY).encode(), "BTCUSDT", DAY).frame
    assert frame.equals(clean)


@pytest.mark.parametrize(
    ("convention", "first", "last"),
    [
        ("start", utc(2024, 1, 1), utc(2024, 1, 1, 23, 55)),
        ("end", utc(2024, 1, 1, 0, 5), utc(2024, 1, 2)),
    ],
)
def test_metrics_label_conventions(convention: str, first: datetime, last: datetime) -> None:
    parsed = parse_metrics(
        metrics_csv("BTCUSDT", DAY, convention=convention).encode(), "BTCUSDT", DAY
    )
    assert parsed.rows == 288
    assert parsed.frame["ts"][0] == first
    assert parsed.frame["ts"][-1] == last
    # the partition is exactly the file's labels, closed at both ends
    assert parsed.start == first
    assert parsed.end == last + timedelta(microseconds=1)


def test_metrics_blank_ratios_and_zero_oi_become_null() -> None:
    text = metrics_csv("BTCUSDT", DAY, blank_ratios=True, zero_oi_rows=(3,))
    frame = parse_metrics(text.encode(), "BTCUSDT", DAY).frame
    assert frame["top_trader_account_ratio"].null_count() == 288
    assert frame["global_account_ratio"].null_count() == 288
    assert frame["taker_buy_sell_ratio"].null_count() == 0
    assert frame["oi_base"].null_count() == 1
    assert frame["oi_base"][3] is None
    assert frame["oi_usd"][3] is None
    assert frame["oi_base"][2] > 0


def test_metrics_quoted_blank_ratios() -> None:
    line = '2024-01-01 00:00:00,BTCUSDT,5578700.00000000,18265.00911826,"","","",0.00855776\n'
    frame = parse_metrics(line.encode(), "BTCUSDT", DAY).frame
    assert frame.row(0, named=True)["top_trader_position_ratio"] is None
    assert frame.row(0, named=True)["taker_buy_sell_ratio"] == pytest.approx(0.00855776)


def test_metrics_known_answer() -> None:
    text = (
        "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
        "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n"
        "2024-01-01 00:05:00,BTCUSDT,73839.81100000,3133154733.16132700,"
        "1.36197224,1.26060333,1.50756624,2.83721422\n"
        "2024-01-01 00:00:00,BTCUSDT,74006.26600000,3131493738.89740000,"
        "1.36820310,1.25366800,1.50710938,1.31174499\n"
    )
    parsed = parse_metrics(text.encode(), "BTCUSDT", DAY)
    row = parsed.frame.row(0, named=True)
    assert row["ts"] == utc(2024, 1, 1)
    assert row["oi_base"] == pytest.approx(74006.266)
    assert row["oi_usd"] == pytest.approx(3131493738.8974)
    assert row["top_trader_account_ratio"] == pytest.approx(1.36820310)
    assert row["top_trader_position_ratio"] == pytest.approx(1.25366800)
    assert row["global_account_ratio"] == pytest.approx(1.50710938)
    assert row["taker_buy_sell_ratio"] == pytest.approx(1.31174499)
    assert parsed.warning == "short file: 2 of 288 rows (00:00-00:05)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-01-01 00:00:00,ETHUSDT,1,1,1,1,1,1\n", "symbol"),
        ("2024-01-02 00:05:00,BTCUSDT,1,1,1,1,1,1\n", "outside 2024-01-01"),
        ("2023-12-31 23:55:00,BTCUSDT,1,1,1,1,1,1\n", "outside 2024-01-01"),
        ("2024-01-01T00:00:00Z,BTCUSDT,1,1,1,1,1,1\n", "bad value"),
        ("2024-01-01 00:00:00,BTCUSDT,1,1,1,1,1\n", "7 columns"),
    ],
)
def test_metrics_failures(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_metrics(text.encode(), "BTCUSDT", DAY)


# -- funding -------------------------------------------------------------------------------
def test_funding_headerless_and_4h() -> None:
    text = funding_csv(2024, 2, interval_hours=4, header=False)
    frame = parse_funding(text.encode(), "BTCUSDT", 2024, 2).frame
    assert frame.height == 29 * 6
    assert frame["funding_interval_hours"].unique().to_list() == [4]
    assert frame["ts"].dt.millisecond().max() == 0


# -- aggTrades -----------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trades.csv"
    path.write_text(text)
    return path


def test_aggtrades_profile_known_answer(tmp_path: Path) -> None:
    text = (
        AGGTRADES_HEADER + "\n"
        "1,42000.0,0.5,10,11,1704067200100,false\n"
        "2,42000.0,0.25,12,12,1704067201000,true\n"
        "3,42001.5,1.0,13,13,1704067259999,false\n"
        "3,42001.5,1.0,13,13,1704067259999,false\n"  # duplicated aggregate
        "4,42001.5,2.0,14,15,1704067260000,TRUE\n"
        "5,41999.0,9.0,16,16,1704153600000,false\n"  # next day: dropped
    )
    parsed = parse_aggtrades_profile(write(tmp_path, text), "BTCUSDT", DAY)
    rows = parsed.frame.select("ts", "price", "volume", "buy_volume").rows()
    assert rows == [
        (utc(2024, 1, 1, 0, 0), 42000.0, 0.75, 0.5),
        (utc(2024, 1, 1, 0, 0), 42001.5, 1.0, 1.0),
        (utc(2024, 1, 1, 0, 1), 42001.5, 2.0, 0.0),
    ]
    assert parsed.warning is not None
    assert "short file: trades cover 00:00-00:01" in parsed.warning
    assert "1 trades outside the day dropped" in parsed.warning
    assert "1 duplicate trades dropped" in parsed.warning


def test_aggtrades_headerless_matches_headed(tmp_path: Path) -> None:
    headed = parse_aggtrades_profile(write(tmp_path, aggtrades_csv(DAY, 3000)), "X", DAY)
    bare = parse_aggtrades_profile(
        write(tmp_path, aggtrades_csv(DAY, 3000, header=False)), "X", DAY
    )
    assert headed.frame.equals(bare.frame)
    assert headed.warning is None
    total = pl.read_csv(aggtrades_csv(DAY, 3000).encode())["quantity"].sum()
    assert headed.frame["volume"].sum() == pytest.approx(total)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("agg_trade_id,price\n1,2\n", "unexpected header"),
        ("1,42000.0,0.5,10,11,1704067200100,false,true\n", "8 columns"),
        ("1,42000.0,0.5,10,11,1704067200,false\n", "neither epoch"),
        (
            "1,42000.0,0.5,10,11,1704067200100,false\n2,x,0.5,10,11,1704067200100,false\n",
            "bad value",
        ),
        ("1,42000.0,0.5,10,11,1704153600000,false\n", "no trades on 2024-01-01"),
    ],
)
def test_aggtrades_failures(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_aggtrades_profile(write(tmp_path, text), "BTCUSDT", DAY)


@pytest.mark.parametrize(
    "variant",
    ["crlf", "trailing blank lines", "blank lines between rows", "leading blank line", "bom"],
)
def test_whitespace_variants_parse_identically(variant: str) -> None:
    text = klines_csv(DAY)
    changed = {
        "crlf": text.replace("\n", "\r\n"),
        "trailing blank lines": text + "\n\n",
        "blank lines between rows": text.replace("\n", "\n\n"),
        "leading blank line": "\n" + text,
        "bom": "\ufeff" + text,
    }[variant]
    clean = parse_klines(text.encode(), "BTCUSDT", DAY).frame
    assert parse_klines(changed.encode(), "BTCUSDT", DAY).frame.equals(clean)


@settings(max_examples=40, deadline=None)
@given(
    switch=st.integers(0, 4),
    loads=st.lists(st.integers(0, 3), min_size=1, max_size=8),
)
def test_metrics_partitions_never_duplicate_or_drop(switch: int, loads: list[int]) -> None:
    """Property: replaying metrics days in any order (end-of-period labels before the
    convention switch day, start-of-period from it on) with replace-by-partition semantics
    keeps exactly one row per label, and every label of every loaded day is present."""
    frames = {}
    for i in range(4):
        day = DAY + timedelta(days=i)
        convention = "end" if i < switch else "start"
        text = metrics_csv("BTCUSDT", day, convention=convention, seed=i)
        frames[i] = parse_metrics(text.encode(), "BTCUSDT", day)
    rows: list[tuple[datetime, int]] = []  # (label, day that wrote it), like the table
    for i in loads:
        parsed = frames[i]
        rows = [(ts, d) for ts, d in rows if not parsed.start <= ts < parsed.end]
        rows += [(ts, i) for ts in parsed.frame["ts"].to_list()]
    table = dict(rows)
    assert len(table) == len(rows)  # no duplicate labels
    expected = set().union(*(set(frames[i].frame["ts"].to_list()) for i in set(loads)))
    assert set(table) == expected  # nothing dropped
    # each day's own labels hold that day's rows, except a shared midnight label, which holds
    # the value of whichever file was loaded last
    for i in set(loads):
        mine = set(frames[i].frame["ts"].to_list())
        others = set().union(*(set(frames[j].frame["ts"].to_list()) for j in set(loads) - {i}))
        assert all(table[ts] == i for ts in mine - others)
        assert len(mine & others) <= 2
