"""A read-only LIQHEAT_HOME: writing commands stop at once with one line naming the folder;
`doctor` and `sql` still read the warehouse.

How it is made read-only: tests run as root, where ``chmod 0o555`` stops nothing. As root the
command runs in a new user + mount namespace (``unshare -rm``) with the home bind-mounted
read-only onto itself: the real ``EROFS`` a read-only mount gives. As another user, ``chmod
0o555`` does (``EACCES``). Without either the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from flows.importing import import_file
from flows.settings import Settings
from tests.cli import ROOT, one_error_line

_REMOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def run_read_only(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``liqheat ARGS`` with ``home`` read-only (see the module docstring)."""
    env = {**os.environ, "LIQHEAT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("LIQHEAT_DEBUG", None)
    command = [sys.executable, "-m", "flows.cli", *args]
    if os.geteuid() != 0:
        home.chmod(0o555)
        try:
            return subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=120, check=False)  # fmt: skip
        finally:
            home.chmod(0o755)
    if not _can_unshare():
        pytest.skip("running as root without `unshare -rm`: cannot make a read-only home")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", _REMOUNT, str(home), *command],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def small_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with 3 days of hourly bars (imported; fast)."""
    home = tmp_path_factory.mktemp("ro") / "home"
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    n = 72
    csv = home.parent / "bars.csv"
    pl.DataFrame(
        {
            "ts": [t0 + timedelta(hours=k) for k in range(n)],
            "open": [100.0 + k % 5 for k in range(n)],
            "high": [106.0 + k % 5 for k in range(n)],
            "low": [95.0 + k % 5 for k in range(n)],
            "close": [101.0 + k % 5 for k in range(n)],
            "oi_usd": [1e9 + 1e6 * k for k in range(n)],
        }
    ).write_csv(csv)
    import_file(Settings(home=home), csv, exchange="mydata", symbol="BTCUSDT")
    return home


@pytest.mark.parametrize("args", [("model",), ("calibrate", "--symbol", "BTCUSDT")])
def test_a_writing_command_names_the_folder_in_one_line(
    small_home: Path, args: tuple[str, ...]
) -> None:
    before = sorted(p.name for p in small_home.iterdir())
    out = run_read_only(small_home, *args)
    assert out.returncode == 1, out.stderr
    line = one_error_line(out)
    assert f"cannot write to {small_home.resolve()} (" in line
    assert any(why in line for why in ("Read-only file system", "Permission denied"))
    assert f"`liqheat {args[0]}` writes liqheat.lock and liqheat.duckdb there" in line
    assert sorted(p.name for p in small_home.iterdir()) == before


def test_doctor_and_sql_read_a_read_only_warehouse(small_home: Path) -> None:
    doctor = run_read_only(small_home, "doctor")
    assert doctor.returncode == 0, doctor.stderr
    assert "every block read and checksum-verified" in doctor.stdout
    sql = run_read_only(small_home, "sql", "SELECT count(*) AS n FROM klines", "--format", "csv")
    assert sql.returncode == 0, sql.stderr
    assert sql.stdout.split() == ["n", "72"]
