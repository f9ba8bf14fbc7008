"""Per-bar files (CSV or Parquet read into a frame) turned into warehouse-shaped bars.

The one reader of per-bar tables in liqheat: ``liqheat import``, ``liqheat calibrate --file``
and the realized-liquidation files of ``liqheat backtest --realized`` all map their columns
and read their times here. Pure: frames in, frames out (reading the file is the caller's).

Columns are found by role (:data:`COLUMN_ROLES`): the first exact name that matches
(case-insensitive, surrounding spaces ignored), else the first column starting with one of
the role's prefixes; ``--map role=column`` overrides. Times (role ``ts``, the bar's open) may be
epoch seconds, milliseconds or microseconds (told apart by size) or ISO-8601 (UTC unless an
offset is given). The bar size is the most common step between consecutive times and must be
one of :data:`BAR_SIZES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

__all__ = [
    "BAR_SIZES",
    "COLUMN_ROLES",
    "BarTable",
    "ImportDataError",
    "accepted_names",
    "bar_label",
    "bar_seconds_of",
    "bar_table",
    "column_mapping",
    "parse_mapping",
    "parse_times",
    "realized_events",
]

#: role -> (exact names, name prefixes); first match wins, names case-insensitive
COLUMN_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ts": (("ts", "open_time_ms", "open_time", "timestamp", "time", "datetime", "date"), ()),
    "open": (("open",), ()),
    "high": (("high",), ()),
    "low": (("low",), ()),
    "close": (("close",), ()),
    "volume": (("volume", "base_volume"), ()),
    "quote_volume": (("quote_volume", "volume_usd"), ()),
    "taker_buy_volume": (("taker_buy_volume", "taker_buy_base_volume", "buy_volume"), ()),
    "oi_usd": (
        ("oi_usd", "open_interest_usd", "sum_open_interest_value", "open_interest_value"),
        ("open_interest_usd",),
    ),
    "oi_base": (("oi_base", "open_interest", "sum_open_interest", "open_interest_base"), ()),
    "mark_open": (("mark_open",), ()),
    "mark_high": (("mark_high",), ()),
    "mark_low": (("mark_low",), ()),
    "mark_close": (("mark_close", "mark_price"), ()),
    "funding_rate": (("funding_rate", "last_funding_rate", "funding"), ()),
    "global_account_ratio": (
        ("long_short_ratio", "global_account_ratio", "count_long_short_ratio"),
        (),
    ),
    "top_trader_account_ratio": (
        ("top_trader_account_ratio", "count_toptrader_long_short_ratio"),
        (),
    ),
    "top_trader_position_ratio": (
        ("top_trader_position_ratio", "sum_toptrader_long_short_ratio"),
        (),
    ),
    "taker_buy_sell_ratio": (("taker_buy_sell_ratio", "sum_taker_long_short_vol_ratio"), ()),
    "long_usd": (("long_usd", "realized_long_usd"), ("liquidated_long_usd",)),
    "short_usd": (("short_usd", "realized_short_usd"), ("liquidated_short_usd",)),
    "side": (("side",), ()),
    "usd": (("usd", "value_usd", "notional_usd"), ()),
}
#: roles holding prices (must be finite and > 0 where given)
PRICE_ROLES = ("open", "high", "low", "close", "mark_open", "mark_high", "mark_low", "mark_close")
#: roles that must be >= 0 where given
NONNEGATIVE_ROLES = ("volume", "quote_volume", "taker_buy_volume", "oi_usd", "oi_base",
                     "long_usd", "short_usd", "usd")  # fmt: skip
#: the bar sizes a file may have, in seconds
BAR_SIZES: tuple[int, ...] = (60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 28800, 43200,
                              86400)  # fmt: skip

_SIDE_ALIASES = {"long": "long", "short": "short", "sell": "long", "buy": "short"}
#: how many bad rows an error line names
_SHOWN = 5


class ImportDataError(ValueError):
    """A file that cannot be imported as it is (one line for the user)."""


def parse_mapping(text: Sequence[str]) -> dict[str, str]:
    """Parse ``--map`` values (``role=column``, comma-separated, repeatable) into a dict.

    Examples
    --------
    >>> parse_mapping(["ts=open_time_ms,oi_usd=oi", "close=last"])
    {'ts': 'open_time_ms', 'oi_usd': 'oi', 'close': 'last'}
    """
    out: dict[str, str] = {}
    for chunk in text:
        for part in chunk.split(","):
            if not part.strip():
                continue
            role, sep, col = part.partition("=")
            role, col = role.strip(), col.strip()
            if not sep or not role or not col:
                raise ImportDataError(f"bad --map {part.strip()!r} (expected role=column)")
            if role not in COLUMN_ROLES:
                raise ImportDataError(
                    f"unknown role {role!r} in --map (roles: {', '.join(COLUMN_ROLES)})"
                )
            out[role] = col
    return out


def column_mapping(
    columns: Sequence[str], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Map each role of :data:`COLUMN_ROLES` found in ``columns`` to its column.

    Examples
    --------
    >>> dict(sorted(column_mapping(["Open_Time_MS", "open", "oi"], {"oi_usd": "oi"}).items()))
    {'oi_usd': 'oi', 'open': 'open', 'ts': 'Open_Time_MS'}
    """
    lower = {c.strip().lower(): c for c in columns}
    picked: dict[str, str] = {}
    for role, col in (overrides or {}).items():
        if col not in columns and col.strip().lower() not in lower:
            raise ImportDataError(
                f"--map {role}={col}: no column {col!r} (header: {','.join(columns)})"
            )
        picked[role] = col if col in columns else lower[col.strip().lower()]
    taken = set(picked.values())
    for role, (exact, prefixes) in COLUMN_ROLES.items():
        if role in picked:
            continue
        found = next((lower[n] for n in exact if n in lower and lower[n] not in taken), None)
        if found is None:
            found = next(
                (c for low, c in lower.items() for p in prefixes if low.startswith(p)), None
            )
        if found is not None and found not in taken:
            picked[role] = found
            taken.add(found)
    return picked


