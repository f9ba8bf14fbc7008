"""A Prefect server that lives and dies with the liqheat process that started it.

Without ``PREFECT_API_URL``, Prefect starts a temporary server of its own for every flow run
and stops it from an ``atexit`` hook, which never runs when the process is killed (``kill
-9``, OOM): the server kept running, 266 MB and a listening port. liqheat therefore starts the
server itself (:func:`local_prefect_server`, used by ``demo``, ``nightly``, ``backfill`` and
``serve``) and ties it to its own life three ways:

- **parent-death signal**: the child asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)
  to be killed the moment its parent dies, however the parent dies (Linux);
- **its own process group**: stopping it stops everything it started;
- **a pid file** ``$PREFECT_HOME/liqheat-server.json`` (server pid, owner pid, port): the next
  start reaps a server whose owner is gone (the safety net where the signal is unavailable).

The server is Prefect's own (``uvicorn prefect.server.api.server:create_app``), with state
under ``$LIQHEAT_HOME/prefect`` (or ``PREFECT_HOME``). ``ui=False`` runs it the way Prefect
runs its temporary server (no UI, only the services a flow run needs), which starts faster;
``liqheat serve`` uses ``ui=True`` (the UI and the scheduler).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

#: the pid file next to the server's state
PID_FILE = "liqheat-server.json"
#: Linux prctl option: signal to receive when the parent dies
_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """The local Prefect server did not become healthy in time."""


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    api_url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``{api_url}/health`` until it answers 200, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(f"prefect server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServerStartError(f"prefect server at {api_url} not healthy after {timeout_s:.0f}s")


def _die_with_parent(parent: int) -> None:
    """``preexec_fn`` of the server: get SIGKILL when the parent dies (Linux), and exit at
    once if it already died between fork and exec."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (dead, not yet reaped by its parent) counts as gone
    with suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    return True


