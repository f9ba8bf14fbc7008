"""OKX parsers: pure functions from OKX's files and REST answers to canonical polars frames.

No I/O: bytes, decoded JSON bodies and rows in, frames (or contract sizes) out. The fetching, paging
and caching is :mod:`flows.sources.okx.source`; what each dataset means is described there.

- :func:`parse_trades_csv` / :func:`trades_to_klines`: a daily trades CSV -> 1-minute bars;
- :func:`okx_data`: the ``data`` list of an answer (``code != 0`` -> :class:`OkxApiError`);
- :func:`parse_open_interest`: ``open-interest-history`` rows -> ``open_interest`` rows;
- :func:`parse_instruments` / :func:`contract_spec`: swap contract sizes;
- :func:`parse_liquidations` / :func:`detail_stamps`: ``liquidation-orders`` -> realized events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl

from flows.sources.base import KLINES_SCHEMA, OPEN_INTEREST_SCHEMA, REALIZED_SCHEMA
from flows.sources.errors import HttpError, ParseError, short_reason
from flows.sources.files import epoch_unit
from flows.sources.symbols import ContractSpec, UnknownContractSizeError, lookup

EXCHANGE = "okx"
LIQUIDATION_SOURCE = "okx-liquidation-orders"

#: the columns every OKX trades file must have (matched by name; extra columns are ignored)
TRADE_COLUMNS = ("instrument_name", "trade_id", "side", "price", "size", "created_time")
#: the current (2025-09 onwards) header: ``source`` added after OKX added it to its trades API
TRADE_HEADER_V7 = (*TRADE_COLUMNS, "source")
TS = pl.Datetime("us", "UTC")


INSTRUMENTS_PATH = "/api/v5/public/instruments"


class OkxApiError(HttpError):
    """OKX answered HTTP 200 with a non-zero ``code`` (e.g. ``51001``, a bad parameter)."""


def _header_names(first: str) -> list[str]:
    return [f.strip().strip('"').strip() for f in first.split(",")]


def parse_trades_csv(data: bytes, ct_val: float, *, name: str = "trades CSV") -> pl.DataFrame:
    """Parse an OKX trades CSV into ``ts, trade_id, price, base, buy`` (sizes in base units).

    Columns are matched **by name**: the current files have seven
    (``instrument_name,trade_id,side,price,size,created_time,source``; ``source`` was added in
    2025), older ones the first six. Columns beyond :data:`TRADE_COLUMNS` are ignored; a file
    lacking one of them, a file without a header row and a header in any other form (e.g.
    ``price/成交价格`` name/translation pairs) are refused with the file ``name`` and the
    header seen. ``size`` (contracts) times ``ct_val`` gives base units.

    Raises
    ------
    ParseError
        For a missing or unexpected header, bad numbers, an unknown side or time unit.

    Examples
    --------
    >>> csv = b"instrument_name,trade_id,side,price,size,created_time,source\\n"
    >>> csv += b"BTC-USDT-SWAP,1,buy,100.5,3,1748736000000,0\\n"
    >>> parse_trades_csv(csv, 0.01).row(0)[1:]
    (1, 100.5, 0.03, True)
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not first:
        raise ParseError(f"{name}: empty file")
    fields = _header_names(first)
    shown = first[:160]
    if any(f.isdigit() for f in fields):
        raise ParseError(f"{name}: no header row (first line {shown!r}); columns are read by name")
    lowered = [f.lower() for f in fields]
    if len(set(lowered)) != len(lowered):
        raise ParseError(f"{name}: duplicate column names in header {shown!r}")
    missing = [c for c in TRADE_COLUMNS if c not in lowered]
    if missing:
        raise ParseError(
            f"{name}: unexpected header {shown!r}: missing column(s) {', '.join(missing)}"
        )
    try:
        raw = pl.read_csv(
            data,
            has_header=False,
            skip_rows=1,
            new_columns=lowered,
            infer_schema=False,
            encoding="utf8-lossy",
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"{name}: unreadable CSV: {short_reason(exc)}") from exc
    if raw.width != len(lowered):
        raise ParseError(f"{name}: {raw.width} columns in the rows, {len(lowered)} in the header")
    raw = raw.select(TRADE_COLUMNS)
    if raw.is_empty():
        return pl.DataFrame(
            schema={
                "ts": TS,
                "trade_id": pl.Int64(),
                "price": pl.Float64(),
                "base": pl.Float64(),
                "buy": pl.Boolean(),
            }
        )
    nulls = [c for c in TRADE_COLUMNS if raw[c].null_count()]
    if nulls:
        raise ParseError(f"{name}: blank values in column(s) {', '.join(nulls)}")
    try:
        unit = epoch_unit(str(raw["created_time"][0]))
    except ParseError as exc:
        raise ParseError(f"{name}: created_time: {exc}") from None
    sides = set(raw["side"].str.to_lowercase().unique().to_list())
    if not sides <= {"buy", "sell"}:
        bad = sorted(map(str, sides - {"buy", "sell"}))
        raise ParseError(f"{name}: unknown trade side(s) {bad}")
    try:
        return raw.select(
            pl.from_epoch(pl.col("created_time").cast(pl.Int64), time_unit=unit)
            .dt.replace_time_zone("UTC")
            .alias("ts"),
            pl.col("trade_id").cast(pl.Int64),
            pl.col("price").cast(pl.Float64),
            (pl.col("size").cast(pl.Float64) * ct_val).alias("base"),
            (pl.col("side").str.to_lowercase() == "buy").alias("buy"),
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"{name}: bad value: {short_reason(exc)}") from exc


