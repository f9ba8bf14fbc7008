"""Binance COIN-M ``liquidationSnapshot`` archive files as a realized-liquidations source.

Registered as ``"binance-cm"``; its rows are stored under exchange **``"binance"``** (the
canonical symbol, e.g. ``BTCUSDT``) with source ``"binance-cm-liquidationSnapshot"``.

Why: Binance's USD-M liquidation archive is gone (stopped 2024-03-31, later removed), while the
COIN-M one still lists ``{PAIR}_PERP`` files from 2023-06-25 to 2024-10-14 (with single-day
gaps). Liquidations of the coin-margined BTCUSD perpetual are forced by the same BTC price path
as those of BTCUSDT, so they stand in for "BTC liquidations on Binance" over that span: the
model's backtest for ``(binance, BTCUSDT)`` reads ``realized_liquidations`` of exchange
``binance`` and symbol ``BTCUSDT`` (see :func:`flows.modelling.model_symbol`) and finds them there,
the ``source`` column saying where they came from. They under-state true liquidations: the
snapshot kept at most one liquidation order per symbol per second.

One unit per canonical symbol and day, dataset ``liquidationSnapshot``:
``{base_url}/data/futures/cm/daily/liquidationSnapshot/{PAIR}_PERP/{PAIR}_PERP-liquidationSnapshot-
{DATE}.zip`` plus its ``.CHECKSUM``, fetched and verified by
:class:`flows.sources.binance.client.ArchiveClient` (retries, raw cache). CSV header
``time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,
last_fill_quantity,accumulated_fill_quantity`` (sniffed: old files
may lack it). Every row appears twice in the archive: exact duplicate rows are dropped. ``side``
is the liquidation *order's* side: ``SELL`` -> a long was liquidated, ``BUY`` -> a short.
Quantities are contracts of a fixed USD value (100 USD for BTCUSD_PERP, 10 USD for the others,
from :mod:`flows.sources.symbols`), so ``usd = accumulated_fill_quantity * contract size``;
rows with no fill are dropped. :meth:`BinanceCmSource.plan` only plans days inside the archive's
span; a gap day inside it is ``missing`` (404).

The loader replaces ``realized_liquidations`` rows of ``(binance, symbol)`` in the unit's day,
whatever their ``source``: do not mix other per-event realized sources for Binance over
2023-06-25 .. 2024-10-14.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.sources.base import StagedUnit, UnitRequest
from flows.sources.binance.client import NotPublishedError
from flows.sources.binance.source import ArchiveSourceBase
from flows.sources.binance_cm.parsing import SOURCE, parse_liquidation_snapshot
from flows.sources.errors import SourceError
from flows.sources.files import (
    day_bounds,
    read_csv_member,
    write_staged_frame,
)
from flows.sources.symbols import contract_size, contract_unit, instrument

if TYPE_CHECKING:
    from flows.settings import Settings

#: the id this source is registered under
NAME = "binance-cm"
#: the exchange its rows are stored under (see the module docstring)
EXCHANGE = "binance"
DATASET = "liquidationSnapshot"
TABLE = "realized_liquidations"
CM_ROOT = "data/futures/cm"
#: first and last day the COIN-M archive holds liquidationSnapshot files
FIRST_DAY = date(2023, 6, 25)
LAST_DAY = date(2024, 10, 14)


def archive_path(pair: str, day: date) -> str:
    """Return the archive path of one COIN-M liquidationSnapshot zip.

    Examples
    --------
    >>> archive_path("BTCUSD_PERP", date(2024, 1, 2))
    'data/futures/cm/daily/liquidationSnapshot/BTCUSD_PERP/BTCUSD_PERP-liquidationSnapshot-2024-01-02.zip'
    """
    return f"{CM_ROOT}/daily/{DATASET}/{pair}/{pair}-{DATASET}-{day.isoformat()}.zip"


def in_span(day: date) -> bool:
    """True when ``day`` lies in the span the archive covers (2023-06-25 .. 2024-10-14).

    Examples
    --------
    >>> in_span(date(2024, 10, 14)), in_span(date(2024, 10, 15))
    (True, False)
    """
    return FIRST_DAY <= day <= LAST_DAY


class BinanceCmSource(ArchiveSourceBase):
    """Binance COIN-M liquidation snapshots at ``base_url`` (``https://``, ``http://`` or
    ``file://``), stored as realized liquidations of exchange ``binance``.

    Parameters
    ----------
    base_url
        Archive root, e.g. ``https://data.binance.vision`` or a local mirror.
    raw_dir
        Cache of verified zips.
    timeout_s, retries, backoff_s, backoff_max_s
        HTTP policy of :class:`flows.sources.binance.client.ArchiveClient`.
    client
        An existing client to use; otherwise one is created on first use.

    Examples
    --------
    >>> src = BinanceCmSource("file:///srv/mirror", Path("raw"))
    >>> [(r.exchange, r.dataset) for r in src.plan(["BTCUSDT"], [date(2024, 1, 1)])]
    [('binance', 'liquidationSnapshot')]
    >>> src.plan(["BTCUSDT"], [date(2025, 1, 1)])
    []
    """

    exchange = EXCHANGE
    name = NAME

    def plan(
        self, symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
    ) -> list[UnitRequest]:
        """Return one ``liquidationSnapshot`` unit per symbol and day inside the archive's span
        (days outside it are left out: the archive has nothing there)."""
        for symbol in symbols:
            instrument(NAME, symbol)  # raises for unmapped symbols
        return [
            UnitRequest(EXCHANGE, DATASET, symbol, day)
            for symbol in dict.fromkeys(symbols)
            for day in sorted(set(days))
            if in_span(day)
        ]

    def stage(self, request: UnitRequest, staging_dir: Path) -> StagedUnit:
        """Fetch, verify and parse one day's snapshot file; write its rows to Parquet.

        Never raises for data problems: 404 is ``missing``, anything else ``failed``.
        """
        base: dict[str, Any] = {
            "exchange": EXCHANGE,
            "dataset": request.dataset,
            "symbol": request.symbol,
            "day": request.day,
        }
        url: str | None = None
        try:
            if request.dataset != DATASET:
                raise ValueError(f"unknown dataset {request.dataset!r}; expected {DATASET}")
            pair = instrument(NAME, request.symbol)
            if contract_unit(NAME, request.symbol) != "quote":
                raise ValueError(f"{pair}: expected USD-valued contracts")
            usd_per_contract = contract_size(NAME, request.symbol)
            path = archive_path(pair, request.day)
            client = self.client()
            url = client.url(path)
            got = client.fetch_verified(path)
            frame = parse_liquidation_snapshot(
                read_csv_member(got.path), request.day, usd_per_contract
            )
            stem = f"{NAME}-{DATASET}-{request.symbol}-{request.day.isoformat()}"
            parquet = write_staged_frame(frame, staging_dir, stem)
            start, end = day_bounds(request.day)
            return StagedUnit(
                **base,
                status="loaded",
                table=TABLE,
                parquet=str(parquet),
                replaces_source=SOURCE,
                start=start,
                end=end,
                rows=frame.height,
                sha256=got.sha256,
                reason="republished: cached copy replaced" if got.republished else None,
                url=url,
                downloaded=got.downloaded,
            )
        except NotPublishedError as exc:
            return StagedUnit(**base, status="missing", reason=str(exc), url=url, kind="missing")
        except SourceError as exc:
            return StagedUnit(**base, status="failed", reason=str(exc), url=url, kind=exc.kind)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug or an unforeseen file: record it, keep going
            text = (str(exc).splitlines() or [""])[0][:100]
            reason = f"internal error: {type(exc).__name__}: {text}"
            return StagedUnit(**base, status="failed", reason=reason, url=url, kind="internal")


def from_settings(settings: Settings, *, base_url: str | None = None) -> BinanceCmSource:
    """The registry factory: a :class:`BinanceCmSource` on the Binance archive root."""
    return BinanceCmSource(
        base_url or settings.binance_base_url,
        settings.raw_dir,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
