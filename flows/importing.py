"""`liqheat import`: load your own per-bar file (CSV or Parquet) for a named exchange and symbol.

Reading and checking are :mod:`transforms.importing` (the one reader of per-bar tables, also
behind ``calibrate --file`` and ``backtest --realized``); this module reads the file, writes
the warehouse and says what it did. What a file may hold (roles, see
:data:`transforms.importing.COLUMN_ROLES`; names in docs/importing.md):

- price bars: ts, open, high, low, close (required), volume, quote_volume, taker_buy_volume
  -> ``klines`` with the detected ``bar_seconds``;
- open interest: oi_usd and/or oi_base (one is required), the long/short ratios ->
  ``open_interest``;
- mark price: mark_open/high/low/close (any of them) -> ``mark_klines``;
- funding: funding_rate -> ``funding_rates`` (rows where it is given);
- realized liquidations per bar: long_usd, short_usd -> ``realized_liquidations`` under the
  source ``import:<file name>``.

A file of realized liquidations alone (``ts, side, usd`` per event, or ``ts, long_usd,
short_usd`` without prices) is stored as that source and nothing else.

Idempotent: an import replaces, in one transaction, the (exchange, symbol) rows of every
table it writes inside the file's time span (bar opens first .. last + one bar), the realized
source of the same file name, and the ``ingest_log`` rows (dataset ``import``, one per UTC day,
with the file's sha256, its absolute path, the bar size and whether the day is complete).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from flows.settings import Settings

__all__ = ["ImportFileError", "ImportResult", "import_file", "read_table"]

#: the ingest_log dataset of imported days
IMPORT_DATASET = "import"


class ImportFileError(ValueError):
    """A file that cannot be imported (bad values, unknown layout); exit code 2."""

    exit_code = 2


def read_table(path: Path) -> tuple[pl.DataFrame, int]:
    """Read a CSV (every column as text, so bad values can be named by row) or a Parquet file;
    return the frame and the number to add to a 0-based row index in errors (2 for a CSV:
    its line numbers under the header; 1 for Parquet: row numbers)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pl.read_parquet(path), 1
        return pl.read_csv(path, infer_schema=False), 2
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ImportFileError(f"cannot read {path}: {first}") from exc


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ImportResult:
    """What one import stored."""

    exchange: str
    symbol: str
    path: Path
    sha256: str
    bar_seconds: int | None
    first: datetime | None
    last: datetime | None
    bars: int
    rows: dict[str, int]
    mapping: dict[str, str]
    gaps: list[tuple[Any, int]] = field(default_factory=list)
    duplicates: int = 0
    short_days: list[tuple[date, int, int]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human summary lines."""
        from transforms.importing import bar_label

        mapped = ", ".join(f"{role}={col}" for role, col in self.mapping.items())
        out = [f"columns: {mapped}"]
        if self.bar_seconds is not None and self.first is not None and self.last is not None:
            out.append(
                f"{self.exchange} {self.symbol}: {self.bars:,} {bar_label(self.bar_seconds)} bars "
                f"(bar size detected from the times), {self.first:%Y-%m-%d %H:%M} .. "
                f"{self.last:%Y-%m-%d %H:%M} UTC"
            )
        stored = ", ".join(f"{t} {n:,}" for t, n in self.rows.items())
        out.append(f"stored (replacing that span): {stored}")
        if self.gaps:
            shown = "; ".join(
                f"after {t:%Y-%m-%d %H:%M} ({n:,} bar{'s' if n > 1 else ''})"
                for t, n in self.gaps[:5]
            )
            more = f"; and {len(self.gaps) - 5} more" if len(self.gaps) > 5 else ""
            out.append(
                f"gaps: {len(self.gaps):,} ({sum(n for _, n in self.gaps):,} bars missing): "
                f"{shown}{more}"
            )
        else:
            out.append("gaps: none")
        out.append(
            f"duplicates: {self.duplicates:,} identical row(s) dropped"
            if self.duplicates
            else "duplicates: none"
        )
        if self.short_days:
            days = ", ".join(f"{d} ({n} of {e})" for d, n, e in self.short_days[:4])
            more = f" and {len(self.short_days) - 4} more" if len(self.short_days) > 4 else ""
            out.append(f"days with gaps (recorded as not complete): {days}{more}")
        out.append(
            f"ingest_log: dataset {IMPORT_DATASET}, sha256 {self.sha256[:16]}..., {self.path}"
        )
        return out


def _frames(
    bars: pl.DataFrame, exchange: str, symbol: str, bar_seconds: int, source: str
) -> dict[str, pl.DataFrame]:
    """The warehouse rows of a checked bar table, per table."""
    cols = set(bars.columns)
    keys = [pl.lit(exchange).alias("exchange"), pl.lit(symbol).alias("symbol")]
    out: dict[str, pl.DataFrame] = {}
    kl = [c for c in ("volume", "quote_volume", "taker_buy_volume") if c in cols]
    origin = pl.lit(IMPORT_DATASET).alias("origin")  # lineage: klines.origin (migration 0012)
    out["klines"] = bars.select(
        *keys, "ts", "open", "high", "low", "close", *kl,
        pl.lit(bar_seconds, pl.Int32).alias("bar_seconds"), origin,
    )  # fmt: skip
    mark = [c for c in ("mark_open", "mark_high", "mark_low", "mark_close") if c in cols]
    if mark:
        any_mark = pl.coalesce(*[pl.col(c) for c in ("mark_close", *mark) if c in cols])
        out["mark_klines"] = bars.filter(
            pl.any_horizontal(pl.col(c).is_not_null() for c in mark)
        ).select(
            *keys,
            "ts",
            *[
                (
                    pl.coalesce(pl.col(f"mark_{p}"), any_mark) if f"mark_{p}" in cols else any_mark
                ).alias(p)
                for p in ("open", "high", "low", "close")
            ],
            origin,
        )
    oi = [c for c in ("oi_usd", "oi_base") if c in cols]
    ratios = [
        c
        for c in (
            "global_account_ratio",
            "top_trader_account_ratio",
            "top_trader_position_ratio",
            "taker_buy_sell_ratio",
        )
        if c in cols
    ]
    out["open_interest"] = bars.filter(
        pl.any_horizontal(pl.col(c).is_not_null() for c in [*oi, *ratios])
    ).select(*keys, "ts", *oi, *ratios, origin)
    if "funding_rate" in cols:
        out["funding_rates"] = bars.filter(pl.col("funding_rate").is_not_null()).select(
            *keys, "ts", "funding_rate"
        )
    if {"long_usd", "short_usd"} & cols:
        out["realized_liquidations"] = _realized_rows(bars, exchange, symbol, source)
    return out


def _realized_rows(frame: pl.DataFrame, exchange: str, symbol: str, source: str) -> pl.DataFrame:
    """Per-bar long_usd/short_usd (or events ts, side, usd) as realized_liquidations rows."""
    if "side" in frame.columns:
        events = frame.select("ts", "side", "usd")
    else:
        events = pl.concat(
            [
                frame.select("ts", pl.lit(side).alias("side"), pl.col(f"{side}_usd").alias("usd"))
                for side in ("long", "short")
                if f"{side}_usd" in frame.columns
            ]
        )
    return (
        events.filter(pl.col("usd").is_not_null() & (pl.col("usd") > 0))
        .sort("ts", "side")
        .select(
            pl.lit(exchange).alias("exchange"),
            pl.lit(symbol).alias("symbol"),
            "ts",
            "side",
            "usd",
            pl.lit(source).alias("source"),
        )
    )


def _day_rows(bars: pl.DataFrame, bar_seconds: int) -> pl.DataFrame:
    """Bars per UTC day, with the bars the day should have inside the file's span (a file
    that starts or ends mid-day does not make that day incomplete; a hole does)."""
    first, last = bars["ts"].min(), bars["ts"].max()
    day = pl.col("ts").dt.date()
    start = pl.max_horizontal(pl.col("day").cast(pl.Datetime("us", "UTC")), pl.lit(first))
    end = pl.min_horizontal(
        pl.col("day").cast(pl.Datetime("us", "UTC")) + pl.duration(days=1),
        pl.lit(last) + pl.duration(seconds=bar_seconds),
    )
    return (
        bars.group_by(day.alias("day"))
        .agg(
            pl.len().alias("rows"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
        )
        .sort("day")
        .with_columns(
            ((end - start).dt.total_seconds() // bar_seconds).cast(pl.Int64).alias("expected"),
            (pl.lit(86_400 // bar_seconds if bar_seconds < 86_400 else 1)).alias("full"),
        )
    )


def _check_bar_size(
    db: Path, exchange: str, symbol: str, seconds: int, span: tuple[Any, Any]
) -> None:
    """Refuse bars of another size than the (exchange, symbol)'s others outside ``span``."""
    from transforms.importing import bar_label
    from warehouse.reads import query

    if not db.exists():
        return
    frame = query(
        db,
        "SELECT bar_seconds, count(*) AS n FROM klines WHERE exchange = ? AND symbol = ? "
        "AND (ts < ? OR ts >= ?) AND bar_seconds IS DISTINCT FROM ? GROUP BY 1 ORDER BY 2 DESC",
        [exchange, symbol, span[0].replace(tzinfo=None), span[1].replace(tzinfo=None), seconds],
    )
    if frame.height:
        other = int(frame["bar_seconds"][0] or 60)
        raise ImportFileError(
            f"{exchange} {symbol} already holds {int(frame['n'].sum()):,} {bar_label(other)} bars "
            f"outside this file's span; import these {bar_label(seconds)} bars under another "
            "--exchange name (any name works), or remove the others first"
        )


