"""Issue 14, items 2-4, against a hostile archive mirror on 127.0.0.1: bad values fail their
unit (reason, file, first bad row), zip bombs are refused, a huge or trickling body cannot
hang the ingest, finished units are committed while a slow one is still downloading (even
when the ingest is then killed with SIGKILL), and a mismatching body is never downloaded
twice."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flows.ingest import ingest
from flows.lock import pipeline_lock
from flows.sources.binance.paths import checksum_line, daily_path, write_archive_file
from flows.sources.files import atomic_write
from tests.httpmirror import Fault, klines_csv, metrics_csv, serve_mirror, write_day
from warehouse.reads import query

ROOT = Path(__file__).resolve().parents[2]
SYM = "BTCUSDT"
DAY = date(2024, 3, 1)
NEXT = date(2024, 3, 2)
TODAY = date(2024, 3, 15)
FAST: dict[str, Any] = {"retries": 1, "backoff_s": 0.001, "backoff_max_s": 0.005, "progress": False}
KLINES = daily_path("klines", SYM, DAY)
METRICS = daily_path("metrics", SYM, DAY)


def edited(text: str, line: int, column: int, value: str) -> str:
    lines = text.splitlines()
    fields = lines[line].split(",")
    fields[column] = value
    lines[line] = ",".join(fields)
    return "\n".join(lines) + "\n"


def outcome(report: Any, dataset: str, day: date = DAY) -> Any:
    return next(o for o in report.outcomes if o.dataset == dataset and o.day == day)


# -- item 2: values validated at parse time ---------------------------------------------
@pytest.mark.parametrize(
    ("dataset", "column", "value", "reason"),
    [
        ("klines", 4, "NaN", "close is not a finite price"),
        ("klines", 2, "inf", "high is not a finite price"),
        ("klines", 3, "-5", "low is not a finite price"),
        ("klines", 1, "1e308", "open is not a finite price"),
        ("klines", 2, "1.0", "high below max(open, close)"),
        ("klines", 5, "NaN", "volume is not finite"),
        ("markPriceKlines", 4, "nan", "close is not a finite price"),
        ("metrics", 2, "NaN", "sum_open_interest is not finite"),
        ("metrics", 3, "-1000", "sum_open_interest_value is not finite"),
        ("metrics", 2, "inf", "sum_open_interest is not finite"),
    ],
)
def test_a_bad_value_fails_its_unit_with_reason_file_and_row(
    tmp_path: Path, dataset: str, column: int, value: str, reason: str
) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    path = daily_path(dataset, SYM, DAY)
    good = (
        metrics_csv(SYM, DAY)
        if dataset == "metrics"
        else klines_csv(DAY, mark=dataset == "markPriceKlines", seed=1 if "mark" in dataset else 0)
    )
    write_archive_file(root, path, edited(good, 10, column, value))  # line 10 = data row 10
    db, raw = tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"
    with serve_mirror(root) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [DAY], today=TODAY, **FAST)
    bad = outcome(report, dataset)
    assert bad.status == "failed"
    assert path.rsplit("/", 1)[-1] + ": bad value in data row 10: " + reason in (bad.reason or "")
    assert value in (bad.reason or "")  # the row as it was in the file
    core = ("klines", "markPriceKlines", "metrics")
    others = [o for o in report.outcomes if o.dataset != dataset and o.dataset in core]
    assert others
    assert all(o.status == "loaded" for o in others), others
    table = {"klines": "klines", "markPriceKlines": "mark_klines", "metrics": "open_interest"}
    rows = query(db, f"SELECT count(*) AS n FROM {table[dataset]}")["n"][0]
    assert rows == 0  # nothing of the bad file was stored


def test_real_layout_still_parses(shared_data: Path) -> None:
    from flows.sources.binance.parsing import parse_klines, parse_metrics

    real = shared_data / "real-samples" / "binance-um"
    k = parse_klines(
        (real / "BTCUSDT-1m-2026-09-30.excerpt.csv").read_bytes(), SYM, date(2026, 9, 30)
    )
    m = parse_metrics(
        (real / "BTCUSDT-metrics-2026-09-30.excerpt.csv").read_bytes(), SYM, date(2026, 9, 30)
    )
    assert k.rows > 0
    assert m.rows > 0


# -- item 3: zip bombs --------------------------------------------------------------------
def write_bomb(root: Path, archive_path: str, expanded: int) -> int:
    """A zip whose single CSV member expands to ``expanded`` bytes; return the zip size."""
    buf = io.BytesIO()
    name = archive_path.rsplit("/", 1)[-1].removesuffix(".zip") + ".csv"
    with (
        zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open(name, "w", force_zip64=True) as member,
    ):
        member.write(klines_csv(DAY, rows=10).encode())
        chunk = b"0" * (1 << 20)
        for _ in range(expanded >> 20):
            member.write(chunk)
    data = buf.getvalue()
    target = root / archive_path
    atomic_write(target, data)
    atomic_write(
        target.with_name(target.name + ".CHECKSUM"), checksum_line(data, target.name).encode()
    )
    return len(data)


@pytest.mark.parametrize("expanded_mb", [300, 40])  # above and below the klines member cap
def test_a_zip_bomb_is_refused_with_a_reason(tmp_path: Path, expanded_mb: int) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    size = write_bomb(root, KLINES, expanded_mb << 20)  # zeros: well under 1 MB zipped
    assert size < 1 << 20
    db, raw = tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"
    with serve_mirror(root) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [DAY], today=TODAY, **FAST)
    bad = outcome(report, "klines")
    assert bad.status == "failed"
    assert "zip bomb refused" in (bad.reason or "")
    assert outcome(report, "metrics").status == "loaded"


def test_member_caps_are_per_dataset() -> None:
    from flows.sources.binance.client import member_cap
    from flows.sources.files import MAX_ZIP_RATIO

    assert member_cap("klines") <= 64 << 20  # a day of 1m klines is ~150 KB
    assert member_cap("metrics") <= 16 << 20
    assert MAX_ZIP_RATIO <= 100


# -- item 4: size cap, deadline, finished units first, no double download ---------------
def test_an_announced_huge_body_is_refused_before_downloading(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    faults = {KLINES: [Fault(length=2_000_000_000, trickle_s=2.0, times=9)]}
    db, raw = tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"
    t0 = time.monotonic()
    with serve_mirror(root, faults) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [DAY], today=TODAY, **FAST)
    bad = outcome(report, "klines")
    assert bad.status == "failed"
    assert "2,000,000,000 bytes is above the cap" in (bad.reason or "")
    assert time.monotonic() - t0 < 60  # not 2 GB at 1 KB / 2 s
    assert outcome(report, "metrics").status == "loaded"


def test_a_trickling_body_hits_the_deadline_and_the_rest_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIQHEAT_DOWNLOAD_DEADLINE_S", "3")
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    size = (root / KLINES).stat().st_size
    faults = {KLINES: [Fault(length=size * 10, trickle_s=0.2, times=9)]}  # never completes
    db, raw = tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"
    with serve_mirror(root, faults) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [DAY], today=TODAY, **FAST)
        assert mirror.bodies[KLINES] == 1  # a deadline is not retried
    bad = outcome(report, "klines")
    assert bad.status == "failed"
    assert "did not finish within its 3s deadline" in (bad.reason or "")
    assert outcome(report, "metrics").status == "loaded"
    assert not list(raw.rglob("*.part"))


CHILD = """
import sys
from datetime import date
from pathlib import Path
from flows.ingest import ingest
from flows.lock import pipeline_lock
home, url = Path(sys.argv[1]), sys.argv[2]
ingest(home / "liqheat.duckdb", home / "raw", url, ["BTCUSDT"],
       [date(2024, 3, 1), date(2024, 3, 2)], today=date(2024, 3, 15), progress=False,
       retries=1, backoff_s=0.001)
