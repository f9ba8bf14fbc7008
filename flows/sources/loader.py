"""The single writer: load staged units into the warehouse.

Fetching and parsing run anywhere (threads, Dask workers) and leave Parquet files plus small
:class:`~flows.sources.base.StagedUnit` records; :func:`load_staged` runs in the one process
that writes DuckDB. For each unit it replaces the rows of the unit's partition (exchange,
symbol, ``start <= ts < end``) and records the outcome in ``ingest_log`` in one transaction
(through :func:`warehouse.writes.write_ingest_results`), then deletes the staged file. A
``missing`` or ``failed`` unit only updates ``ingest_log``: previously loaded rows stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from flows.sources.base import StagedUnit, Status
from warehouse.writes import IngestWrite, write_ingest_results

#: units written over one DuckDB connection (bounds the frames held in memory at once)
BATCH_UNITS = 32


@dataclass(frozen=True)
class Outcome:
    """What happened to one ``(dataset, symbol, day)`` unit.

    ``kind`` classifies failures: ``"missing"``, ``"network"``, ``"http"``, ``"checksum"``,
    ``"corrupt"``, ``"parse"``, ``"internal"``, or ``"warning"`` for a loaded short file.
    """

    dataset: str
    symbol: str
    day: date
    status: Status
    rows: int = 0
    sha256: str | None = None
    reason: str | None = None
    url: str | None = None
    kind: str | None = None
    downloaded: bool = False
    exchange: str = "binance"

    @property
    def ok(self) -> bool:
        return self.status in ("loaded", "skipped")

    @property
    def noteworthy(self) -> bool:
        """True for anything the problems table should show."""
        return not self.ok or self.kind == "warning"


def outcome_of(unit: StagedUnit) -> Outcome:
    """The :class:`Outcome` a staged unit reports (before loading).

    Examples
    --------
    >>> outcome_of(StagedUnit("binance", "klines", "BTCUSDT", date(2024, 1, 1), "missing")).status
    'missing'
    """
    return Outcome(
        dataset=unit.dataset,
        symbol=unit.symbol,
        day=unit.day,
        status=unit.status,
        rows=unit.rows if unit.status == "loaded" else 0,
        sha256=unit.sha256,
        reason=unit.reason,
        url=unit.url,
        kind=unit.kind,
        downloaded=unit.downloaded,
        exchange=unit.exchange,
    )


def _read(unit: StagedUnit) -> tuple[IngestWrite, Outcome]:
    """Turn one staged unit into a write; an unreadable staged file becomes ``failed``."""
    outcome = outcome_of(unit)
    loaded = unit.status == "loaded"
    frame: pl.DataFrame | None = None
    if loaded:
        realized = unit.table == "realized_liquidations"
        if not (unit.parquet and unit.table and unit.start and unit.end) or (
            realized and not unit.replaces_source
        ):
            reason = "internal error: loaded unit without parquet/table/time range/source"
            outcome = replace(outcome, status="failed", rows=0, reason=reason, kind="internal")
            loaded = False
        else:
            try:
                if not Path(unit.parquet).is_file():
                    raise FileNotFoundError("not found")
                frame = pl.read_parquet(unit.parquet).with_columns(
                    pl.lit(unit.exchange).alias("exchange"), pl.lit(unit.symbol).alias("symbol")
                )
            except (OSError, pl.exceptions.PolarsError) as exc:
                first = (str(exc).splitlines() or [""])[0][:80]
                reason = (
                    f"staged file {Path(unit.parquet).name} unreadable ({first}); the staging "
                    "folder must be on storage shared by every worker and the loader"
                )
                outcome = replace(outcome, status="failed", rows=0, reason=reason, kind="internal")
                loaded = False
    write = IngestWrite(
        exchange=unit.exchange,
        dataset=unit.dataset,
        symbol=unit.symbol,
        day=unit.day,
        status=outcome.status,
        table=unit.table if loaded else None,
        keys=_keys(unit) if loaded else None,
        frame=frame if loaded else None,
        rows=frame.height if loaded and frame is not None else None,
        sha256=unit.sha256,
        error=outcome.reason,
        source_url=unit.url,
    )
    if loaded and frame is not None and frame.height != outcome.rows:
        outcome = replace(outcome, rows=frame.height)
    return write, outcome


def _keys(unit: StagedUnit) -> dict[str, Any]:
    """The partition a loaded unit replaces: its exchange, symbol and time window, and for
    realized liquidations also its source (other sources' events in the window stay)."""
    keys: dict[str, Any] = {
        "exchange": unit.exchange,
        "symbol": unit.symbol,
        "ts": (unit.start, unit.end),
    }
    if unit.table == "realized_liquidations":
        keys["source"] = unit.replaces_source
    return keys


def _remove(units: Iterable[StagedUnit]) -> None:
    for unit in units:
        if unit.parquet:
            Path(unit.parquet).unlink(missing_ok=True)


def load_staged(db_path: Path, units: Sequence[StagedUnit]) -> list[Outcome]:
    """Load staged units into the warehouse at ``db_path``; return their outcomes in order.

    ``skipped`` units are not written. Every other unit gets one transaction: its partition's
    rows are replaced (when ``loaded``) and its outcome logged in ``ingest_log``. Staged Parquet
    files are deleted once written. Call this from one process only (the DuckDB writer).

    Examples
    --------
    >>> outcomes = load_staged(settings.db_path, staged_units)  # doctest: +SKIP
    >>> [o.status for o in outcomes]  # doctest: +SKIP
    ['loaded', 'loaded', 'missing']
    """
    outcomes: list[Outcome] = []
    for first in range(0, len(units), BATCH_UNITS):
        batch = units[first : first + BATCH_UNITS]
        writes: list[IngestWrite] = []
        for unit in batch:
            if unit.status == "skipped":
                outcomes.append(outcome_of(unit))
                continue
            write, outcome = _read(unit)
            writes.append(write)
            outcomes.append(outcome)
        write_ingest_results(db_path, writes)
        _remove(batch)
    return outcomes
