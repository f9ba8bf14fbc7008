"""OKX perpetual swaps as a :class:`~flows.sources.base.Source` (exchange ``"okx"``).

Datasets, one unit per canonical symbol and UTC day (symbols map to ``BTC-USDT-SWAP`` etc.
through :mod:`flows.sources.symbols`; sizes in contracts are turned into base units with the
contract size OKX publishes in ``/api/v5/public/instruments?instType=SWAP`` (``ctVal`` x
``ctMult``, e.g. 0.01 BTC), read once a day, kept under ``raw_dir/okx/instruments/`` and cached
in ``symbol_map`` with the day read; a swap OKX does not list as a linear contract in its base
coin is refused in one line):

``trades`` -> ``klines``
    Daily trade files ``{static_url}/cdn/okex/traderecords/trades/daily/{YYYYMMDD}/
    {instId}-trades-{YYYY-MM-DD}.zip`` (one CSV; columns matched by name: the current files
    have ``instrument_name,trade_id,side,price,size,created_time,source``, older ones lack
    ``source``; extra columns are ignored, a file lacking a needed column, without a header or
    with a bilingual ``name/translation`` header fails with the file name and the header seen;
    ``side`` is the taker's side, ``created_time`` epoch ms). **OKX file days are
    UTC+8 days**: the file dated D holds ``[D-1 16:00, D 16:00)`` UTC. A UTC day D therefore needs
    the files dated D (its 00:00-16:00) and D+1 (its 16:00-24:00); both are fetched, their rows
    inside the UTC day kept and aggregated to 1-minute bars with every minute present (an empty
    minute repeats the previous close with zero volume). Until OKX publishes the file dated D+1
    (some time after D+1 16:00 UTC) the UTC day is ``missing``, never loaded half-filled, so
    the nightly gap backfill picks it up a night later. Files are cached under
    ``raw_dir/okx/<url path>``; OKX publishes no checksums, so the unit's ``sha256`` is a digest
    of the two files' sha256 (lineage). There are no mark-price files: the model falls back to
    trade high/low for OKX.
``open_interest`` -> ``open_interest``
    ``GET {api_url}/api/v5/rubik/stat/contracts/open-interest-history?instId=..&period=5m&
    begin=..&end=..&limit=100`` pages backwards (newest first, 100 rows a page) ->
    ``ts, oi_base = oiCcy, oi_usd = oiUsd`` (ratios null). ``begin`` and ``end`` are exclusive
    ("newer than", "earlier than"), so a day is asked from 1 ms before its 00:00 and comes back
    with all 288 samples. OKX keeps at most 1,440 samples per period (5 days of 5m); for an
    older day the unit falls back to ``period=1H`` (loaded with a warning), and a day with
    neither is ``missing``. A day that has not ended is ``skipped``.
``liquidations`` -> ``realized_liquidations``
    ``GET {api_url}/api/v5/public/liquidation-orders?instType=SWAP&instFamily=BTC-USDT&
    state=filled&limit=100`` paged backwards with ``after`` -> one row per filled liquidation:
    ``side`` = ``details.posSide`` (``long``/``short``; for net-mode orders ``side=sell`` means a
    long was liquidated), ``usd = sz * contract size * bkPx``, source
    ``"okx-liquidation-orders"``. **OKX serves recent orders only** (about a day to a week), so
    history only builds up by pulling every night: an older day comes back ``missing``. The
    unit's replace window is the span the answer provably covers -- from the day's start if the
    paging reached past it, else from the oldest order OKX still returned -- so a late pull never
    deletes rows an earlier pull stored. A day that has not ended is ``skipped`` (a loaded unit
    is never fetched again). The raw pages of every pull are kept in
    ``raw_dir/okx/liquidation-orders/<instFamily>/<day>-pulled-<time>.json``.

REST calls go through :class:`flows.sources.http.RestClient`: OKX's published limit for these
public endpoints is 5 requests / 2 s per IP, so the API client is limited to 2.5 requests/s
(shared by every thread of the process); the static file host gets 10 requests/s.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from flows.sources.base import StagedUnit, UnitRequest
from flows.sources.errors import (
    BadZipError,
    NotFoundError,
    ParseError,
    SourceError,
    short_reason,
)
from flows.sources.files import (
    atomic_write,
    day_bounds,
    read_csv_member,
    sha256_file,
    write_staged_frame,
)
from flows.sources.http import ClientPool, RestClient
from flows.sources.okx.parsing import (
    EXCHANGE,
    INSTRUMENTS_PATH,
    LIQUIDATION_SOURCE,
    OkxContract,
    contract_spec,
    detail_stamps,
    okx_data,
    parse_instruments,
    parse_liquidations,
    parse_open_interest,
    parse_trades_csv,
    trades_to_klines,
)
from flows.sources.okx.paths import inst_family, okx_file_days, trades_path
from flows.sources.symbols import ContractSpec, UnknownContractSizeError, instrument

if TYPE_CHECKING:
    from flows.settings import Settings

DATASETS = ("trades", "open_interest", "liquidations")
#: dataset -> warehouse table
TABLES = {
    "trades": "klines",
    "open_interest": "open_interest",
    "liquidations": "realized_liquidations",
}
API_RATE_PER_S = 2.5
STATIC_RATE_PER_S = 10.0
PAGE_LIMIT = 100
MAX_PAGES = 200
OI_PERIODS = ("5m", "1H")
_OI_PER_DAY = {"5m": 288, "1H": 24}


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


class OkxSource:
    """OKX swaps: trade files on ``static_url``, open interest and liquidations on ``api_url``.

    Parameters
    ----------
    static_url, api_url
        ``https://static.okx.com`` and ``https://www.okx.com`` (or local mirrors).
    raw_dir
        Cache root; OKX files land under ``raw_dir/okx/``.
    timeout_s, retries, backoff_s, backoff_max_s
        HTTP policy of the :class:`~flows.sources.http.RestClient` instances.
    api_rate_per_s, static_rate_per_s
        Request rates per process (OKX: 5 requests / 2 s on the public API).
    now
        The current time (UTC) deciding which days have begun; default: the clock.

    The object pickles without its clients, so it can be shipped to a Dask worker.

    Examples
    --------
    >>> src = OkxSource("https://static.okx.com", "https://www.okx.com", Path("raw"))
    >>> [r.dataset for r in src.plan(["BTCUSDT"], [date(2025, 6, 1)])]
    ['trades', 'open_interest', 'liquidations']
    """

    exchange = EXCHANGE

    def __init__(
        self,
        static_url: str,
        api_url: str,
        raw_dir: Path,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        api_rate_per_s: float = API_RATE_PER_S,
        static_rate_per_s: float = STATIC_RATE_PER_S,
        now: datetime | None = None,
    ) -> None:
        self.static_url = static_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.raw_dir = Path(raw_dir)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.api_rate_per_s = api_rate_per_s
        self.static_rate_per_s = static_rate_per_s
        self.now = now
        self._pool = ClientPool(
            timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, backoff_max_s=backoff_max_s
        )
        self._contracts: tuple[dict[str, OkxContract], date] | None = None
        self._contracts_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def api(self) -> RestClient:
        """The REST client of ``api_url`` (created on first use, shared by threads)."""
        return self._pool.get(self.api_url, self.api_rate_per_s)

    def static(self) -> RestClient:
        """The client of ``static_url`` (created on first use, shared by threads)."""
        return self._pool.get(self.static_url, self.static_rate_per_s)

    def close(self) -> None:
        """Close the HTTP clients (they are re-created on next use)."""
        self._pool.close()

    def __enter__(self) -> OkxSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_contracts_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._contracts_lock = threading.Lock()

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC)

    # -- contract sizes --------------------------------------------------------------------
    def contracts(self) -> tuple[dict[str, OkxContract], date]:
        """OKX's swap contract sizes and the UTC day they were read.

        Read from ``/api/v5/public/instruments?instType=SWAP`` once per day and process (and
        kept as ``raw_dir/okx/instruments/SWAP-<day>.json``, so other processes of the same
        day reuse the answer).
        """
        today = self._now().date()
        with self._contracts_lock:
            if self._contracts is not None and self._contracts[1] == today:
                return self._contracts
            cache = self.raw_dir / EXCHANGE / "instruments" / f"SWAP-{today.isoformat()}.json"
            contracts: dict[str, OkxContract] | None = None
            if cache.is_file():
                try:
                    contracts = parse_instruments(json.loads(cache.read_bytes()))
                except (ValueError, SourceError):
                    contracts = None  # a damaged cache: read the endpoint again
            if contracts is None:
                body = self.api().get_json(INSTRUMENTS_PATH, {"instType": "SWAP"})
                contracts = parse_instruments(body)
                atomic_write(cache, json.dumps(body).encode())
            self._contracts = (contracts, today)
            return self._contracts

    def contract(self, symbol: str) -> ContractSpec:
        """The contract size of canonical ``symbol`` as OKX publishes it today."""
        contracts, read_on = self.contracts()
        return contract_spec(contracts, symbol, read_on)

    # -- the Source interface --------------------------------------------------------------
    def plan(
        self, symbols: Sequence[str], days: Sequence[date], *, with_trades: bool = False
    ) -> list[UnitRequest]:
        """Return ``trades``, ``open_interest`` and ``liquidations`` per symbol-day.

        ``with_trades`` changes nothing: OKX bars always come from trades.
        """
        for symbol in symbols:
            instrument(EXCHANGE, symbol)  # raises for unmapped symbols
        return [
            UnitRequest(EXCHANGE, ds, symbol, day)
            for symbol in dict.fromkeys(symbols)
            for day in sorted(set(days))
            for ds in DATASETS
        ]

    def stage(self, request: UnitRequest, staging_dir: Path) -> StagedUnit:
        """Fetch and parse one unit; write its rows to Parquet under ``staging_dir``.

        Never raises for data problems: a 404 (or a day OKX no longer serves) is ``missing``,
        anything else that goes wrong is ``failed`` with a short ``reason``.
        """
        base: dict[str, Any] = {
            "exchange": EXCHANGE,
            "dataset": request.dataset,
            "symbol": request.symbol,
            "day": request.day,
        }
        if request.dataset not in DATASETS:
            reason = f"unknown dataset {request.dataset!r}; expected one of {', '.join(DATASETS)}"
            return StagedUnit(**base, status="failed", reason=reason, kind="internal")
        url: str | None = None
        try:
            inst_id = instrument(EXCHANGE, request.symbol)
            ct_val = 0.0
            if request.dataset in ("trades", "liquidations"):
                url = self.api().url(f"{INSTRUMENTS_PATH}?instType=SWAP")
                spec = self.contract(request.symbol)
                ct_val = spec.contract_size
                base.update(
                    contract_size=spec.contract_size,
                    contract_unit=spec.contract_unit,
                    size_read_on=spec.read_on,
                )
            if request.dataset == "trades":
                url = self.static().url(trades_path(inst_id, request.day))
                return self._stage_trades(base, inst_id, ct_val, request.day, staging_dir)
            if request.dataset == "open_interest":
                url = self.api().url("/api/v5/rubik/stat/contracts/open-interest-history")
                return self._stage_open_interest(base, inst_id, request.day, staging_dir)
            url = self.api().url("/api/v5/public/liquidation-orders")
            return self._stage_liquidations(base, inst_id, ct_val, request.day, staging_dir)
        except NotFoundError as exc:
            return StagedUnit(**base, status="missing", reason=str(exc), url=url, kind="missing")
        except UnknownContractSizeError as exc:
            return StagedUnit(**base, status="failed", reason=str(exc), url=url, kind=exc.kind)
        except SourceError as exc:
            return StagedUnit(**base, status="failed", reason=str(exc), url=url, kind=exc.kind)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug or an unforeseen answer: record it, keep going
            reason = f"internal error: {type(exc).__name__}: {short_reason(exc)[:100]}"
            return StagedUnit(**base, status="failed", reason=reason, url=url, kind="internal")

    # -- trades ----------------------------------------------------------------------------
    def _trades_file(self, inst_id: str, okx_day: date) -> tuple[Path, str, bool]:
        """Return ``(path, sha256, downloaded)`` of a cached (or freshly fetched) trades zip."""
        path = trades_path(inst_id, okx_day)
        target = self.raw_dir / EXCHANGE / path
        if target.exists():
            return target, sha256_file(target), False
        got = self.static().download(path, target)
        return got.path, got.sha256, True

    def _trades(self, inst_id: str, okx_day: date, ct_val: float) -> tuple[pl.DataFrame, str, bool]:
        """Parse one OKX trades file: ``(trades, sha256, downloaded)``. A cached zip that turns
        out corrupt is deleted and fetched again once; a fresh corrupt one fails the unit and
        never stays in the cache."""
        for _attempt in range(2):
            path, digest, fresh = self._trades_file(inst_id, okx_day)
            try:
                data = read_csv_member(path)
                return parse_trades_csv(data, ct_val, name=path.name), digest, fresh
            except BadZipError:
                path.unlink(missing_ok=True)
                if fresh:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _stage_trades(
        self, base: dict[str, Any], inst_id: str, ct_val: float, day: date, staging_dir: Path
    ) -> StagedUnit:
        start, end = day_bounds(day)
        frames: list[pl.DataFrame] = []
        digests: list[str] = []
        urls: list[str] = []
        downloaded = False
        for okx_day in okx_file_days(day):
            urls.append(self.static().url(trades_path(inst_id, okx_day)))
            try:
                frame, digest, fresh = self._trades(inst_id, okx_day, ct_val)
            except NotFoundError:
                reason = (
                    f"404 not published: OKX trades file {okx_day.isoformat()} (UTC+8 day; "
                    f"needed for {day.isoformat()} UTC)"
                )
                return StagedUnit(
                    **base, status="missing", reason=reason, url=urls[-1], kind="missing"
                )
            downloaded |= fresh
            digests.append(digest)
            frames.append(frame)
        trades = pl.concat(frames).unique(subset=["trade_id"], keep="first")
        inside = trades.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        if inside.is_empty():
            raise ParseError(f"no trades inside {day.isoformat()} UTC in the two OKX files")
        bars = trades_to_klines(inside, start, end)
        stem = f"{EXCHANGE}-trades-{base['symbol']}-{day.isoformat()}"
        parquet = write_staged_frame(bars, staging_dir, stem)
        lineage = hashlib.sha256("\n".join(digests).encode()).hexdigest()
        return StagedUnit(
            **base,
            status="loaded",
            table=TABLES["trades"],
            parquet=str(parquet),
            start=start,
            end=end,
            rows=bars.height,
            sha256=lineage,
            url=" + ".join(urls),
            downloaded=downloaded,
        )

    # -- open interest ---------------------------------------------------------------------
    def fetch_open_interest_rows(
        self, inst_id: str, period: str, start: datetime, end: datetime
    ) -> list[Any]:
        """Page backwards through open-interest-history for ``[start, end)``.

        OKX's ``begin`` ("records newer than") and ``end`` ("earlier than") are both exclusive,
        so the first page asks ``begin = start - 1 ms`` and ``end = end`` (the sample stamped
        at the day's 00:00 is included, the next day's 00:00 is not); each next page ends at
        the oldest stamp seen (exclusive again), until the day's start is reached.
        """
        start_ms = _ms(start)
        begin_ms, cursor = start_ms - 1, _ms(end)
        rows: list[Any] = []
        for _page in range(MAX_PAGES):
            params: dict[str, str | int | float] = {
                "instId": inst_id,
                "period": period,
                "begin": begin_ms,
                "end": cursor,
                "limit": PAGE_LIMIT,
            }
            page = okx_data(
                self.api().get_json("/api/v5/rubik/stat/contracts/open-interest-history", params)
            )
            if not page:
                break
            rows.extend(page)
            try:
                oldest = min(int(r[0]) for r in page)
            except (TypeError, ValueError, IndexError) as exc:
                raise ParseError(f"bad open-interest row: {short_reason(exc)}") from exc
            if oldest <= start_ms or len(page) < PAGE_LIMIT or oldest >= cursor:
                break  # reached the day's start, the end of history, or a cursor-less server
            cursor = oldest
        return rows

    def _stage_open_interest(
        self, base: dict[str, Any], inst_id: str, day: date, staging_dir: Path
    ) -> StagedUnit:
        start, end = day_bounds(day)
        if end > self._now():
            # a loaded unit is never fetched again: pull a day once it is over
            reason = "day not over: open interest is pulled once the UTC day has ended"
            return StagedUnit(**base, status="skipped", reason=reason)
        for period in OI_PERIODS:
            rows = self.fetch_open_interest_rows(inst_id, period, start, end)
            frame = parse_open_interest(rows).filter((pl.col("ts") >= start) & (pl.col("ts") < end))
            if frame.height:
                break
        else:
            reason = f"no open interest for {day.isoformat()} (OKX keeps only recent history)"
            return StagedUnit(**base, status="missing", reason=reason, kind="missing")
        notes: list[str] = []
        expected = _OI_PER_DAY[period]
        if period != OI_PERIODS[0]:
            notes.append(f"5m history gone: {period} samples")
        if frame.height < expected:
            notes.append(f"short: {frame.height} of {expected} {period} samples")
        stem = f"{EXCHANGE}-open_interest-{base['symbol']}-{day.isoformat()}"
        parquet = write_staged_frame(frame, staging_dir, stem)
        return StagedUnit(
            **base,
            status="loaded",
            table=TABLES["open_interest"],
            parquet=str(parquet),
            start=start,
            end=end,
            rows=frame.height,
            reason="; ".join(notes) or None,
            url=self.api().url(
                "/api/v5/rubik/stat/contracts/open-interest-history"
                f"?instId={inst_id}&period={period}"
            ),
            kind="warning" if notes else None,
        )

    # -- liquidations ----------------------------------------------------------------------
    def _stage_liquidations(
        self, base: dict[str, Any], inst_id: str, ct_val: float, day: date, staging_dir: Path
    ) -> StagedUnit:
        start, end = day_bounds(day)
        now = self._now()
        if end > now:
            # a loaded unit is never fetched again: pull a day once it is over
            reason = "day not over: liquidations are pulled once the UTC day has ended"
            return StagedUnit(**base, status="skipped", reason=reason)
        family = inst_family(inst_id)
        path = "/api/v5/public/liquidation-orders"
        url = self.api().url(f"{path}?instType=SWAP&instFamily={family}&state=filled")
        cursor = _ms(end)
        pages: list[Any] = []
        oldest: int | None = None
        reached_start = False
        for _page in range(MAX_PAGES):
            params: dict[str, str | int | float] = {
                "instType": "SWAP",
                "instFamily": family,
                "state": "filled",
                "limit": PAGE_LIMIT,
                "after": cursor,
            }
            data = okx_data(self.api().get_json(path, params))
            pages.extend(data)
            stamps = detail_stamps(data)
            if not stamps:
                break
            page_oldest = min(stamps)
            oldest = page_oldest if oldest is None else min(oldest, page_oldest)
            if page_oldest < _ms(start):
                reached_start = True
                break
            if len(stamps) < PAGE_LIMIT or page_oldest >= cursor:
                break
            cursor = page_oldest
        atomic_write(
            self.raw_dir
            / EXCHANGE
            / "liquidation-orders"
            / family
            / f"{day.isoformat()}-pulled-{now:%Y%m%dT%H%M%SZ}.json",
            json.dumps({"fetched_at": now.isoformat(), "data": pages}).encode(),
        )
        lineage = hashlib.sha256(json.dumps(pages, sort_keys=True).encode()).hexdigest()
        if oldest is None:
            reason = (
                f"no liquidation orders returned for {day.isoformat()} "
                "(OKX serves recent ones only)"
            )
            return StagedUnit(**base, status="missing", reason=reason, url=url, kind="missing")
        notes: list[str] = []
        if reached_start:
            covered_from = start
        else:
            covered_from = max(
                start, datetime.fromtimestamp(oldest / 1000, tz=UTC).replace(microsecond=0)
            )
            if covered_from > start:
                notes.append(f"partial: OKX returned orders from {covered_from:%H:%M:%S} only")
        events = parse_liquidations(pages, inst_id, ct_val).filter(
            (pl.col("ts") >= covered_from) & (pl.col("ts") < end)
        )
        stem = f"{EXCHANGE}-liquidations-{base['symbol']}-{day.isoformat()}"
        parquet = write_staged_frame(events, staging_dir, stem)
        return StagedUnit(
            **base,
            status="loaded",
            table=TABLES["liquidations"],
            parquet=str(parquet),
            replaces_source=LIQUIDATION_SOURCE,
            start=covered_from,
            end=end,
            rows=events.height,
            sha256=lineage,
            reason="; ".join(notes) or None,
            url=url,
            kind="warning" if notes else None,
        )


def from_settings(settings: Settings, *, base_url: str | None = None) -> OkxSource:
    """The registry factory: an :class:`OkxSource` from ``settings``.

    ``base_url`` (a local mirror) replaces both the static-file and the API root.
    """
    return OkxSource(
        base_url or settings.okx_static_url,
        base_url or settings.okx_api_url,
        settings.raw_dir,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
