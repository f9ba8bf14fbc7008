"""The README's queries run as written: every ```sql block between the README markers
``<!-- queries:start -->`` and ``<!-- queries:end -->`` (docs/querying.md while the README lacks
them) goes through ``run_sql`` and must return at least one row, on the real demo database
(``demo_home`` from tests/conftest.py) and on the small test warehouse."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from warehouse.sql import run_sql

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- queries:start -->", "<!-- queries:end -->"
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)


def documented_queries() -> tuple[str, list[str]]:
    """Return (source, queries): the README region if it holds sql blocks, else the doc."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if START in readme and END in readme:
        region = readme.split(START, 1)[1].split(END, 1)[0]
        blocks = SQL_BLOCK.findall(region)
        if blocks:
            return "README.md", blocks
    return "docs/querying.md", SQL_BLOCK.findall(
        (ROOT / "docs" / "querying.md").read_text(encoding="utf-8")
    )


SOURCE, QUERIES = documented_queries()


def run_documented(db: Path, sql: str) -> list[dict[str, object]]:
    out, err = io.StringIO(), io.StringIO()
    code = run_sql(
        db, sql, fmt="json", console=Console(file=out), err_console=Console(file=err, width=200)
    )
    assert code == 0, f"{SOURCE} query failed: {err.getvalue()}\n{sql}"
    rows: list[dict[str, object]] = json.loads(out.getvalue())
    return rows


def test_there_are_five_documented_queries() -> None:
    assert len(QUERIES) == 5, SOURCE


def test_region_markers_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index(START) < readme.index(END)


@pytest.mark.parametrize("number", range(len(QUERIES)))
def test_query_runs_on_the_test_warehouse(warehouse_template: Path, number: int) -> None:
    rows = run_documented(warehouse_template, QUERIES[number])
    assert rows, f"query {number + 1} of {SOURCE} returned no rows"


@pytest.mark.slow
@pytest.mark.parametrize("number", range(len(QUERIES)))
def test_query_runs_on_the_demo_database(demo_home: Path, number: int) -> None:
    db = demo_home / "liqheat.duckdb"
    if not db.exists():  # LIQHEAT_HOME layouts that keep the file under data/
        db = demo_home / "data" / "liqheat.duckdb"
    rows = run_documented(db, QUERIES[number])
    assert rows, f"query {number + 1} of {SOURCE} returned no rows on the demo database"
