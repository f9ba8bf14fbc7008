"""Issue 14 items 5-6: a damaged warehouse is detected when it is opened and named in one line
(never written to), a stub left by an interrupted first creation is explained and removed by
``liqheat doctor``, creation is atomic (a kill -9 mid-creation leaves no stub), and the doctor
reads every block and reports what it found."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.cli import liqheat, one_error_line, sha
from warehouse.db import CorruptDatabaseError, migrate, read_connection, write_connection
from warehouse.doctor import check_database

ROOT = Path(__file__).resolve().parents[2]
INGEST = ("ingest", "--symbol", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-01")


def test_a_truncated_warehouse_is_found_by_the_doctor(warehouse_db: Path) -> None:
    size = warehouse_db.stat().st_size
    os.truncate(warehouse_db, size // 2)
    before = sha(warehouse_db)
    doctor = liqheat(warehouse_db.parent, "doctor")
    assert doctor.returncode == 1
    assert "problem  corrupt database" in doctor.stdout
    assert "cannot be read" in doctor.stdout  # the tables whose blocks were cut off
    assert doctor.stderr.startswith("liqheat: error: doctor found ")
    assert sha(warehouse_db) == before  # the doctor never removes a real database


def test_a_damaged_block_is_found_by_the_doctor(warehouse_db: Path, tmp_path: Path) -> None:
    # flip bytes in the middle of the biggest table's data: the file still opens, but the
    # block's checksum no longer matches
    size = warehouse_db.stat().st_size
    with warehouse_db.open("r+b") as fh:
        for offset in range(size // 5, size * 4 // 5, 256 * 1024):
            fh.seek(offset + 4096)
            fh.write(b"\xde\xad\xbe\xef" * 64)
    findings = check_database(warehouse_db)
    problems = [f for f in findings if f.status == "problem"]
    assert problems, findings
    assert "corrupt database" in problems[0].text


@pytest.mark.parametrize("size", [0, 4096])
def test_a_stub_is_explained_and_removed_by_the_doctor(tmp_path: Path, size: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "liqheat.duckdb"
    db.write_bytes(b"\0" * size)
    result = liqheat(home, *INGEST, "--base-url", "file:///nonexistent-mirror")
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"corrupt database {db}: a {size:,}-byte stub with no data" in line
    assert "run `liqheat doctor`, which removes it" in line
    doctor = liqheat(home, "doctor")
    assert doctor.returncode == 0, doctor.stderr
    assert f"fixed    removed {db}: a {size:,}-byte stub" in doctor.stdout
    assert not db.exists()
    again = liqheat(home, *INGEST, "--base-url", "file:///nonexistent-mirror")
    assert "corrupt" not in again.stderr
    assert db.is_file()  # created (atomically) by the next ingest
    with read_connection(db) as con:
        assert con.sql("SELECT count(*) FROM klines").fetchall() == [(0,)]


def test_a_tampered_schema_version_is_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    with write_connection(db) as con:
        con.execute("DELETE FROM schema_version WHERE version = 2")
    with pytest.raises(CorruptDatabaseError, match="schema_version holds"), read_connection(db):
        pass


def test_a_foreign_duckdb_file_is_not_taken_for_a_warehouse(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE mine AS SELECT 42 AS answer")
    con.close()
    with pytest.raises(CorruptDatabaseError, match="not a liqheat warehouse"), read_connection(db):
        pass
    with pytest.raises(CorruptDatabaseError, match="not a liqheat warehouse"):
        migrate(db)
    assert duckdb.connect(str(db)).sql("SELECT * FROM mine").fetchall() == [(42,)]


def test_the_doctor_on_a_healthy_warehouse(warehouse_db: Path) -> None:
    litter = warehouse_db.parent / "staging" / "ingest-0123456789ab"
    litter.mkdir(parents=True)
    (litter / "x.parquet").write_bytes(b"x" * 1000)
    result = liqheat(warehouse_db.parent, "doctor")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"home:     {warehouse_db.parent}" in out
    assert "fixed    removed 1 leftover of an interrupted run" in out
    assert "1 staging folder" in out
    assert "ok       schema version" in out
    assert "every block read and checksum-verified" in out
    assert not litter.exists()


CREATOR = """
import sys, time
from pathlib import Path
import warehouse.db as db
real = db._migrate_open
def slow(con, path):
    version = real(con, path)
    Path(sys.argv[2]).touch()
    time.sleep(60)
    return version
db._migrate_open = slow
db.migrate(Path(sys.argv[1]))
"""


def test_kill_9_during_creation_leaves_no_stub(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / "liqheat.duckdb"
    marker = tmp_path / "migrated"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CREATOR, str(db), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert not db.exists()  # the half-made database never had the real name
    leftovers = {p.name for p in home.iterdir()}
    assert f".liqheat.duckdb.new-{child.pid}" in leftovers, leftovers
    assert leftovers <= {f".liqheat.duckdb.new-{child.pid}", f".liqheat.duckdb.new-{child.pid}.wal"}
    with write_connection(db) as con:  # the next run creates it properly
        assert con.sql("SELECT count(*) FROM klines").fetchall() == [(0,)]
    from flows.lock import pipeline_lock

    with pipeline_lock(home):  # and the next run's lock removes the dead creator's file
        pass
    assert not [p for p in home.iterdir() if ".new-" in p.name]
    assert (home / "liqheat.duckdb").is_file()
    shutil.rmtree(home)
