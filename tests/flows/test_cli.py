"""The command line's contract: every command listed, usage errors in one line with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (
    "demo",
    "ingest",
    "model",
    "report",
    "nightly",
    "backfill",
    "sql",
    "serve",
    "backtest",
    "export",
    "realized",
    "doctor",
    "today",
)


def run_cli(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIQHEAT_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        **(env or {}),
    }
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
        (("nightly", "--date", "0001-01-01"), "out of range"),
        (
            ("backfill", "--symbol", "BTCUSDT", "--start", "0001-01-01", "--end", "0001-01-02"),
            "out of range",
        ),
        (("serve", "--cron", "bad"), "bad --cron 'bad'"),
        (("serve", "--cron", "61 8 * * *"), "bad --cron"),
        (
            (
                "backtest",
                "--symbol",
                "BTCUSDT",
                "--realized",
                str(ROOT / "pyproject.toml"),
                "--store",
                "a b",
            ),
            "bad source name",
        ),
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


@pytest.mark.parametrize(
    "args",
    [
        ("sql", "select count(*) AS n from klines"),
        ("sql", ".tables"),
        ("report",),
        ("model",),
        ("model", "--symbol", "BTCUSDT"),
        (
            "export",
            "--symbol",
            "BTCUSDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
            "--to",
            "out",
        ),
        ("realized", "list"),
        ("realized", "remove", "x"),
    ],
)
def test_read_only_commands_never_create_state(args: tuple[str, ...], tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    home = tmp_path / "fresh"
    env = {**os.environ, "LIQHEAT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"liqheat: error: no warehouse at {home / 'liqheat.duckdb'} ")
    assert "LIQHEAT_HOME" in lines[0]
    assert not home.exists()
    assert list(cwd.iterdir()) == []


def test_help_shows_the_resolved_home(tmp_path: Path) -> None:
    result = run_cli("--help", home=tmp_path / "h")
    assert f"{(tmp_path / 'h').resolve()} (LIQHEAT_HOME" in result.stdout
    assert not (tmp_path / "h").exists()


def test_sql_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    from warehouse.db import migrate

    migrate(tmp_path / "liqheat.duckdb")
    result = run_cli("sql", "select nope from klines", home=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "nope" in lines[0]
    assert "Traceback" not in result.stderr
