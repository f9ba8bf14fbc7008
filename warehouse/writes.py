"""All writes to the warehouse. Every write replaces a partition in one transaction.

Re-running anything for the same keys replaces, never duplicates: the rows matching the
partition keys are deleted and the new rows inserted in a single transaction, so a crash
leaves the previous state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
        "where_scores",
        "heatmap_band_cells",
        "liquidation_map_bands",
        "heatmap_fine_cells",
        "heatmap_fine_band_cells",
        "runs",
        "model_profiles",
        "alerts",
        "ingest_log",
    }
)

#: one writer per process: threads of one process (Prefect's thread pool) take turns here,
#: and the database file lock keeps other processes out while a transaction runs
WRITE_LOCK = threading.RLock()

#: ingest outcomes
INGEST_STATUSES = ("loaded", "missing", "failed")


@contextmanager
def in_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction on ``con``: BEGIN, the block, COMMIT; any error (or interrupt) inside
    the block rolls back (:func:`rollback`) and propagates.

    Examples
    --------
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE t (x INT)")
    >>> with in_transaction(con):
    ...     _ = con.execute("INSERT INTO t VALUES (1)")
    >>> try:
    ...     with in_transaction(con):
    ...         _ = con.execute("INSERT INTO t VALUES (2)")
    ...         raise KeyboardInterrupt
    ... except KeyboardInterrupt:
    ...     pass
    >>> con.execute("SELECT x FROM t").fetchall()
    [(1,)]
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


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
    with WRITE_LOCK, write_connection(db_path) as con, in_transaction(con):
        for table, keys, frame in parts:
            total += replace_rows(con, table, keys, frame)
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
    bar_seconds: int | None = None,
    complete: bool | None = None,
) -> None:
    """Record the latest outcome for one (exchange, dataset, symbol, day) in ``ingest_log``.

    ``complete`` (default: loaded and not flagged ``short file: ...`` by the parser) says
    whether the day has every row it should; ``bar_seconds`` is the bar size of an import."""
    if status not in INGEST_STATUSES:
        raise ValueError(f"bad ingest status {status!r}")
    if complete is None and status == "loaded":
        complete = "short file:" not in (error or "")
    con.execute(
        "INSERT OR REPLACE INTO ingest_log "
        "(exchange, dataset, symbol, day, status, rows, sha256, error, loaded_at, source_url, "
        "bar_seconds, complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            bar_seconds,
            complete,
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
    with WRITE_LOCK, write_connection(db_path) as con, in_transaction(con):
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


#: model outputs kept for the current run only: a new run of an (exchange, symbol) replaces
#: every older run's rows (whatever its params_hash), so the warehouse holds one run each
CURRENT_RUN_TABLES = frozenset(
    {
        "liq_levels",
        "heatmap_cells",
        "liquidation_map",
        "predicted_liquidations",
        # the site's leverage views (issue 13), where the schema has them
        "heatmap_band_cells",
        "liquidation_map_bands",
        # the 12h and 24h pages' finer price step (issue 20)
        "heatmap_fine_cells",
        "heatmap_fine_band_cells",
    }
)
#: model outputs whose history stays: a run replaces only its own snapshot(s) (the same
#: params_hash and ``as_of`` / scored window), so earlier nights remain queryable
HISTORY_KEYS: dict[str, tuple[str, ...]] = {
    "key_levels": ("as_of",),
    "backtest_scores": ("start_ts", "end_ts"),
    "where_scores": ("start_ts", "end_ts"),
}
#: deleting at least this many rows in one write is followed by a CHECKPOINT, which returns
#: the freed blocks to the file for reuse (DuckDB's VACUUM does not reclaim space)
CHECKPOINT_AFTER_ROWS = 100_000


def _delete_history_slots(
    con: duckdb.DuckDBPyConnection,
    table: str,
    keys: Mapping[str, Any],
    frame: pl.DataFrame,
    columns: Sequence[str],
) -> None:
    """Delete the rows of ``table`` under ``keys`` whose ``columns`` match a row of ``frame``."""
    where, params = _where(keys)
    slots = _naive_utc(frame.select(columns).unique())
    con.register("_liqheat_slots", slots)
    try:
        match = " AND ".join(f't."{c}" IS NOT DISTINCT FROM s."{c}"' for c in columns)
        con.execute(
            f"DELETE FROM {table} AS t WHERE {where} AND EXISTS "
            f"(SELECT 1 FROM _liqheat_slots AS s WHERE {match})",
            params,
        )
    finally:
        con.unregister("_liqheat_slots")


def write_model_outputs(
    db_path: Path,
    *,
    exchange: str,
    symbol: str,
    params_hash: str,
    run: pl.DataFrame,
    outputs: Mapping[str, pl.DataFrame],
) -> int:
    """Store one model run of one (exchange, symbol) in one transaction; return rows written.

    The ``model_runs`` row of ``params_hash`` is replaced (rows of other params stay: they
    describe the history below). Tables in :data:`CURRENT_RUN_TABLES` keep the current run
    only: every older row of the (exchange, symbol) is deleted, whatever its params. Tables in
    :data:`HISTORY_KEYS` (key levels, backtest and where-scores) keep their history: only rows of
    the same params and snapshot (``as_of`` / scored window) are replaced. ``outputs`` maps table
    name -> frame without the key columns. A large delete is followed by a ``CHECKPOINT``.

    Examples
    --------
    >>> write_model_outputs(db, exchange="binance", symbol="BTCUSDT", params_hash="ab12",
    ...                     run=run_row, outputs={"liq_levels": levels})  # doctest: +SKIP
    """
    keys = {"exchange": exchange, "symbol": symbol, "params_hash": params_hash}
    pair = {"exchange": exchange, "symbol": symbol}
    key_cols = [pl.lit(v).alias(k) for k, v in keys.items()]
    total = 0
    deleted = 0
    with WRITE_LOCK, write_connection(db_path) as con:
        with in_transaction(con):
            total += replace_rows(con, "model_runs", keys, run.with_columns(key_cols))
            existing = {
                str(r[0])
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
                ).fetchall()
            }
            for table in sorted(CURRENT_RUN_TABLES & existing):
                where, params = _where(pair)
                rows = con.execute(f"DELETE FROM {table} WHERE {where}", params).fetchall()
                deleted += int(rows[0][0]) if rows else 0
            for table, frame in outputs.items():
                if table not in WRITABLE_TABLES:
                    raise ValueError(f"unknown table {table!r}")
                history = HISTORY_KEYS.get(table)
                if history is not None:
                    if frame.height:
                        _delete_history_slots(con, table, keys, frame, history)
                elif table not in CURRENT_RUN_TABLES:
                    where, params = _where(keys)
                    con.execute(f"DELETE FROM {table} WHERE {where}", params)
                if frame.height:
                    con.register("_liqheat_staged", _naive_utc(frame.with_columns(key_cols)))
                    try:
                        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _liqheat_staged")
                    finally:
                        con.unregister("_liqheat_staged")
                total += frame.height
        if deleted >= CHECKPOINT_AFTER_ROWS:
            con.execute("CHECKPOINT")
    return total


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
            with in_transaction(con):
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

    A row whose ``contract_size`` is null in ``frame`` keeps the size read from the exchange
    earlier (:func:`write_contract_sizes`), if any.

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
            with in_transaction(con):
                # sizes read from an exchange (size_read_on set) survive a refresh whose frame
                # has no size for that row (migration 0006)
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _liqheat_read_sizes AS SELECT exchange, symbol, "
                    "contract_size, size_read_on FROM symbol_map WHERE size_read_on IS NOT NULL"
                )
                con.execute("DELETE FROM symbol_map")
                con.execute(
                    "INSERT INTO symbol_map BY NAME SELECT f.* EXCLUDE (contract_size), "
                    "coalesce(f.contract_size, r.contract_size) AS contract_size, "
                    "CASE WHEN f.contract_size IS NULL THEN r.size_read_on END AS size_read_on "
                    "FROM _liqheat_symbol_map AS f LEFT JOIN _liqheat_read_sizes AS r "
                    "USING (exchange, symbol)"
                )
                con.execute("DROP TABLE _liqheat_read_sizes")
        finally:
            con.unregister("_liqheat_symbol_map")
    return frame.height


def write_contract_sizes(db_path: Path, frame: pl.DataFrame) -> int:
    """Insert or replace ``symbol_map`` rows carrying contract sizes read from the exchanges.

    ``frame`` has the ``symbol_map`` columns plus ``size_read_on`` (usually
    :func:`flows.sources.symbols.contract_size_frame`); returns the rows written.

    Examples
    --------
    >>> write_contract_sizes(db, contract_size_frame(specs))  # doctest: +SKIP
    1
    """
    columns = (*SYMBOL_MAP_COLUMNS, "size_read_on")
    if set(frame.columns) != set(columns):
        raise ValueError(f"contract size frame needs columns {', '.join(columns)}")
    if frame.is_empty():
        return 0
    frame = frame.unique(subset=["exchange", "symbol"], keep="last", maintain_order=True)
    with WRITE_LOCK, write_connection(db_path) as con:
        con.register("_liqheat_contract_sizes", frame.select(columns))
        try:
            con.execute(
                "INSERT OR REPLACE INTO symbol_map BY NAME SELECT * FROM _liqheat_contract_sizes"
            )
        finally:
            con.unregister("_liqheat_contract_sizes")
    return frame.height


#: the alert columns a later run refreshes on a stored alert that is still true
ALERT_REFRESH_COLUMNS = (
    "ts", "params_hash", "price", "price_low", "price_high", "usd", "distance_pct", "ref_price",
    "message",
)  # fmt: skip


def write_alert_state(
    db_path: Path,
    *,
    new: pl.DataFrame,
    kept: pl.DataFrame,
    cleared: Sequence[int],
    now: datetime,
) -> None:
    """Record one alert check in one transaction: insert the ``new`` alerts, refresh the
    stored alerts still true (``kept``: the current values plus the stored row's ``key``, its
    rowid; ``last_seen_at`` = ``now``) and clear the ones no longer true (``cleared_at``)."""
    stamp = _param(now)
    with WRITE_LOCK, write_connection(db_path) as con, in_transaction(con):
        if new.height:
            con.register("_liqheat_staged", _naive_utc(new))
            try:
                con.execute("INSERT INTO alerts BY NAME SELECT * FROM _liqheat_staged")
            finally:
                con.unregister("_liqheat_staged")
        if kept.height:
            sets = ", ".join(f"{c} = k.{c}" for c in ALERT_REFRESH_COLUMNS)
            con.register("_liqheat_kept", _naive_utc(kept))
            try:
                con.execute(
                    f"UPDATE alerts SET {sets}, last_seen_at = ? FROM _liqheat_kept AS k "
                    "WHERE alerts.rowid = k.key",
                    [stamp],
                )
            finally:
                con.unregister("_liqheat_kept")
        if cleared:
            marks = ", ".join("?" for _ in cleared)
            con.execute(
                f"UPDATE alerts SET cleared_at = ? WHERE rowid IN ({marks})",
                [stamp, *cleared],
            )
