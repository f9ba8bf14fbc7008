"""All writes to the warehouse. Every write replaces a partition in one transaction.

Re-running anything for the same keys replaces, never duplicates: the rows matching the
partition keys are deleted and the new rows inserted in a single transaction, so a crash
leaves the previous state.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from warehouse.db import rollback, write_connection

#: tables that may be written through :func:`replace_partition`
WRITABLE_TABLES = frozenset(
    {
        "klines",
        "mark_klines",
        "open_interest",
        "funding_rates",
        "trade_profile",
        "realized_liquidations",
        "model_runs",
        "liq_levels",
        "heatmap_cells",
        "liquidation_map",
        "key_levels",
        "predicted_liquidations",
        "backtest_scores",
        "runs",
    }
)

#: one writer per process: threads of one process (Prefect's thread pool) take turns here,
#: and the database file lock keeps other processes out while a transaction runs
WRITE_LOCK = threading.RLock()

#: ingest outcomes
INGEST_STATUSES = ("loaded", "missing", "failed")


def _naive_utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Convert tz-aware datetime columns to naive UTC (the warehouse stores naive UTC)."""
    exprs = [
        pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    ]
    return frame.with_columns(exprs) if exprs else frame


def _where(keys: Mapping[str, Any]) -> tuple[str, list[Any]]:
    if not keys:
        raise ValueError("a partition needs at least one key")
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in keys.items():
        if not column.isidentifier():
            raise ValueError(f"bad column name {column!r}")
        if isinstance(value, tuple) and len(value) == 2:
            # half-open time range [start, end)
            clauses.append(f'"{column}" >= ? AND "{column}" < ?')
            params.extend(_param(v) for v in value)
        else:
            clauses.append(f'"{column}" = ?')
            params.append(_param(value))
    return " AND ".join(clauses), params


def _param(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    keys: Mapping[str, Any],
    frame: pl.DataFrame,
) -> int:
    """Delete the rows of ``table`` matching ``keys`` and insert ``frame``, in the caller's
    transaction. Return the number of rows inserted.

    ``keys`` maps column -> value; a 2-tuple value means the half-open range ``[a, b)``.
    """
    if table not in WRITABLE_TABLES:
        raise ValueError(f"unknown table {table!r}")
    where, params = _where(keys)
    con.execute(f"DELETE FROM {table} WHERE {where}", params)
    if frame.height:
        staged = _naive_utc(frame)
        con.register("_liqheat_staged", staged)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _liqheat_staged")
        finally:
            con.unregister("_liqheat_staged")
    return frame.height


def replace_partition(
    db_path: Path,
    table: str,
    keys: Mapping[str, Any],
    frame: pl.DataFrame,
) -> int:
    """Replace one partition of ``table`` in its own transaction; return rows written.

    Examples
    --------
    >>> replace_partition(db, "klines", {"exchange": "binance", "symbol": "BTCUSDT",
    ...                   "ts": (day_start, day_end)}, frame)  # doctest: +SKIP
    1440
    """
    return replace_many(db_path, [(table, keys, frame)])


def replace_many(
    db_path: Path,
    parts: Sequence[tuple[str, Mapping[str, Any], pl.DataFrame]],
) -> int:
    """Replace several partitions (possibly of several tables) in one transaction."""
    total = 0
    with WRITE_LOCK, write_connection(db_path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for table, keys, frame in parts:
                total += replace_rows(con, table, keys, frame)
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
    return total


def log_ingest(
    con: duckdb.DuckDBPyConnection,
    *,
    exchange: str,
    dataset: str,
    symbol: str,
    day: date,
    status: str,
    rows: int | None = None,
    sha256: str | None = None,
    error: str | None = None,
    source_url: str | None = None,
) -> None:
    """Record the latest outcome for one (exchange, dataset, symbol, day) in ``ingest_log``."""
    if status not in INGEST_STATUSES:
        raise ValueError(f"bad ingest status {status!r}")
    con.execute(
        "INSERT OR REPLACE INTO ingest_log "
        "(exchange, dataset, symbol, day, status, rows, sha256, error, loaded_at, source_url) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            exchange,
            dataset,
            symbol,
            day,
            status,
            rows,
            sha256,
            error,
            datetime.now(UTC).replace(tzinfo=None),
            source_url,
        ],
    )


