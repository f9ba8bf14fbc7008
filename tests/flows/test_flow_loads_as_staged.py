"""Issue 14 items 4 and 10 for the Prefect flows: the backfill/nightly flows load each staged
symbol-day as its staging task finishes (not after the whole batch), so a hung download
neither holds back nor, when the run is killed, loses the days already fetched; and the
flows report their progress (units staged and loaded, symbols modelled) to a listener."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flows.sources.binance.paths import daily_path
from tests.httpmirror import Fault, serve_mirror, write_day
from tests.terminal import run_on_a_terminal
from warehouse.reads import query

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SYM = "BTCUSDT"
DAYS = (date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3))
DAILY = ("klines", "markPriceKlines", "metrics")

CHILD = """
import json, sys
from flows import progress
from flows.pipeline import backfill_flow

def show(stage, done, total):
    sys.stdout.write(json.dumps([stage, done, total]) + chr(10))  # print() goes to the run log
    sys.stdout.flush()

with progress.listening(show):
    backfill_flow(symbols=["BTCUSDT"], start=sys.argv[1], end=sys.argv[2], base_url=sys.argv[3])
"""


def _loaded(db: Path) -> set[tuple[str, date]]:
    if not db.exists():
        return set()
    try:
        frame = query(db, "SELECT dataset, day FROM ingest_log WHERE status = 'loaded'")
    except Exception:  # the flow's writer holds the file this instant
        return set()
    return {(str(ds), d) for ds, d in frame.rows()}


def test_finished_days_are_loaded_while_one_download_hangs_and_survive_kill_9(
    tmp_path: Path, prefect_harness: object
) -> None:
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "mirror"
    for index, day in enumerate(DAYS):
        write_day(root, SYM, day, seed=index)
    hung = daily_path("klines", SYM, DAYS[-1])
    # 32 MB (under the 64 MB klines cap) at 1 KB/s: ~9 hours
    faults = {hung: [Fault(length=32 * 1024**2, trickle_s=1.0, times=9)]}
    home = tmp_path / "home"
    db = home / "liqheat.duckdb"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LIQHEAT_HOME": str(home),
        "LIQHEAT_DOWNLOAD_DEADLINE_S": "3600",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the session's test server
    }
    want = {(ds, day) for ds in DAILY for day in DAYS[:-1]}
    with serve_mirror(root, faults) as mirror:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                DAYS[0].isoformat(),
                DAYS[-1].isoformat(),
                mirror.base_url,
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            loaded: set[tuple[str, date]] = set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not want <= loaded:
                time.sleep(0.5)
                assert child.poll() is None, child.communicate()
                loaded = _loaded(db)
            assert mirror.bodies[hung] == 1  # the hung file is still trickling
        finally:
            os.kill(child.pid, signal.SIGKILL)
            out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # the days whose staging finished were loaded while the last one hung, and stay loaded
    assert want <= loaded, sorted(loaded)
    assert ("klines", DAYS[-1]) not in loaded
    bars = query(db, "SELECT count(*) AS n FROM klines")["n"][0]
    assert bars == 1440 * (len(DAYS) - 1)
    # and the progress listener saw it: 2 of 3 staging jobs, their units loaded
    events = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
    staged = [e for e in events if e[0] == "staged"]
    assert staged[-1][1:] == [len(DAYS) - 1, len(DAYS)], events
    assert [e[0] for e in events].count("loaded") >= 2


def _increasing_to_total(events: list[tuple[str, int, int]], stage: str) -> list[int]:
    seen = [(done, total) for s, done, total in events if s == stage]
    assert seen, (stage, events)
    totals = {total for _, total in seen}
    assert len(totals) == 1, seen
    counts = [done for done, _ in seen]
    assert counts == sorted(counts), seen
    assert counts[0] == 0
    assert counts[-1] == totals.pop(), seen
    return counts


def test_the_backfill_flow_reports_progress_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: object
) -> None:
    from flows import progress
    from flows.pipeline import backfill_flow

    root = tmp_path / "mirror"
    for index, day in enumerate(DAYS[:2]):
        write_day(root, SYM, day, seed=index)
    monkeypatch.setenv("LIQHEAT_HOME", str(tmp_path / "home"))
    events: list[tuple[str, int, int]] = []

    def listen(stage: str, done: int, total: int) -> None:
        events.append((stage, done, total))

    with serve_mirror(root) as mirror, progress.listening(listen):
        state: Any = backfill_flow(
            symbols=[SYM],
            start=DAYS[0].isoformat(),
            end=DAYS[1].isoformat(),
            base_url=mirror.base_url,
            return_state=True,
        )
    assert state.is_completed() or state.is_failed()  # the funding month is not mirrored
    staged = _increasing_to_total(events, "staged")
    assert staged[-1] >= 2  # one job per symbol-day (plus the funding month's)
    loaded = _increasing_to_total(events, "loaded")
    assert loaded[-1] >= len(DAILY) * 2
    assert _increasing_to_total(events, "modelled")[-1] == 1
    # nobody listens after the block
    heard = len(events)
    progress.report("staged", 1, 1)
    assert len(events) == heard


def test_backfill_shows_flow_progress_on_a_terminal(
    tmp_path: Path, prefect_harness: object
) -> None:
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "mirror"
    write_day(root, SYM, DAYS[0])
    home = tmp_path / "home"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LIQHEAT_HOME": str(home),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the session's test server
        "COLUMNS": "160",
    }
    env.pop("LIQHEAT_DEBUG", None)
    day = DAYS[0].isoformat()
    args = [sys.executable, "-m", "flows.cli", "backfill", "--symbol", SYM]
    args += ["--start", day, "--end", day]
    with serve_mirror(root) as mirror:
        code, out, err = run_on_a_terminal([*args, "--base-url", mirror.base_url], env, tmp_path)
    assert code == 0, out + err
    assert "symbol-days staged" in err
    assert "1/1" in err
    assert "files loaded" in err
    assert "symbols modelled" in err
