"""Run a command with its stderr on a pseudo-terminal (what a user at a terminal sees)."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path


def run_on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run ``args`` with stderr on a pseudo-terminal; return (exit code, stdout, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace")
