"""The COIN-M ``liquidationSnapshot`` CSV parser: pure (bytes in, realized events out).

What the file holds and how its rows are stored is described in
:mod:`flows.sources.binance_cm.source`.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from flows.sources.base import REALIZED_SCHEMA
from flows.sources.binance.parsing import sniff_header
from flows.sources.errors import ParseError, short_reason
from flows.sources.files import day_bounds, epoch_unit

SOURCE = "binance-cm-liquidationSnapshot"
COLUMNS = (
    "time",
    "side",
    "order_type",
    "time_in_force",
    "original_quantity",
    "price",
    "average_price",
    "order_status",
    "last_fill_quantity",
    "accumulated_fill_quantity",
)
_SIDES = {"SELL": "long", "BUY": "short"}


def parse_liquidation_snapshot(data: bytes, day: date, usd_per_contract: float) -> pl.DataFrame:
    """Parse a liquidationSnapshot CSV into ``ts, side, usd, source`` rows for ``day``.

    Exact duplicate rows are dropped (the archive repeats every row), ``SELL`` maps to
    ``long`` and ``BUY`` to ``short``, ``usd = accumulated_fill_quantity * usd_per_contract``;
    unfilled rows are dropped.

    Raises
    ------
    ParseError
        Unexpected header or column count, bad numbers, an unknown side, or rows outside
        ``day``.

    Examples
    --------
    >>> head = (b"time,side,order_type,time_in_force,original_quantity,price,average_price,"
    ...         b"order_status,last_fill_quantity,accumulated_fill_quantity\\n")
    >>> row = b"1687656471926,BUY,LIMIT,IOC,7,30741.3,30631.6,FILLED,6,7\\n"
    >>> frame = parse_liquidation_snapshot(head + row + row, date(2023, 6, 25), 100.0)
    >>> frame.select("side", "usd").rows()
    [('short', 700.0)]
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    lines = [ln for ln in data.splitlines() if ln.strip()]
    if not lines:
        raise ParseError("empty file")
    header = sniff_header(lines[0].decode("utf-8", "replace").strip(), COLUMNS)
    body = lines[1:] if header else lines
    if not body:
        return pl.DataFrame(schema=REALIZED_SCHEMA)
    if any(ln.count(b",") != len(COLUMNS) - 1 for ln in body):
        raise ParseError(f"ragged rows: not every line has {len(COLUMNS)} columns")
    try:
        raw = pl.read_csv(
            b"\n".join(body),
            has_header=False,
            new_columns=list(COLUMNS),
            infer_schema=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"unreadable CSV: {short_reason(exc)}") from exc
    raw = raw.unique(maintain_order=True)  # every row appears twice in the archive
    unit = epoch_unit(str(raw["time"][0]))
    sides = set(raw["side"].str.strip_chars().str.to_uppercase().unique().to_list())
    if not sides <= set(_SIDES):
        raise ParseError(f"unknown side(s) {sorted(map(str, sides - set(_SIDES)))}")
    try:
        frame = raw.select(
            pl.from_epoch(pl.col("time").cast(pl.Int64), time_unit=unit)
            .dt.replace_time_zone("UTC")
            .alias("ts"),
            pl.col("side").str.strip_chars().str.to_uppercase().replace_strict(_SIDES),
            (pl.col("accumulated_fill_quantity").cast(pl.Float64) * usd_per_contract).alias("usd"),
            pl.lit(SOURCE).alias("source"),
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"bad value: {short_reason(exc)}") from exc
    start, end = day_bounds(day)
    outside = frame.filter((pl.col("ts") < start) | (pl.col("ts") >= end)).height
    if outside:
        raise ParseError(f"{outside} rows outside {day.isoformat()} (wrong day or time unit)")
    return (
        frame.filter(pl.col("usd") > 0)
        .sort("ts", maintain_order=True)
        .select(pl.col(c).cast(t) for c, t in REALIZED_SCHEMA.items())
    )
