"""Export warehouse tables as hive-partitioned Parquet for other tools: ``liqheat export``.

Layout: ``<out_dir>/<table>/exchange=<E>/symbol=<S>/day=<YYYY-MM-DD>/part_0.parquet``,
written by DuckDB's ``COPY ... (FORMAT parquet, PARTITION_BY (exchange, symbol, day))``.
Partition columns live in the folder names (read them back with ``hive_partitioning``);
timestamps are written as UTC instants (``TIMESTAMP WITH TIME ZONE``). Re-exporting a day
replaces that day's partition folder, so exports are idempotent. Model tables are exported
for the current run only (the newest model_runs row per exchange and symbol).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import duckdb

from warehouse.db import read_connection

#: column that decides a row's day, per exportable table
DAY_COLUMNS: dict[str, str] = {
    "klines": "ts",
    "mark_klines": "ts",
    "open_interest": "ts",
    "funding_rates": "ts",
    "trade_profile": "ts",
    "realized_liquidations": "ts",
    "heatmap_cells": "ts",
    "predicted_liquidations": "ts",
    "liq_levels": "created_at",
    "liquidation_map": "as_of",
    "key_levels": "as_of",
    "ingest_log": "day",
}
#: tables keyed by params_hash: only the current run is exported
MODEL_TABLES = frozenset(
    {"heatmap_cells", "predicted_liquidations", "liq_levels", "liquidation_map", "key_levels"}
)
#: what ``liqheat export`` writes unless told otherwise
DEFAULT_TABLES: tuple[str, ...] = (
    "klines",
    "mark_klines",
    "open_interest",
    "funding_rates",
    "realized_liquidations",
    "heatmap_cells",
    "predicted_liquidations",
    "key_levels",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _select(
    con: duckdb.DuckDBPyConnection,
    table: str,
    *,
    symbol: str,
    start: date,
    end: date,
    exchange: str | None,
) -> str:
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    day_col = DAY_COLUMNS[table]
    items = []
    for name, dtype in columns:
        if dtype == "TIMESTAMP":
            items.append(f'CAST(t."{name}" AS TIMESTAMPTZ) AS "{name}"')
        else:
            items.append(f't."{name}"')
    if table != "ingest_log":
        items.append(f't."{day_col}"::DATE AS day')
    where = [
        f"t.symbol = {_literal(symbol)}",
        f"t.\"{day_col}\" >= DATE '{start.isoformat()}'",
        f"t.\"{day_col}\" < DATE '{(end + timedelta(days=1)).isoformat()}'",
    ]
    if exchange is not None:
        where.append(f"t.exchange = {_literal(exchange)}")
    if table in MODEL_TABLES:
        where.append(
            "t.params_hash = (SELECT r.params_hash FROM v_latest_run AS r "
            "WHERE r.exchange = t.exchange AND r.symbol = t.symbol)"
        )
    return f"SELECT {', '.join(items)} FROM {table} AS t WHERE {' AND '.join(where)}"


def _clear_days(
    table_dir: Path, *, symbol: str, start: date, end: date, exchange: str | None
) -> None:
    """Remove the partition folders of the exported days (for every exchange, or one)."""
    if exchange is not None:
        exchange_dirs = [table_dir / f"exchange={exchange}"]
    else:
        exchange_dirs = sorted(table_dir.glob("exchange=*"))
    n_days = (end - start).days + 1
    for exchange_dir in exchange_dirs:
        symbol_dir = exchange_dir / f"symbol={symbol}"
        for offset in range(n_days):
            day_dir = symbol_dir / f"day={(start + timedelta(days=offset)).isoformat()}"
            if day_dir.is_dir():
                shutil.rmtree(day_dir)


def export_parquet(
    db_path: Path,
    out_dir: Path,
    *,
    symbol: str,
    start: date,
    end: date,
    exchange: str | None = None,
    tables: Sequence[str] = DEFAULT_TABLES,
) -> list[Path]:
    """Write ``tables`` for one symbol and the days ``start..end`` (inclusive) as
    hive-partitioned Parquet under ``out_dir/<table>/exchange=/symbol=/day=``.

    Existing partitions for those days are replaced; other days are left alone. Returns
    the files written, sorted. Raises ``ValueError`` for an unknown table or a bad range.

    Examples
    --------
    >>> files = export_parquet(db, Path("export"), symbol="BTCUSDT",
    ...                        start=date(2024, 1, 1), end=date(2024, 1, 3))  # doctest: +SKIP
    >>> files[0].relative_to("export")  # doctest: +SKIP
    PosixPath('heatmap_cells/exchange=binance/symbol=BTCUSDT/day=2024-01-01/part_0.parquet')
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    unknown = sorted(set(tables) - set(DAY_COLUMNS))
    if unknown:
        raise ValueError(
            f"cannot export {', '.join(unknown)}; exportable: {', '.join(sorted(DAY_COLUMNS))}"
        )
    for label, value in (("symbol", symbol), ("exchange", exchange)):
        if value is not None and not _NAME_RE.match(value):
            raise ValueError(f"bad {label} {value!r}")
    written: list[Path] = []
    with read_connection(db_path) as con:
        for table in tables:
            table_dir = out_dir / table
            _clear_days(table_dir, symbol=symbol, start=start, end=end, exchange=exchange)
            select = _select(con, table, symbol=symbol, start=start, end=end, exchange=exchange)
            count = con.execute(f"SELECT count(*) FROM ({select})").fetchall()
            if not count or not count[0][0]:
                continue
            table_dir.mkdir(parents=True, exist_ok=True)
            result = con.execute(
                f"COPY ({select}) TO {_literal(str(table_dir))} (FORMAT parquet, "
                "PARTITION_BY (exchange, symbol, day), OVERWRITE_OR_IGNORE true, "
                "FILENAME_PATTERN 'part_{i}', RETURN_FILES true)"
            ).fetchall()
            for _, files in result:
                written.extend(Path(f) for f in files)
    return sorted(written)
