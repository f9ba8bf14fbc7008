"""Parsers of the exchanges' REST market-data answers: pure, JSON rows in, canonical frames out.

The layouts, as the real answers and docs examples in ``real-samples/rest/`` have them (numbers
as strings, times as numbers or strings of epoch ms):

- **Binance** ``/fapi/v1/klines``: 12 slots ``[openTime, open, high, low, close, volume,
  closeTime, quoteVolume, trades, takerBuyBase, takerBuyQuote, ignore]``, oldest first;
  ``/fapi/v1/markPriceKlines``: the same 12 slots, volumes ``"0"``;
  ``/futures/data/openInterestHist``: objects ``{symbol, sumOpenInterest, sumOpenInterestValue,
  [CMCCirculatingSupply], timestamp}`` (``timestamp`` a number now, a string in old docs).
- **Bybit** ``/v5/market/kline``: 7 slots ``[startTime, open, high, low, close, volume,
  turnover]`` (linear: volume in base, turnover in quote), newest first;
  ``/v5/market/mark-price-kline``: 5 slots, newest first.
- **OKX** ``/api/v5/market/candles`` (and ``history-candles``): 9 slots ``[ts, o, h, l, c, vol,
  volCcy, volCcyQuote, confirm]`` (swaps: ``vol`` in contracts, ``volCcy`` in the base coin),
  newest first; ``mark-price-candles``: 6 slots ``[ts, o, h, l, c, confirm]``. Only confirmed
  bars (``confirm == "1"``) are kept.

Every parser returns rows sorted by ``ts`` with one row per ``ts`` (the last answer wins) and
raises :class:`~flows.sources.errors.ParseError` for a row of the wrong shape or a bad number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from flows.sources.base import KLINES_SCHEMA, OPEN_INTEREST_SCHEMA, TS
from flows.sources.errors import ParseError, short_reason

#: canonical ``mark_klines`` rows
MARK_KLINES_SCHEMA: dict[str, pl.DataType] = {
    "ts": TS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
}

Slots = dict[str, int]

#: Binance kline slots -> canonical columns (the mark-price answer uses the OHLC ones)
BINANCE_KLINE_SLOTS: Slots = {
    "ts": 0,
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 5,
    "quote_volume": 7,
    "trades": 8,
    "taker_buy_volume": 9,
    "taker_buy_quote_volume": 10,
}
BYBIT_KLINE_SLOTS: Slots = {
    "ts": 0,
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 5,
    "quote_volume": 6,
}
OKX_CANDLE_SLOTS: Slots = {
    "ts": 0,
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 6,
    "quote_volume": 7,
}
OHLC_SLOTS: Slots = {"ts": 0, "open": 1, "high": 2, "low": 3, "close": 4}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ParseError(f"bad {what} {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParseError(f"bad {what} {str(value)[:30]!r}") from None


def _epoch_ms(value: Any, what: str = "time") -> int:
    number = _number(value, what)
    if not 1e12 <= number < 1e13:
        raise ParseError(f"{what} {value!r} is not epoch milliseconds")
    return int(number)


def slot_rows(
    rows: Sequence[Any], slots: Slots, schema: dict[str, pl.DataType], *, what: str
) -> pl.DataFrame:
    """Turn list-shaped REST rows into ``schema`` columns, reading each column from its slot.

    Columns of ``schema`` without a slot are null. Rows are sorted by ``ts`` (answers come
    newest or oldest first) and a repeated ``ts`` keeps its last row.

    Examples
    --------
    >>> rows = [["1747094040000", "2", "3", "1", "2.5"], ["1747093980000", "1", "2", "1", "2"]]
    >>> slot_rows(rows, OHLC_SLOTS, MARK_KLINES_SCHEMA, what="mark").get_column("close").to_list()
    [2.0, 2.5]
    """
    need = max(slots.values()) + 1
    columns: dict[str, list[Any]] = {name: [] for name in schema}
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) < need:
            raise ParseError(f"{what}: a row is not a list of at least {need} fields: {row!r:.80}")
        for name in schema:
            slot = slots.get(name)
            if slot is None:
                columns[name].append(None)
            elif name == "ts":
                columns[name].append(_epoch_ms(row[slot], f"{what} time"))
            elif name == "trades":
                columns[name].append(int(_number(row[slot], f"{what} {name}")))
            else:
                columns[name].append(_number(row[slot], f"{what} {name}"))
    return _canonical(columns, schema, what)


def _canonical(
    columns: dict[str, list[Any]], schema: dict[str, pl.DataType], what: str
) -> pl.DataFrame:
    raw_schema = {n: (pl.Int64() if n == "ts" else t) for n, t in schema.items()}
    try:
        frame = pl.DataFrame(columns, schema=raw_schema)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise ParseError(f"{what}: {short_reason(exc)}") from exc
    frame = frame.with_columns(
        pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC").cast(TS)
    )
    return frame.sort("ts").unique("ts", keep="last", maintain_order=True)


def binance_klines(rows: Sequence[Any]) -> pl.DataFrame:
    """``/fapi/v1/klines`` rows -> canonical ``klines`` rows.

    Examples
    --------
    >>> row = [1499040000000, "0.0163", "0.8", "0.0157", "0.0157", "148976.1", 1499644799999,
    ...        "2434.19", 308, "1756.87", "28.46", "0"]
    >>> binance_klines([row]).select("close", "trades", "taker_buy_volume").row(0)
    (0.0157, 308, 1756.87)
    """
    return slot_rows(rows, BINANCE_KLINE_SLOTS, KLINES_SCHEMA, what="binance klines")


def binance_mark_klines(rows: Sequence[Any]) -> pl.DataFrame:
    """``/fapi/v1/markPriceKlines`` rows -> canonical ``mark_klines`` rows (OHLC only)."""
    return slot_rows(rows, OHLC_SLOTS, MARK_KLINES_SCHEMA, what="binance mark klines")


def binance_open_interest(rows: Sequence[Any]) -> pl.DataFrame:
    """``/futures/data/openInterestHist`` objects -> canonical ``open_interest`` rows
    (``oi_base = sumOpenInterest``, ``oi_usd = sumOpenInterestValue``; ratios null).

    ``timestamp`` may be a number (2026 answers) or a string (old docs).

    Examples
    --------
    >>> binance_open_interest([{"symbol": "BTCUSDT", "sumOpenInterest": "94731.046",
    ...     "sumOpenInterestValue": "8157280897.9", "timestamp": 1791284400000}]).row(0)[1:3]
    (94731.046, 8157280897.9)
    """
    columns: dict[str, list[Any]] = {name: [] for name in OPEN_INTEREST_SCHEMA}
    for row in rows:
        if not isinstance(row, dict):
            raise ParseError(f"binance open interest: a row is not an object: {row!r:.80}")
        columns["ts"].append(_epoch_ms(row.get("timestamp"), "open-interest timestamp"))
        columns["oi_base"].append(_number(row.get("sumOpenInterest"), "sumOpenInterest"))
        columns["oi_usd"].append(_number(row.get("sumOpenInterestValue"), "sumOpenInterestValue"))
        for name in list(OPEN_INTEREST_SCHEMA)[3:]:
            columns[name].append(None)
    return _canonical(columns, OPEN_INTEREST_SCHEMA, "binance open interest")


def bybit_klines(rows: Sequence[Any]) -> pl.DataFrame:
    """``/v5/market/kline`` (linear) rows -> canonical ``klines`` rows; no trade count or
    taker split in this answer (null)."""
    return slot_rows(rows, BYBIT_KLINE_SLOTS, KLINES_SCHEMA, what="bybit kline")


def bybit_mark_klines(rows: Sequence[Any]) -> pl.DataFrame:
    """``/v5/market/mark-price-kline`` rows (5 slots) -> canonical ``mark_klines`` rows."""
    return slot_rows(rows, OHLC_SLOTS, MARK_KLINES_SCHEMA, what="bybit mark kline")


def _confirmed(rows: Sequence[Any], slot: int, what: str) -> list[Any]:
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) <= slot:
            raise ParseError(f"{what}: a row has no confirm slot {slot}: {row!r:.80}")
    return [row for row in rows if str(row[slot]) == "1"]


def okx_candles(rows: Sequence[Any]) -> pl.DataFrame:
    """``/api/v5/market/candles`` rows -> canonical ``klines`` rows from the confirmed bars
    (``volume = volCcy``, base coin; ``quote_volume = volCcyQuote``).

    Examples
    --------
    >>> rows = [["1747094040000", "102806.1", "102820.4", "102806.1", "102820.4", "1040.37",
    ...          "10.4037", "1069603.34883", "1"],
    ...         ["1747094100000", "1", "1", "1", "1", "1", "1", "1", "0"]]
    >>> okx_candles(rows).select("close", "volume").rows()
    [(102820.4, 10.4037)]
    """
    kept = _confirmed(rows, 8, "okx candles")
    return slot_rows(kept, OKX_CANDLE_SLOTS, KLINES_SCHEMA, what="okx candles")


def okx_mark_candles(rows: Sequence[Any]) -> pl.DataFrame:
    """``/api/v5/market/mark-price-candles`` rows -> canonical ``mark_klines`` rows from the
    confirmed bars."""
    kept = _confirmed(rows, 5, "okx mark candles")
    return slot_rows(kept, OHLC_SLOTS, MARK_KLINES_SCHEMA, what="okx mark candles")
