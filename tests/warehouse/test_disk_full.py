"""Issue 14 item 5 on a real full disk: a small tmpfs mounted as LIQHEAT_HOME in a private
mount namespace (``unshare``; skipped where that is not allowed). A full disk is named in one
line ("no space left on device", not "cannot rollback - no transaction is active"); the first
creation of the warehouse never leaves a stub behind, so once space is freed the next command
just works; a load that fills the disk keeps the warehouse readable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.httpmirror import write_day

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2024, 3, 1)


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--map-root-user",
            "sh",
            "-c",
            f"mount -t tmpfs -o size=64k tmpfs {probe}",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


SCRIPT = r"""
set -u
H="$1"; OUT="$2"; MIRROR="$3"; SIZE="$4"; FILL="$5"
mount -t tmpfs -o size="$SIZE" tmpfs "$H" || exit 97
export LIQHEAT_HOME="$H"
run() {
    name="$1"; shift
    "$PY" -m flows.cli "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    echo $? >"$OUT/$name.rc"
}
fill() {  # leave only $1 bytes free
    free=$(df --output=avail -B1 "$H" | tail -1)
    head -c "$(( free - $1 ))" /dev/zero >"$H/filler" 2>/dev/null
}
INGEST="ingest --symbol BTCUSDT --start 2024-03-01 --end 2024-03-01"
if [ "$FILL" = "first" ]; then
    # nearly full before the warehouse exists: its first creation fails
    fill 16384
    run create $INGEST --base-url "file://$MIRROR"
    ls -a "$H" >"$OUT/after-create.ls"
    rm -f "$H/filler"
    run again $INGEST --base-url "file://$MIRROR"
    run sql sql "SELECT count(*) AS n FROM klines" --format csv
else
    # the warehouse exists; the disk fills during the load
    "$PY" -c "import sys, pathlib, warehouse.db as d; d.migrate(pathlib.Path(sys.argv[1]))" \
        "$H/liqheat.duckdb"
    fill 65536
    run load $INGEST --base-url "file://$MIRROR"
    rm -f "$H/filler"
    run sql sql "SELECT count(*) AS n FROM ingest_log" --format csv
    run doctor doctor
fi
"""


@pytest.fixture
def full_disk(tmp_path: Path) -> object:
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (unshare)")
    mirror = tmp_path / "mirror"
    write_day(mirror, "BTCUSDT", DAY)

    def run(fill: str, size: str) -> dict[str, str]:
        home, out = tmp_path / f"home-{fill}", tmp_path / f"out-{fill}"
        home.mkdir()
        out.mkdir()
        script = tmp_path / "disk_full.sh"
        script.write_text(SCRIPT)
        env = {**os.environ, "PY": sys.executable, "PYTHONPATH": str(ROOT)}
        env.pop("LIQHEAT_DEBUG", None)
        done = subprocess.run(
            [
                "unshare",
                "--mount",
                "--map-root-user",
                "bash",
                str(script),
                str(home),
                str(out),
                str(mirror),
                size,
                fill,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        return {p.name: p.read_text() for p in out.iterdir()}

    return run


def error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("liqheat: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_first_creation_on_a_full_disk_leaves_no_stub(full_disk: object) -> None:
    got = full_disk("first", "4m")  # type: ignore[operator]
    assert got["create.rc"].strip() == "1"
    line = error_line(got["create.err"])
    assert "no space left on device" in line
    assert "cannot rollback" not in line
    listing = got["after-create.ls"].split()
    assert "liqheat.duckdb" not in listing  # no 0- or 4,096-byte stub
    assert not [name for name in listing if ".new-" in name]
    # space freed: the next run creates the warehouse and loads the day (the mirror has no
    # funding file for the month, so it still exits 1 for that one)
    assert "ingest: 3 loaded" in got["again.out"], got["again.out"] + got["again.err"]
    assert got["sql.rc"].strip() == "0", got["sql.err"]
    assert got["sql.out"].split() == ["n", "1440"]


def test_a_load_that_fills_the_disk_names_the_cause(full_disk: object) -> None:
    got = full_disk("load", "8m")  # type: ignore[operator]
    assert got["load.rc"].strip() == "1"
    text = got["load.out"] + got["load.err"]
    assert "no space left on device" in text.lower()
    assert "cannot rollback" not in text
    # the warehouse survived: readable, and the doctor finds no damage
    assert got["sql.rc"].strip() == "0", got["sql.err"]
    assert got["doctor.rc"].strip() == "0", got["doctor.out"] + got["doctor.err"]
