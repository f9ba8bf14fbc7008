"""Parse Binance archive CSV members into canonical, validated polars frames.

Every parser sniffs the header (present in recent futures files, absent in old ones and in all
spot files), checks the column count on every line, detects epoch milliseconds (13 digits) vs
microseconds (16 digits), sorts, drops duplicate rows and checks the row count and time coverage
against the file's day. Problems that make a file unusable raise :class:`ParseError`; a file that
is usable but incomplete (a "short file") parses with :attr:`Parsed.warning` set, e.g.
``"short file: 1380 of 1440 rows"``.

Frames use ``pl.Datetime("us", "UTC")`` for ``ts`` and carry the warehouse's columns
(``exchange`` and ``symbol`` included), ready for :mod:`warehouse.writes`.

Metrics partitions. The metrics ``create_time`` labels changed convention on 2026-06-25 (from
end-of-period ``00:05 … 00:00(next day)`` to start-of-period ``00:00 … 23:55``), so two adjacent
files can both carry the midnight label. ``ts`` keeps the label as published, and a metrics day
is keyed by the closed range of labels actually in its file (``[min ts, max ts]``, never outside
``[day 00:00, day+1 00:00]``). Re-loading a file therefore replaces exactly its own labels: no
duplicates, and a neighbouring day's rows are only replaced where the file carries the same
label (the midnight row, which then holds this file's value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from flows.sources.base import KLINES_SCHEMA as CANONICAL_KLINES
from flows.sources.base import OPEN_INTEREST_SCHEMA as CANONICAL_OPEN_INTEREST
from flows.sources.errors import ParseError
from flows.sources.files import day_bounds as day_bounds
from flows.sources.files import epoch_unit as epoch_unit

EXCHANGE = "binance"
TS = pl.Datetime("us", "UTC")

KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
METRICS_COLUMNS = (
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio",
    "count_long_short_ratio",
    "sum_taker_long_short_vol_ratio",
)
FUNDING_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")
AGGTRADES_COLUMNS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
)

#: the warehouse rows' key columns, added in front of the canonical staged frames
KEY_SCHEMA: dict[str, pl.DataType] = {"exchange": pl.String(), "symbol": pl.String()}
KLINES_SCHEMA: dict[str, pl.DataType] = {**KEY_SCHEMA, **CANONICAL_KLINES}
MARK_KLINES_SCHEMA: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),
    "ts": TS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
}
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {**KEY_SCHEMA, **CANONICAL_OPEN_INTEREST}
FUNDING_SCHEMA: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),
    "ts": TS,
    "funding_interval_hours": pl.Int32(),
    "funding_rate": pl.Float64(),
}
TRADE_PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),
    "ts": TS,
    "price": pl.Float64(),
    "volume": pl.Float64(),
    "buy_volume": pl.Float64(),
}

MINUTES_PER_DAY = 1440
METRICS_PER_DAY = 288
#: above this a price (USD per unit) or a volume is a corrupt row, not a market (1e308 is
#: "finite" but overflows every chart)
MAX_PRICE = 1e12
#: above this an open interest (base units or USD) is a corrupt row
MAX_OPEN_INTEREST = 1e15
_ALPHA = re.compile(r"^\s*\"?[A-Za-z_]")


@dataclass(frozen=True)
class Parsed:
    """A validated frame plus what the loader needs to write it.

    ``start``/``end`` give the half-open ``ts`` range the frame replaces in the warehouse.
    """

    frame: pl.DataFrame
    start: datetime
    end: datetime
    expected_rows: int | None
    warning: str | None = None

    @property
    def rows(self) -> int:
        return self.frame.height


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """Return ``[first of month 00:00 UTC, first of next month 00:00 UTC)``."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


# -- low level -----------------------------------------------------------------------------
def _first_lines(data: bytes, n: int = 2) -> list[str]:
    lines: list[str] = []
    for raw in data.splitlines()[: n + 5]:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            lines.append(line)
        if len(lines) == n:
            break
    return lines