def write_ingest_result(
    db_path: Path,
    *,
    table: str | None,
    keys: Mapping[str, Any] | None,
    frame: pl.DataFrame | None,
    exchange: str,
    dataset: str,
    symbol: str,
    day: date,
    status: str,
    rows: int | None = None,
    sha256: str | None = None,
    error: str | None = None,
    source_url: str | None = None,
) -> None:
    """Replace one dataset-day (if loaded) and record its outcome, in one transaction.

    A failed or missing day leaves previously loaded rows untouched.
    """
    with WRITE_LOCK, write_connection(db_path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            if status == "loaded" and table is not None and keys is not None and frame is not None:
                replace_rows(con, table, keys, frame)
            log_ingest(
                con,
                exchange=exchange,
                dataset=dataset,
                symbol=symbol,
                day=day,
                status=status,
                rows=rows,
                sha256=sha256,
                error=error,
                source_url=source_url,
            )
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise


def write_model_outputs(
    db_path: Path,
    *,
    exchange: str,
    symbol: str,
    params_hash: str,
    run: pl.DataFrame,
    outputs: Mapping[str, pl.DataFrame],
) -> int:
    """Replace every stored model output of one (exchange, symbol, params_hash) in one
    transaction: the ``model_runs`` row and the frames in ``outputs`` (table name -> frame
    without the key columns). Return the rows written.

    Examples
    --------
    >>> write_model_outputs(db, exchange="binance", symbol="BTCUSDT", params_hash="ab12",
    ...                     run=run_row, outputs={"liq_levels": levels})  # doctest: +SKIP
    """
    keys = {"exchange": exchange, "symbol": symbol, "params_hash": params_hash}
    key_cols = [pl.lit(v).alias(k) for k, v in keys.items()]
    parts: list[tuple[str, Mapping[str, Any], pl.DataFrame]] = [
        ("model_runs", keys, run.with_columns(key_cols))
    ]
    for table, frame in outputs.items():
        parts.append((table, keys, frame.with_columns(key_cols)))
    return replace_many(db_path, parts)


@dataclass(frozen=True)
class IngestWrite:
    """One unit for :func:`write_ingest_results` (same fields as :func:`write_ingest_result`)."""

    exchange: str
    dataset: str
    symbol: str
    day: date
    status: str
    table: str | None = None
    keys: Mapping[str, Any] | None = None
    frame: pl.DataFrame | None = None
    rows: int | None = None
    sha256: str | None = None
    error: str | None = None
    source_url: str | None = None


def write_ingest_results(db_path: Path, units: Sequence[IngestWrite]) -> None:
    """Like :func:`write_ingest_result` for several units over one short connection (opening
    and checkpointing a DuckDB file costs more than writing a day). Each unit gets its own
    transaction: its rows are replaced (if loaded) and its outcome logged together.

    Examples
    --------
    >>> write_ingest_results(db, [IngestWrite("binance", "klines", "BTCUSDT", day, "loaded",
    ...     table="klines", keys=keys, frame=frame, rows=1440)])  # doctest: +SKIP
    """
    if not units:
        return
    with WRITE_LOCK, write_connection(db_path) as con:
        for unit in units:
            con.execute("BEGIN TRANSACTION")
            try:
                loaded = unit.status == "loaded"
                if loaded and unit.table and unit.keys is not None and unit.frame is not None:
                    replace_rows(con, unit.table, unit.keys, unit.frame)
                log_ingest(
                    con,
                    exchange=unit.exchange,
                    dataset=unit.dataset,
                    symbol=unit.symbol,
                    day=unit.day,
                    status=unit.status,
                    rows=unit.rows,
                    sha256=unit.sha256,
                    error=unit.error,
                    source_url=unit.source_url,
                )
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise


#: columns of the ``symbol_map`` table (migration 0004)
SYMBOL_MAP_COLUMNS = (
    "exchange",
    "symbol",
    "instrument",
    "base",
    "quote",
    "contract_size",
    "contract_unit",
)


def write_symbol_map(db_path: Path, frame: pl.DataFrame) -> int:
    """Replace every row of ``symbol_map`` with ``frame`` in one transaction; return rows.

    ``frame`` is usually :func:`flows.sources.symbols.symbol_map_frame`; it must have exactly
    the table's columns.

    Examples
    --------
    >>> write_symbol_map(db, symbol_map_frame())  # doctest: +SKIP
    24
    """
    if set(frame.columns) != set(SYMBOL_MAP_COLUMNS):
        raise ValueError(
            f"symbol map frame needs columns {', '.join(SYMBOL_MAP_COLUMNS)}; "
            f"got {', '.join(frame.columns)}"
        )
    with WRITE_LOCK, write_connection(db_path) as con:
        # registered outside the transaction: unregistering inside an aborted one would hide
        # the real error (e.g. a CHECK constraint) behind "transaction is aborted"
        con.register("_liqheat_symbol_map", frame.select(SYMBOL_MAP_COLUMNS))
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM symbol_map")
                con.execute("INSERT INTO symbol_map BY NAME SELECT * FROM _liqheat_symbol_map")
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        finally:
            con.unregister("_liqheat_symbol_map")
    return frame.height