"""


def test_finished_units_are_committed_while_one_trickles_even_after_kill_9(
    tmp_path: Path,
) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    write_day(root, SYM, NEXT)
    slow = daily_path("klines", SYM, NEXT)
    # 32 MB: under the klines size cap (64 MB), so it trickles rather than being refused
    faults = {slow: [Fault(length=32 * 10**6, trickle_s=1.0, times=9)]}  # ~9 hours
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LIQHEAT_DOWNLOAD_DEADLINE_S": "3600"}
    with serve_mirror(root, faults) as mirror:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), mirror.base_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            loaded: list[Any] = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and len(loaded) < 5:
                time.sleep(0.5)
                assert child.poll() is None, child.communicate()
                if mirror.bodies[slow] and (home / "liqheat.duckdb").exists():
                    try:
                        frame = query(
                            home / "liqheat.duckdb",
                            "SELECT dataset, day FROM ingest_log WHERE status = 'loaded'",
                        )
                    except Exception:  # the writer holds the file this instant
                        continue
                    loaded = frame.rows()
            assert mirror.bodies[slow] == 1  # still trickling
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    days = {(str(ds), d) for ds, d in loaded}
    # every other unit of both days was committed before the kill
    assert {(ds, DAY) for ds in ("klines", "markPriceKlines", "metrics")} <= days
    assert {("markPriceKlines", NEXT), ("metrics", NEXT)} <= days
    after = query(home / "liqheat.duckdb", "SELECT count(*) AS n FROM klines")["n"][0]
    assert after == 1440  # day 1's bars survived the kill
    # item 7: the killed run's litter is removed when the next run takes the lock
    # what the killed run staged (units load as they finish, so it may have none left)
    (home / "staging").mkdir(exist_ok=True)
    (home / "staging" / "run-4242").mkdir(exist_ok=True)
    (home / "staging" / "run-4242" / "klines-BTCUSDT-2024-03-02.parquet").write_bytes(b"PAR1")
    part = home / "raw" / ".BTCUSDT-1m-2024-03-02.zip.x1y2.part"  # a download cut short
    part.write_bytes(b"PK")
    site_tmp = home / "site" / "BTCUSDT" / ".7d.html.tmp-4242"
    site_tmp.parent.mkdir(parents=True)
    site_tmp.write_text("half a page")
    keep = home / "site" / "BTCUSDT" / "7d.html"
    keep.write_text("a page")
    with pipeline_lock(home):
        pass
    assert not list((home / "raw").rglob(".*.part"))
    assert list((home / "staging").iterdir()) == []
    assert not site_tmp.exists()
    assert keep.read_text() == "a page"
    assert (home / "raw" / daily_path("klines", SYM, DAY)).is_file()  # verified zips stay


def test_a_mismatching_body_is_never_downloaded_twice(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    junk = b"PK\x03\x04" + b"x" * 5000
    faults = {KLINES: [Fault(body=junk, times=9)]}
    db, raw = tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"
    with serve_mirror(root, faults) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [DAY], today=TODAY, **FAST)
        assert mirror.bodies[KLINES] == 1
        assert mirror.hits[KLINES] == 2  # the second request was conditional: 304
    bad = outcome(report, "klines")
    assert bad.status == "failed"
    assert "not downloaded again" in (bad.reason or "")


def test_a_transiently_corrupted_body_is_fetched_again(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    good = (root / KLINES).read_bytes()
    faults = {KLINES: [Fault(body=good[:-1] + bytes([good[-1] ^ 1]))]}
    db, raw = tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"
    with serve_mirror(root, faults) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [DAY], today=TODAY, **FAST)
        assert mirror.bodies[KLINES] == 2  # a different body exists: fetched once more
    assert outcome(report, "klines").status == "loaded"


def test_a_redirect_loop_is_too_many_redirects(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, DAY)
    faults = {
        KLINES + ".CHECKSUM": [
            Fault(status=302, headers={"Location": "/" + KLINES + ".CHECKSUM"}, times=99)
        ]
    }
    db, raw = tmp_path / "home" / "liqheat.duckdb", tmp_path / "home" / "raw"
    with serve_mirror(root, faults) as mirror:
        report = ingest(db, raw, mirror.base_url, [SYM], [DAY], today=TODAY, **FAST)
    bad = outcome(report, "klines")
    assert bad.status == "failed"
    assert "too many redirects" in (bad.reason or "")
    assert "internal error" not in (bad.reason or "")
    json.dumps(report.summary())
