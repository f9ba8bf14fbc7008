"""Tests of the SYNTHETIC demo archive writer (flows/demo_data.py): exact layout and formats."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from flows.demo_data import DemoArchive, write_demo_archive

START = date(2024, 2, 28)
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
KLINES_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,"
    "sum_taker_long_short_vol_ratio"
)
UM = "data/futures/um"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchive:
    return write_demo_archive(tmp_path_factory.mktemp("demo"), SYMBOLS, START, 2, seed=3)


def expected_zips() -> list[str]:
    paths = []
    for s in SYMBOLS:
        for d in ("2024-02-28", "2024-02-29"):
            paths += [
                f"{UM}/daily/klines/{s}/1m/{s}-1m-{d}.zip",
                f"{UM}/daily/markPriceKlines/{s}/1m/{s}-1m-{d}.zip",
                f"{UM}/daily/metrics/{s}/{s}-metrics-{d}.zip",
            ]
        paths.append(f"{UM}/monthly/fundingRate/{s}/{s}-fundingRate-2024-02.zip")
    return paths


def member_text(zip_path: Path) -> str:
    with zipfile.ZipFile(zip_path) as zf:
        (info,) = zf.infolist()
        return zf.read(info).decode()


def test_returned_description(archive: DemoArchive) -> None:
    assert archive.base_url == archive.root.resolve().as_uri()
    assert archive.base_url.startswith("file:///")
    assert archive.symbols == SYMBOLS
    assert archive.days == [date(2024, 2, 28), date(2024, 2, 29)]
    synthetic = archive.root / "liqheat-synthetic"
    assert archive.liquidation_csvs == {s: synthetic / "liquidations" / f"{s}.csv" for s in SYMBOLS}
    assert set(archive.markets) == set(SYMBOLS)


def test_files_exist_at_the_exact_paths(archive: DemoArchive) -> None:
    written = {
        p.relative_to(archive.root).as_posix() for p in archive.root.rglob("*") if p.is_file()
    }
    expected = set(expected_zips())
    expected |= {p + ".CHECKSUM" for p in expected}
    expected |= {f"liqheat-synthetic/liquidations/{s}.csv" for s in SYMBOLS}
    expected.add("liqheat-synthetic/README.txt")
    assert written == expected


@pytest.mark.parametrize("rel", expected_zips())
def test_zip_has_one_member_named_like_the_zip_and_checksum_matches(
    archive: DemoArchive, rel: str
) -> None:
    path = archive.root / rel
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [path.name.removesuffix(".zip") + ".csv"]
        assert infos[0].compress_type == zipfile.ZIP_DEFLATED
        assert zf.testzip() is None
    line = (path.parent / (path.name + ".CHECKSUM")).read_text()
    match = re.fullmatch(r"([0-9a-f]{64})  (\S+)\n", line)
    assert match is not None, line
    assert match.group(2) == path.name
    assert match.group(1) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="sha256sum not installed")
def test_sha256sum_check_passes(archive: DemoArchive) -> None:
    folder = archive.root / UM / "daily/metrics/BTCUSDT"
    checks = sorted(p.name for p in folder.glob("*.CHECKSUM"))
    result = subprocess.run(
        ["sha256sum", "-c", *checks], cwd=folder, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == 2


def test_klines_files(archive: DemoArchive) -> None:
    text = member_text(archive.root / UM / "daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02-29.zip")
    lines = text.split("\n")
    assert lines[0] == KLINES_HEADER
    assert lines[-1] == ""  # newline-terminated, \n line endings
    assert "\r" not in text
    rows = lines[1:-1]
    assert len(rows) == 1440
    first_ms = int(datetime(2024, 2, 29, tzinfo=UTC).timestamp() * 1000)
    # e.g. 1709164800000,61234.50,61240.10,61230.00,61239.90,12.345,1709164859999,755....,0
    row_re = re.compile(
        r"\d{13},(\d+\.\d{2},){4}\d+\.\d{3},\d{13},\d+\.\d{5},\d+,\d+\.\d{3},\d+\.\d{5},0"
    )
    assert all(row_re.fullmatch(r) for r in rows), rows[0]
    assert rows[0].startswith(f"{first_ms},")
    assert rows[-1].split(",")[6] == str(first_ms + 86_400_000 - 1)
    # the file holds exactly the simulated bars of that day
    frame = pl.read_csv(io.StringIO(text))
    market = archive.markets["BTCUSDT"].klines.filter(pl.col("open_time") >= first_ms)
    assert frame["open_time"].to_list() == market["open_time"].to_list()
    for col in ("open", "high", "low", "close", "volume", "taker_buy_volume"):
        assert frame[col].to_list() == market[col].to_list(), col


def test_mark_price_klines_files(archive: DemoArchive) -> None:
    text = member_text(
        archive.root / UM / "daily/markPriceKlines/ETHUSDT/1m/ETHUSDT-1m-2024-02-28.zip"
    )
    lines = text.splitlines()
    assert lines[0] == KLINES_HEADER
    assert len(lines) == 1 + 1440
    fields = [line.split(",") for line in lines[1:]]
    assert all(f[5] == f[7] == f[8] == f[9] == f[10] == f[11] == "0" for f in fields)
    frame = pl.read_csv(io.StringIO(text))
    market = archive.markets["ETHUSDT"].mark_klines.head(1440)
    for col in ("open", "high", "low", "close"):
        assert frame[col].to_list() == market[col].to_list(), col


def test_metrics_files(archive: DemoArchive) -> None:
    for symbol in SYMBOLS:
        for day in ("2024-02-28", "2024-02-29"):
            path = archive.root / UM / f"daily/metrics/{symbol}/{symbol}-metrics-{day}.zip"
            lines = member_text(path).splitlines()
            assert lines[0] == METRICS_HEADER
            rows = lines[1:]
            assert len(rows) == 288
            stamps = [r.split(",")[0] for r in rows]
            assert stamps != sorted(stamps), "real metrics files are unsorted"
            expected = [f"{day} {h:02d}:{m:02d}:00" for h in range(24) for m in range(0, 60, 5)]
            assert sorted(stamps) == expected
            # open interest with 16 decimals as the real files, the ratios with 8
            row_re = re.compile(
                rf"{day} \d\d:\d\d:00,{symbol}(,\d+\.\d{{16}}){{2}}(,\d+\.\d{{8}}){{4}}"
            )
            assert all(row_re.fullmatch(r) for r in rows), rows[0]
    # values equal the simulated metrics
    text = member_text(archive.root / UM / "daily/metrics/ETHUSDT/ETHUSDT-metrics-2024-02-28.zip")
    frame = pl.read_csv(io.StringIO(text)).sort("create_time")
    market = archive.markets["ETHUSDT"].metrics.head(288)
    assert frame["sum_open_interest"].to_list() == market["sum_open_interest"].to_list()
    assert frame["sum_open_interest_value"].to_list() == pytest.approx(
        market["sum_open_interest_value"].to_list(), abs=1e-8
    )


def test_funding_rate_monthly_file(archive: DemoArchive) -> None:
    text = member_text(
        archive.root / UM / "monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-02.zip"
    )
    lines = text.splitlines()
    assert lines[0] == "calc_time,funding_interval_hours,last_funding_rate"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 5  # every 8 h inside two simulated days
    start_ms = int(datetime(2024, 2, 28, tzinfo=UTC).timestamp() * 1000)
    for i, (calc, hours, rate) in enumerate(rows, start=1):
        assert 1 <= int(calc) - (start_ms + i * 8 * 3_600_000) <= 3  # a few ms after the hour
        assert hours == "8"
        assert re.fullmatch(r"-?0\.\d{8}", rate)
        assert abs(float(rate)) <= 0.00075


def test_liquidation_csvs(archive: DemoArchive) -> None:
    for symbol, path in archive.liquidation_csvs.items():
        text = path.read_text()
        lines = text.splitlines()
        assert lines[0] == "ts,side,usd"
        assert all(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,(long|short),\d+\.\d{2}", r)
            for r in lines[1:]
        )
        frame = pl.read_csv(io.StringIO(text)).with_columns(
            pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us")
        )
        truth = archive.markets[symbol].liquidations
        assert frame.height > 10
        assert frame["ts"].min() >= datetime(2024, 2, 28, tzinfo=UTC)  # type: ignore[operator]
        assert frame["ts"].max() < datetime(2024, 3, 1, tzinfo=UTC)  # type: ignore[operator]
        for side in ("long", "short"):
            written = frame.filter(side=side)["usd"].sum()
            assert written == pytest.approx(truth.filter(side=side)["usd"].sum(), rel=1e-6)


def test_readme_says_synthetic(archive: DemoArchive) -> None:
    text = (archive.root / "liqheat-synthetic" / "README.txt").read_text()
    assert text.startswith("SYNTHETIC DATA")
    assert "not exchange data" in text
    assert "seed: 3" in text
    assert "BTCUSDT, ETHUSDT" in text


def test_same_seed_same_content_different_seed_different(tmp_path: Path) -> None:
    a = write_demo_archive(tmp_path / "a", ["ETHUSDT"], START, 1, seed=1)
    b = write_demo_archive(tmp_path / "b", ["ETHUSDT"], START, 1, seed=1)
    c = write_demo_archive(tmp_path / "c", ["ETHUSDT"], START, 1, seed=2)
    rel = f"{UM}/daily/metrics/ETHUSDT/ETHUSDT-metrics-2024-02-28.zip"
    assert member_text(a.root / rel) == member_text(b.root / rel)
    assert member_text(a.root / rel) != member_text(c.root / rel)
    assert a.liquidation_csvs["ETHUSDT"].read_bytes() == b.liquidation_csvs["ETHUSDT"].read_bytes()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="malformed symbol"):
        write_demo_archive(tmp_path, ["btc/usdt"], START, 1)
    with pytest.raises(ValueError, match="days"):
        write_demo_archive(tmp_path, ["BTCUSDT"], START, 0)
    with pytest.raises(ValueError, match="at least one symbol"):
        write_demo_archive(tmp_path, [], START, 1)
    assert not any(tmp_path.iterdir())
