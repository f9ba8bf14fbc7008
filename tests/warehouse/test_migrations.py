"""Migrations: fresh home, forward migration of an old file, refusal of a newer one,
comments on everything, and docs/schema.md in sync with the live catalog."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from warehouse.db import (
    NoWarehouseError,
    SchemaTooNewError,
    latest_version,
    migrate,
    migrations,
    read_connection,
    schema_version,
    write_connection,
)
from warehouse.reads import query
from warehouse.schema_doc import REGENERATE, fresh_schema_markdown, schema_markdown
from warehouse.sql import run_sql

ROOT = Path(__file__).resolve().parents[2]
VIEWS = {
    "v_latest_run",
    "v_latest_price",
    "v_latest_key_levels",
    "v_latest_liquidation_map",
    "v_heatmap_daily",
    "v_ingest_gaps",
    "v_coverage",
    "v_backtest",
}


def make_v1_database(db: Path) -> None:
    """A database as liqheat version 1 left it: only 0001 applied, with some data."""
    version, name, sql = migrations()[0]
    assert version == 1
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE schema_version ("
        "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [1, name, datetime(2026, 1, 1)])
    con.execute(
        "INSERT INTO klines (exchange, symbol, ts, close) VALUES "
        "('binance', 'BTCUSDT', TIMESTAMP '2026-01-01 00:00:00', 90000.0)"
    )
    con.close()


def test_a_read_never_creates_the_warehouse(tmp_path: Path) -> None:
    db = tmp_path / "brand" / "new" / "liqheat.duckdb"
    expected = r"no warehouse at .*brand/new/liqheat.duckdb"
    with pytest.raises(NoWarehouseError, match=expected), read_connection(db):
        pass
    assert not (tmp_path / "brand").exists()


def test_fresh_home_is_created_on_first_write(tmp_path: Path) -> None:
    db = tmp_path / "home" / "liqheat.duckdb"
    with write_connection(db) as con:
        con.execute("INSERT INTO klines (exchange, symbol, ts) VALUES ('b', 'S', now())")
    assert query(db, "SELECT count(*) AS n FROM klines")["n"][0] == 1


def test_old_database_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    make_v1_database(db)
    assert schema_version(db) == 1
    # a plain read brings it forward (one short write) and then answers
    frame = query(db, "SELECT symbol, close FROM v_latest_price")
    assert frame.rows() == [("BTCUSDT", 90000.0)]
    assert schema_version(db) == latest_version() >= 2
    versions = query(db, "SELECT version, name FROM schema_version ORDER BY version")
    assert versions.rows() == [(v, n) for v, n, _ in migrations()]


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    assert migrate(db) == migrate(db) == latest_version()
    rows = query(db, "SELECT count(*) AS n FROM schema_version")["n"][0]
    assert rows == len(migrations())  # one row per migration (numbers may have gaps)


def test_newer_database_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    too_new = latest_version() + 1
    con = duckdb.connect(str(db))
    con.execute(
        "INSERT INTO schema_version VALUES (?, 'from_the_future', ?)", [too_new, datetime.now(UTC)]
    )
    con.close()
    expected = rf"schema version {too_new}, newer than this liqheat understands"
    with pytest.raises(SchemaTooNewError, match=expected):
        migrate(db)
    with pytest.raises(SchemaTooNewError, match=expected), write_connection(db):
        pass
    with pytest.raises(SchemaTooNewError, match=expected), read_connection(db):
        pass
    err = io.StringIO()
    code = run_sql(
        db, "SELECT 1", console=Console(file=io.StringIO()), err_console=Console(file=err)
    )
    assert code == 1
    assert err.getvalue().count("\n") == 1
    assert "newer than this liqheat" in err.getvalue()


def test_failed_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "liqheat.duckdb"
    make_v1_database(db)
    broken = [*migrations()[:1], (2, "broken", "CREATE VIEW v_ok AS SELECT 1; SELEC broken;")]
    monkeypatch.setattr("warehouse.db.migrations", lambda: broken)
    with pytest.raises(duckdb.Error):
        migrate(db)
    monkeypatch.undo()
    con = duckdb.connect(str(db), read_only=True)
    assert con.sql("SELECT max(version) FROM schema_version").fetchall() == [(1,)]
    assert con.sql("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_ok'").fetchall() == [
        (0,)
    ]
    con.close()


def test_every_table_view_and_column_is_documented(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    with read_connection(db) as con:
        undocumented = con.sql(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE NOT internal AND schema_name = 'main' AND (comment IS NULL OR comment = '')"
        ).fetchall()
        tables = con.sql(
            "SELECT table_name, comment FROM duckdb_tables() WHERE NOT internal"
        ).fetchall()
        views = dict(
            con.sql("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall()
        )
    assert undocumented == []
    assert len(tables) >= 15
    assert all(comment for _, comment in tables)
    assert set(views) >= VIEWS
    assert all(views.values())


def test_docs_schema_md_matches_the_live_catalog() -> None:
    committed = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    generated = fresh_schema_markdown()
    assert generated == committed, f"docs/schema.md is stale: run `{REGENERATE}`"


def test_schema_markdown_describes_tables_columns_and_views(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    text = schema_markdown(db)
    assert "### klines\n\nTrade-price bars: 1-minute bars" in text
    assert "| `ts` | TIMESTAMP | not null | Bar open time (UTC). |" in text
    assert "Primary key: `exchange`, `dataset`, `symbol`, `day`." in text
    for view in VIEWS:
        assert f"### {view}\n" in text
    assert text.index("## Tables") < text.index("### klines") < text.index("## Views")


def test_fine_cell_tables_are_keyed_like_the_heatmap_cells(tmp_path: Path) -> None:
    """0013: heatmap_fine_cells and heatmap_fine_band_cells have the columns of heatmap_cells
    and heatmap_band_cells, with comments, on a fresh file and on one migrated from version 1."""
    for db in (tmp_path / "fresh.duckdb", tmp_path / "old.duckdb"):
        if db.name == "old.duckdb":
            make_v1_database(db)
        migrate(db)
        cols = query(
            db,
            "SELECT table_name AS t, list(column_name ORDER BY column_index) AS c, "
            "bool_and(comment IS NOT NULL) AS commented FROM duckdb_columns() "
            "WHERE table_name LIKE 'heatmap_%cells' GROUP BY ALL",
        )
        by_table = {t: (c, ok) for t, c, ok in cols.iter_rows()}
        assert by_table["heatmap_fine_cells"][0] == by_table["heatmap_cells"][0]
        assert by_table["heatmap_fine_band_cells"][0] == by_table["heatmap_band_cells"][0]
        assert by_table["heatmap_fine_cells"][1]
        assert by_table["heatmap_fine_band_cells"][1]
