"""A local Prefect server for ``liqheat serve`` when no ``PREFECT_API_URL`` is set.

The server runs as a child process on 127.0.0.1 with its state under ``$LIQHEAT_HOME/prefect``
(or ``PREFECT_HOME``), and is stopped when the context exits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


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
        time.sleep(0.5)
    raise ServerStartError(f"prefect server at {api_url} not healthy after {timeout_s:.0f}s")


@contextmanager
def local_prefect_server(
    prefect_home: Path, *, port: int | None = None, timeout_s: float = 180.0
) -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 and yield its API URL; stop it on exit."""
    port = port or free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    prefect_home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (prefect_home / "server.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(api_url, timeout_s, proc)
        yield api_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
