"""The single writer: load staged units into the warehouse.

Fetching and parsing run anywhere (threads, Dask workers) and leave Parquet files plus small
:class:`~flows.sources.base.StagedUnit` records; :func:`load_staged` runs in the one process
that writes DuckDB. For each unit it replaces the rows of the unit's partition (exchange,
symbol, ``start <= ts < end``) and records the outcome in ``ingest_log`` in one transaction
(through :func:`warehouse.writes.write_ingest_results`), then deletes the staged file. A
``missing`` or ``failed`` unit only updates ``ingest_log``: previously loaded rows stay.

Two checks ride along:

* **Open-interest basis.** Bybit's ``openInterest`` is taken as one side (the basis chosen in
  :mod:`flows.sources.bybit.source`); a loaded Bybit open-interest day whose mean ``oi_base``
  divided by Binance's for the same symbol and day falls outside :data:`OI_RATIO_BAND` is
  loaded with a ``warning`` naming the ratio (shown in the ingest table and kept in
  ``ingest_log.error``). Binance's day is taken from the same call or, failing that, from the
  warehouse; a day without Binance open interest is not checked.
* **Contract sizes.** Sizes a source read from the exchange (``StagedUnit.contract_size``)
  are cached in ``symbol_map`` with the day they were read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from flows.sources.base import StagedUnit, Status
from flows.sources.symbols import ContractSpec, ContractUnit, contract_size_frame
from warehouse.writes import IngestWrite, write_contract_sizes, write_ingest_results

#: units written over one DuckDB connection (bounds the frames held in memory at once)
BATCH_UNITS = 32
#: plausible Bybit / Binance open-interest ratio (both single side) for one symbol-day. Checked
#: on the real BTCUSDT answers: Bybit ~65,000 BTC vs Binance ~93,000 BTC in 2026 (0.70); an
#: ``openInterest`` that counted both sides would give ~1.4.
OI_RATIO_BAND = (0.25, 1.2)


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


def _mean_oi(path: str | None) -> float | None:
    if not path or not Path(path).is_file():
        return None
    try:
        value = pl.read_parquet(path, columns=["oi_base"])["oi_base"].mean()
    except (OSError, pl.exceptions.PolarsError):
        return None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _warehouse_mean_oi(db_path: Path, unit: StagedUnit) -> float | None:
    if not db_path.exists() or unit.start is None or unit.end is None:
        return None
    from warehouse.reads import query

    try:
        frame = query(
            db_path,
            "SELECT avg(oi_base) AS oi FROM open_interest WHERE exchange = 'binance' "
            "AND symbol = ? AND ts >= ? AND ts < ? AND oi_base > 0",
            [unit.symbol, unit.start, unit.end],
        )
    except Exception:  # an old or locked warehouse: the check is advisory
        return None
    value = frame["oi"][0] if frame.height else None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def oi_ratio_warning(ratio: float, band: tuple[float, float] = OI_RATIO_BAND) -> str | None:
    """Return the warning for a Bybit/Binance open-interest ratio outside ``band``, else None.

    Examples
    --------
    >>> oi_ratio_warning(0.7) is None
    True
    >>> oi_ratio_warning(1.41)
    'Bybit/Binance open interest 1.41 outside 0.25-1.2: check the OI basis (single side?)'
    """
    lo, hi = band
    if lo <= ratio <= hi:
        return None
    return (
        f"Bybit/Binance open interest {ratio:.2f} outside {lo:g}-{hi:g}: "
        "check the OI basis (single side?)"
    )


def cross_check_open_interest(db_path: Path, units: Sequence[StagedUnit]) -> list[StagedUnit]:
    """Return ``units`` with a ``warning`` added to every loaded Bybit open-interest day whose
    mean OI is implausible next to Binance's for the same symbol and day (see module doc)."""
    binance: dict[tuple[str, date], float] = {}
    for unit in units:
        if (
            unit.exchange == "binance"
            and unit.table == "open_interest"
            and unit.status == "loaded"
            and (mean := _mean_oi(unit.parquet)) is not None
        ):
            binance[(unit.symbol, unit.day)] = mean
    checked: list[StagedUnit] = []
    for unit in units:
        if not (
            unit.exchange == "bybit" and unit.table == "open_interest" and unit.status == "loaded"
        ):
            checked.append(unit)
            continue
        ours = _mean_oi(unit.parquet)
        theirs = binance.get((unit.symbol, unit.day)) or _warehouse_mean_oi(db_path, unit)
        note = oi_ratio_warning(ours / theirs) if ours and theirs else None
        if note:
            reason = f"{unit.reason}; {note}" if unit.reason else note
            unit = replace(unit, reason=reason, kind="warning")
        checked.append(unit)
    return checked


def _contract_specs(units: Sequence[StagedUnit], outcomes: Sequence[Outcome]) -> list[ContractSpec]:
    specs: list[ContractSpec] = []
    for unit, outcome in zip(units, outcomes, strict=True):
        if outcome.status == "loaded" and unit.contract_size and unit.size_read_on:
            unit_name: ContractUnit = "quote" if unit.contract_unit == "quote" else "base"
            specs.append(
                ContractSpec(
                    unit.exchange, unit.symbol, unit.contract_size, unit_name, unit.size_read_on
                )
            )
    return specs


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
    units = cross_check_open_interest(db_path, units)
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
    specs = _contract_specs(units, outcomes)
    if specs:
        write_contract_sizes(db_path, contract_size_frame(specs))
    return outcomes
