"""The Prefect server liqheat starts dies with its parent: kill -9 of a real `liqheat demo`
leaves no server behind, and an orphan recorded in the pid file is reaped by the next start."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.server import PID_FILE, _alive, reap_orphans

ROOT = Path(__file__).resolve().parents[2]


def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_kill_9_of_liqheat_demo_takes_its_prefect_server_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["LIQHEAT_HOME"] = str(home)
    liqheat = Path(sys.executable).with_name("liqheat")
    demo = subprocess.Popen(
        [str(liqheat), "demo", "--days", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = home / "prefect" / PID_FILE
    server = None
    try:
        assert _wait(pid_file.exists, 120), "the demo never started its Prefect server"
        info = json.loads(pid_file.read_text())
        server = int(info["pid"])
        assert info["owner"] == demo.pid
        assert _alive(server)
        assert b"uvicorn" in Path(f"/proc/{server}/cmdline").read_bytes()

        demo.send_signal(signal.SIGKILL)
        demo.wait(timeout=10)
        assert _wait(lambda: not _alive(server), 15), "the server outlived kill -9 of its parent"
    finally:
        _kill(demo.pid)
        if server is not None:
            _kill(server)
    # the pid file is left behind by the killed parent; the next start clears it
    assert pid_file.exists()
    assert reap_orphans(home / "prefect") == []
    assert not pid_file.exists()


def _fake_server(tmp_path: Path) -> subprocess.Popen[bytes]:
    """A real long-running process whose command line reads like a Prefect server's."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "prefect.server", "uvicorn"],
        start_new_session=True,
    )


def test_the_next_start_reaps_a_server_whose_owner_is_gone(tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "pass"])
    owner.wait()  # a dead owner pid
    orphan = _fake_server(tmp_path)
    try:
        (tmp_path / PID_FILE).write_text(
            json.dumps({"pid": orphan.pid, "owner": owner.pid, "port": 1})
        )
        assert reap_orphans(tmp_path) == [orphan.pid]
        orphan.wait(timeout=10)
        assert not (tmp_path / PID_FILE).exists()
    finally:
        _kill(orphan.pid)


def test_a_live_owner_or_a_recycled_pid_is_left_alone(tmp_path: Path) -> None:
    orphan = _fake_server(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    owner = subprocess.Popen([sys.executable, "-c", "pass"])
    owner.wait()
    try:
        # the owner (this test process) still runs: not an orphan
        (tmp_path / PID_FILE).write_text(
            json.dumps({"pid": orphan.pid, "owner": os.getppid(), "port": 1})
        )
        assert reap_orphans(tmp_path) == []
        assert orphan.poll() is None
        # the recorded pid now belongs to some other program: never killed
        (tmp_path / PID_FILE).write_text(
            json.dumps({"pid": other.pid, "owner": owner.pid, "port": 1})
        )
        assert reap_orphans(tmp_path) == []
        assert other.poll() is None
        assert not (tmp_path / PID_FILE).exists()
        # a garbled pid file is removed
        (tmp_path / PID_FILE).write_text("{not json")
        assert reap_orphans(tmp_path) == []
        assert not (tmp_path / PID_FILE).exists()
    finally:
        _kill(orphan.pid)
        _kill(other.pid)
