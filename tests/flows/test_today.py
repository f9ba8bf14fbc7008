"""The REST top-up of today: parsers on the real REST answers, then the loopback stand-in
(tests/rest_fakes.py) topping up today and the archive later replacing it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.ingest import ingest
from flows.settings import Settings
from flows.sources.errors import ParseError
from flows.sources.today.parsing import (
    binance_klines,
    binance_mark_klines,
    binance_open_interest,
    bybit_klines,
    bybit_mark_klines,
    okx_candles,
    okx_mark_candles,
)
from flows.today import top_up
from tests.flows.test_cli import run_cli
from tests.httpmirror import serve_mirror, write_day
from tests.rest_fakes import sample, serve_rest
from warehouse.db import migrate, read_connection, write_connection

SYM = "BTCUSDT"
D1, D2 = date(2024, 1, 1), date(2024, 1, 2)
NOW = datetime(2024, 1, 2, 10, 0, 30, tzinfo=UTC)  # 600 closed minutes of D2, one bar open
FAST: dict[str, Any] = {"retries": 1, "backoff_s": 0.001, "backoff_max_s": 0.005, "progress": False}


# -- parsers on the real answers -----------------------------------------------------------------
def test_binance_answers() -> None:
    bars = binance_klines(sample("binance-um/klines.docs-example.json"))
    assert bars.row(0, named=True) == {
        "ts": datetime(2017, 7, 3, tzinfo=UTC),
        "open": 0.0163479,
        "high": 0.8,
        "low": 0.015758,
        "close": 0.015771,
        "volume": 148976.11427815,
        "quote_volume": 2434.19055334,
        "trades": 308,
        "taker_buy_volume": 1756.87402397,
        "taker_buy_quote_volume": 28.46694368,
    }
    mark = binance_mark_klines(sample("binance-um/markPriceKlines.docs-example.json"))
    assert mark.columns == ["ts", "open", "high", "low", "close"]
    assert mark.row(0)[1:] == (9653.29201333, 9654.56401333, 9653.07367333, 9653.07367333)
    # the 2026 answer: newest first, timestamp a number, CMCCirculatingSupply extra
    oi = binance_open_interest(
        sample("binance-um/openInterestHist.BTCUSDT-5m.quoted-2026-10-06.json")
    )
    assert oi["ts"].to_list() == [
        datetime(2026, 10, 6, 10, 55, tzinfo=UTC),
        datetime(2026, 10, 6, 11, 0, tzinfo=UTC),
    ]
    assert oi.row(1)[1:3] == (94731.046, 8157280897.9554)
    # the old docs write timestamp as a string
    old = binance_open_interest(sample("binance-um/openInterestHist.docs-example-old.json"))
    assert old["oi_base"].to_list() == [20403.637, 20401.367]


def test_bybit_and_okx_answers() -> None:
    bars = bybit_klines(sample("bybit/kline.docs-example-inverse.json")["result"]["list"])
    assert bars["ts"].is_sorted()  # newest first in the answer
    assert bars.row(2)[1:7] == (17071.0, 17073.0, 17027.0, 17055.5, 268611.0, 15.74462667)
    assert bars["trades"].null_count() == 3
    mark = bybit_mark_klines(sample("bybit/mark-price-kline.docs-example.json")["result"]["list"])
    assert mark.row(0)[1:] == (17164.16, 17164.16, 17121.5, 17131.64)
    candles = okx_candles(sample("okx/candles.BTC-1m.capture-2025-05-12.json")["data"])
    assert candles["ts"].to_list() == [
        datetime(2025, 5, 12, 23, 53, tzinfo=UTC),
        datetime(2025, 5, 12, 23, 54, tzinfo=UTC),
    ]
    assert candles.select("volume", "quote_volume").row(1) == (10.4037, 1069603.34883)
    # the docs example repeats one ts: confirm "0" is dropped, the confirmed bar stays
    okx_mark = okx_mark_candles(sample("okx/mark-price-candles.docs-example.json")["data"])
    assert okx_mark.select("open", "close").rows() == [(3.731, 3.72)]


def test_a_bad_row_is_refused_in_one_line() -> None:
    row = sample("binance-um/klines.docs-example.json")[0]
    with pytest.raises(ParseError, match="bad binance klines close 'n/a'"):
        binance_klines([[*row[:4], "n/a", *row[5:]]])
    with pytest.raises(ParseError, match="not epoch milliseconds"):
        binance_klines([[1499040000, *row[1:]]])


# -- the stand-in --------------------------------------------------------------------------------
def counts(db: Path, table: str, exchange: str = "binance") -> dict[tuple[date, str], int]:
    with read_connection(db) as con:
        rows = con.execute(
            f"SELECT CAST(ts AS DATE), origin, count(*) FROM {table} WHERE exchange = ? "
            "GROUP BY ALL ORDER BY ALL",
            [exchange],
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def ledger(db: Path) -> dict[tuple[str, str, date], tuple[str, int | None, str | None]]:
    with read_connection(db) as con:
        rows = con.execute(
            "SELECT exchange, dataset, day, status, rows, error FROM ingest_log "
            "WHERE dataset LIKE 'rest-%'"
        ).fetchall()
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", http_retries=1)


def test_binance_today_is_topped_up_then_the_archive_replaces_it(
    settings: Settings, tmp_path: Path
) -> None:
    db = settings.db_path
    with serve_rest(NOW) as rest:
        got = top_up(settings, [SYM], ["binance"], now=NOW, base_url=rest.base_url, page_limit=500)
        assert {u.status for u in got} == {"loaded"}
        # D1 whole, D2 up to 10:00 (the bar opened at 10:00 is still open: left out)
        assert counts(db, "klines") == {(D1, "rest"): 1440, (D2, "rest"): 600}
        assert counts(db, "mark_klines") == {(D1, "rest"): 1440, (D2, "rest"): 600}
        assert counts(db, "open_interest") == {(D1, "rest"): 288, (D2, "rest"): 121}
        # paged forward with startTime, 500 a page: 3 pages for D1's 1440 bars, 2 for D2's 601
        starts = [int(q["startTime"]) for q in rest.calls("/fapi/v1/klines")]
        assert len(starts) == 5
        assert starts == sorted(starts[:3]) + sorted(starts[3:])
        log = ledger(db)
        assert log[("binance", "rest-klines", D2)] == ("loaded", 600, "up to 10:00 UTC")
        assert log[("binance", "rest-open_interest", D1)] == ("loaded", 288, None)
        # a second run an hour later replaces its own rows: no duplicates
        later = NOW + timedelta(hours=1)
        rest.now_ms += 3_600_000
        top_up(settings, [SYM], ["binance"], now=later, base_url=rest.base_url)
        assert counts(db, "klines") == {(D1, "rest"): 1440, (D2, "rest"): 660}

    # the archive publishes D1: the loader replaces the whole day, the archive wins
    mirror_root = tmp_path / "mirror"
    write_day(mirror_root, SYM, D1)
    with serve_mirror(mirror_root) as mirror:
        report = ingest(db, settings.raw_dir, mirror.base_url, [SYM], [D1], today=D2, **FAST)
    assert report.ok, report.outcomes
    assert counts(db, "klines") == {(D1, "archive"): 1440, (D2, "rest"): 660}
    assert counts(db, "open_interest")[(D1, "archive")] > 0
    assert (D1, "rest") not in counts(db, "open_interest")

    # the next top-up leaves D1 to the archive and notes it in the ledger
    with serve_rest(later) as rest:
        again = top_up(settings, [SYM], ["binance"], now=later, base_url=rest.base_url)
        assert {(u.day, u.status) for u in again} == {(D1, "replaced"), (D2, "loaded")}
        assert all(not q["startTime"].startswith("1704067") for q in rest.calls("/fapi/v1/klines"))
    assert counts(db, "klines") == {(D1, "archive"): 1440, (D2, "rest"): 660}
    assert ledger(db)[("binance", "rest-klines", D1)] == (
        "loaded",
        0,
        "replaced by the archive day",
    )


def test_a_failing_endpoint_leaves_the_archive_and_earlier_rows(
    settings: Settings, tmp_path: Path
) -> None:
    db = settings.db_path
    mirror_root = tmp_path / "mirror"
    write_day(mirror_root, SYM, D1)
    with serve_mirror(mirror_root) as mirror:
        ingest(db, settings.raw_dir, mirror.base_url, [SYM], [D1], today=D2, **FAST)
    before = {t: counts(db, t) for t in ("klines", "mark_klines", "open_interest")}
    with serve_rest(NOW) as rest:
        rest.fail = {
            "/fapi/v1/klines",
            "/fapi/v1/markPriceKlines",
            "/futures/data/openInterestHist",
        }
        got = top_up(settings, [SYM], ["binance"], now=NOW, base_url=rest.base_url)
    assert {(u.day, u.status) for u in got} == {(D1, "replaced"), (D2, "failed")}
    failed = next(u for u in got if u.status == "failed")
    assert "HTTP 503" in str(failed.reason)
    assert {t: counts(db, t) for t in before} == before
    assert ledger(db)[("binance", "rest-klines", D2)][0] == "failed"


def test_a_midnight_archive_row_neither_makes_a_day_nor_gets_a_twin(settings: Settings) -> None:
    """A metrics file of the old label convention ends on the next day's 00:00: that lone
    archive row must not stop the top-up of the day, nor get a REST row beside it."""
    db = settings.db_path
    migrate(db)
    with write_connection(db) as con:
        con.execute(
            "INSERT INTO open_interest (exchange, symbol, ts, oi_base, oi_usd) "
            "VALUES ('binance', ?, ?, 1.0, 42000.0)",
            [SYM, datetime(2024, 1, 2)],
        )
    with serve_rest(NOW) as rest:
        got = top_up(settings, [SYM], ["binance"], now=NOW, base_url=rest.base_url, days=1)
    assert {u.status for u in got} == {"loaded"}
    assert counts(db, "open_interest") == {(D2, "archive"): 1, (D2, "rest"): 120}
    with read_connection(db) as con:
        twins = con.execute(
            "SELECT count(*) FROM (SELECT ts FROM open_interest GROUP BY ts HAVING count(*) > 1)"
        ).fetchone()
    assert twins == (0,)


def test_bybit_mark_bars_go_with_the_archive_klines_day(settings: Settings) -> None:
    """Bybit publishes no mark-price files: its REST mark bars of a day leave when the day's
    archive klines (from the trade files) are in."""
    db = settings.db_path
    with serve_rest(NOW) as rest:
        first = top_up(settings, [SYM], ["bybit"], now=NOW, base_url=rest.base_url)
        assert {u.status for u in first} == {"loaded"}
        with write_connection(db) as con:  # what loading D1's trade file leaves behind
            con.execute(
                "UPDATE klines SET origin = 'archive' WHERE exchange = 'bybit' AND ts < ?",
                [datetime(2024, 1, 2)],
            )
        again = top_up(settings, [SYM], ["bybit"], now=NOW, base_url=rest.base_url)
    done = {(u.table, u.day): (u.status, u.rows) for u in again}
    assert done[("klines", D1)] == ("replaced", 0)
    assert done[("mark_klines", D1)] == ("replaced", 1440)
    assert done[("open_interest", D1)] == ("loaded", 288)  # its own archive route is separate
    assert counts(db, "mark_klines", "bybit") == {(D2, "rest"): 600}
    assert ledger(db)[("bybit", "rest-mark_klines", D1)] == (
        "loaded",
        0,
        "replaced by the archive day",
    )


def test_bybit_and_okx_today_through_the_stand_in(settings: Settings) -> None:
    now = datetime(2026, 12, 6, 5, 55, 10, tzinfo=UTC)
    today = now.date()
    with serve_rest(now) as rest:
        got = top_up(settings, [SYM], ["bybit", "okx"], now=now, base_url=rest.base_url, days=1)
        assert [u for u in got if u.status != "loaded"] == []
        # newest first, paged backwards: OKX 300 candles and 100 mark candles a page
        assert len(rest.calls("/api/v5/market/candles")) == 2
        assert len(rest.calls("/api/v5/market/mark-price-candles")) == 4
        assert len(rest.calls("/v5/market/kline")) == 2  # 1m bars, and 5m closes for OI in USD
    closed = 5 * 60 + 55  # minutes closed by 05:55:10
    for exchange in ("bybit", "okx"):
        assert counts(settings.db_path, "klines", exchange) == {(today, "rest"): closed}
        assert counts(settings.db_path, "mark_klines", exchange) == {(today, "rest"): closed}
        assert counts(settings.db_path, "open_interest", exchange) == {(today, "rest"): 72}
    with read_connection(settings.db_path) as con:
        usd = con.execute(
            "SELECT count(*) FROM open_interest WHERE exchange = 'bybit' AND oi_usd > 0"
        ).fetchone()
    assert usd == (72,)


def test_liqheat_today_tops_up_from_the_configured_rest_root(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = run_cli("today", "--exchange", "nope", home=home)
    assert bad.returncode == 2
    assert "unknown exchange 'nope'" in bad.stderr
    with serve_rest(datetime.now(UTC)) as rest:
        os_env = {"LIQHEAT_BINANCE_API_URL": rest.base_url}
        done = run_cli("today", "--symbol", SYM, "--days", "1", home=home, env=os_env)
    assert done.returncode == 0, done.stderr
    assert "top-up binance BTCUSDT klines" in done.stdout
    assert "0 failed" in done.stdout
    assert counts(home / "liqheat.duckdb", "open_interest")


@pytest.mark.slow
def test_an_hourly_nightly_run_tops_up_today_after_the_archive_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: object
) -> None:
    """What `liqheat serve --cron "5 * * * *" --today` runs every hour: yesterday from the
    archive, today from REST, then the model and the site on both."""
    from flows.demo_data import write_demo_archive
    from flows.pipeline import nightly_flow

    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    archive = write_demo_archive(tmp_path / "mirror", [SYM], yesterday, 1, seed=3)
    home = tmp_path / "home"
    monkeypatch.setenv("LIQHEAT_HOME", str(home))
    with serve_mirror(archive.root) as mirror, serve_rest(now) as rest:
        monkeypatch.setenv("LIQHEAT_BINANCE_API_URL", rest.base_url)
        summary = nightly_flow(
            date=yesterday.isoformat(),
            symbols=[SYM],
            base_url=mirror.base_url,
            backfill_days=0,
            today=True,
        )
    assert "top-up from REST:" in summary
    assert "0 failed" in summary
    closed = (now - datetime(now.year, now.month, now.day, tzinfo=UTC)) // timedelta(minutes=1)
    got = counts(home / "liqheat.duckdb", "klines")
    assert got[(yesterday, "archive")] == 1440
    assert got.get((now.date(), "rest"), 0) == closed
    assert (yesterday, "rest") not in got
    with read_connection(home / "liqheat.duckdb") as con:
        row = con.execute(
            "SELECT max(end_ts) FROM model_runs WHERE exchange = 'binance'"
        ).fetchone()
    assert row is not None
    # the model ran over today's bars: its newest bar is within the hour
    assert now.replace(tzinfo=None) - row[0] < timedelta(hours=1)
    assert (home / "site" / "BTCUSDT" / "index.html").is_file()
