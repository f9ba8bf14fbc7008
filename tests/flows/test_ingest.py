"""End-to-end ingestion against a real HTTP mirror on 127.0.0.1 with injected faults, a real
DuckDB file and file:// mirrors (including the shared real-data mirror)."""

from __future__ import annotations

import io
import threading
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from flows.ingest import (
    CORE_DATASETS,
    DB_LOCK,
    IngestReport,
    Outcome,
    gap_days,
    ingest,
    ingest_one,
    plan_units,
)
from flows.sources.binance.paths import checksum_line, daily_path, write_archive_file
from flows.sources.files import atomic_write, read_csv_member
from tests.httpmirror import (
    Fault,
    klines_csv,
    metrics_csv,
    refused_url,
    serve_mirror,
    write_day,
    write_funding,
)
from warehouse.db import write_connection

SYM = "BTCUSDT"
D1, D2, D3 = date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)
TODAY = date(2024, 3, 15)
FAST: dict[str, Any] = {"retries": 2, "backoff_s": 0.001, "backoff_max_s": 0.005, "progress": False}


def sql(db: Path, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with DB_LOCK, write_connection(db) as con:
        return con.execute(text, params or []).fetchall()


def table_counts(db: Path) -> dict[str, int]:
    tables = ("klines", "mark_klines", "open_interest", "funding_rates", "trade_profile")
    return {t: sql(db, f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def log(db: Path) -> dict[tuple[str, str, date], tuple[str, int | None, str | None]]:
    rows = sql(db, "SELECT dataset, symbol, day, status, rows, error FROM ingest_log")
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


def by_key(report: IngestReport) -> dict[tuple[str, date], Outcome]:
    return {(o.dataset, o.day): o for o in report.outcomes if o.symbol == SYM}


def put_zip(root: Path, path: str, data: bytes) -> None:
    """Arbitrary zip bytes with a valid .CHECKSUM (the archive vouches for a bad zip)."""
    atomic_write(root / path, data)
    name = path.rsplit("/", 1)[-1]
    atomic_write(root / (path + ".CHECKSUM"), checksum_line(data, name).encode())


def zip_of(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"


def test_clean_run_loads_everything_and_rerun_skips(
    tmp_path: Path, home: tuple[Path, Path]
) -> None:
    db, raw = home
    root = tmp_path / "mirror"
    for d in (D1, D2):
        write_day(root, SYM, d, datasets=(*CORE_DATASETS, "aggTrades"), seed=d.day)
    write_funding(root, SYM, 2024, 1)
    with serve_mirror(root) as mirror:
        first = ingest(
            db, raw, mirror.base_url, [SYM], [D1, D2], with_trades=True, today=TODAY, **FAST
        )
        counts = table_counts(db)
        zips = mirror.zip_downloads()
        second = ingest(
            db, raw, mirror.base_url, [SYM], [D1, D2], with_trades=True, today=TODAY, **FAST
        )
    assert first.ok, first.summary()
    assert first.exit_code == 0
    assert first.counts["loaded"] == 9
    assert counts["klines"] == counts["mark_klines"] == 2880
    assert counts["open_interest"] == 576
    assert counts["funding_rates"] == 93
    assert counts["trade_profile"] > 0
    assert zips == 9
    assert first.downloads == 9
    assert second.ok
    assert second.counts == {"skipped": 9}
    assert mirror.zip_downloads() == 9  # nothing downloaded twice
    assert table_counts(db) == counts
    assert "9 loaded (" in first.summary()
    assert not first.problems()
    assert all(v[0] == "loaded" and v[2] is None for v in log(db).values())
    assert log(db)[("fundingRate", SYM, date(2024, 1, 1))][1] == 93


def test_faulty_mirror_loads_good_files_records_bad_ones(
    tmp_path: Path, home: tuple[Path, Path]
) -> None:
    """The issue's 'done when': every good file loads, every bad one is recorded with its
    reason, exit code 1, and a second run downloads and loads nothing twice."""
    db, raw = home
    root = tmp_path / "mirror"
    days = [D1 + timedelta(days=i) for i in range(8)]
    for d in days:
        write_day(root, SYM, d, seed=d.day)
    write_funding(root, SYM, 2024, 1)
    p = {d: {ds: daily_path(ds, SYM, d) for ds in CORE_DATASETS} for d in days}
    faults: dict[str, list[Fault]] = {
        # 503 then 200 on the checksum and on the zip: loaded after retries
        p[days[0]]["klines"] + ".CHECKSUM": [Fault(status=503)],
        p[days[0]]["klines"]: [Fault(status=503)],
        # dropped connection then 200
        p[days[0]]["metrics"]: [Fault(drop=True)],
        # 429 forever: failed with a network reason
        p[days[1]]["markPriceKlines"] + ".CHECKSUM": [Fault(status=429, times=50)],
        # wrong bytes twice: checksum mismatch
        p[days[2]]["klines"]: [Fault(body=b"PK\x03\x04 not the file", times=2)],
        # an HTML page served as the checksum
        p[days[2]]["metrics"] + ".CHECKSUM": [Fault(body=b"<html>Not Found</html>", times=5)],
    }
    # 404: removed from the mirror
    (root / p[days[1]]["klines"]).unlink()
    (root / (p[days[1]]["klines"] + ".CHECKSUM")).unlink()
    # corrupt zip, truncated zip (both with valid checksums), two members, path traversal
    good = (root / p[days[3]]["klines"]).read_bytes()
    flipped = bytearray(good)
    flipped[60] ^= 0xFF
    put_zip(root, p[days[3]]["klines"], bytes(flipped))
    put_zip(root, p[days[3]]["markPriceKlines"], good[: len(good) // 2])
    put_zip(root, p[days[4]]["klines"], zip_of({"a.csv": "x", "b.csv": "y"}))
    put_zip(root, p[days[4]]["markPriceKlines"], zip_of({"../x.csv": klines_csv(days[4])}))
    # short file, headerless file, unsorted+doubled metrics, wrong column count
    short = "\n".join(klines_csv(days[5]).splitlines()[:1381]) + "\n"
    write_archive_file(root, p[days[5]]["klines"], short)
    write_archive_file(
        root, p[days[5]]["markPriceKlines"], klines_csv(days[5], header=False, mark=True)
    )
    write_archive_file(
        root, p[days[5]]["metrics"], metrics_csv(SYM, days[5], shuffle=True, double=True)
    )
    broken = "\n".join(
        ",".join(line.split(",")[:11]) for line in klines_csv(days[6], header=False).splitlines()
    )
    write_archive_file(root, p[days[6]]["klines"], broken)

    with serve_mirror(root, faults) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], days, today=TODAY, **FAST)
        counts = table_counts(db)
        ledger = log(db)
        hits_before = mirror.total()
        zips_before = mirror.zip_downloads()
        again = ingest(db, raw, mirror.base_url, [SYM], days, today=TODAY, **FAST)
        zips_after = mirror.zip_downloads()

    o = by_key(report)
    expect: dict[tuple[str, date], tuple[str, str]] = {
        ("klines", days[0]): ("loaded", ""),
        ("metrics", days[0]): ("loaded", ""),
        ("markPriceKlines", days[1]): ("failed", "network: HTTP 429 (3 tries)"),
        ("klines", days[1]): ("missing", "404 not published"),
        ("klines", days[2]): ("failed", "checksum mismatch"),
        ("metrics", days[2]): ("failed", "bad .CHECKSUM"),
        ("klines", days[3]): ("failed", "corrupt zip"),
        ("markPriceKlines", days[3]): ("failed", "corrupt zip"),
        ("klines", days[4]): ("failed", "zip holds 2 members"),
        ("markPriceKlines", days[4]): ("failed", "bad member name '../x.csv'"),
        ("klines", days[5]): ("loaded", "short file: 1380 of 1440 rows (00:00-22:59)"),
        ("markPriceKlines", days[5]): ("loaded", ""),
        ("metrics", days[5]): ("loaded", ""),
        ("klines", days[6]): ("failed", "11 columns, expected 12"),
    }
    for key, (status, reason) in expect.items():
        assert o[key].status == status, (key, o[key])
        assert reason in (o[key].reason or ""), (key, o[key])
        assert ledger[(key[0], SYM, key[1])][0] == status
        if reason:
            assert reason in (ledger[(key[0], SYM, key[1])][2] or "")
    bad = {k for k, (s, _) in expect.items() if s != "loaded"}
    assert {(x.dataset, x.day) for x in report.outcomes if not x.ok} == bad
    assert report.counts["loaded"] == 8 * 3 + 1 - len(bad)
    assert o[("metrics", days[5])].rows == 288
    assert o[("klines", days[5])].rows == 1380
    assert o[("klines", days[5])].kind == "warning"
    assert not report.ok
    assert report.exit_code == 1
    assert not report.unreachable
    assert counts["klines"] == 1440 * 2 + 1380  # days 0 and 7, and day 5's short file
    # the problems table lists every bad file and the warning
    console = Console(width=200, record=True)
    console.print(report.problems_table())
    text = console.export_text()
    assert text.count("failed") == 8
    assert "missing" in text
    assert "warning" in text
    assert "checksum mismatch" in text
    # second run: good files are skipped; bad ones are retried. The injected checksum fault
    # was used up, so that file now loads; zips that were verified but unusable come from the
    # cache, so the only zip downloaded again is that one.
    assert again.counts["skipped"] == report.counts["loaded"]
    assert {(x.dataset, x.day) for x in again.outcomes if x.status == "loaded"} == {
        ("klines", days[2])
    }
    assert zips_after - zips_before == 1
    assert table_counts(db) == {**counts, "klines": counts["klines"] + 1440}
    assert hits_before > 0


def test_metrics_label_switch_never_duplicates_or_drops(
    tmp_path: Path, home: tuple[Path, Path]
) -> None:
    """Day 1 uses end-of-period labels (00:05 … 00:00 next day), day 2 start-of-period
    (00:00 … 23:55): both carry 2024-01-02 00:00. Any load order and re-runs give the union."""
    db, raw = home
    root = tmp_path / "mirror"
    write_archive_file(root, daily_path("metrics", SYM, D1), metrics_csv(SYM, D1, convention="end"))
    write_archive_file(
        root, daily_path("metrics", SYM, D2), metrics_csv(SYM, D2, convention="start", seed=5)
    )
    write_archive_file(
        root, daily_path("metrics", SYM, D3), metrics_csv(SYM, D3, convention="start", seed=6)
    )
    url = root.resolve().as_uri()

    def labels() -> tuple[int, int]:
        total, distinct = sql(db, "SELECT count(*), count(DISTINCT ts) FROM open_interest")[0]
        return int(total), int(distinct)

    for order in ([D1, D2, D3], [D3, D2, D1], [D2, D1, D3, D2, D1]):
        for d in order:
            out = ingest_one(db, raw, url, "metrics", SYM, d, force=True, backoff_s=0.001)
            assert out.status == "loaded", out
            assert labels()[0] == labels()[1]  # never a duplicate label
        # 288 + 288 + 288 labels, one shared (2024-01-02 00:00)
        assert labels() == (863, 863)
    first, last = sql(db, "SELECT min(ts), max(ts) FROM open_interest")[0]
    assert str(first) == "2024-01-01 00:05:00"
    assert str(last) == "2024-01-03 23:55:00"


def test_failed_reload_keeps_previous_rows(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    root = tmp_path / "mirror"
    paths = write_day(root, SYM, D1)
    url = root.resolve().as_uri()
    assert ingest_one(db, raw, url, "klines", SYM, D1).status == "loaded"
    before = sql(db, "SELECT sum(close) FROM klines")[0][0]
    put_zip(root, paths["klines"], zip_of({"a.csv": "1", "b.csv": "2"}))
    out = ingest_one(db, raw, url, "klines", SYM, D1, force=True)
    assert out.status == "failed"
    assert sql(db, "SELECT count(*), sum(close) FROM klines")[0] == (1440, before)
    assert log(db)[("klines", SYM, D1)][0] == "failed"
    # ... and a fixed file loads again (the cached bad zip is replaced: new checksum)
    write_day(root, SYM, D1, datasets=("klines",), seed=3)
    again = ingest_one(db, raw, url, "klines", SYM, D1)
    assert again.status == "loaded"
    assert again.reason is not None
    assert "republished" in again.reason
    assert sql(db, "SELECT count(*) FROM klines")[0][0] == 1440
    assert sql(db, "SELECT sum(close) FROM klines")[0][0] != before


def test_force_reloads_identically(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    root = tmp_path / "mirror"
    write_day(root, SYM, D1)
    with serve_mirror(root) as mirror:
        ingest(db, raw, mirror.base_url, [SYM], [D1], today=TODAY, **FAST)
        snapshot = sql(db, "SELECT * FROM klines ORDER BY ts")
        forced = ingest(db, raw, mirror.base_url, [SYM], [D1], force=True, today=TODAY, **FAST)
    assert forced.counts["loaded"] == 3
    assert forced.downloads == 0  # served from the re-verified cache
    assert mirror.zip_downloads() == 3
    assert sql(db, "SELECT * FROM klines ORDER BY ts") == snapshot


def test_unreachable_archive(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    report = ingest(db, raw, refused_url(), [SYM, "ETHUSDT"], [D1, D2], today=TODAY, **FAST)
    assert report.unreachable
    assert report.exit_code == 1
    assert all(o.status == "failed" and o.kind == "network" for o in report.outcomes)
    assert any("connection refused" in (o.reason or "") for o in report.outcomes)
    assert report.summary() == "ingest: 0 loaded (0 rows, 0 downloaded), 14 failed"
    assert log(db)[("klines", SYM, D1)][0] == "failed"


def test_not_unreachable_when_something_answers(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    with serve_mirror(tmp_path / "empty") as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [D1], today=TODAY, **FAST)
    assert not report.unreachable
    assert report.counts == {"missing": 4}
    assert mirror.total(".zip") == 0  # a missing .CHECKSUM means no zip request


def test_current_month_funding_is_skipped(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    root = tmp_path / "mirror"
    write_day(root, SYM, D1)
    report = ingest(db, raw, root.resolve().as_uri(), [SYM], [D1], today=date(2024, 1, 2), **FAST)
    assert report.ok
    funding = by_key(report)[("fundingRate", D1)]
    assert funding.status == "skipped"
    assert funding.reason == "month in progress: not archived"
    assert ("fundingRate", SYM, D1) not in log(db)


def test_shared_real_mirror_over_http_and_file(
    shared_data: Path, tmp_path: Path, home: tuple[Path, Path]
) -> None:
    """The shared folder is a real archive layout with real checksums: the USD-M funding file
    loads; the daily UM files are not in it (404 -> missing)."""
    db, raw = home
    root = shared_data / "binance-vision"
    days = [date(2026, 4, 10), date(2026, 4, 11)]
    with serve_mirror(root) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], days, today=date(2026, 6, 1), **FAST)
    funding = by_key(report)[("fundingRate", date(2026, 4, 1))]
    assert funding.status == "loaded"
    assert funding.rows == 90
    assert funding.sha256 == "51cdeb4de7d5ef1d4eece80b6115e391bdf7a2d0803bf9ad8371ab23340b22d3"
    assert report.counts["missing"] == 6
    assert table_counts(db)["funding_rates"] == 90
    db2 = tmp_path / "other.duckdb"
    out = ingest_one(
        db2, tmp_path / "raw2", root.as_uri(), "fundingRate", SYM, days[0], today=date(2026, 6, 1)
    )
    assert out.status == "loaded"
    assert out.rows == 90


def test_ingest_one_from_threads(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    root = tmp_path / "mirror"
    days = [D1 + timedelta(days=i) for i in range(4)]
    for d in days:
        write_day(root, SYM, d, seed=d.day)
    results: list[Outcome] = []
    errors: list[BaseException] = []
    with serve_mirror(root) as mirror:

        def work(ds: str, d: date) -> None:
            try:
                results.append(ingest_one(db, raw, mirror.base_url, ds, SYM, d, backoff_s=0.001))
            except BaseException as exc:  # pragma: no cover - surfaced below
                errors.append(exc)

        threads = [
            threading.Thread(target=work, args=(ds, d)) for d in days for ds in CORE_DATASETS
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert sorted(o.status for o in results) == ["loaded"] * 12
    assert table_counts(db)["klines"] == 4 * 1440
    assert table_counts(db)["open_interest"] == 4 * 288
    assert ingest_one(db, raw, "file:///nonexistent", "klines", SYM, D1).status == "skipped"


def test_gap_days(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    root = tmp_path / "mirror"
    write_day(root, SYM, D1)
    write_day(root, SYM, D3, datasets=("klines", "markPriceKlines"))
    ingest(db, raw, root.resolve().as_uri(), [SYM], [D1, D3], today=TODAY, **FAST)
    gaps = gap_days(db, [SYM, "ETHUSDT"], D3, 2)
    assert gaps[SYM] == [D2, D3]
    assert gaps["ETHUSDT"] == [D1, D2, D3]


def test_plan_and_validation(tmp_path: Path) -> None:
    units = plan_units([SYM, SYM], [D2, D1, D2], with_trades=True)
    assert len(units) == 2 * 4 + 1
    assert units[-1] == ("fundingRate", SYM, D1)
    with pytest.raises(ValueError, match="bad symbol"):
        ingest(tmp_path / "db.duckdb", tmp_path, "file:///x", ["btc/../x"], [D1])
    with pytest.raises(ValueError, match="unknown dataset"):
        ingest_one(tmp_path / "db.duckdb", tmp_path, "file:///x", "trades", SYM, D1)


def test_problems_table_and_summary_render() -> None:
    report = IngestReport(
        (
            Outcome("klines", SYM, D1, "loaded", rows=1440),
            Outcome("metrics", SYM, D1, "missing", reason="404 not published", kind="missing"),
            Outcome("fundingRate", SYM, D1, "failed", reason="checksum mismatch", kind="checksum"),
        )
    )
    console = Console(width=200, record=True)
    console.print(report.problems_table())
    text = console.export_text()
    assert "404 not published" in text
    assert "2024-01 " in text  # monthly files show the month
    assert "klines " not in text
    assert report.summary() == "ingest: 1 loaded (1,440 rows, 0 downloaded), 1 missing, 1 failed"
    assert not report.unreachable


def test_progress_bar_and_trade_profile(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    root = tmp_path / "mirror"
    write_day(root, SYM, D1, datasets=(*CORE_DATASETS, "aggTrades"), trades=4000, seed=9)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    opts = {**FAST, "progress": True}
    report = ingest(
        db,
        raw,
        root.resolve().as_uri(),
        [SYM],
        [D1],
        with_trades=True,
        today=TODAY,
        console=console,
        **opts,
    )
    assert report.counts == {"loaded": 4, "missing": 1}  # no funding file in this mirror
    assert "ingest" in out.getvalue()
    assert "5/5" in out.getvalue()
    trades = pl.read_csv(read_csv_member(root / daily_path("aggTrades", SYM, D1)))
    volume, buy, minutes = sql(
        db, "SELECT sum(volume), sum(buy_volume), count(DISTINCT ts) FROM trade_profile"
    )[0]
    assert volume == pytest.approx(trades["quantity"].sum())
    assert buy == pytest.approx(trades.filter(~pl.col("is_buyer_maker"))["quantity"].sum())
    assert minutes == (trades["transact_time"] // 60_000).n_unique()
    # the progress bar is off when asked (and by default when stderr is not a terminal)
    quiet = io.StringIO()
    ingest(
        db,
        raw,
        root.resolve().as_uri(),
        [SYM],
        [D1],
        today=TODAY,
        force=True,
        console=Console(file=quiet, force_terminal=True),
        **FAST,
    )
    assert quiet.getvalue() == ""


def test_missing_file_mirror_folder_is_unreachable(tmp_path: Path, home: tuple[Path, Path]) -> None:
    db, raw = home
    url = (tmp_path / "no-such-mirror").as_uri()
    report = ingest(db, raw, url, [SYM], [D1], today=TODAY, **FAST)
    assert report.unreachable
    assert all("mirror folder" in (o.reason or "") for o in report.outcomes)
