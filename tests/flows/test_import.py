"""`liqheat import` on the real files in ../shared/data: bar size detected and stored, re-import
replaces, bad values refused naming their rows; model and report label the stored bar size."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from flows.importing import import_file
from flows.settings import Settings
from tests.cli import liqheat, one_error_line
from transforms.importing import ImportDataError, bar_table
from warehouse.reads import query

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FIVE_MIN = DATA / "btcusdt-perp-5m-ohlc-oi-2026-06-08_14.csv"
HOURLY = DATA / "where-dev" / "ethusdt-1h-price-oi-funding-2025-03-08_2026-03-05.csv"
FOUR_H = DATA / "btc-4h-price-oi-liquidations-2025-10-06_11-22.csv"
needs_data = pytest.mark.skipif(not FIVE_MIN.exists(), reason="needs ../shared/data")

COUNTS = (
    "SELECT (SELECT count(*) FROM klines) AS klines, (SELECT count(*) FROM open_interest) AS oi, "
    "(SELECT count(*) FROM funding_rates) AS funding, "
    "(SELECT count(*) FROM realized_liquidations) AS realized, "
    "(SELECT count(*) FROM ingest_log) AS log"
)


@needs_data
def test_the_real_5m_file_imports_models_and_reports_as_5_minute_bars(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = liqheat(home, "import", str(FIVE_MIN), "--exchange", "mydata", "--symbol", "BTCUSDT")
    assert out.returncode == 0, out.stderr
    assert "1,716 5-minute bars (bar size detected from the times)" in out.stdout
    assert "gaps: none" in out.stdout
    assert "duplicates: none" in out.stdout
    db = home / "liqheat.duckdb"
    first = query(db, COUNTS).row(0, named=True)
    assert first == {"klines": 1716, "oi": 1716, "funding": 1716, "realized": 0, "log": 7}
    log = query(db, "SELECT DISTINCT dataset, sha256, source_url, bar_seconds FROM ingest_log")
    assert log.rows() == [
        ("import", log["sha256"][0], str(FIVE_MIN.resolve()), 300)
    ]  # fmt: skip
    assert len(log["sha256"][0]) == 64
    assert query(db, "SELECT DISTINCT bar_seconds FROM klines").rows() == [(300,)]
    again = liqheat(home, "import", str(FIVE_MIN), "--exchange", "mydata", "--symbol", "BTCUSDT")
    assert again.returncode == 0, again.stderr
    assert query(db, COUNTS).row(0, named=True) == first  # re-import replaces
    model = liqheat(home, "model", "--days", "2")
    assert model.returncode == 0, model.stderr
    assert "[mydata] BTCUSDT: 576 bars" in model.stdout
    assert "binance" not in model.stdout  # only the exchanges with bars are modelled
    assert "no bars" not in model.stdout
    report = liqheat(home, "report", "--days", "24h")
    assert report.returncode == 0, report.stderr
    page = (home / "site" / "BTCUSDT" / "24h.html").read_text(encoding="utf-8")
    assert "(5-minute bar, Mydata)" in page
    assert "1-minute" not in page
    price = query(db, "SELECT bar_seconds FROM v_latest_price").rows()
    assert price == [(300,)]


@needs_data
def test_the_where_dev_hourly_file_is_labelled_as_1_hour_bars(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = liqheat(
        home, "import", str(HOURLY), "--exchange", "coinglass", "--symbol", "ETHUSDT",
        "--oi-at", "close",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "8,692 1-hour bars" in out.stdout
    assert "open_interest 8,673" in out.stdout  # 18 empty OI rows, the first one shifted away
    assert liqheat(home, "model", "--days", "5").returncode == 0
    report = liqheat(home, "report", "--days", "3d")
    assert report.returncode == 0, report.stderr
    page = (home / "site" / "ETHUSDT" / "3d.html").read_text(encoding="utf-8")
    assert "(1-hour bar, Coinglass)" in page


@needs_data
def test_the_4h_file_stores_its_realized_liquidations(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    result = import_file(settings, FOUR_H, exchange="coinglass", symbol="BTCUSDT")
    assert (result.bar_seconds, result.bars) == (14400, 285)
    assert result.rows["realized_liquidations"] == 568
    again = import_file(settings, FOUR_H, exchange="coinglass", symbol="BTCUSDT")
    assert again.rows == result.rows
    stored = query(
        settings.db_path,
        "SELECT source, count(*) AS n FROM realized_liquidations GROUP BY ALL",
    ).rows()
    assert stored == [(f"import:{FOUR_H.name}", 568)]
    # 5-minute bars under the same exchange and symbol would mix sizes: refused
    with pytest.raises(ValueError, match="already holds 285 4-hour bars"):
        import_file(settings, FIVE_MIN, exchange="coinglass", symbol="BTCUSDT")


def test_bad_values_are_refused_with_their_rows_exit_2(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "time,open,high,low,close,oi\n"
        "2024-01-01T00:00:00Z,10,11,9,10,100\n"
        "2024-01-01T00:05:00Z,10,9,9.5,10,100\n"  # line 3: high below the low
        "2024-01-01T00:10:00Z,10,11,9,abc,100\n",  # line 4: close is text
        encoding="utf-8",
    )
    home = tmp_path / "home"
    out = liqheat(home, "import", str(csv), "--exchange", "x", "--symbol", "BTCUSDT",
                  "--map", "oi_usd=oi")  # fmt: skip
    assert out.returncode == 2
    line = one_error_line(out)
    assert "close not a number in row(s) 4" in line
    csv.write_text(csv.read_text().replace("abc", "10"), encoding="utf-8")
    out = liqheat(home, "import", str(csv), "--exchange", "x", "--symbol", "BTCUSDT",
                  "--map", "oi_usd=oi")  # fmt: skip
    assert out.returncode == 2
    assert "high below open/close/low or low above open/close in row(s) 3" in one_error_line(out)
    assert (
        not (home / "liqheat.duckdb").exists()
        or query(home / "liqheat.duckdb", "SELECT count(*) AS n FROM klines").item() == 0
    )
    missing = liqheat(home, "import", str(csv), "--exchange", "x", "--symbol", "BTCUSDT")
    assert missing.returncode == 2
    assert "accepted names: oi_usd: oi_usd, open_interest_usd" in one_error_line(missing)


def _bars(ts: list[object]) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame(
        {"ts": ts, "open": [1.0] * n, "high": [2.0] * n, "low": [0.5] * n, "close": [1.0] * n,
         "oi_usd": [5.0] * n}
    )  # fmt: skip


def test_times_in_seconds_milliseconds_and_iso_read_alike() -> None:
    secs = [1_704_067_200 + 3600 * k for k in (0, 1, 2, 5)]
    a = bar_table(_bars(secs))
    b = bar_table(_bars([s * 1000 for s in secs]))
    c = bar_table(_bars([f"2024-01-01T0{h}:00:00Z" for h in (0, 1, 2, 5)]))
    assert a.bars["ts"].to_list() == b.bars["ts"].to_list() == c.bars["ts"].to_list()
    assert a.bar_seconds == 3600
    assert [n for _, n in a.gaps] == [2]  # 03:00 and 04:00 missing


def test_conflicting_duplicates_off_grid_times_and_odd_sizes_are_refused() -> None:
    t0 = 1_704_067_200_000
    clash = _bars([t0, t0 + 60_000, t0 + 60_000]).with_columns(pl.Series("close", [1.0, 1.0, 1.5]))
    with pytest.raises(ImportDataError, match="repeated with different values, in row"):
        bar_table(clash)
    with pytest.raises(ImportDataError, match="off the 5-minute grid"):
        bar_table(_bars([t0 + k * 300_000 for k in range(5)] + [t0 + 1_620_000]))
    with pytest.raises(ImportDataError, match="not a bar size liqheat knows"):
        bar_table(_bars([t0 + k * 7_000 for k in range(4)]))


def test_a_short_archive_day_is_recorded_and_named_by_the_model(tmp_path: Path) -> None:
    """A loaded day flagged "short file" is ingest_log.complete = false, v_coverage counts it,
    and `liqheat model` says it models it with its gap (issue 21)."""
    from flows.model_route import short_day_lines
    from flows.modelling import model_symbol
    from warehouse.db import write_connection
    from warehouse.writes import log_ingest

    settings = Settings(home=tmp_path)
    csv = tmp_path / "bars.csv"
    t0 = 1_781_049_600_000  # 2026-06-10 00:00 UTC
    n = 1380  # 23 hours of 1-minute bars: a short day
    pl.DataFrame(
        {"ts": [t0 + 60_000 * k for k in range(n)], "open": 100.0, "high": 101.0, "low": 99.0,
         "close": 100.0, "oi_usd": [1e9 + k for k in range(n)]}
    ).write_csv(csv)  # fmt: skip
    import_file(settings, csv, exchange="binance", symbol="BTCUSDT")
    day = query(settings.db_path, "SELECT day FROM ingest_log")["day"].item()
    with write_connection(settings.db_path) as con:
        con.execute("DELETE FROM ingest_log")
        log_ingest(
            con,
            exchange="binance",
            dataset="klines",
            symbol="BTCUSDT",
            day=day,
            status="loaded",
            rows=n,
            error="short file: 1380 of 1440 rows (00:00-22:59)",
        )
        log_ingest(con, exchange="binance", dataset="metrics", symbol="BTCUSDT", day=day,
                   status="loaded", rows=288)  # fmt: skip
    logged = query(settings.db_path, "SELECT dataset, complete FROM ingest_log ORDER BY 1")
    assert logged.rows() == [("klines", False), ("metrics", True)]
    cover = query(settings.db_path, "SELECT dataset, short_days FROM v_coverage ORDER BY 1")
    assert cover.rows() == [("klines", 1), ("metrics", 0)]
    assert model_symbol(settings, "BTCUSDT", days=1).bars == 1380
    (line,) = short_day_lines(settings, "BTCUSDT", "binance", 1)
    assert "1 incomplete day(s) in the binance BTCUSDT window, modelled with their gaps: " in line
    assert "2026-06-10 (short file: 1380 of 1440 rows (00:00-22:59))" in line


@needs_data
def test_parquet_reads_like_the_csv_and_bad_names_are_usage_errors(tmp_path: Path) -> None:
    parquet = tmp_path / "btc-4h.parquet"
    pl.read_csv(FOUR_H).write_parquet(parquet)
    settings = Settings(home=tmp_path / "home")
    result = import_file(settings, parquet, exchange="mydata", symbol="BTCUSDT")
    assert (result.bar_seconds, result.bars, result.rows["realized_liquidations"]) == (
        14400, 285, 568,
    )  # fmt: skip
    bad = liqheat(tmp_path / "home", "import", str(parquet), "--exchange", "all", "--symbol", "X1")
    assert bad.returncode == 2
    assert "bad --exchange 'all'" in one_error_line(bad)
    role = liqheat(tmp_path / "home", "import", str(parquet), "--exchange", "a",
                   "--symbol", "BTCUSDT", "--map", "price=close")  # fmt: skip
    assert role.returncode == 2
    assert "unknown role 'price' in --map" in one_error_line(role)