def _is_prefect_server(pid: int) -> bool:
    """Whether ``pid`` still runs a Prefect server (a recycled pid must not be killed)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"prefect" in cmdline and (b"uvicorn" in cmdline or b"server" in cmdline)


def _kill_group(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL it if still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def reap_orphans(prefect_home: Path) -> list[int]:
    """Stop a server left behind by a liqheat process that died without stopping it (its
    owner pid is gone); remove a stale pid file. Return the pids stopped.

    Examples
    --------
    >>> reap_orphans(Path("/nonexistent"))
    []
    """
    path = prefect_home / PID_FILE
    try:
        info = json.loads(path.read_text())
        pid, owner = int(info["pid"]), int(info["owner"])
    except (OSError, ValueError, KeyError, TypeError):
        with suppress(OSError):
            path.unlink()
        return []
    if _alive(owner) and owner != os.getpid():
        return []  # its owner still runs: not an orphan
    reaped = []
    if _alive(pid) and _is_prefect_server(pid):
        _kill_group(pid)
        reaped.append(pid)
    with suppress(OSError):
        path.unlink()
    return reaped


def _server_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def template_path() -> Path:
    """Where a freshly migrated Prefect database is kept for new homes (per Prefect version,
    inside the environment: it is set-up, not state)."""
    from importlib.metadata import version

    return Path(sys.prefix) / "var" / "liqheat" / f"prefect-{version('prefect')}.db"


def _seed_home(prefect_home: Path) -> bool:
    """Give a fresh Prefect home a copy of the migrated template database, so its server
    skips Prefect's migrations (most of a first start). Return whether the home was fresh
    and had no template (the server migrates it, and :func:`_save_template` keeps it)."""
    db = prefect_home / "prefect.db"
    if db.exists():
        return False
    template = template_path()
    if template.is_file():
        with suppress(OSError):
            shutil.copyfile(template, db)
            return False
    return True


def _save_template(prefect_home: Path) -> None:
    """Keep the just-migrated database of a fresh home as the template (SQLite's backup API:
    a consistent copy while the server runs); best effort."""
    target = template_path()
    part = target.with_name(target.name + f".{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(f"file:{prefect_home / 'prefect.db'}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(part)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(part, target)
    except (OSError, sqlite3.Error):
        with suppress(OSError):
            part.unlink()


class LocalServer:
    """A started Prefect server process (see :func:`start_server`)."""

    def __init__(self, prefect_home: Path, *, port: int | None = None, ui: bool = True) -> None:
        prefect_home.mkdir(parents=True, exist_ok=True)
        reap_orphans(prefect_home)
        self.home = prefect_home
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.started = time.perf_counter()
        self._fresh = _seed_home(prefect_home)
        self._healthy = False
        env = {
            **os.environ,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "true" if ui else "false",
        }
        if not ui:
            env["PREFECT__SERVER_EPHEMERAL"] = "1"
        env.pop("PREFECT_API_URL", None)
        self._log = (prefect_home / "server.log").open("ab")
        parent = os.getpid()
        self.proc = subprocess.Popen(
            _server_command(self.port),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: _die_with_parent(parent),
        )
        self.pid_file = prefect_home / PID_FILE
        self.pid_file.write_text(
            json.dumps({"pid": self.proc.pid, "owner": parent, "port": self.port})
        )

    def wait(self, timeout_s: float = 180.0) -> float:
        """Wait until the server answers; return the seconds since it was started."""
        if not self._healthy:
            try:
                wait_healthy(self.api_url, timeout_s, self.proc)
            except BaseException:
                self.stop()
                raise
            self._healthy = True
            if self._fresh:
                _save_template(self.home)
            self.ready_seconds = time.perf_counter() - self.started
        return self.ready_seconds

    def stop(self) -> None:
        """Stop the server and everything it started; remove the pid file."""
        _kill_group(self.proc.pid, timeout_s=20.0)
        with suppress(ChildProcessError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with suppress(OSError):
            self.pid_file.unlink()
        self._log.close()


#: servers started ahead of time by :func:`start_early`, by Prefect home
_EARLY: dict[Path, LocalServer] = {}


def start_early(prefect_home: Path) -> None:
    """Start the server of a coming :func:`prefect_api` now, without waiting: it boots while
    this process goes on (importing Prefect and the pipeline takes seconds too). Nothing is
    started when ``PREFECT_API_URL`` is set."""
    if os.environ.get("PREFECT_API_URL") or prefect_home.resolve() in _EARLY:
        return
    _EARLY[prefect_home.resolve()] = LocalServer(prefect_home, ui=False)


@contextmanager
def local_prefect_server(
    prefect_home: Path, *, port: int | None = None, timeout_s: float = 180.0, ui: bool = True
) -> Iterator[str]:
    """Start a Prefect server on 127.0.0.1 tied to this process's life; yield its API URL and
    stop it on exit. A server orphaned by an earlier killed run is reaped first.

    ``ui=False`` runs it like Prefect's temporary server (no UI; only the services a flow run
    needs), which starts faster; ``liqheat serve`` keeps the UI and the scheduler.
    """
    server = LocalServer(prefect_home, port=port, ui=ui)
    try:
        server.wait(timeout_s)
        yield server.api_url
    finally:
        server.stop()


def _configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or Prefect's active settings (a profile, a
    test harness), if any."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import PREFECT_API_URL

    value = PREFECT_API_URL.value()
    return str(value) if value else None


@contextmanager
def prefect_api(prefect_home: Path, *, ui: bool = False) -> Iterator[tuple[str, float | None]]:
    """Make sure flow runs have a Prefect API: yield ``(api_url, start_seconds)``.

    With ``PREFECT_API_URL`` set (a running server) nothing is started and ``start_seconds`` is
    ``None``; otherwise :func:`local_prefect_server` starts one for the duration (once per
    command, however many flows run) and ``PREFECT_API_URL`` points at it meanwhile.
    """
    early = _EARLY.pop(prefect_home.resolve(), None)
    existing = _configured_api_url()
    if existing:
        if early is not None:
            early.stop()
        yield existing, None
        return
    server = early or LocalServer(prefect_home, ui=ui)
    try:
        seconds = server.wait()
        api_url = server.api_url
        os.environ["PREFECT_API_URL"] = api_url
        try:
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                yield api_url, seconds
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    finally:
        server.stop()
