"""Bybit parsers: pure functions from Bybit's trade files and REST answers to canonical frames.

No I/O: bytes and decoded JSON in, polars frames (or a contract size) out. Fetching, paging and
caching is :mod:`flows.sources.bybit.source`, which also describes each dataset.

- :func:`parse_trades` / :func:`bars_from_trades`: a daily gzip trade file -> 1-minute bars;
- :func:`single_side_oi` / :func:`oi_frame`: ``/v5/market/open-interest`` pages (+ 5-minute
  closes) -> ``open_interest`` rows;
- :func:`result_of`: the ``result`` of a v5 answer (``retCode`` checked);
- :func:`linear_contract`: the contract size from ``instruments-info``.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from flows.sources.base import KLINES_SCHEMA, OPEN_INTEREST_SCHEMA
from flows.sources.errors import SourceError, short_reason
from flows.sources.files import day_bounds
from flows.sources.symbols import ContractSpec, UnknownContractSizeError, lookup

EXCHANGE = "bybit"
INSTRUMENTS_PATH = "/v5/market/instruments-info"
#: OI samples per day at 5-minute intervals
OI_SAMPLES_PER_DAY = 288
TS = pl.Datetime("us", "UTC")
#: trade file times are epoch seconds (float since ~2025, integer before); larger is another unit
MAX_EPOCH_SECONDS = 1e11
#: columns every trade file must have (read by name: order and extra columns do not matter)
TRADE_COLUMNS = ("timestamp", "symbol", "side", "size", "price", "foreignNotional")
#: the full header of current files (``RPI`` is absent before ~2025)
TRADE_HEADER = (
    "timestamp",
    "symbol",
    "side",
    "size",
    "price",
    "tickDirection",
    "trdMatchID",
    "grossValue",
    "homeNotional",
    "foreignNotional",
    "RPI",
)


class BybitDataError(SourceError):
    """A Bybit file or answer that cannot be used; ``kind`` as in :class:`StagedUnit`
    (``parse`` unless given: ``corrupt``, ``missing`` or ``http``)."""

    def __init__(self, message: str, kind: str = "parse") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Staged:
    """A parsed unit before it is written: its canonical frame and notes."""

    frame: pl.DataFrame
    warning: str | None = None


# -- trades -> 1m bars ---------------------------------------------------------------------
def parse_trades(data: bytes, instrument_name: str, *, name: str = "trades file") -> pl.DataFrame:
    """Parse a Bybit trade file (gzip CSV bytes) into ``ts, side, size, price, quote`` in file
    order; ``name`` (the file's name) starts every error message.

    Raises :class:`BybitDataError` (``kind`` ``corrupt`` or ``parse``) for an unreadable file,
    a header without the needed columns, bad values or another symbol's trades.

    Examples
    --------
    >>> csv = b"timestamp,symbol,side,size,price,foreignNotional\\n"
    >>> csv += b"1767225600.5,BTCUSDT,Buy,2,10,20\\n"
    >>> parse_trades(gzip.compress(csv), "BTCUSDT").row(0)[1:]
    ('Buy', 2.0, 10.0, 20.0)
    """
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise BybitDataError(f"corrupt gzip: {short_reason(exc)}", "corrupt") from exc
    first = text.split(b"\n", 1)[0][: 64 * 1024]
    header = [c.strip() for c in first.decode("utf-8-sig", "replace").strip().split(",")]
    missing = [c for c in TRADE_COLUMNS if c not in header]
    if missing:
        got = ",".join(header)[:160]
        raise BybitDataError(
            f"{name}: unexpected header {got!r}: missing column(s) {', '.join(missing)}"
        )
    try:
        raw = pl.read_csv(
            text,
            columns=list(TRADE_COLUMNS),
            schema_overrides={
                "timestamp": pl.Float64,
                "symbol": pl.String,
                "side": pl.String,
                "size": pl.Float64,
                "price": pl.Float64,
                "foreignNotional": pl.Float64,
            },
        )
    except pl.exceptions.PolarsError as exc:
        raise BybitDataError(f"{name}: unparsable CSV: {short_reason(exc)}") from exc
    nulls = raw.null_count().row(0)
    if any(nulls):
        bad = [c for c, n in zip(raw.columns, nulls, strict=True) if n]
        raise BybitDataError(f"{name}: blank values in column(s) {', '.join(bad)}")
    others = raw.filter(pl.col("symbol") != instrument_name)["symbol"].unique().to_list()
    if others:
        raise BybitDataError(f"{name}: holds trades of {others[0]!r}, expected {instrument_name!r}")
    bad_rows = raw.select(
        (
            ~pl.col("side").is_in(["Buy", "Sell"])
            | ~(pl.col("price").is_finite() & (pl.col("price") > 0))
            | ~(pl.col("size").is_finite() & (pl.col("size") >= 0))
            | ~pl.col("foreignNotional").is_finite()
            | ~pl.col("timestamp").is_finite()
        ).sum()
    ).item()
    if bad_rows:
        raise BybitDataError(
            f"{name}: {bad_rows} trade row(s) with a bad side, price, size or time"
        )
    biggest = raw["timestamp"].max()
    if isinstance(biggest, int | float) and biggest > MAX_EPOCH_SECONDS:
        raise BybitDataError(
            f"{name}: timestamp {biggest:.0f} is not in epoch seconds "
            f"(header {','.join(header)[:160]!r})"
        )
    return raw.select(
        (pl.col("timestamp") * 1_000_000).round(0).cast(pl.Int64).cast(TS).alias("ts"),
        "side",
        "size",
        "price",
        pl.col("foreignNotional").alias("quote"),
    )


def bars_from_trades(trades: pl.DataFrame, day: date) -> Staged:
    """Aggregate one day of trades into 1440 one-minute bars (columns of ``KLINES_SCHEMA``).

    ``trades`` has ``ts`` (UTC datetime), ``side`` (taker side ``Buy``/``Sell``), ``size`` (base),
    ``price`` and ``quote`` (USDT notional), in file order (ascending or descending in time;
    trades sharing a timestamp keep their chronological file order). Trades outside the day are
    dropped with a warning; a day without any trade raises :class:`BybitDataError`.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = pl.DataFrame({"ts": [datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    ...                          datetime(2026, 1, 1, 0, 2, 1, tzinfo=UTC)],
    ...                   "side": ["Buy", "Sell"], "size": [1.0, 2.0],
    ...                   "price": [100.0, 101.0], "quote": [100.0, 202.0]})
    >>> bars = bars_from_trades(t, date(2026, 1, 1)).frame
    >>> bars.height, bars["close"].head(3).to_list(), bars["volume"].head(3).to_list()
    (1440, [100.0, 100.0, 101.0], [1.0, 0.0, 2.0])
    """
    start, end = day_bounds(day)
    frame = trades.with_columns(pl.col("ts").cast(TS))
    if frame.height > 1 and frame["ts"][0] > frame["ts"][-1]:
        frame = frame.reverse()  # newest-first file: restore chronological order
    frame = frame.sort("ts", maintain_order=True)
    inside = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    outside = frame.height - inside.height
    if inside.height == 0:
        raise BybitDataError(f"no trades inside {day.isoformat()} ({frame.height} in the file)")
    buy = pl.col("side") == "Buy"
    bars = inside.group_by(pl.col("ts").dt.truncate("1m"), maintain_order=True).agg(
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        pl.col("size").sum().alias("volume"),
        pl.col("quote").sum().alias("quote_volume"),
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("size").filter(buy).sum().alias("taker_buy_volume"),
        pl.col("quote").filter(buy).sum().alias("taker_buy_quote_volume"),
    )
    grid = pl.DataFrame(
        {"ts": pl.datetime_range(start, end, "1m", closed="left", time_unit="us", eager=True)}
    ).with_columns(pl.col("ts").cast(TS))
    full = grid.join(bars, on="ts", how="left").sort("ts")
    carry = pl.col("close").forward_fill().fill_null(pl.col("open").backward_fill())
    full = full.with_columns(carry.alias("_carry")).with_columns(
        *[pl.col(c).fill_null(pl.col("_carry")) for c in ("open", "high", "low", "close")],
        *[
            pl.col(c).fill_null(0.0)
            for c in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")
        ],
        pl.col("trades").fill_null(0),
    )
    warning = f"{outside} trade(s) outside the day dropped" if outside else None
    return Staged(full.select(list(KLINES_SCHEMA)).cast(pl.Schema(KLINES_SCHEMA)), warning)


# -- open interest -------------------------------------------------------------------------
def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BybitDataError(f"bad {what} {value!r} in Bybit answer") from None


def single_side_oi(row: dict[str, Any]) -> float:
    """Return one side's open interest (base units) of a ``/v5/market/open-interest`` entry.

    The basis, decided from data: answers since 2026-06-11 may carry ``singleOpenInterest``
    (one side; the docs' example shows it as exactly half of ``openInterest``), which is used
    whenever present. Without it, ``openInterest`` is taken as **one side**: the docs call it
    "the sum of both sides", but the 2026 BTCUSDT linear answer reads ~65,000 BTC while
    Binance's single-side ``sum_open_interest`` was ~93,000 BTC that month (a ratio of 0.70;
    halving would give 0.35). The loader cross-checks every Bybit day against Binance's
    (:data:`flows.sources.loader.OI_RATIO_BAND`) and warns when the ratio is implausible.

    Examples
    --------
    >>> single_side_oi({"openInterest": "63910691", "singleOpenInterest": "31955346"})
    31955346.0
    >>> single_side_oi({"openInterest": "64992.054"})
    64992.054
    """
    single = row.get("singleOpenInterest")
    if single not in (None, ""):
        return _number(single, "singleOpenInterest")
    return _number(row.get("openInterest"), "openInterest")


def oi_frame(oi_rows: Sequence[Any], kline_rows: Sequence[Any], day: date) -> Staged:
    """Build the canonical ``open_interest`` rows of ``day`` from Bybit's answers.

    ``oi_rows``: ``result.list`` entries ``{"openInterest": str, "timestamp": str(ms)}`` of all
    pages (the single-side value is :func:`single_side_oi`); ``kline_rows``: 5-minute
    ``[startTime, open, high, low, close, volume, turnover]``
    lists. ``oi_usd`` uses the close of the bar ending at each sample (``startTime = ts - 5m``);
    without that bar it is null (and a warning says so). Samples outside the day are dropped,
    duplicates keep the first, ``openInterest <= 0`` becomes null.

    Examples
    --------
    >>> oi = [{"openInterest": "2", "timestamp": "1767225600000"}]
    >>> k = [["1767225300000", "99", "101", "98", "100", "5", "500"]]
    >>> oi_frame(oi, k, date(2026, 1, 1)).frame.select("oi_base", "oi_usd").row(0)
    (2.0, 200.0)
    """
    start, end = day_bounds(day)
    if not all(isinstance(r, dict) for r in oi_rows):
        raise BybitDataError("open-interest list entries are not objects")
    if not all(isinstance(r, list | tuple) and len(r) >= 5 for r in kline_rows):
        raise BybitDataError("kline list entries are not [startTime, o, h, l, c, ...] lists")
    oi = pl.DataFrame(
        {
            "ms": [int(_number(r.get("timestamp"), "timestamp")) for r in oi_rows],
            "oi_base": [single_side_oi(r) for r in oi_rows],
        },
        schema={"ms": pl.Int64, "oi_base": pl.Float64},
    )
    closes = pl.DataFrame(
        {
            "ms": [int(_number(r[0], "kline startTime")) + 300_000 for r in kline_rows],
            "price": [_number(r[4], "kline close") for r in kline_rows],
        },
        schema={"ms": pl.Int64, "price": pl.Float64},
    ).unique("ms", keep="first")
    frame = (
        oi.with_columns((pl.col("ms") * 1000).cast(TS).alias("ts"))
        .filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .unique("ts", keep="first", maintain_order=True)
        .join(closes, on="ms", how="left")
        .sort("ts")
    )
    positive = pl.col("oi_base").is_finite() & (pl.col("oi_base") > 0)
    good_price = pl.col("price").is_finite() & (pl.col("price") > 0)
    frame = frame.with_columns(pl.when(positive).then(pl.col("oi_base")).alias("oi_base"))
    frame = frame.with_columns(
        pl.when(good_price).then(pl.col("oi_base") * pl.col("price")).alias("oi_usd"),
        *[
            pl.lit(None, pl.Float64).alias(c)
            for c in list(OPEN_INTEREST_SCHEMA)[3:]  # the ratios Bybit does not publish
        ],
    )
    notes: list[str] = []
    if frame.height < OI_SAMPLES_PER_DAY:
        notes.append(f"short: {frame.height} of {OI_SAMPLES_PER_DAY} samples")
    unpriced = frame.filter(pl.col("oi_base").is_not_null() & pl.col("oi_usd").is_null()).height
    if unpriced:
        notes.append(f"{unpriced} sample(s) without a 5m close: oi_usd null")
    out = frame.select(list(OPEN_INTEREST_SCHEMA)).cast(pl.Schema(OPEN_INTEREST_SCHEMA))
    return Staged(out, "; ".join(notes) or None)


def linear_contract(result: dict[str, Any], symbol: str, read_on: date | None) -> ContractSpec:
    """Return the contract size of canonical ``symbol`` from an instruments-info ``result``.

    Bybit linear contracts trade in base-coin units (size 1) when Bybit lists the symbol as a
    ``LinearPerpetual`` of that base coin; anything else is refused in one line
    (:class:`~flows.sources.symbols.UnknownContractSizeError`).

    Examples
    --------
    >>> r = {"list": [{"symbol": "BTCUSDT", "contractType": "LinearPerpetual",
    ...                "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading"}]}
    >>> linear_contract(r, "BTCUSDT", None).contract_size
    1.0
    """
    inst = lookup(EXCHANGE, symbol)
    listed = [
        e
        for e in result.get("list") or []
        if isinstance(e, dict) and e.get("symbol") == inst.instrument
    ]
    where = f"{INSTRUMENTS_PATH}?category=linear" + (f" (read {read_on})" if read_on else "")
    if not listed:
        raise UnknownContractSizeError(
            f"bybit contract size of {symbol} unknown: {inst.instrument} is not listed in {where}"
        )
    entry = listed[0]
    kind, coin = entry.get("contractType"), entry.get("baseCoin")
    if kind != "LinearPerpetual" or coin != inst.base:
        raise UnknownContractSizeError(
            f"bybit contract size of {symbol} unusable: {inst.instrument} is {kind} in {coin}, "
            f"expected a LinearPerpetual in {inst.base}"
        )
    return ContractSpec(EXCHANGE, symbol, 1.0, "base", read_on)


def result_of(body: Any, path: str) -> dict[str, Any]:
    """Return ``result`` of a Bybit v5 answer from ``path``; raise :class:`BybitDataError`
    (``kind`` ``http``) for ``retCode != 0`` and (``parse``) for an answer without
    ``result.list``. The caller retries :data:`RATE_LIMIT_RETCODE` before calling this.

    Examples
    --------
    >>> result_of({"retCode": 0, "retMsg": "OK", "result": {"list": []}}, "/v5/x")
    {'list': []}
    """
    if not isinstance(body, dict) or "retCode" not in body:
        raise BybitDataError(f"unexpected answer from {path} (no retCode)")
    code, message = body.get("retCode"), str(body.get("retMsg", "")).strip()
    if code != 0:
        raise BybitDataError(f"bybit retCode {code}: {message or 'no message'}", "http")
    result = body.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("list"), list):
        raise BybitDataError(f"unexpected answer from {path} (no result.list)")
    return result