def accepted_names(roles: Sequence[str]) -> str:
    """The column names each role accepts, for error lines.

    Examples
    --------
    >>> accepted_names(["close", "long_usd"])
    'close: close; long_usd: long_usd, realized_long_usd, liquidated_long_usd*'
    """
    parts = []
    for role in roles:
        key = role.split(" ")[0]
        exact, prefixes = COLUMN_ROLES.get(key, ((), ()))
        if key == "oi_usd" and "oi_base" in role:
            exact = (*exact, *COLUMN_ROLES["oi_base"][0])
        names = [*exact, *(f"{p}*" for p in prefixes)]
        parts.append(f"{key}: {', '.join(names)}")
    return "; ".join(parts)


def _rows_text(rows: Sequence[int], row_base: int) -> str:
    shown = ", ".join(str(r + row_base) for r in rows[:_SHOWN])
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    return f"{shown}{more}"


def parse_times(col: pl.Series, *, row_base: int = 2, what: str = "ts") -> pl.Series:
    """Return ``col`` as UTC datetimes (us): epoch s/ms/us by size, or ISO-8601 text.

    ``row_base`` turns a 0-based row index into the number shown in errors (2 = the line of a
    CSV with a header).

    Examples
    --------
    >>> s = pl.Series([1_700_000_000, 1_700_000_060])
    >>> [str(t) for t in parse_times(s)]
    ['2023-11-14 22:13:20+00:00', '2023-11-14 22:14:20+00:00']
    >>> str(parse_times(pl.Series(["2024-01-01T00:05:00Z"]))[0])
    '2024-01-01 00:05:00+00:00'
    """
    if col.dtype == pl.Datetime or col.dtype == pl.Date:
        ts = col.cast(pl.Datetime("us"))
        dtype = col.dtype
        tz = getattr(dtype, "time_zone", None)
        return (
            ts.dt.replace_time_zone("UTC") if tz is None else ts.dt.convert_time_zone("UTC")
        ).alias("ts")
    text = col.cast(pl.String).str.strip_chars()
    numeric = text.cast(pl.Float64, strict=False)
    if numeric.is_not_null().sum() == text.is_not_null().sum() and text.is_not_null().any():
        big = float(numeric.abs().max())  # type: ignore[arg-type]
        scale = 1 if big >= 1e14 else 1000 if big >= 1e11 else 1_000_000  # us, ms, s -> us
        parsed = pl.from_epoch((numeric * scale).round(0).cast(pl.Int64), time_unit="us")
        parsed = parsed.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    else:
        parsed = text.str.to_datetime(time_zone="UTC", time_unit="us", strict=False)
    bad = (parsed.is_null()).arg_true().to_list()
    if bad:
        raise ImportDataError(
            f"unreadable {what} (epoch s/ms or ISO-8601 expected) in row(s) "
            f"{_rows_text(bad, row_base)}"
        )
    out: pl.Series = parsed.alias("ts")
    return out


