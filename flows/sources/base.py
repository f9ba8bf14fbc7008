"""The source interface: how an exchange's public data becomes canonical warehouse rows.

A *source* (one module per exchange: ``binance``, ``bybit``, ``okx`` ...) turns one unit of
work -- ``(dataset, canonical symbol, day)`` -- into rows of one warehouse table. Fetching and
parsing may run anywhere (a thread, a Dask worker): :meth:`Source.stage` writes the parsed rows
to a Parquet file under a staging folder and returns a small, picklable :class:`StagedUnit`
(paths and keys, never a DataFrame). One loader (:func:`flows.sources.loader.load_staged`, in
the single DuckDB-writing process) then replaces each unit's partition and records its outcome
in ``ingest_log``, one transaction per unit.

Canonical frames (columns of the target table, without ``exchange``/``symbol``, which the
loader adds):

- ``klines``: ts (UTC datetime, 1-minute bar open), open, high, low, close, volume,
  quote_volume, trades, taker_buy_volume, taker_buy_quote_volume
- ``mark_klines``: ts, open, high, low, close
- ``open_interest``: ts, oi_base, oi_usd, top_trader_account_ratio, top_trader_position_ratio,
  global_account_ratio, taker_buy_sell_ratio (nulls where an exchange has no such figure)
- ``funding_rates``: ts, funding_interval_hours, funding_rate
- ``trade_profile``: ts, price, volume, buy_volume
- ``realized_liquidations``: ts, side ("long"/"short": the side that was liquidated), usd,
  source

Symbols in the warehouse are canonical (Binance USD-M style, e.g. ``BTCUSDT``); each source maps
them to its own instrument names (``BTC-USDT-SWAP`` on OKX) through :mod:`flows.sources.symbols`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal, Protocol

import polars as pl

Status = Literal["loaded", "missing", "failed", "skipped"]

TS = pl.Datetime("us", "UTC")

#: canonical frames a source stages (the target table's columns without exchange/symbol)
KLINES_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "quote_volume": pl.Float64(),
    "trades": pl.Int64(),
    "taker_buy_volume": pl.Float64(),
    "taker_buy_quote_volume": pl.Float64(),
}
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,
    "oi_base": pl.Float64(),
    "oi_usd": pl.Float64(),
    "top_trader_account_ratio": pl.Float64(),
    "top_trader_position_ratio": pl.Float64(),
    "global_account_ratio": pl.Float64(),
    "taker_buy_sell_ratio": pl.Float64(),
}
REALIZED_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,
    "side": pl.String(),
    "usd": pl.Float64(),
    "source": pl.String(),
}


@dataclass(frozen=True)
class UnitRequest:
    """One unit of work: a dataset of one canonical symbol for one day (or month)."""

    exchange: str
    dataset: str
    symbol: str
    day: date


@dataclass(frozen=True)
class StagedUnit:
    """The result of fetching and parsing one unit, ready for the single writer.

    ``parquet`` holds the canonical rows for ``table`` when ``status == "loaded"``; the loader
    replaces the rows of ``table`` where exchange = ``exchange``, symbol = ``symbol`` and
    ``start <= ts < end`` with them, and logs the outcome in ``ingest_log``.
    ``replaces_source``, for ``realized_liquidations`` units, names the ``source`` whose rows
    the unit replaces, so one source's load never deletes another source's events.
    ``kind`` classifies problems (``"missing"``, ``"network"``, ``"http"``, ``"checksum"``,
    ``"corrupt"``, ``"parse"``, ``"contract"``, ``"internal"``, ``"warning"``).
    """

    exchange: str
    dataset: str
    symbol: str
    day: date
    status: Status
    table: str | None = None
    parquet: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    rows: int = 0
    sha256: str | None = None
    reason: str | None = None
    url: str | None = None
    kind: str | None = None
    downloaded: bool = False
    replaces_source: str | None = None
    #: a contract size the source read from the exchange for this unit; the loader caches it
    #: in ``symbol_map`` with ``size_read_on`` (the UTC day it was read)
    contract_size: float | None = None
    contract_unit: str | None = None
    size_read_on: date | None = None


class Source(Protocol):
    """What every exchange source provides."""

    #: the exchange id stored in the warehouse, e.g. "binance", "bybit", "okx"
    exchange: str

    def plan(
        self, symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
    ) -> list[UnitRequest]:
        """Return the units to fetch for these canonical symbols and days."""
        ...

    def stage(self, request: UnitRequest, staging_dir: Path) -> StagedUnit:
        """Fetch, verify and parse one unit; write its rows to Parquet under ``staging_dir``.

        Never raises for data problems: a 404 is ``missing``, anything else that goes wrong is
        ``failed`` with a short ``reason``. Safe to call from several threads or processes.
        """
        ...
