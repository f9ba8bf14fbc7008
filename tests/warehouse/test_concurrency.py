"""Readers are never blocked for long and two pipeline runs never overlap: real processes
on a real DuckDB file."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.lock import PipelineLockedError, pipeline_lock
from warehouse.db import DatabaseBusyError, migrate, write_connection
from warehouse.reads import query

ROOT = Path(__file__).resolve().parents[2]
WORKERS = Path(__file__).with_name("_workers.py")


def spawn(*args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKERS), *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"worker never created {path}"
        time.sleep(0.02)


def check_consistent(row: dict[str, str]) -> None:
    """One reader answer: both tables hold exactly one whole write (never a mix or half)."""
    assert row["k_rows"] == row["m_rows"] == "1440", row
    assert row["k_min"] == row["k_max"] == row["m_min"] == row["m_max"], row


def test_reader_answers_while_a_writer_loads(tmp_path: Path) -> None:
    db = tmp_path / "home" / "liqheat.duckdb"
    migrate(db)
    from_workers = tmp_path / "w.json", tmp_path / "r.json"
    writer = spawn("writer", db, 5.0, from_workers[0])
    time.sleep(0.3)  # the writer has started its first transactions
    reader = spawn("reader", db, 4.0, from_workers[1])
    r_code, _, r_err = finish(reader)
    w_code, _, w_err = finish(writer)
    assert (r_code, w_code) == (0, 0), (r_err, w_err)
    assert "Traceback" not in r_err + w_err
    iterations = json.loads(from_workers[0].read_text())["iterations"]
    answers = json.loads(from_workers[1].read_text())
    assert iterations >= 5, "the writer made too little progress"
    ok = [a for a in answers if a["code"] == 0]
    busy = [a for a in answers if a["code"] != 0]
    # readers get priority: most reads answer even though the writer never pauses
    assert len(ok) >= max(3, len(answers) // 2), (len(ok), len(busy))
    for answer in busy:
        assert answer["stderr"].startswith("liqheat: error: database is busy"), answer
        assert answer["stderr"].count("\n") == 1, answer
    for answer in ok:
        rows = list(csv.DictReader(io.StringIO(answer["stdout"])))
        assert len(rows) == 1
        if rows[0]["k_rows"] != "0":  # the very first read may precede the first commit
            check_consistent(rows[0])
        assert answer["stderr"] == ""
    # bounded: nobody waits much longer than the reader's 5 s budget (generous margin)
    assert max(a["seconds"] for a in answers) < 20
    final = query(db, "SELECT count(*) AS n FROM klines")["n"][0]
    assert final == 1440


def test_reader_reports_a_stuck_writer_in_one_line(tmp_path: Path) -> None:
    from rich.console import Console

    from warehouse.sql import run_sql

    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    ready = tmp_path / "ready"
    holder = spawn("hold-write", db, 30, ready)
    try:
        wait_for(ready, holder)
        out, err = io.StringIO(), io.StringIO()
        code = run_sql(
            db,
            "SELECT 1",
            console=Console(file=out),
            err_console=Console(file=err, width=40),
            wait_s=0.5,
        )
        with (
            pytest.raises(DatabaseBusyError, match=r"^database is busy: another process has "),
            write_connection(db, wait_s=0.3),
        ):
            pass
    finally:
        holder.kill()
        holder.communicate()
    assert code == 1
    assert out.getvalue() == ""
    message = err.getvalue()
    assert message.startswith(
        "liqheat: error: database is busy: another liqheat process is writing"
    )
    assert message.count("\n") == 1  # one line even on a 40-column console


def test_second_pipeline_run_waits_or_fails_clearly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    migrate(home / "liqheat.duckdb")

    def run(name: str, wait_s: float) -> subprocess.Popen[str]:
        marks = [tmp_path / f"{name}.{m}" for m in ("waiting", "ready", "release")]
        return spawn("locked-writer", home, wait_s, tmp_path / f"{name}.json", *marks)

    first = run("a", 0)
    wait_for(tmp_path / "a.ready", first)  # the first run holds the lock and is writing
    impatient = run("b", 0.3)
    b_code, _, b_err = finish(impatient)
    assert b_code == 3, b_err
    assert b_err.startswith(f"error: another liqheat run (pid {first.pid}, started ")
    assert b_err.count("\n") == 1
    assert "Traceback" not in b_err
    assert not (tmp_path / "b.ready").exists()

    patient = run("c", 60)
    wait_for(tmp_path / "c.waiting", patient)
    time.sleep(0.5)
    assert not (tmp_path / "c.ready").exists()  # still waiting for the first run
    (tmp_path / "a.release").touch()
    (tmp_path / "c.release").touch()
    a_code, _, a_err = finish(first)
    c_code, _, c_err = finish(patient)
    assert (a_code, c_code) == (0, 0), (a_err, c_err)
    a = json.loads((tmp_path / "a.json").read_text())
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["acquired"] >= a["released"]  # the runs never overlapped
    counts = query(
        home / "liqheat.duckdb",
        "SELECT (SELECT count(*) FROM klines) AS k, (SELECT count(*) FROM mark_klines) AS m, "
        "(SELECT count(DISTINCT close) FROM klines) AS v",
    ).row(0)
    assert counts == (1440, 1440, 1)


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    holder = spawn("hold-lock", tmp_path / "home", 60, ready)
    wait_for(ready, holder)
    expected = rf"pid {holder.pid}, started \d{{4}}-"
    with (
        pytest.raises(PipelineLockedError, match=expected),
        pipeline_lock(tmp_path / "home", wait_s=0.2),
    ):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    with pipeline_lock(tmp_path / "home", wait_s=5) as path:
        assert path == tmp_path / "home" / "liqheat.lock"
        assert f"pid={os.getpid()} " in path.read_text()


def test_pipeline_lock_creates_a_fresh_home(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    with pipeline_lock(home, wait_s=0):
        assert home.is_dir()
    # released: a second acquisition in the same process succeeds at once
    with pipeline_lock(home, wait_s=0):
        pass


def test_writer_defers_to_a_waiting_reader(tmp_path: Path) -> None:
    import fcntl
    import threading

    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    sidecar = db.with_name(db.name + ".readers")
    fd = os.open(sidecar, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)  # "a reader is waiting for the file"
    order: list[str] = []

    def reader_gets_in() -> None:
        time.sleep(0.5)
        order.append("reader done")
        fcntl.flock(fd, fcntl.LOCK_UN)

    thread = threading.Thread(target=reader_gets_in)
    thread.start()
    with write_connection(db) as con:
        order.append("writer opened")
        con.execute("SELECT 1").fetchall()
    thread.join()
    os.close(fd)
    assert order == ["reader done", "writer opened"]