def trades_to_klines(trades: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """Aggregate trades (``ts, trade_id, price, base, buy``) into 1-minute ``klines`` rows.

    Only trades in ``[start, end)`` count; every minute of the range is present. A minute
    without trades repeats the previous close (before the first trade: the first trade's
    price) with zero volume and zero trades. Trades are ordered by ``(ts, trade_id)`` for
    open/close.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2025, 6, 1, tzinfo=UTC)
    >>> trades = pl.DataFrame({"ts": [t0 + timedelta(seconds=s) for s in (5, 70)],
    ...     "trade_id": [1, 2], "price": [10.0, 12.0], "base": [1.0, 2.0], "buy": [True, False]})
    >>> bars = trades_to_klines(trades, t0, t0 + timedelta(minutes=3))
    >>> bars["close"].to_list(), bars["volume"].to_list()
    ([10.0, 12.0, 12.0], [1.0, 2.0, 0.0])
    """
    inside = trades.filter((pl.col("ts") >= start) & (pl.col("ts") < end)).sort("ts", "trade_id")
    quote = pl.col("base") * pl.col("price")
    bars = inside.group_by(pl.col("ts").dt.truncate("1m"), maintain_order=True).agg(
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        pl.col("base").sum().alias("volume"),
        quote.sum().alias("quote_volume"),
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("base").filter(pl.col("buy")).sum().alias("taker_buy_volume"),
        quote.filter(pl.col("buy")).sum().alias("taker_buy_quote_volume"),
    )
    grid = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                start, end, "1m", closed="left", time_unit="us", time_zone="UTC", eager=True
            )
        }
    )
    out = grid.join(bars, on="ts", how="left")
    fill = pl.col("close").forward_fill().fill_null(pl.col("open").backward_fill())
    zero = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")
    return out.with_columns(
        *(pl.col(c).fill_null(fill) for c in ("open", "high", "low", "close")),
        *(pl.col(c).fill_null(0.0) for c in zero),
        pl.col("trades").fill_null(0),
    ).select(pl.col(c).cast(t) for c, t in KLINES_SCHEMA.items())