def sniff_header(first_line: str, expected: tuple[str, ...]) -> bool:
    """Return True when ``first_line`` is a header row; validate it against ``expected``.

    Examples
    --------
    >>> sniff_header("calc_time,funding_interval_hours,last_funding_rate", FUNDING_COLUMNS)
    True
    >>> sniff_header("1775001600000,8,-0.00003449", FUNDING_COLUMNS)
    False
    """
    if not _ALPHA.match(first_line):
        return False
    names = tuple(f.strip().strip('"').strip().lower() for f in first_line.split(","))
    if names != expected:
        raise ParseError(f"unexpected header {','.join(names)[:80]!r}")
    return True


def _check_shape(data: bytes, columns: tuple[str, ...]) -> bool:
    """Sniff the header and check that every line has ``len(columns)`` fields; return
    whether there is a header."""
    lines = _first_lines(data, 2)
    if not lines:
        raise ParseError("empty file")
    header = sniff_header(lines[0], columns)
    if header and len(lines) == 1:
        raise ParseError("empty file (header only)")
    sample = lines[1] if header else lines[0]
    fields = sample.count(",") + 1
    if fields != len(columns):
        raise ParseError(f"{fields} columns, expected {len(columns)}")
    n_lines = sum(1 for raw in data.splitlines() if raw.strip())
    if data.count(b",") != n_lines * (len(columns) - 1):
        raise ParseError(f"ragged rows: not every line has {len(columns)} columns")
    return header


def _read_strings(data: bytes, columns: tuple[str, ...]) -> pl.DataFrame:
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not data
    if b"\n\n" in data or b"\n\r\n" in data or data[:1] in (b"\n", b"\r"):
        data = b"\n".join(line for line in data.splitlines() if line.strip())  # blank lines
    header = _check_shape(data, columns)
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            skip_rows=1 if header else 0,
            infer_schema=False,
            new_columns=list(columns),
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"unreadable CSV: {_first(exc)}") from exc
    # blank and quoted-empty fields are missing values
    return frame.with_columns(
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c)).alias(c)
        for c in columns
    )


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _epoch_ts(column: str, frame: pl.DataFrame) -> pl.Expr:
    """Expression turning an epoch string column into ``ts`` (unit sniffed, all rows checked)."""
    first = frame[column].drop_nulls()
    if first.is_empty():
        raise ParseError(f"column {column} is empty")
    unit = epoch_unit(str(first[0]))
    lengths = frame[column].str.len_chars()
    want = 13 if unit == "ms" else 16
    if frame[column].null_count() or bool((lengths != want).any()):
        raise ParseError(f"column {column} mixes time units or has blanks")
    return pl.from_epoch(pl.col(column).cast(pl.Int64), time_unit=unit).dt.replace_time_zone("UTC")


def _to_float(column: str, alias: str | None = None) -> pl.Expr:
    return pl.col(column).cast(pl.Float64, strict=True).alias(alias or column)


def _require(frame: pl.DataFrame, columns: list[str]) -> None:
    for c in columns:
        if frame[c].null_count():
            raise ParseError(f"{frame[c].null_count()} blank values in column {c}")


def _cast(frame: pl.DataFrame, exprs: list[pl.Expr]) -> pl.DataFrame:
    try:
        return frame.select(exprs)
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"bad value: {_first(exc)}") from exc


def _bad_price(column: str) -> tuple[str, pl.Expr]:
    c = pl.col(column)
    return (
        f"{column} is not a finite price in (0, {MAX_PRICE:.0e}]",
        c.is_null() | c.is_nan() | ~c.is_finite() | (c <= 0) | (c > MAX_PRICE),
    )


def _bad_amount(column: str, cap: float, *, nullable: bool = False) -> tuple[str, pl.Expr]:
    c = pl.col(column)
    bad = c.is_nan() | ~c.is_finite() | (c < 0) | (c > cap)
    return (
        f"{column} is not finite and in [0, {cap:.0e}]",
        bad.fill_null(False) if nullable else (c.is_null() | bad),
    )


def _ohlc_checks(*, volume: bool) -> list[tuple[str, pl.Expr]]:
    """Checks every 1m bar must pass: positive finite prices, the high the highest, the low
    the lowest, and (trade bars) a finite, non-negative volume."""
    checks = [_bad_price(c) for c in ("open", "high", "low", "close")]
    checks += [
        (
            "high below max(open, close)",
            pl.col("high") < pl.max_horizontal("open", "close"),
        ),
        ("low above min(open, close)", pl.col("low") > pl.min_horizontal("open", "close")),
        ("low above high", pl.col("low") > pl.col("high")),
    ]
    if volume:
        checks.append(_bad_amount("volume", MAX_PRICE * 1e3))
    return checks


