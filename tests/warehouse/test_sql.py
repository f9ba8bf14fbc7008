"""``run_sql`` and the interactive prompt on a real DuckDB file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from warehouse.reads import query
from warehouse.sql import interactive, read_statements, run_sql


class Captured:
    """run_sql with captured stdout/stderr consoles."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.out = io.StringIO()
        self.err = io.StringIO()

    def __call__(self, sql: str, **kwargs: object) -> int:
        self.out.seek(0)
        self.out.truncate()
        self.err.seek(0)
        self.err.truncate()
        return run_sql(
            self.db,
            sql,
            console=Console(file=self.out, width=100),
            err_console=Console(file=self.err, width=60),
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def sql(warehouse_db: Path) -> Captured:
    return Captured(warehouse_db)


def test_table_output(sql: Captured) -> None:
    code = sql("SELECT symbol, count(*) AS bars FROM klines GROUP BY 1 ORDER BY 1")
    assert code == 0, sql.err.getvalue()
    text = sql.out.getvalue()
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert lines[0] == ["symbol", "bars"]
    assert lines[1] == ["varchar", "bigint"]
    assert ["BTCUSDT", "2880"] in lines
    assert ["ETHUSDT", "2880"] in lines
    assert text.rstrip().endswith("2 rows")
    assert sql.err.getvalue() == ""


def test_wide_table_is_not_folded(sql: Captured) -> None:
    assert sql("SELECT * FROM v_backtest LIMIT 1") == 0
    lines = sql.out.getvalue().splitlines()
    assert len(lines) == 5  # header, types, rule, one row, row count: nothing wrapped
    assert len(lines[0]) > 100


def test_table_output_is_cut_at_max_rows(sql: Captured) -> None:
    assert sql("SELECT * FROM range(50)", max_rows=10) == 0
    text = sql.out.getvalue()
    assert "10 rows (more rows not shown" in text
    assert " 9\n" in text
    assert " 10\n" not in text


def test_csv_to_stdout_matches_the_warehouse(sql: Captured, warehouse_db: Path) -> None:
    q = "SELECT symbol, side, rank, price FROM v_latest_key_levels ORDER BY 1, 2, 3"
    assert sql(q, fmt="csv") == 0
    rows = list(csv.DictReader(io.StringIO(sql.out.getvalue())))
    expected = query(warehouse_db, q)
    assert [r["symbol"] for r in rows] == expected["symbol"].to_list()
    assert [float(r["price"]) for r in rows] == expected["price"].to_list()


def test_json_handles_every_type(sql: Captured) -> None:
    q = (
        "SELECT TIMESTAMP '2026-06-08 00:01:00' AS ts, DATE '2026-06-08' AS d, 1.5::DECIMAL(6,2) "
        "AS dec, [1, 2] AS l, {'a': 1} AS s, NULL AS n, INTERVAL 1 HOUR AS iv, 2.5 AS f"
    )
    assert sql(q, fmt="json") == 0, sql.err.getvalue()
    assert json.loads(sql.out.getvalue()) == [
        {
            "ts": "2026-06-08T00:01:00",
            "d": "2026-06-08",
            "dec": 1.5,
            "l": [1, 2],
            "s": {"a": 1},
            "n": None,
            "iv": "1:00:00",
            "f": 2.5,
        }
    ]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_output_files(sql: Captured, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "sub" / f"result.{fmt}"
    q = "SELECT symbol, ts, close FROM klines WHERE symbol = 'ETHUSDT' ORDER BY ts"
    assert sql(q, fmt=fmt, output=out) == 0, sql.err.getvalue()
    assert sql.out.getvalue() == ""
    frame = {"csv": pl.read_csv, "json": pl.read_json, "parquet": pl.read_parquet}[fmt](out)
    assert frame.height == 2880
    assert frame.columns == ["symbol", "ts", "close"]
    expected = query(sql.db, q)["close"].to_list()
    assert frame["close"].to_list() == pytest.approx(expected, rel=1e-12)


def test_parquet_needs_output(sql: Captured) -> None:
    assert sql("SELECT 1", fmt="parquet") == 1
    assert sql.err.getvalue() == "liqheat: error: --format parquet needs --output FILE\n"


def test_unknown_format(sql: Captured) -> None:
    assert sql("SELECT 1", fmt="xml") == 1
    assert "unknown format 'xml'" in sql.err.getvalue()


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("DELETE FROM klines", "DELETE"),
        ("INSERT INTO klines (exchange, symbol, ts) VALUES ('x', 'y', now())", "INSERT"),
        ("UPDATE klines SET close = 0", "UPDATE"),
        ("DROP TABLE klines", "DROP"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("ALTER TABLE klines ADD COLUMN x INT", "ALTER"),
        ("COPY klines TO 'x.csv'", "COPY"),
        ("ATTACH 'other.duckdb' AS o", "ATTACH"),
        ("SELECT 1; DELETE FROM klines", "DELETE"),
        ("SET threads = 1", "SET"),
        ("PRAGMA show_tables", "PRAGMA"),
        ("CALL duckdb_tables()", "CALL"),
        ("CHECKPOINT", "CALL"),
        ("UPDATE EXTENSIONS", "this kind of"),
    ],
)
def test_writes_are_refused_up_front(sql: Captured, statement: str, kind: str) -> None:
    before = query(sql.db, "SELECT count(*) AS n FROM klines")["n"][0]
    assert sql(statement) == 1
    message = sql.err.getvalue()
    assert message.startswith(
        f"liqheat: error: liqheat sql is read-only: {kind} statements are refused"
    )
    assert message.count("\n") == 1
    assert sql.out.getvalue() == ""  # nothing ran, not even the SELECT before it
    assert query(sql.db, "SELECT count(*) AS n FROM klines")["n"][0] == before


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("SELECT * FROM no_such_table", "Catalog Error: Table with name no_such_table does not"),
        ("SELEC 1", 'Parser Error: syntax error at or near "SELEC"'),
        ("SELECT nope FROM klines", 'Binder Error: Referenced column "nope" not found'),
        ("SELECT error('boom')", "Invalid Input Error: boom"),
        ("SELECT 1/0::INT AS x, 'a'::INT", "Conversion Error"),
    ],
)
def test_sql_errors_are_duckdbs_message_on_one_line(
    sql: Captured, statement: str, message: str
) -> None:
    assert sql(statement) == 1
    err = sql.err.getvalue()
    assert err.startswith(f"liqheat: error: {message}"), err
    assert err.count("\n") == 1  # one line even on a 60-column console
    assert "Traceback" not in err
    assert "LINE 1" not in err