def import_file(
    settings: Settings,
    path: Path,
    *,
    exchange: str,
    symbol: str,
    mapping: Mapping[str, str] | None = None,
    oi_at_close: bool = False,
) -> ImportResult:
    """Import one per-bar (or realized-liquidations) file; see the module docstring.

    Raises :class:`ImportFileError` (one line naming the rows) for a file that cannot be
    imported as it is; nothing is written then.

    Examples
    --------
    >>> import_file(settings, Path("5m.csv"), exchange="x", symbol="BTCUSDT").bars  # doctest: +SKIP
    1716
    """
    from transforms.importing import ImportDataError, bar_table, column_mapping, realized_events
    from warehouse import writes

    raw, row_base = read_table(path)
    source = f"import:{path.name}"
    sha = file_sha256(path)
    where = str(path.resolve())
    db = settings.db_path
    try:
        picked = column_mapping(raw.columns, mapping)
        if "open" not in picked and ({"side", "usd"} <= picked.keys() or "long_usd" in picked):
            events = realized_events(raw, mapping, row_base=row_base)
            rows = _realized_rows(events, exchange, symbol, source)
            writes.replace_partition(
                db,
                "realized_liquidations",
                {"exchange": exchange, "symbol": symbol, "source": source},
                rows,
            )
            first = events["ts"].min() if events.height else None
            last = events["ts"].max() if events.height else None
            return ImportResult(
                exchange, symbol, path, sha, None,
                first if isinstance(first, datetime) else None,
                last if isinstance(last, datetime) else None,
                0, {"realized_liquidations": rows.height}, dict(picked),
            )  # fmt: skip
        table = bar_table(
            raw,
            mapping,
            require=("open", "high", "low", "close", "oi"),
            oi_at_close=oi_at_close,
            row_base=row_base,
        )
    except ImportDataError as exc:
        raise ImportFileError(f"{path.name}: {exc}") from exc
    bars, seconds = table.bars, table.bar_seconds
    first, last = bars["ts"].min(), bars["ts"].max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    span = (first, last + timedelta(seconds=seconds))
    _check_bar_size(db, exchange, symbol, seconds, span)
    frames = _frames(bars, exchange, symbol, seconds, source)
    pair = {"exchange": exchange, "symbol": symbol}
    parts: list[tuple[str, dict[str, Any], pl.DataFrame]] = []
    for name in ("klines", "mark_klines", "open_interest", "funding_rates"):
        parts.append((name, {**pair, "ts": span}, frames.get(name, pl.DataFrame())))
    parts.append(
        (
            "realized_liquidations",
            {**pair, "source": source},
            frames.get("realized_liquidations", pl.DataFrame()),
        )
    )
    days = _day_rows(bars, seconds)
    now = datetime.now(UTC).replace(tzinfo=None)
    log = days.select(
        pl.lit(exchange).alias("exchange"),
        pl.lit(IMPORT_DATASET).alias("dataset"),
        pl.lit(symbol).alias("symbol"),
        "day",
        pl.lit("loaded").alias("status"),
        pl.col("rows").cast(pl.Int64),
        pl.lit(sha).alias("sha256"),
        pl.when(pl.col("rows") < pl.col("expected"))
        .then(pl.format("gaps: {} of {} bars", "rows", "expected"))
        .when(pl.col("rows") < pl.col("full"))
        .then(
            pl.format(
                "file covers {}-{} ({} of {} bars of a full day)",
                pl.col("first").dt.strftime("%H:%M"),
                pl.col("last").dt.strftime("%H:%M"),
                "rows",
                "full",
            )
        )
        .alias("error"),
        pl.lit(now).alias("loaded_at"),
        pl.lit(where).alias("source_url"),
        pl.lit(seconds, pl.Int32).alias("bar_seconds"),
        (pl.col("rows") >= pl.col("expected")).alias("complete"),
    )
    day_span = (days["day"].min(), days["day"].max() + timedelta(days=1))  # type: ignore[operator]
    parts.append(("ingest_log", {**pair, "dataset": IMPORT_DATASET, "day": day_span}, log))
    writes.replace_many(db, parts)
    short = [
        (d, int(n), int(e))
        for d, n, e in days.filter(pl.col("rows") < pl.col("expected"))
        .select("day", "rows", "expected")
        .iter_rows()
    ]
    return ImportResult(
        exchange=exchange,
        symbol=symbol,
        path=path,
        sha256=sha,
        bar_seconds=seconds,
        first=first,
        last=last,
        bars=bars.height,
        rows={name: frame.height for name, frame in frames.items()},
        mapping=table.mapping,
        gaps=table.gaps,
        duplicates=table.duplicates,
        short_days=short,
    )


#: exchange names an import may use (any name; "all" is the sum of exchanges)
_EXCHANGE_RE = r"^[a-z0-9][a-z0-9_.-]{0,31}$"


def run_import(
    settings: Settings,
    path: Path,
    *,
    exchange: str,
    symbol: str,
    maps: tuple[str, ...] = (),
    oi_at: str = "open",
) -> list[str]:
    """The ``liqheat import`` command: check the arguments, import, return the summary lines.

    Usage errors and files that cannot be imported raise :class:`ImportFileError` (exit 2)."""
    import re

    from transforms.importing import ImportDataError, parse_mapping

    name = exchange.strip().lower()
    if not re.match(_EXCHANGE_RE, name) or name == "all":
        raise ImportFileError(
            f"bad --exchange {exchange!r} (any name of letters, digits and _.- up to 32, "
            "not 'all', e.g. coinglass or mydata)"
        )
    try:
        mapping = parse_mapping(maps)
    except ImportDataError as exc:
        raise ImportFileError(str(exc)) from exc
    result = import_file(
        settings, path, exchange=name, symbol=symbol, mapping=mapping, oi_at_close=oi_at == "close"
    )
    return [f"imported {path.name} as {name} {symbol}", *result.lines()]
