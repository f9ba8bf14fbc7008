"""Issue 14 item 6: a truncated warehouse is refused when it is opened (every command, in
milliseconds: no data is read), while healthy files open in every state DuckDB leaves them in:
freshly created, freshly checkpointed, after big deletes + CHECKPOINT (DuckDB trims the free
tail blocks, so the file is shorter than its header's block count), with a pending WAL."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from tests.cli import liqheat, one_error_line, sha
from warehouse.db import (
    CorruptDatabaseError,
    migrate,
    read_connection,
    schema_version,
    write_connection,
)

HEADER_BYTES = 3 * 4096
BIG_TABLES = ("klines", "mark_klines", "predicted_liquidations", "heatmap_cells")


def header_blocks(db: Path) -> tuple[int, int, int]:
    """(block_size, total_blocks, free_blocks) as the file's header says."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()"
        ).fetchall()[0]
    finally:
        con.close()
    return int(row[0]), int(row[1]), int(row[2])


def opens(db: Path) -> None:
    """Every kind of open the commands use succeeds, in a fresh process too."""
    with read_connection(db) as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] >= 1
    assert schema_version(db) >= 1
    with write_connection(db) as con:
        con.execute("SELECT count(*) FROM klines").fetchall()
    result = liqheat(db.parent, "sql", "SELECT count(*) AS n FROM klines", "--format", "csv")
    assert result.returncode == 0, result.stderr


def delete_most_and_checkpoint(db: Path) -> None:
    con = duckdb.connect(str(db))
    try:
        for table in BIG_TABLES:
            con.execute(f"DELETE FROM {table}")
        con.execute("CHECKPOINT")
    finally:
        con.close()


@pytest.fixture
def trimmed_db(warehouse_db: Path) -> Path:
    """The test warehouse after big deletes + CHECKPOINT: the free tail blocks are trimmed off
    the file, but the header still counts them (what made a plain length check misfire)."""
    delete_most_and_checkpoint(warehouse_db)
    block_size, total, free = header_blocks(warehouse_db)
    assert free > 0
    assert warehouse_db.stat().st_size < HEADER_BYTES + total * block_size
    return warehouse_db


def test_healthy_fresh_warehouse_opens(tmp_path: Path) -> None:
    db = tmp_path / "home" / "liqheat.duckdb"
    migrate(db)
    opens(db)


def test_healthy_checkpointed_warehouse_opens(warehouse_db: Path) -> None:
    opens(warehouse_db)


def test_healthy_trimmed_warehouse_opens(trimmed_db: Path) -> None:
    opens(trimmed_db)


def test_healthy_warehouse_with_a_pending_wal_opens(trimmed_db: Path) -> None:
    con = duckdb.connect(str(trimmed_db))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("SET checkpoint_threshold = '10GB'")
    con.execute(
        "INSERT INTO realized_liquidations SELECT * FROM realized_liquidations "
        "UNION ALL SELECT * FROM realized_liquidations"
    )
    con.close()
    wal = trimmed_db.with_name(trimmed_db.name + ".wal")
    assert wal.exists()
    assert wal.stat().st_size > 0
    opens(trimmed_db)


@pytest.mark.parametrize("command", ["ingest", "report", "sql"])
def test_a_truncated_warehouse_refuses_every_command(warehouse_db: Path, command: str) -> None:
    args = {
        "ingest": (
            "ingest",
            "--symbol",
            "BTCUSDT",
            "--start",
            "2026-06-08",
            "--end",
            "2026-06-08",
            "--base-url",
            "file:///nonexistent-mirror",
        ),
        "report": ("report",),
        "sql": ("sql", "SELECT 1"),
    }[command]
    os.truncate(warehouse_db, warehouse_db.stat().st_size // 2)
    before = sha(warehouse_db)
    result = liqheat(warehouse_db.parent, *args)
    assert result.returncode != 0
    line = one_error_line(result)
    assert f"corrupt database {warehouse_db}" in line
    assert "restore it from a backup or remove it (`liqheat doctor`" in line
    assert sha(warehouse_db) == before  # never written to
    assert not (warehouse_db.parent / "site").exists()


def test_a_truncated_trimmed_warehouse_is_refused(trimmed_db: Path) -> None:
    os.truncate(trimmed_db, HEADER_BYTES + (trimmed_db.stat().st_size - HEADER_BYTES) // 2)
    with pytest.raises(CorruptDatabaseError, match="corrupt database"), read_connection(trimmed_db):
        pass
    with (
        pytest.raises(CorruptDatabaseError, match="corrupt database"),
        write_connection(trimmed_db),
    ):
        pass


def test_a_file_cut_after_this_process_wrote_it_is_refused(warehouse_db: Path) -> None:
    # a file this process wrote is not checked again on the next open, unless it changed
    with write_connection(warehouse_db) as con:
        con.execute("DELETE FROM ingest_log WHERE false")
    with read_connection(warehouse_db):
        pass
    os.truncate(warehouse_db, warehouse_db.stat().st_size // 2)
    with pytest.raises(CorruptDatabaseError, match="truncated"), read_connection(warehouse_db):
        pass
