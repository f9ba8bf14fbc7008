"""Realized-liquidation CSV import (the generic format).

Two layouts are accepted, told apart by their header:

- per event: ``ts,side,usd`` (side ``long``/``short``; also ``buy``/``sell`` as the side of
  the liquidation order: ``sell`` liquidates a long),
- per bar: ``ts,long_usd,short_usd``.

``ts`` is ISO-8601 (UTC when no offset is given) or epoch milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "side": pl.String(),
    "usd": pl.Float64(),
}

_SIDE_ALIASES = {"long": "long", "short": "short", "sell": "long", "buy": "short"}


class RealizedFormatError(ValueError):
    """The realized-liquidations file is not in a supported layout."""


def _parse_ts(col: pl.Series) -> pl.Series:
    if col.dtype.is_integer() or col.dtype.is_float():
        return (col.cast(pl.Int64) * 1000).cast(pl.Datetime("us", "UTC"))
    text = col.cast(pl.String).str.strip_chars()
    if text.str.contains(r"^\d{13}$").all():
        return (text.cast(pl.Int64) * 1000).cast(pl.Datetime("us", "UTC"))
    parsed = text.str.to_datetime(time_zone="UTC", strict=False, time_unit="us")
    if parsed.null_count() > col.null_count():
        bad = text.filter(parsed.is_null() & text.is_not_null()).head(1).to_list()
        raise RealizedFormatError(f"unparseable ts value {bad[0]!r}")
    return parsed


def read_realized_csv(path: Path) -> pl.DataFrame:
    """Read a realized-liquidations CSV into events ``(ts, side, usd)``, zero rows dropped."""
    try:
        raw = pl.read_csv(path, infer_schema_length=10_000)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        raise RealizedFormatError(f"{path}: cannot read CSV: {str(exc).splitlines()[0]}") from exc
    cols = {c.strip().lower(): c for c in raw.columns}
    if {"ts", "side", "usd"} <= cols.keys():
        side = raw[cols["side"]].cast(pl.String).str.strip_chars().str.to_lowercase()
        mapped = side.replace_strict(_SIDE_ALIASES, default=None)
        if mapped.null_count() > side.null_count():
            raise RealizedFormatError(f"{path}: side must be long/short (or sell/buy)")
        events = pl.DataFrame(
            {
                "ts": _parse_ts(raw[cols["ts"]]),
                "side": mapped,
                "usd": raw[cols["usd"]].cast(pl.Float64),
            }
        )
    elif {"ts", "long_usd", "short_usd"} <= cols.keys():
        ts = _parse_ts(raw[cols["ts"]])
        events = pl.concat(
            [
                pl.DataFrame(
                    {"ts": ts, "side": side, "usd": raw[cols[f"{side}_usd"]].cast(pl.Float64)}
                )
                for side in ("long", "short")
            ]
        )
    else:
        raise RealizedFormatError(
            f"{path}: expected columns ts,side,usd or ts,long_usd,short_usd; got {raw.columns}"
        )
    events = events.filter(pl.col("usd").is_not_null() & (pl.col("usd") > 0))
    return events.sort("ts", "side").cast(EVENTS_SCHEMA)  # type: ignore[arg-type]