def bar_seconds_of(ts: pl.Series) -> int:
    """The bar size of sorted, unique bar times: their most common step, one of
    :data:`BAR_SIZES` (a single bar: 60).

    Examples
    --------
    >>> from datetime import datetime
    >>> bar_seconds_of(pl.Series([datetime(2024, 1, 1, h) for h in (0, 1, 2, 5)]))
    3600
    """
    if ts.len() < 2:
        return 60
    steps = ts.diff().drop_nulls().dt.total_seconds()
    step = int(steps.mode().min())  # type: ignore[arg-type]
    if step not in BAR_SIZES:
        sizes = ", ".join(bar_label(s, short=True) for s in BAR_SIZES)
        raise ImportDataError(
            f"the times step by {step} s most often, not a bar size liqheat knows ({sizes})"
        )
    return step


def bar_label(seconds: int | None, *, short: bool = False) -> str:
    """``"5-minute"``/``"1-hour"`` (``short``: ``"5m"``/``"1h"``) for a bar size in seconds.

    Examples
    --------
    >>> bar_label(300), bar_label(3600), bar_label(86400, short=True)
    ('5-minute', '1-hour', '1d')
    """
    s = int(seconds or 60)
    for unit, size, word in (("d", 86400, "day"), ("h", 3600, "hour"), ("m", 60, "minute")):
        if s % size == 0:
            return f"{s // size}{unit}" if short else f"{s // size}-{word}"
    return f"{s}s" if short else f"{s}-second"


@dataclass(frozen=True)
class BarTable:
    """A per-bar file read into warehouse shapes.

    ``bars``: ts (UTC, sorted, unique) and every role found (floats); ``bar_seconds`` the
    detected size; ``gaps``: (after ts, missing bars) per hole; ``duplicates``: rows dropped
    for a repeated time (identical rows only); ``mapping``: role -> source column."""

    bars: pl.DataFrame
    bar_seconds: int
    mapping: dict[str, str]
    gaps: list[tuple[object, int]] = field(default_factory=list)
    duplicates: int = 0

    @property
    def missing_bars(self) -> int:
        """Bars missing inside the span (the sum over :attr:`gaps`)."""
        return sum(n for _, n in self.gaps)


def _numbers(raw: pl.DataFrame, picked: Mapping[str, str], row_base: int) -> pl.DataFrame:
    """The picked numeric columns as Float64 (empty = null); refuses text that is no number."""
    out = {}
    problems = []
    for role, col in picked.items():
        if role in ("ts", "side"):
            continue
        series = raw.get_column(col)
        if series.dtype.is_numeric():
            out[role] = series.cast(pl.Float64)
            continue
        stripped = pl.col(col).cast(pl.String).str.strip_chars()
        text = raw.select(pl.when(stripped != "").then(stripped).alias("t")).get_column("t")
        number = text.cast(pl.Float64, strict=False)
        bad = (number.is_null() & text.is_not_null()).arg_true().to_list()
        if bad:
            problems.append(f"{col} not a number in row(s) {_rows_text(bad, row_base)}")
        out[role] = number
    if problems:
        raise ImportDataError("; ".join(problems))
    return pl.DataFrame(out) if out else pl.DataFrame()


