"""Issue 14 item 10: the site build reports its progress per symbol, and ``liqheat report``
shows it as a rich progress bar on a terminal and prints nothing when stderr is redirected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from reports.site import build_site
from tests.terminal import run_on_a_terminal
from warehouse import reads_report as rr

ROOT = Path(__file__).resolve().parents[2]


def _home_with(report_db: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(report_db, home / "liqheat.duckdb")
    return home


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "LIQHEAT_HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    env.pop("LIQHEAT_DEBUG", None)
    return env


def test_build_site_calls_progress_per_symbol_up_to_the_total(
    report_db: Path, tmp_path: Path
) -> None:
    calls: list[tuple[int, int]] = []
    result = build_site(
        report_db, tmp_path / "site", progress=lambda done, total: calls.append((done, total))
    )
    total = len(rr.report_symbols(report_db, None))
    assert total >= 2
    assert calls == [(n, total) for n in range(1, total + 1)]
    assert result.index.is_file()


def test_build_site_counts_every_symbol_when_only_some_are_rebuilt(
    report_db: Path, tmp_path: Path
) -> None:
    symbols = rr.report_symbols(report_db, None)
    calls: list[tuple[int, int]] = []
    build_site(
        report_db,
        tmp_path / "site",
        symbols=symbols[:1],
        days=["1d"],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert [done for done, _ in calls] == list(range(1, len(symbols) + 1))
    assert {total for _, total in calls} == {len(symbols)}


def test_report_shows_progress_on_a_terminal_only(report_db: Path, tmp_path: Path) -> None:
    home = _home_with(report_db, tmp_path)
    total = len(rr.report_symbols(report_db, None))
    args = [sys.executable, "-m", "flows.cli", "report", "--days", "1"]
    code, out, err = run_on_a_terminal(args, _env(home), tmp_path)
    assert code == 0, out + err
    assert out.startswith("wrote ")
    assert "report" in err
    assert f"{total}/{total}" in err  # the bar reached every symbol
    redirected = subprocess.run(
        [*args, "--force"],
        capture_output=True,
        text=True,
        env=_env(home),
        cwd=tmp_path,
        timeout=300,
    )
    assert redirected.returncode == 0, redirected.stderr
    assert redirected.stdout.startswith("wrote ")
    assert redirected.stderr == ""  # not a terminal: no progress at all