def check_values(frame: pl.DataFrame, raw: pl.DataFrame, checks: list[tuple[str, pl.Expr]]) -> None:
    """Raise :class:`ParseError` naming the first row that fails a check (``True`` = bad),
    with the reason and the row as it was in the file. ``frame`` and ``raw`` (the strings)
    are row-aligned.

    Examples
    --------
    >>> f = pl.DataFrame({"open": [1.0, float("nan")]})
    >>> check_values(f, f.cast(pl.String), [_bad_price("open")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    flows.sources.binance.parsing.ParseError: bad value in data row 2: open is not a finite ...
    """
    flags = frame.select(
        pl.any_horizontal([expr.fill_null(True) for _, expr in checks]).alias("bad")
    )["bad"]
    if not bool(flags.any()):
        return
    index = int(flags.arg_true()[0])
    row = frame.slice(index, 1)
    reason = next(name for name, expr in checks if bool(row.select(expr.fill_null(True)).item()))
    text = ",".join("" if v is None else str(v) for v in raw.row(index))
    raise ParseError(f"bad value in data row {index + 1}: {reason} (row: {text[:160]})")


def _dedupe_sorted(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Sort by ts, drop identical rows, keep the first of rows sharing a ts; return the frame
    and the number of conflicting (same ts, different values) rows dropped."""
    frame = frame.unique(maintain_order=False).sort("ts")
    before = frame.height
    frame = frame.unique(subset=["ts"], keep="first", maintain_order=True)
    return frame, before - frame.height


def _first_last(frame: pl.DataFrame) -> tuple[datetime, datetime]:
    first, last = frame["ts"].min(), frame["ts"].max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        raise ParseError("no rows")
    return first, last


def _hhmm(ts: datetime) -> str:
    return ts.strftime("%H:%M")


def _short_warning(rows: int, expected: int, frame: pl.DataFrame, extra: str | None) -> str | None:
    notes: list[str] = []
    if rows < expected:
        first, last = _first_last(frame)
        notes.append(f"short file: {rows} of {expected} rows ({_hhmm(first)}-{_hhmm(last)})")
    if extra:
        notes.append(extra)
    return "; ".join(notes) or None


# -- datasets ------------------------------------------------------------------------------
def parse_klines(data: bytes, symbol: str, day: date, *, mark: bool = False) -> Parsed:
    """Parse a daily 1m ``klines`` (or ``markPriceKlines`` with ``mark=True``) CSV member.

    Examples
    --------
    >>> row = "1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6,0"
    >>> parse_klines(row.encode(), "BTCUSDT", date(2024, 1, 1)).warning
    'short file: 1 of 1440 rows (00:00-00:00)'
    """
    raw = _read_strings(data, KLINE_COLUMNS)
    ts = _epoch_ts("open_time", raw)
    prices = ["open", "high", "low", "close"]
    if mark:
        _require(raw, ["open_time", *prices])
        frame = _cast(
            raw,
            [
                pl.lit(EXCHANGE).alias("exchange"),
                pl.lit(symbol).alias("symbol"),
                ts.cast(TS).alias("ts"),
                *[_to_float(c) for c in prices],
            ],
        )
    else:
        _require(raw, ["open_time", *prices, "volume"])
        frame = _cast(
            raw,
            [
                pl.lit(EXCHANGE).alias("exchange"),
                pl.lit(symbol).alias("symbol"),
                ts.cast(TS).alias("ts"),
                *[_to_float(c) for c in prices],
                _to_float("volume"),
                _to_float("quote_volume"),
                pl.col("count").cast(pl.Int64, strict=True).alias("trades"),
                _to_float("taker_buy_volume"),
                _to_float("taker_buy_quote_volume"),
            ],
        )
    check_values(frame, raw, _ohlc_checks(volume=not mark))
    return _finish_minutes(frame, day)


def _finish_minutes(frame: pl.DataFrame, day: date) -> Parsed:
    start, end = day_bounds(day)
    outside = frame.filter((pl.col("ts") < start) | (pl.col("ts") >= end)).height
    if outside:
        raise ParseError(f"{outside} rows outside {day.isoformat()} (wrong day or time unit)")
    if frame.filter(pl.col("ts").dt.truncate("1m") != pl.col("ts")).height:
        raise ParseError("open_time not on the 1-minute grid")
    frame, conflicts = _dedupe_sorted(frame)
    extra = f"{conflicts} conflicting duplicate minutes dropped" if conflicts else None
    warning = _short_warning(frame.height, MINUTES_PER_DAY, frame, extra)
    return Parsed(frame, start, end, MINUTES_PER_DAY, warning)


def parse_metrics(data: bytes, symbol: str, day: date) -> Parsed:
    """Parse a daily ``metrics`` CSV member into ``open_interest`` rows.

    Labels are kept as published (see the module docstring for the partition rule); blank
    ratios become null; open interest ``<= 0`` (e.g. ``0E-8``) becomes null.
    """
    raw = _read_strings(data, METRICS_COLUMNS)
    _require(raw, ["create_time", "symbol"])
    symbols = raw["symbol"].unique().to_list()
    if symbols != [symbol]:
        raise ParseError(f"file is for symbol(s) {','.join(map(str, symbols))[:40]}, not {symbol}")

    def oi(column: str, alias: str) -> pl.Expr:
        value = pl.col(column).cast(pl.Float64, strict=True)
        return pl.when(value > 0).then(value).otherwise(None).alias(alias)

    values = _cast(raw, [_to_float(c) for c in ("sum_open_interest", "sum_open_interest_value")])
    check_values(
        values,
        raw,
        [
            _bad_amount("sum_open_interest", MAX_OPEN_INTEREST, nullable=True),
            _bad_amount("sum_open_interest_value", MAX_OPEN_INTEREST, nullable=True),
        ],
    )

    frame = _cast(
        raw,
        [
            pl.lit(EXCHANGE).alias("exchange"),
            pl.lit(symbol).alias("symbol"),
            pl.col("create_time")
            .str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", time_zone="UTC", strict=True)
            .alias("ts"),
            oi("sum_open_interest", "oi_base"),
            oi("sum_open_interest_value", "oi_usd"),
            _to_float("count_toptrader_long_short_ratio", "top_trader_account_ratio"),
            _to_float("sum_toptrader_long_short_ratio", "top_trader_position_ratio"),
            _to_float("count_long_short_ratio", "global_account_ratio"),
            _to_float("sum_taker_long_short_vol_ratio", "taker_buy_sell_ratio"),
        ],
    )
    day_start, day_end = day_bounds(day)
    outside = frame.filter((pl.col("ts") < day_start) | (pl.col("ts") > day_end)).height
    if outside:
        raise ParseError(f"{outside} rows outside {day.isoformat()} (wrong day)")
    frame, conflicts = _dedupe_sorted(frame)
    extra = f"{conflicts} conflicting duplicate labels dropped" if conflicts else None
    warning = _short_warning(frame.height, METRICS_PER_DAY, frame, extra)
    first, last = _first_last(frame)
    return Parsed(frame, first, last + timedelta(microseconds=1), METRICS_PER_DAY, warning)


def parse_funding(data: bytes, symbol: str, year: int, month: int) -> Parsed:
    """Parse a monthly ``fundingRate`` CSV member into ``funding_rates`` rows.

    ``calc_time`` carries a few ms of jitter after the funding time; ``ts`` is truncated to the
    second.
    """
    raw = _read_strings(data, FUNDING_COLUMNS)
    _require(raw, list(FUNDING_COLUMNS))
    frame = _cast(
        raw,
        [
            pl.lit(EXCHANGE).alias("exchange"),
            pl.lit(symbol).alias("symbol"),
            _epoch_ts("calc_time", raw).dt.truncate("1s").cast(TS).alias("ts"),
            pl.col("funding_interval_hours").cast(pl.Int32, strict=True),
            _to_float("last_funding_rate", "funding_rate"),
        ],
    )
    start, end = month_bounds(year, month)
    outside = frame.filter((pl.col("ts") < start) | (pl.col("ts") >= end)).height
    if outside:
        raise ParseError(f"{outside} rows outside {year:04d}-{month:02d}")
    frame, conflicts = _dedupe_sorted(frame)
    warning = f"{conflicts} conflicting duplicate funding times dropped" if conflicts else None
    return Parsed(frame, start, end, None, warning)


def parse_aggtrades_profile(csv_path: Path, symbol: str, day: date) -> Parsed:
    """Aggregate a daily ``aggTrades`` CSV (on disk) into a per-minute price profile.

    Streams the file with polars (never more than one day in memory): rows are de-duplicated on
    ``agg_trade_id`` when needed, trades outside the day are dropped (noted in the warning),
    and volume is summed per (minute, price); ``buy_volume`` is the taker-buy part
    (``is_buyer_maker == false``).
    """
    with csv_path.open("rb") as fh:
        head = fh.read(4096)
    lines = _first_lines(head, 2)
    if not lines:
        raise ParseError("empty file")
    header = sniff_header(lines[0], AGGTRADES_COLUMNS)
    if header and len(lines) == 1:
        raise ParseError("empty file (header only)")
    sample = lines[1] if header else lines[0]
    fields = sample.split(",")
    if len(fields) != len(AGGTRADES_COLUMNS):
        raise ParseError(f"{len(fields)} columns, expected {len(AGGTRADES_COLUMNS)}")
    unit = epoch_unit(fields[5])
    lo, hi = (10**12, 10**13) if unit == "ms" else (10**15, 10**16)
    schema = {
        "agg_trade_id": pl.Int64,
        "price": pl.Float64,
        "quantity": pl.Float64,
        "first_trade_id": pl.Int64,
        "last_trade_id": pl.Int64,
        "transact_time": pl.Int64,
        "is_buyer_maker": pl.String,
    }
    start, end = day_bounds(day)
    lf = pl.scan_csv(csv_path, has_header=header, schema=schema).with_columns(
        pl.from_epoch("transact_time", time_unit=unit).dt.replace_time_zone("UTC").alias("t")
    )
    try:
        stats = (
            lf.select(
                pl.len().alias("n"),
                pl.col("agg_trade_id").n_unique().alias("ids"),
                pl.col("transact_time").is_between(lo, hi, closed="left").not_().sum().alias("bad"),
                ((pl.col("t") < start) | (pl.col("t") >= end)).sum().alias("outside"),
                pl.col("price").is_null().sum().alias("null_price"),
                pl.col("quantity").is_null().sum().alias("null_qty"),
            )
            .collect(engine="streaming")
            .row(0, named=True)
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"bad value: {_first(exc)}") from exc
    if stats["bad"]:
        raise ParseError(f"{stats['bad']} transact_time values are not epoch {unit}")
    if stats["null_price"] or stats["null_qty"]:
        raise ParseError("blank price or quantity values")
    trades = lf.filter((pl.col("t") >= start) & (pl.col("t") < end))
    if stats["ids"] < stats["n"]:
        trades = trades.unique(subset=["agg_trade_id"], keep="first")
    buy = pl.col("is_buyer_maker").str.to_lowercase() == "false"
    try:
        frame = (
            trades.group_by(pl.col("t").dt.truncate("1m").cast(TS).alias("ts"), "price")
            .agg(
                pl.col("quantity").sum().alias("volume"),
                pl.when(buy).then(pl.col("quantity")).otherwise(0.0).sum().alias("buy_volume"),
            )
            .select(
                pl.lit(EXCHANGE).alias("exchange"),
                pl.lit(symbol).alias("symbol"),
                "ts",
                "price",
                "volume",
                "buy_volume",
            )
            .sort("ts", "price")
            .collect(engine="streaming")
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(f"bad value: {_first(exc)}") from exc
    if frame.is_empty():
        raise ParseError(f"no trades on {day.isoformat()}")
    notes: list[str] = []
    first, last = _first_last(frame)
    if first > start + timedelta(hours=1) or last < end - timedelta(hours=1):
        notes.append(f"short file: trades cover {_hhmm(first)}-{_hhmm(last)}")
    if stats["outside"]:
        notes.append(f"{stats['outside']} trades outside the day dropped")
    if stats["ids"] < stats["n"]:
        notes.append(f"{stats['n'] - stats['ids']} duplicate trades dropped")
    return Parsed(frame, start, end, None, "; ".join(notes) or None)