def _check_values(frame: pl.DataFrame, row_base: int) -> None:
    """Refuse bad values, naming the rows: prices > 0 and finite, high/low around open and
    close, amounts >= 0, every number finite."""
    checks: list[tuple[str, pl.Expr]] = []
    for role in PRICE_ROLES:
        if role in frame.columns:
            c = pl.col(role)
            required = role in ("open", "high", "low", "close")
            bad = ~(c.is_finite() & (c > 0))
            what = f"{role} missing, not finite or <= 0" if required else f"{role} <= 0"
            checks.append((what, bad.fill_null(required)))
    if {"open", "high", "low", "close"} <= set(frame.columns):
        hi, lo = pl.col("high"), pl.col("low")
        checks.append(
            (
                "high below open/close/low or low above open/close",
                (
                    (hi < pl.max_horizontal("open", "close", "low"))
                    | (lo > pl.min_horizontal("open", "close"))
                ).fill_null(False),
            )
        )
    for role in NONNEGATIVE_ROLES:
        if role in frame.columns:
            c = pl.col(role)
            bad = (~c.is_finite() | (c < 0)).fill_null(False)
            checks.append((f"{role} negative or not finite", bad))
    for role in frame.columns:
        if (
            role not in PRICE_ROLES
            and role not in NONNEGATIVE_ROLES
            and role != "ts"
            and frame.schema[role].is_numeric()
        ):
            checks.append((f"{role} not finite", (~pl.col(role).is_finite()).fill_null(False)))
    if not checks:
        return
    flags = frame.select(
        [expr.alias(f"c{k}") for k, (_, expr) in enumerate(checks)]
    ).with_row_index("row")
    problems = []
    for k, (what, _) in enumerate(checks):
        rows = flags.filter(pl.col(f"c{k}"))["row"].to_list()
        if rows:
            problems.append(f"{what} in row(s) {_rows_text(rows, row_base)}")
    if problems:
        raise ImportDataError("; ".join(problems))