def okx_data(body: Any) -> list[Any]:
    """Return ``body["data"]`` of an OKX answer; raise :class:`OkxApiError` on ``code != 0``.

    Examples
    --------
    >>> okx_data({"code": "0", "msg": "", "data": [["1", "2"]]})
    [['1', '2']]
    """
    if not isinstance(body, dict) or "code" not in body:
        raise OkxApiError(f"unexpected OKX answer: {str(body)[:60]!r}")
    if str(body["code"]) != "0":
        raise OkxApiError(f"OKX error {body['code']}: {str(body.get('msg', ''))[:100]}")
    data = body.get("data")
    if not isinstance(data, list):
        raise OkxApiError("OKX answer without a data list")
    return data


def parse_open_interest(rows: Sequence[Sequence[Any]]) -> pl.DataFrame:
    """Turn OKX open-interest-history rows ``[ts, oi, oiCcy, oiUsd]`` into canonical
    ``open_interest`` rows (``oi_base = oiCcy``, ``oi_usd = oiUsd``; ratios null), sorted,
    one row per minute-truncated ``ts``.

    Examples
    --------
    >>> parse_open_interest([["1748736300000", "1000", "10", "1050000"]]).row(0)[1:3]
    (10.0, 1050000.0)
    """
    if any(len(r) < 4 for r in rows):
        raise ParseError("open-interest row with fewer than 4 fields")
    try:
        frame = pl.DataFrame(
            {
                "ts": [int(r[0]) for r in rows],
                "oi_base": [float(r[2]) for r in rows],
                "oi_usd": [float(r[3]) for r in rows],
            },
            schema={"ts": pl.Int64(), "oi_base": pl.Float64(), "oi_usd": pl.Float64()},
        )
    except (TypeError, ValueError) as exc:
        raise ParseError(f"bad open-interest value: {short_reason(exc)}") from exc
    frame = frame.with_columns(
        pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC").dt.truncate("1m")
    )
    frame = frame.sort("ts").unique(subset=["ts"], keep="last", maintain_order=True)
    return frame.with_columns(
        pl.lit(None, pl.Float64()).alias(c) for c in list(OPEN_INTEREST_SCHEMA)[3:]
    ).select(pl.col(c).cast(t) for c, t in OPEN_INTEREST_SCHEMA.items())


@dataclass(frozen=True)
class OkxContract:
    """One swap of ``/api/v5/public/instruments?instType=SWAP``: ``size = ctVal x ctMult``
    units of ``ccy`` (``ctValCcy``) per contract; ``ct_type`` ``linear`` or ``inverse``."""

    inst_id: str
    size: float
    ccy: str
    ct_type: str


def parse_instruments(body: Any) -> dict[str, OkxContract]:
    """Return the contracts of an OKX instruments answer by ``instId``.

    Entries without a positive ``ctVal`` are left out (their size is unknown).

    Examples
    --------
    >>> body = {"code": "0", "msg": "", "data": [{"instId": "BTC-USDT-SWAP", "ctVal": "0.01",
    ...         "ctMult": "1", "ctValCcy": "BTC", "ctType": "linear"}]}
    >>> parse_instruments(body)["BTC-USDT-SWAP"].size
    0.01
    """
    out: dict[str, OkxContract] = {}
    for entry in okx_data(body):
        if not isinstance(entry, dict):
            raise ParseError("instruments answer: an entry is not an object")
        inst_id = str(entry.get("instId", ""))
        try:
            size = float(entry.get("ctVal") or "nan") * float(entry.get("ctMult") or "1")
        except (TypeError, ValueError):
            continue
        if inst_id and size > 0:
            out[inst_id] = OkxContract(
                inst_id, size, str(entry.get("ctValCcy", "")), str(entry.get("ctType", ""))
            )
    return out


