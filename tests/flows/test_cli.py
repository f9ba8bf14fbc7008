"""The command line's contract: every command listed, usage errors in one line with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = ("demo", "ingest", "model", "report", "nightly", "sql", "serve", "backtest", "export")


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQHEAT_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", home=tmp_path)
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"  {command}" in result.stdout, command


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str, tmp_path: Path) -> None:
    result = run_cli(command, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("frobnicate",), "No such command"),
        (
            ("ingest", "--symbol", "BTCUSDT", "--start", "2024-13-01", "--end", "2024-01-02"),
            "bad date",
        ),
        (
            ("ingest", "--symbol", "BTCUSDT", "--start", "2024-01-05", "--end", "2024-01-02"),
            "before",
        ),
        (
            ("ingest", "--symbol", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-02"),
            "symbol",
        ),
        (("ingest", "--symbol", "BTCUSDT", "--start", "2024-01-01"), "--end"),
        (("nightly", "--date", "yesterday"), "bad date"),
        (("sql", "select 1", "--format", "parquet"), "--output"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    args: tuple[str, ...], needle: str, tmp_path: Path
) -> None:
    result = run_cli(*args, home=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("liqheat: error:")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_sql_on_a_fresh_home_creates_the_warehouse(tmp_path: Path) -> None:
    result = run_cli("sql", "select count(*) AS n from klines", home=tmp_path / "fresh")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fresh" / "liqheat.duckdb").is_file()


def test_sql_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    result = run_cli("sql", "select nope from klines", home=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "nope" in lines[0]
    assert "Traceback" not in result.stderr
