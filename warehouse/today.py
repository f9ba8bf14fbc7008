"""Writes and reads of the REST top-up: rows of ``origin = 'rest'`` on days not yet archived.

The rules (migration 0012):

- the top-up writes a day only while it has no archive rows in that table
  (:func:`archived_days`); it replaces its own rows of that day (``origin = 'rest'``) and logs
  the pull in ``ingest_log`` under ``rest-<table>`` in the same transaction
  (:func:`write_rest_day`);
- the archive loader replaces every row of its day whatever the origin, so the archive wins;
  :func:`drop_rest_day` removes what is left of a day the archive now covers (e.g. Bybit and OKX
  mark bars, which have no archive) and notes ``replaced by the archive day`` in the ledger;
- a failed pull only logs ``failed`` (:func:`log_rest_failure`): no row is touched.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from warehouse.db import read_connection, write_connection
from warehouse.writes import WRITE_LOCK, in_transaction, log_ingest, replace_rows

#: the tables the top-up writes
REST_TABLES = ("klines", "mark_klines", "open_interest")
REST = "rest"
ARCHIVE = "archive"
REPLACED = "replaced by the archive day"


def rest_dataset(table: str) -> str:
    """The ``ingest_log`` dataset of the top-up of ``table``.

    Examples
    --------
    >>> rest_dataset("mark_klines")
    'rest-mark_klines'
    """
    return f"{REST}-{table}"


def _check(table: str) -> None:
    if table not in REST_TABLES:
        raise ValueError(f"the top-up writes {', '.join(REST_TABLES)}, not {table!r}")


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day)
    return start, start + timedelta(days=1)


def archived_days(
    db_path: Path, table: str, exchange: str, symbol: str, days: list[date]
) -> set[date]:
    """Return the ``days`` on which ``table`` holds archive rows of (exchange, symbol)."""
    _check(table)
    if not days or not db_path.exists():
        return set()
    first, _ = _bounds(min(days))
    _, last = _bounds(max(days))
    with read_connection(db_path) as con:
        # a lone midnight row does not make a day: a metrics file of the old label convention
        # (00:05 .. 00:00 of the next day) ends on the next day's midnight
        rows = con.execute(
            f"SELECT DISTINCT CAST(ts AS DATE) FROM {table} WHERE exchange = ? AND symbol = ? "
            "AND ts >= ? AND ts < ? AND ts > date_trunc('day', ts) "
            "AND origin IS DISTINCT FROM ?",
            [exchange, symbol, first, last, REST],
        ).fetchall()
    return {r[0] for r in rows} & set(days)


def write_rest_day(
    db_path: Path,
    table: str,
    exchange: str,
    symbol: str,
    day: date,
    frame: pl.DataFrame,
    *,
    sha256: str,
    url: str,
    note: str | None = None,
) -> int:
    """Replace the ``rest`` rows of one day with ``frame`` and log the pull, in one
    transaction; return the rows written. Archive rows of the day are never touched (the
    caller writes only days without them), and no row is written at a time an archive row
    already holds."""
    _check(table)
    keys = {"exchange": exchange, "symbol": symbol, "ts": _bounds(day), "origin": REST}
    rows = frame.drop("exchange", "symbol", "origin", strict=False).with_columns(
        pl.lit(exchange).alias("exchange"),
        pl.lit(symbol).alias("symbol"),
        pl.lit(REST).alias("origin"),
    )
    start, end = _bounds(day)
    with WRITE_LOCK, write_connection(db_path) as con, in_transaction(con):
        # never a second row beside an archive row of the same time (e.g. the midnight
        # sample an archive metrics file of the day before carries)
        taken = con.execute(
            f"SELECT ts FROM {table} WHERE exchange = ? AND symbol = ? AND ts >= ? "
            "AND ts < ? AND origin IS DISTINCT FROM ?",
            [exchange, symbol, start, end, REST],
        ).fetchall()
        if taken:
            held = pl.Series([r[0] for r in taken], dtype=pl.Datetime("us")).implode()
            naive = pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            rows = rows.filter(~naive.is_in(held))
        written = replace_rows(con, table, keys, rows)
        log_ingest(
            con,
            exchange=exchange,
            dataset=rest_dataset(table),
            symbol=symbol,
            day=day,
            status="loaded",
            rows=written,
            sha256=sha256,
            error=note,
            source_url=url,
        )
    return written


def drop_rest_day(db_path: Path, table: str, exchange: str, symbol: str, day: date) -> int:
    """Delete the ``rest`` rows of a day the archive now covers; mark its ledger row
    :data:`REPLACED` (rows 0). Return the rows deleted."""
    _check(table)
    start, end = _bounds(day)
    with WRITE_LOCK, write_connection(db_path) as con, in_transaction(con):
        deleted = con.execute(
            f"DELETE FROM {table} WHERE exchange = ? AND symbol = ? AND ts >= ? AND ts < ? "
            "AND origin = ?",
            [exchange, symbol, start, end, REST],
        ).fetchall()
        con.execute(
            "UPDATE ingest_log SET rows = 0, error = ?, loaded_at = ? WHERE exchange = ? "
            "AND dataset = ? AND symbol = ? AND day = ? AND error IS DISTINCT FROM ?",
            [
                REPLACED,
                datetime.now(UTC).replace(tzinfo=None),
                exchange,
                rest_dataset(table),
                symbol,
                day,
                REPLACED,
            ],
        )
    return int(deleted[0][0]) if deleted else 0


def log_rest_failure(
    db_path: Path,
    table: str,
    exchange: str,
    symbol: str,
    day: date,
    *,
    reason: str,
    url: str | None,
) -> None:
    """Log a failed pull of one day; its rows (archive or earlier top-ups) stay as they are."""
    _check(table)
    with WRITE_LOCK, write_connection(db_path) as con:
        log_ingest(
            con,
            exchange=exchange,
            dataset=rest_dataset(table),
            symbol=symbol,
            day=day,
            status="failed",
            error=reason,
            source_url=url,
        )


def origin_counts(db_path: Path, table: str, exchange: str, symbol: str) -> dict[str, int]:
    """Return ``{origin: rows}`` of ``table`` for (exchange, symbol) (lineage at a glance).

    Examples
    --------
    >>> origin_counts(db, "klines", "binance", "BTCUSDT")  # doctest: +SKIP
    {'archive': 4320, 'rest': 545}
    """
    _check(table)
    with read_connection(db_path) as con:
        rows = con.execute(
            f"SELECT origin, count(*) FROM {table} WHERE exchange = ? AND symbol = ? "
            "GROUP BY origin ORDER BY origin",
            [exchange, symbol],
        ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
