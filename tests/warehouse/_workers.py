"""Worker processes for the concurrency tests (run as ``python _workers.py CMD ...``).

writer DB SECONDS OUT            replace one klines + mark_klines day in a loop (one txn each)
locked-writer HOME WAIT OUT WAITING READY RELEASE   the same under pipeline_lock(HOME,
        wait_s=WAIT) until RELEASE exists; WAITING is created before, READY after locking
reader DB SECONDS OUT            run_sql in a loop, recording every answer
hold-write DB SECONDS READY      keep a read-write connection open (a stuck writer)
hold-lock HOME SECONDS READY     hold the pipeline lock
Results are written as JSON to OUT; READY is created once the resource is held.
"""

from __future__ import annotations

import io
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from rich.console import Console

SYMBOL = "LOCKTEST"
DAY = datetime(2026, 1, 1, tzinfo=UTC)
CHECK_SQL = f"""
SELECT (SELECT count(*) FROM klines WHERE symbol = '{SYMBOL}') AS k_rows,
       (SELECT count(*) FROM mark_klines WHERE symbol = '{SYMBOL}') AS m_rows,
       (SELECT min(close) FROM klines WHERE symbol = '{SYMBOL}') AS k_min,
       (SELECT max(close) FROM klines WHERE symbol = '{SYMBOL}') AS k_max,
       (SELECT min(close) FROM mark_klines WHERE symbol = '{SYMBOL}') AS m_min,
       (SELECT max(close) FROM mark_klines WHERE symbol = '{SYMBOL}') AS m_max
"""


def day_frame(value: float) -> pl.DataFrame:
    ts = pl.datetime_range(DAY, DAY + timedelta(minutes=1439), "1m", eager=True, time_unit="us")
    return pl.DataFrame(
        {
            "exchange": "binance",
            "symbol": SYMBOL,
            "ts": ts,
            "open": value,
            "high": value,
            "low": value,
            "close": value,
        }
    )


def write_loop(db: Path, seconds: float, start_value: float = 0.0) -> int:
    from warehouse.writes import replace_many

    keys = {"exchange": "binance", "symbol": SYMBOL, "ts": (DAY, DAY + timedelta(days=1))}
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        frame = day_frame(start_value + i)
        replace_many(db, [("klines", keys, frame), ("mark_klines", keys, frame)])
        i += 1
    return i


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "writer":
        db, seconds, out = Path(argv[1]), float(argv[2]), Path(argv[3])
        n = write_loop(db, seconds)
        out.write_text(json.dumps({"iterations": n}))
        return 0
    if cmd == "locked-writer":
        from flows.lock import PipelineLockedError, pipeline_lock

        home, wait_s, out = Path(argv[1]), float(argv[2]), Path(argv[3])
        waiting, ready, release = Path(argv[4]), Path(argv[5]), Path(argv[6])
        waiting.touch()
        try:
            with pipeline_lock(home, wait_s=wait_s):
                acquired = time.time()
                ready.touch()
                n = 0
                deadline = time.monotonic() + 30
                while not release.exists() and time.monotonic() < deadline:
                    n += write_loop(home / "liqheat.duckdb", 0.2, start_value=1000.0 * n)
                released = time.time()
        except PipelineLockedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        out.write_text(json.dumps({"iterations": n, "acquired": acquired, "released": released}))
        return 0
    if cmd == "reader":
        from warehouse.sql import run_sql

        db, seconds, out = Path(argv[1]), float(argv[2]), Path(argv[3])
        answers = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stdout, stderr = io.StringIO(), io.StringIO()
            t0 = time.monotonic()
            code = run_sql(
                db,
                CHECK_SQL,
                fmt="csv",
                console=Console(file=stdout, width=200),
                err_console=Console(file=stderr, width=200),
                wait_s=5.0,
            )
            answers.append(
                {
                    "code": code,
                    "seconds": time.monotonic() - t0,
                    "stdout": stdout.getvalue(),
                    "stderr": stderr.getvalue(),
                }
            )
        out.write_text(json.dumps(answers))
        return 0
    if cmd == "hold-write":
        import duckdb

        db, seconds, ready = Path(argv[1]), float(argv[2]), Path(argv[3])
        con = duckdb.connect(str(db))
        ready.touch()
        time.sleep(seconds)
        con.close()
        return 0
    if cmd == "hold-lock":
        from flows.lock import pipeline_lock

        home, seconds, ready = Path(argv[1]), float(argv[2]), Path(argv[3])
        with pipeline_lock(home, wait_s=0):
            ready.touch()
            time.sleep(seconds)
        return 0
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
