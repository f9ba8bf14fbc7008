"""``liqheat sql`` cannot write: every statement from issue 14 is refused (or, when it is a
query, cannot change settings or touch files), the warehouse stays byte-identical, no file
appears anywhere, and reading other files needs ``--allow-files``."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from warehouse.sql import run_sql

ROOT = Path(__file__).resolve().parents[2]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*")}


def liqheat_sql(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIQHEAT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("LIQHEAT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "sql", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def hostile_statements(db: Path, out: Path) -> list[tuple[str, str]]:
    """(statement, the text its one-line refusal must contain)."""
    refused = "liqheat sql is read-only"
    locked = "configuration has been locked"
    no_files = "add --allow-files"
    return [
        # the issue's own: overwrite the warehouse with the query log
        (f"SET log_query_path = '{db}'; SELECT 1", refused),
        (f"SELECT 1; SET log_query_path = '{db}'", refused),
        ("PRAGMA enable_profiling", refused),
        (f"SET profiling_output = '{out / 'profile.json'}'", refused),
        (
            f"PRAGMA enable_profiling = 'json'; PRAGMA profiling_output = '{out / 'p.json'}'",
            refused,
        ),
        (f"CALL enable_logging(storage = 'file', storage_path = '{out / 'logs'}')", refused),
        ("SET enable_external_access = true", refused),
        ("RESET lock_configuration", refused),
        ("USE memory", refused),
        # queries that try to do the same: the locked configuration refuses them
        (f"SELECT * FROM enable_logging(storage = 'file', storage_path = '{out / 'l'}')", locked),
        ("SELECT * FROM disable_logging()", locked),
        # writing files
        (f"COPY klines TO '{out / 'k.csv'}'", refused),
        (f"COPY (SELECT 1) TO '{db}'", refused),
        (f"EXPORT DATABASE '{out / 'export'}'", refused),
        (f"EXPLAIN ANALYZE COPY klines TO '{out / 'e.csv'}'", refused),
        (f"ATTACH '{out / 'other.duckdb'}' AS o", refused),
        ("DETACH liqheat", refused),
        ("INSTALL httpfs", refused),
        ("LOAD httpfs", refused),
        ("CHECKPOINT", refused),
        ("VACUUM", refused),
        ("BEGIN TRANSACTION", refused),
        ("PREPARE p AS SELECT 1", refused),
        # writing the database
        ("DELETE FROM klines", refused),
        ("INSERT INTO klines SELECT * FROM klines", refused),
        ("UPDATE klines SET close = 0", refused),
        ("DROP TABLE klines", refused),
        ("CREATE TABLE t AS SELECT 1", refused),
        ("CREATE MACRO m() AS 1", refused),
        ("ALTER TABLE klines RENAME TO k2", refused),
        # reading files other than the warehouse
        ("SELECT * FROM read_csv('/etc/passwd')", no_files),
        ("SELECT * FROM glob('/etc/*')", no_files),
    ]


@pytest.fixture
def homes(warehouse_db: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    out = tmp_path / "elsewhere"
    out.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return warehouse_db, out, cwd


def test_every_hostile_statement_is_refused_and_nothing_changes(
    homes: tuple[Path, Path, Path],
) -> None:
    db, out, cwd = homes
    home = db.parent
    before_sha, before_files = sha(db), tree(home, out, cwd)
    failures = []
    for statement, needle in hostile_statements(db, out):
        for allow_files in (False, True):
            if needle == "add --allow-files" and allow_files:
                continue  # reading other files is what --allow-files is for
            stdout, stderr = io.StringIO(), io.StringIO()
            code = run_sql(
                db,
                statement,
                console=Console(file=stdout),
                err_console=Console(file=stderr, width=300),
                allow_files=allow_files,
            )
            text = stderr.getvalue()
            if code != 1 or needle not in text or text.count("\n") != 1 or stdout.getvalue():
                failures.append((statement, allow_files, code, text, stdout.getvalue()))
    assert not failures, failures
    assert sha(db) == before_sha
    assert tree(home, out, cwd) == before_files


def test_cli_refuses_the_issue_statements_and_leaves_the_warehouse(
    homes: tuple[Path, Path, Path],
) -> None:
    db, out, cwd = homes
    home = db.parent
    before_sha, before_files = sha(db), tree(home, out, cwd)
    for statement in (
        f"SET log_query_path='{db}'",
        f"PRAGMA enable_profiling; SET profiling_output='{out / 'p.json'}'; SELECT 1",
        f"CALL enable_logging(storage='file', storage_path='{out / 'logs'}')",
    ):
        result = liqheat_sql(home, cwd, statement)
        assert result.returncode == 1, (statement, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("liqheat: error: liqheat sql is read-only")
        assert result.stdout == ""
    assert sha(db) == before_sha
    assert tree(home, out, cwd) == before_files
    # reading the warehouse still works
    result = liqheat_sql(home, cwd, "SELECT count(*) AS n FROM klines", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["n", "5760"]


def test_reading_other_files_needs_allow_files(homes: tuple[Path, Path, Path]) -> None:
    db, out, cwd = homes
    other = out / "other.csv"
    other.write_text("a,b\n1,2\n3,4\n")
    query = f"SELECT sum(a + b) AS s FROM read_csv('{other}')"
    refused = liqheat_sql(db.parent, cwd, query, "--format", "csv")
    assert refused.returncode == 1
    assert "add --allow-files" in refused.stderr
    assert refused.stderr.count("\n") == 1
    allowed = liqheat_sql(db.parent, cwd, query, "--format", "csv", "--allow-files")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.splitlines() == ["s", "10"]
    # --allow-files reads files; it still cannot write them or change settings
    for statement in (f"COPY klines TO '{out / 'k.csv'}'", f"SET log_query_path='{db}'"):
        result = liqheat_sql(db.parent, cwd, statement, "--allow-files")
        assert result.returncode == 1
        assert "read-only" in result.stderr
    assert not (out / "k.csv").exists()


def test_output_file_is_the_only_file_written(homes: tuple[Path, Path, Path]) -> None:
    db, out, cwd = homes
    target = out / "sub" / "klines.parquet"
    before = tree(db.parent, out, cwd)
    result = liqheat_sql(
        db.parent,
        cwd,
        "SELECT * FROM klines LIMIT 10",
        "--format",
        "parquet",
        "--output",
        str(target),
    )
    assert result.returncode == 0, result.stderr
    assert tree(db.parent, out, cwd) - before == {target.parent, target}
