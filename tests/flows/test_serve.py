"""`liqheat serve` end to end: it starts its own Prefect server, registers the deployment with
the cron schedule, and runs a triggered nightly against a local mirror."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.demo_data import write_demo_archive
from tests.httpmirror import serve_mirror
from warehouse.reads import query

pytestmark = pytest.mark.slow

CRON = "17 9 * * *"
DAY = date(2026, 6, 9)


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _wait_for(out: queue.Queue[str], pattern: str, timeout_s: float, log: list[str]) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = out.get(timeout=1.0)
        except queue.Empty:
            continue
        log.append(line)
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise AssertionError(f"no line matching {pattern!r} in {timeout_s}s:\n{''.join(log[-40:])}")


def _deployment(api: str) -> dict[str, Any] | None:
    r = httpx.post(
        f"{api}/deployments/filter",
        json={"deployments": {"name": {"any_": ["liqheat-nightly"]}}},
        timeout=10,
    )
    r.raise_for_status()
    found = r.json()
    return found[0] if found else None


def _create_run(api: str, deployment_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Trigger a run of the deployment; a loaded server may answer 5xx/409 for a moment."""
    answer = None
    for _ in range(10):
        answer = httpx.post(
            f"{api}/deployments/{deployment_id}/create_flow_run",
            json={"parameters": parameters},
            timeout=30,
        )
        body = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if answer.status_code < 300 and isinstance(body, dict) and "id" in body:
            return body
        time.sleep(2)
    assert answer is not None
    raise AssertionError(f"create_flow_run failed: {answer.status_code} {answer.text[:500]}")


def test_serve_registers_schedule_and_runs_nightly(tmp_path: Path) -> None:
    archive = write_demo_archive(tmp_path / "mirror", ["BTCUSDT"], DAY, 1, seed=3)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        LIQHEAT_HOME=str(home),
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    log: list[str] = []
    with serve_mirror(archive.root) as mirror:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "serve",
                "--cron",
                CRON,
                "--symbol",
                "BTCUSDT",
                "--base-url",
                mirror.base_url,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            out = _lines(proc)
            ui = _wait_for(out, r"local Prefect server \(UI and API\) at (\S+)", 240, log)
            api = f"{ui}/api"
            assert (home / "prefect").is_dir(), "Prefect state belongs under LIQHEAT_HOME"

            deadline = time.monotonic() + 120
            deployment = _deployment(api)
            while deployment is None and time.monotonic() < deadline:
                time.sleep(1)
                deployment = _deployment(api)
            assert deployment is not None, "".join(log[-40:])
            crons = [s["schedule"]["cron"] for s in deployment["schedules"]]
            assert crons == [CRON]
            assert deployment["schedules"][0]["schedule"]["timezone"] == "UTC"

            run = _create_run(api, deployment["id"], {"date": DAY.isoformat(), "backfill_days": 0})
            state = "PENDING"
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()["state_type"]
                if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                    break
                while not out.empty():
                    log.append(out.get())
                time.sleep(2)
            assert state == "COMPLETED", "".join(log[-60:])
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    db = home / "liqheat.duckdb"
    assert query(db, "SELECT count(*) AS n FROM klines")["n"][0] == 1440
    assert query(db, "SELECT count(*) AS n FROM runs WHERE flow = 'liqheat-nightly'")["n"][0] == 1
    assert (home / "site" / "index.html").is_file()