def contract_spec(
    contracts: dict[str, OkxContract], symbol: str, read_on: date | None = None
) -> ContractSpec:
    """Return the contract size of canonical ``symbol`` from :func:`parse_instruments`.

    Raises :class:`~flows.sources.symbols.UnknownContractSizeError` (one line) when OKX lists
    no such swap or not as a linear contract counted in the base coin.

    Examples
    --------
    >>> c = {"BTC-USDT-SWAP": OkxContract("BTC-USDT-SWAP", 0.01, "BTC", "linear")}
    >>> contract_spec(c, "BTCUSDT").contract_size
    0.01
    """
    inst = lookup(EXCHANGE, symbol)
    where = f"{INSTRUMENTS_PATH}?instType=SWAP" + (f" (read {read_on})" if read_on else "")
    found = contracts.get(inst.instrument)
    if found is None:
        raise UnknownContractSizeError(
            f"okx contract size of {symbol} unknown: {inst.instrument} has no ctVal in {where}"
        )
    if found.ct_type != "linear" or found.ccy != inst.base:
        raise UnknownContractSizeError(
            f"okx contract size of {symbol} unusable: {inst.instrument} is {found.size:g} "
            f"{found.ccy} ({found.ct_type}), expected a linear contract in {inst.base}"
        )
    return ContractSpec(EXCHANGE, symbol, found.size, "base", read_on)


def parse_liquidations(data: Sequence[Any], inst_id: str, ct_val: float) -> pl.DataFrame:
    """Flatten OKX liquidation-orders ``data`` into ``ts, side, usd, source`` rows.

    ``side`` is the liquidated side: ``posSide`` when it is ``long``/``short``, else (net
    mode) ``sell`` -> ``long``, ``buy`` -> ``short``. ``usd = sz * ct_val * bkPx``. Entries of
    other instruments are ignored; exact duplicate rows (page overlaps) are dropped.

    Examples
    --------
    >>> d = [{"instId": "BTC-USDT-SWAP", "details": [{"side": "sell", "posSide": "long",
    ...       "bkPx": "50000", "sz": "2", "ts": "1723038122631"}]}]
    >>> parse_liquidations(d, "BTC-USDT-SWAP", 0.01).row(0)[1:]
    ('long', 1000.0, 'okx-liquidation-orders')
    """
    ts: list[int] = []
    sides: list[str] = []
    usd: list[float] = []
    for entry in data:
        if not isinstance(entry, dict):
            raise ParseError("liquidation entry is not an object")
        if entry.get("instId", inst_id) != inst_id:
            continue
        for d in entry.get("details") or []:
            try:
                pos = str(d.get("posSide", "")).lower()
                side = str(d.get("side", "")).lower()
                if pos in ("long", "short"):
                    sides.append(pos)
                elif side in ("sell", "buy"):
                    sides.append("long" if side == "sell" else "short")
                else:
                    raise ParseError(f"liquidation without a side ({side!r}, {pos!r})")
                ts.append(int(d["ts"]))
                usd.append(float(d["sz"]) * ct_val * float(d["bkPx"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ParseError(f"bad liquidation order: {short_reason(exc)}") from exc
    frame = pl.DataFrame(
        {"ts": ts, "side": sides, "usd": usd},
        schema={"ts": pl.Int64(), "side": pl.String(), "usd": pl.Float64()},
    )
    return (
        frame.unique(maintain_order=True)
        .with_columns(
            pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC"),
            pl.lit(LIQUIDATION_SOURCE).alias("source"),
        )
        .sort("ts", maintain_order=True)
        .select(pl.col(c).cast(t) for c, t in REALIZED_SCHEMA.items())
    )


def detail_stamps(data: Sequence[Any]) -> list[int]:
    """Return the ``ts`` (ms) of every liquidation detail in one page of ``data``."""
    try:
        return [
            int(d["ts"])
            for entry in data
            if isinstance(entry, dict)
            for d in entry.get("details") or []
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(f"bad liquidation order: {short_reason(exc)}") from exc