def bar_table(
    raw: pl.DataFrame,
    overrides: Mapping[str, str] | None = None,
    *,
    require: Sequence[str] = ("open", "high", "low", "close"),
    oi_at_close: bool = False,
    row_base: int = 2,
) -> BarTable:
    """Read a per-bar table: map its columns, parse times, check values, detect the bar size,
    report gaps and drop exact duplicate rows.

    ``require`` names the roles that must be present (besides ``ts``); open interest needs
    ``oi_usd`` or ``oi_base`` when ``"oi"`` is in ``require``. ``oi_at_close`` moves open
    interest stamped at the bar's close onto the next bar's open (liqheat's convention, see
    :mod:`transforms.bars`). Raises :class:`ImportDataError` naming the rows of bad values (as
    ``row_base`` + index: 2 = CSV line numbers under a header), a time repeated with other
    values, or an unknown bar size.

    Examples
    --------
    >>> t0 = 1_704_067_200_000  # 2024-01-01 in epoch ms
    >>> raw = pl.DataFrame({"open_time_ms": [t0, t0 + 300_000, t0 + 900_000, t0 + 900_000],
    ...     "open": [1.0, 1.0, 1.0, 1.0], "high": 2.0, "low": 0.5, "close": 1.0,
    ...     "oi_usd": [10.0, None, 12.0, 12.0]})
    >>> t = bar_table(raw)
    >>> t.bar_seconds, t.bars.height, t.duplicates, [n for _, n in t.gaps]
    (300, 3, 1, [1])
    """
    picked = column_mapping(raw.columns, overrides)
    needed = ["ts", *[r for r in require if r != "oi"]]
    missing = [r for r in needed if r not in picked]
    if "oi" in require and "oi_usd" not in picked and "oi_base" not in picked:
        missing.append("oi_usd (or oi_base)")
    if missing:
        raise ImportDataError(
            f"no column for {', '.join(missing)} (header: {','.join(raw.columns)}); "
            f"accepted names: {accepted_names(missing)}; or name yours with --map role=column"
        )
    if raw.height == 0:
        raise ImportDataError("no rows")
    ts = parse_times(raw.get_column(picked["ts"]), row_base=row_base)
    numbers = _numbers(raw, picked, row_base)
    frame = pl.concat([pl.DataFrame({"ts": ts}), numbers], how="horizontal")
    if "side" in picked:
        frame = frame.with_columns(raw.get_column(picked["side"]).cast(pl.String).alias("side"))
    _check_values(frame.drop("side", strict=False), row_base)
    frame = frame.with_row_index("row")
    # duplicates: identical rows are dropped (reported), a time with other values is refused
    dup = frame.filter(pl.col("ts").is_duplicated())
    duplicates = 0
    if dup.height:
        values = [c for c in frame.columns if c not in ("row",)]
        distinct = dup.unique(values)
        clash = distinct.filter(pl.col("ts").is_duplicated()).sort("row")
        if clash.height:
            raise ImportDataError(
                f"{clash['ts'].n_unique()} time(s) repeated with different values, in row(s) "
                f"{_rows_text(clash['row'].to_list(), row_base)}"
            )
        duplicates = dup.height - distinct.height
        frame = frame.unique("ts", keep="first", maintain_order=True)
    frame = frame.sort("ts").drop("row")
    seconds = bar_seconds_of(frame["ts"])
    steps = frame["ts"].diff().dt.total_seconds()
    off = (steps % seconds != 0).fill_null(False)
    if off.any():
        where = off.arg_true().to_list()
        shown = ", ".join(f"{t:%Y-%m-%d %H:%M:%S}" for t in frame["ts"].gather(where[:_SHOWN]))
        raise ImportDataError(
            f"{len(where)} time(s) off the {bar_label(seconds)} grid of the other bars: {shown}"
        )
    holes = frame.with_columns((steps // seconds - 1).alias("n")).filter(pl.col("n") > 0)
    gaps = [(t, int(n)) for t, n in zip(holes["ts"].to_list(), holes["n"].to_list(), strict=True)]
    gaps = [(t - timedelta(seconds=seconds * (n + 1)), n) for t, n in gaps]  # hole after ts
    if oi_at_close:
        oi = [c for c in ("oi_usd", "oi_base") if c in frame.columns]
        frame = frame.with_columns([pl.col(c).shift(1) for c in oi])
    return BarTable(frame, seconds, dict(picked), gaps, duplicates)


def realized_events(raw: pl.DataFrame, overrides: Mapping[str, str] | None = None, *,
                    row_base: int = 2) -> pl.DataFrame:  # fmt: skip
    """Realized liquidations of a per-event (``ts, side, usd``; side long/short or sell/buy,
    the liquidation order's side: sell liquidates a long) or per-bar (``ts, long_usd,
    short_usd``) table as events ``ts, side, usd`` (zero rows dropped), sorted.

    Examples
    --------
    >>> raw = pl.DataFrame({"ts": ["2024-01-01T00:00:00Z"], "side": ["SELL"], "usd": [5.0]})
    >>> realized_events(raw).rows()[0][1:]
    ('long', 5.0)
    """
    picked = column_mapping(raw.columns, overrides)
    if {"ts", "side", "usd"} <= picked.keys():
        ts = parse_times(raw.get_column(picked["ts"]), row_base=row_base)
        side = raw.get_column(picked["side"]).cast(pl.String).str.strip_chars().str.to_lowercase()
        mapped = side.replace_strict(_SIDE_ALIASES, default=None)
        bad = (mapped.is_null()).arg_true().to_list()
        if bad:
            raise ImportDataError(
                f"side must be long/short (or sell/buy) in row(s) {_rows_text(bad, row_base)}"
            )
        usd = _numbers(raw, {"usd": picked["usd"]}, row_base)
        events = pl.DataFrame({"ts": ts, "side": mapped}).with_columns(usd.get_column("usd"))
    elif {"ts", "long_usd", "short_usd"} <= picked.keys():
        ts = parse_times(raw.get_column(picked["ts"]), row_base=row_base)
        usd = _numbers(
            raw, {"long_usd": picked["long_usd"], "short_usd": picked["short_usd"]}, row_base
        )
        events = pl.concat(
            [
                pl.DataFrame({"ts": ts, "side": side, "usd": usd.get_column(f"{side}_usd")})
                for side in ("long", "short")
            ]
        )
    else:
        raise ImportDataError(
            f"expected columns ts,side,usd or ts,long_usd,short_usd; got {','.join(raw.columns)}"
        )
    _check_values(events.select("usd"), row_base)
    events = events.filter(pl.col("usd").is_not_null() & (pl.col("usd") > 0))
    return events.sort("ts", "side").select(
        pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("side"), pl.col("usd")
    )