def test_empty_query(sql: Captured) -> None:
    assert sql("  ;  ") == 1
    assert sql.err.getvalue() == "liqheat: error: no SQL statement given\n"


def test_several_statements_print_several_tables(sql: Captured) -> None:
    assert sql("SELECT 1 AS a; SELECT 2 AS b") == 0
    text = sql.out.getvalue()
    assert text.count("1 row") == 2
    assert text.index(" a") < text.index(" b")


def test_read_statements_of_every_allowed_kind_run(sql: Captured) -> None:
    for statement in (
        "DESCRIBE klines",
        "SHOW TABLES",
        "SHOW ALL TABLES",
        "SUMMARIZE SELECT close FROM klines",
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT count(*) FROM klines",
        "WITH k AS (SELECT * FROM klines) SELECT count(*) FROM k",
        "FROM klines LIMIT 1",
        "VALUES (1), (2)",
        "PIVOT (SELECT symbol, close FROM klines) ON symbol IN ('BTCUSDT', 'ETHUSDT') "
        "USING max(close)",
    ):
        assert sql(statement) == 0, (statement, sql.err.getvalue())


@pytest.mark.parametrize(
    "statement",
    ["EXPLAIN DELETE FROM klines", "EXPLAIN ANALYZE COPY klines TO 'x.csv'", "EXPLAIN SET a = 1"],
)
def test_explain_only_explains_queries(sql: Captured, statement: str) -> None:
    assert sql(statement) == 1
    assert "EXPLAIN is allowed only for a query" in sql.err.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                ("SELECT 1", True),
                ("FROM klines LIMIT 1", True),
                ("DESCRIBE klines", True),
                ("SET threads = 1", False),
                ("CALL duckdb_tables()", False),
                ("PRAGMA enable_profiling", False),
                ("DELETE FROM klines", False),
                ("INSERT INTO klines SELECT * FROM klines", False),
                ("CREATE VIEW v AS SELECT 1", False),
                ("DROP VIEW v_backtest", False),
                ("CHECKPOINT", False),
                ("SUMMARIZE klines", True),
                ("EXPLAIN SELECT 1", True),
                ("VACUUM", False),
                ("INSTALL httpfs", False),
                ("EXPORT DATABASE 'x'", False),
            ]
        ),
        min_size=1,
        max_size=5,
    )
)
def test_read_statements_accepts_a_script_iff_every_statement_reads(
    script: list[tuple[str, bool]],
) -> None:
    text = ";\n".join(s for s, _ in script)
    if all(ok for _, ok in script):
        assert [t for _, t in read_statements(text)] == [s for s, _ in script]
    else:
        with pytest.raises(Exception, match="liqheat sql is read-only"):
            read_statements(text)


