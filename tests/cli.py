"""Running the real ``liqheat`` command in a child process, as a user would, and reading its
one-line errors (shared by the warehouse tests)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def liqheat(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m flows.cli ARGS`` with ``LIQHEAT_HOME=home``, run from ``home``'s parent."""
    env = {**os.environ, "LIQHEAT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("LIQHEAT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=timeout,
        check=False,
    )


def sha(path: Path) -> str:
    """The SHA-256 of a file (to show a command left it untouched)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``liqheat: error: ...`` line of a failed command (asserts there is one)."""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("liqheat: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]
