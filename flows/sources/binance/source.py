"""The Binance USD-M public-data archive as a :class:`~flows.sources.base.Source`.

Units are ``(dataset, symbol, day)``: ``klines``, ``markPriceKlines`` and ``metrics`` for each
symbol-day, ``aggTrades`` with ``with_trades`` (stored as a per-minute price profile in
``trade_profile``) and one ``fundingRate`` file per month touched (its ``day`` is the first of
the month). :meth:`BinanceSource.stage` fetches and verifies a unit with
:class:`flows.sources.binance.client.ArchiveClient` (checksums, retries, raw cache under
``raw_dir``), parses it with :mod:`flows.sources.binance.parsing`, and writes the canonical frame
to Parquet for the single writer (:func:`flows.sources.loader.load_staged`).

A usable but incomplete file is ``loaded`` with ``kind="warning"`` and the reason (e.g.
``"short file: 1380 of 1440 rows (00:00-22:59)"``); a 404 is ``missing``; network trouble after
retries, a checksum mismatch (after one re-download), a bad ``.CHECKSUM``, a corrupt zip or an
unparsable CSV is ``failed``. A ``fundingRate`` month that has not ended (relative to ``today``)
is ``skipped``: the archive publishes monthly files after the month.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from flows.sources.base import StagedUnit, Status, UnitRequest
from flows.sources.binance.client import ArchiveClient, NotPublishedError, member_cap
from flows.sources.binance.parsing import (
    Parsed,
    parse_aggtrades_profile,
    parse_funding,
    parse_klines,
    parse_metrics,
)
from flows.sources.binance.paths import SYMBOL_RE, daily_path, monthly_path
from flows.sources.errors import ParseError, SourceError
from flows.sources.files import extract_csv_member, read_csv_member, write_staged_frame

if TYPE_CHECKING:
    from flows.settings import Settings

EXCHANGE = "binance"
CORE_DATASETS = ("klines", "markPriceKlines", "metrics")
DAILY_DATASETS = (*CORE_DATASETS, "aggTrades")
MONTHLY_DATASETS = ("fundingRate",)
DATASETS = (*DAILY_DATASETS, *MONTHLY_DATASETS)
#: dataset -> warehouse table
TABLES = {
    "klines": "klines",
    "markPriceKlines": "mark_klines",
    "metrics": "open_interest",
    "aggTrades": "trade_profile",
    "fundingRate": "funding_rates",
}
MONTH_IN_PROGRESS = "month in progress: not archived"


def archive_path(dataset: str, symbol: str, day: date) -> str:
    """Return the archive path of one unit (``fundingRate`` uses the month of ``day``).

    Examples
    --------
    >>> archive_path("fundingRate", "BTCUSDT", date(2026, 4, 17))
    'data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2026-04.zip'
    """
    if dataset in MONTHLY_DATASETS:
        return monthly_path(dataset, symbol, day.year, day.month)
    if dataset in DAILY_DATASETS:
        return daily_path(dataset, symbol, day)
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")


def unit_day(dataset: str, day: date) -> date:
    """Return the day a unit is keyed by: the first of the month for monthly datasets.

    Examples
    --------
    >>> unit_day("fundingRate", date(2024, 2, 17))
    datetime.date(2024, 2, 1)
    """
    return day.replace(day=1) if dataset in MONTHLY_DATASETS else day


def month_complete(day: date, today: date) -> bool:
    """True when the month of ``day`` ended before ``today``.

    Examples
    --------
    >>> month_complete(date(2024, 1, 31), date(2024, 2, 1))
    True
    """
    return (day.year, day.month) < (today.year, today.month)


def check_symbol(symbol: str) -> None:
    """Raise ``ValueError`` for a symbol that is not e.g. ``BTCUSDT``."""
    if not SYMBOL_RE.match(symbol):
        raise ValueError(f"bad symbol {symbol!r} (expected e.g. BTCUSDT)")


def plan_units(
    symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
) -> list[tuple[str, str, date]]:
    """Return the ``(dataset, symbol, day)`` units for a request, monthly units de-duplicated.

    Examples
    --------
    >>> len(plan_units(["BTCUSDT"], [date(2024, 1, 31), date(2024, 2, 1)]))
    8
    """
    daily = DAILY_DATASETS if with_trades else CORE_DATASETS
    units: list[tuple[str, str, date]] = []
    for symbol in dict.fromkeys(symbols):
        months = sorted({d.replace(day=1) for d in days})
        for day in sorted(set(days)):
            units += [(ds, symbol, day) for ds in daily]
        units += [(ds, symbol, m) for m in months for ds in MONTHLY_DATASETS]
    return units


def _parse(dataset: str, zip_path: Path, symbol: str, day: date, tmp_dir: Path) -> Parsed:
    if dataset == "aggTrades":
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
            csv_path = extract_csv_member(zip_path, Path(tmp) / "member.csv", member_cap(dataset))
            return parse_aggtrades_profile(csv_path, symbol, day)
    data = read_csv_member(zip_path, member_cap(dataset))
    if dataset == "klines":
        return parse_klines(data, symbol, day)
    if dataset == "markPriceKlines":
        return parse_klines(data, symbol, day, mark=True)
    if dataset == "metrics":
        return parse_metrics(data, symbol, day)
    if dataset == "fundingRate":
        return parse_funding(data, symbol, day.year, day.month)
    raise ValueError(f"unknown dataset {dataset!r}")


class ArchiveSourceBase:
    """What every source reading a Binance-style archive shares: a thread-safe
    :class:`~flows.sources.binance.client.ArchiveClient` created on first use, closed with the
    source, and left behind when the source is pickled to a worker (each process makes its own)."""

    def __init__(
        self,
        base_url: str,
        raw_dir: Path,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        client: ArchiveClient | None = None,
    ) -> None:
        self.base_url = base_url
        self.raw_dir = Path(raw_dir)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    def client(self) -> ArchiveClient:
        """The archive client (created on first use; validates ``base_url``)."""
        with self._lock:
            if self._client is None:
                self._client = ArchiveClient(
                    self.base_url,
                    self.raw_dir,
                    timeout_s=self.timeout_s,
                    retries=self.retries,
                    backoff_s=self.backoff_s,
                    backoff_max_s=self.backoff_max_s,
                )
            return self._client

    def close(self) -> None:
        """Close the client this source created (a client passed in is left open)."""
        with self._lock:
            if self._client is not None and self._owns_client:
                self._client.close()
                self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None
        state["_owns_client"] = True
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class BinanceSource(ArchiveSourceBase):
    """The Binance USD-M archive at ``base_url`` (``https://``, ``http://`` or ``file://``).

    Parameters
    ----------
    base_url
        Archive root, e.g. ``https://data.binance.vision`` or a local mirror.
    raw_dir
        Cache of verified zips (shared by every stager: on a cluster, shared storage).
    timeout_s, retries, backoff_s, backoff_max_s
        HTTP policy of :class:`flows.sources.binance.client.ArchiveClient`.
    today
        UTC date deciding which ``fundingRate`` months are complete (default: now).
    client
        An existing client to use (its ``base_url``/``raw_dir`` win); otherwise one client is
        created on first use and shared by the threads of this process.

    The object pickles without its client, so it can be shipped to a Dask worker. A subclass
    with another ``exchange`` id serves any venue publishing the same archive layout.

    Examples
    --------
    >>> src = BinanceSource("file:///srv/mirror", Path("raw"))
    >>> [r.dataset for r in src.plan(["BTCUSDT"], [date(2024, 1, 1)])]
    ['klines', 'markPriceKlines', 'metrics', 'fundingRate']
    """

    exchange = EXCHANGE

    def __init__(
        self,
        base_url: str,
        raw_dir: Path,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        today: date | None = None,
        client: ArchiveClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            raw_dir,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            client=client,
        )
        self.today = today

    # -- the Source interface --------------------------------------------------------------
    def plan(
        self, symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
    ) -> list[UnitRequest]:
        """Return the units for ``symbols`` x ``days`` (funding months de-duplicated)."""
        for symbol in symbols:
            check_symbol(symbol)
        return [
            UnitRequest(self.exchange, ds, sym, day)
            for ds, sym, day in plan_units(symbols, days, with_trades=with_trades)
        ]

    def stage(self, request: UnitRequest, staging_dir: Path) -> StagedUnit:
        """Fetch, verify and parse one unit; write its rows to Parquet under ``staging_dir``.

        Never raises for data problems (see the module docstring for the outcome policy).
        """
        dataset, symbol = request.dataset, request.symbol
        check_symbol(symbol)
        path = archive_path(dataset, symbol, request.day)  # validates the dataset
        day = unit_day(dataset, request.day)

        def unit(status: Status, **extra: Any) -> StagedUnit:
            return StagedUnit(self.exchange, dataset, symbol, day, status, **extra)

        today = self.today or datetime.now(UTC).date()
        if dataset in MONTHLY_DATASETS and not month_complete(day, today):
            return unit("skipped", reason=MONTH_IN_PROGRESS)
        client = self.client()
        url = client.url(path)
        try:
            got = client.fetch_verified(path)
            parsed = _parse(dataset, got.path, symbol, day, client.raw_dir / ".tmp")
            notes = [parsed.warning] if parsed.warning else []
            if got.republished:
                notes.append("republished: cached copy replaced")
            stem = f"{self.exchange}-{dataset}-{symbol}-{day.isoformat()}"
            parquet = write_staged_frame(parsed.frame, staging_dir, stem)
            return unit(
                "loaded",
                table=TABLES[dataset],
                parquet=str(parquet),
                start=parsed.start,
                end=parsed.end,
                rows=parsed.rows,
                sha256=got.sha256,
                reason="; ".join(notes) or None,
                url=url,
                kind="warning" if parsed.warning else None,
                downloaded=got.downloaded,
            )
        except NotPublishedError as exc:
            return unit("missing", reason=str(exc), url=url, kind="missing")
        except ParseError as exc:  # name the file: the reason quotes its first bad row
            reason = f"{path.rsplit('/', 1)[-1]}: {exc}"
            return unit("failed", reason=reason, url=url, kind=exc.kind)
        except SourceError as exc:
            return unit("failed", reason=str(exc), url=url, kind=exc.kind)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug or an unforeseen file: record it, keep going
            text = (str(exc).splitlines() or [""])[0][:100]
            reason = f"internal error: {type(exc).__name__}: {text}"
            return unit("failed", reason=reason, url=url, kind="internal")


def from_settings(settings: Settings, *, base_url: str | None = None) -> BinanceSource:
    """The registry factory: a :class:`BinanceSource` configured from ``settings``."""
    return BinanceSource(
        base_url or settings.binance_base_url,
        settings.raw_dir,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