def feed(lines: list[str]) -> Iterator[str]:
    yield from lines


def test_interactive_session(warehouse_db: Path) -> None:
    lines = feed(
        [
            ".tables",
            ".schema key_levels",
            "SELECT symbol, count(*) AS n",
            "FROM klines",
            "GROUP BY 1 ORDER BY 1;",
            "DELETE FROM klines;",
            ".schema bad-name",
            ".nope",
            "",
            ".quit",
            "SELECT 'never reached';",
        ]
    )
    prompts: list[str] = []

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        return next(lines)

    out = io.StringIO()
    assert interactive(warehouse_db, Console(file=out, width=200), input_fn=fake_input) == 0
    text = out.getvalue()
    assert "v_latest_key_levels" in text
    assert "Strongest long/short clusters" in text
    assert "distance_pct" in text
    assert "Signed distance from the price at as_of" in text
    assert "BTCUSDT" in text
    assert "2880" in text
    assert "liqheat sql is read-only: DELETE statements are refused" in text
    assert "liqheat: error: usage: .schema TABLE_OR_VIEW" in text
    assert "unknown command .nope" in text
    assert "never reached" not in text
    # continuation prompts while a statement is unfinished
    assert prompts[2:5] == ["liqheat> ", "   ...> ", "   ...> "]
    assert query(warehouse_db, "SELECT count(*) AS n FROM klines")["n"][0] == 4 * 1440


def test_interactive_ends_on_eof(warehouse_db: Path) -> None:
    def eof(prompt: str) -> str:
        raise EOFError

    out = io.StringIO()
    assert interactive(warehouse_db, Console(file=out), input_fn=eof) == 0


def test_dot_commands_work_one_shot(sql: Captured) -> None:
    assert sql(".schema klines") == 0, sql.err.getvalue()
    assert "taker_buy_volume" in sql.out.getvalue()
    assert sql(".tables") == 0
    assert "v_latest_key_levels" in sql.out.getvalue()
    assert sql(".help") == 0
    assert ".schema T" in sql.out.getvalue()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (".schema nope", "liqheat: error: no table or view named 'nope' (see .tables)\n"),
        (".schema", "liqheat: error: usage: .schema TABLE_OR_VIEW\n"),
        (".frob", "liqheat: error: unknown command .frob; try .help\n"),
    ],
)
def test_bad_dot_commands_are_one_line(sql: Captured, command: str, message: str) -> None:
    assert sql(command) == 1
    assert sql.err.getvalue() == message
    assert sql.out.getvalue() == ""
