"""Realized-liquidation CSV import (the generic format).

Two layouts are accepted, told apart by their header:

- per event: ``ts,side,usd`` (side ``long``/``short``; also ``buy``/``sell`` as the side of
  the liquidation order: ``sell`` liquidates a long),
- per bar: ``ts,long_usd,short_usd``.

``ts`` is ISO-8601 (UTC when no offset is given) or epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from rich.markup import escape
from rich.table import Table

from flows.modelling import model_symbol
from flows.settings import Settings

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "side": pl.String(),
    "usd": pl.Float64(),
}


class RealizedFormatError(ValueError):
    """The realized-liquidations file is not in a supported layout."""


def read_realized_csv(path: Path) -> pl.DataFrame:
    """Read a realized-liquidations CSV (or Parquet) into events ``(ts, side, usd)``, zero rows
    dropped (the one per-bar reader: :func:`transforms.importing.realized_events`)."""
    from flows.importing import ImportFileError, read_table
    from transforms.importing import ImportDataError, realized_events

    try:
        raw, row_base = read_table(path)
        events = realized_events(raw, row_base=row_base)
    except (ImportFileError, ImportDataError) as exc:
        raise RealizedFormatError(f"{path}: {exc}") from exc
    return events.cast(EVENTS_SCHEMA)  # type: ignore[arg-type]


# -- backtesting a file, and the stored sources ------------------------------------------
@dataclass(frozen=True)
class FileBacktest:
    """The scores of one realized-liquidations file against the model (file alone)."""

    symbol: str
    exchange: str
    file: str
    events: int
    in_window: int
    start: datetime
    end: datetime
    scores: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def backtest_file(
    settings: Settings,
    symbol: str,
    csv_path: Path,
    *,
    exchange: str = "binance",
    store: str | None = None,
    days: int | None = None,
) -> FileBacktest:
    """Score the model of one symbol against the events of ``csv_path`` alone, next to the
    baseline (the model runs over the same window as ``liqheat model``).

    Nothing is written unless ``store`` names a source: then the file's events replace that
    source's stored events (for this exchange and symbol) and the model is rerun, so its
    stored backtest scores every stored source (events present in several sources count
    once, see :func:`warehouse.reads.realized_liquidations`).

    Examples
    --------
    >>> backtest_file(settings, "BTCUSDT", Path("liqs.csv")).scores  # doctest: +SKIP
    [{'method': 'model', 'side': 'long', 'capture_auc': 0.71, ...}, ...]
    """
    from transforms.backtest import baseline_liquidations, predicted_liquidations, score
    from transforms.params import ModelParams
    from transforms.realized import realized_per_bar
    from warehouse import reads

    events = read_realized_csv(csv_path)
    db = settings.db_path
    last = reads.last_bar_ts(db, exchange, symbol)
    if last is None:
        raise RealizedFormatError(f"no {exchange} bars for {symbol} in the warehouse; ingest first")
    end = last + reads.bar_size(db, exchange, symbol)  # the window ends after the newest bar
    start = end - timedelta(days=days or settings.model_days)
    bars = reads.model_bars(db, exchange, symbol, start, end)
    first = bars["ts"].min()
    assert isinstance(first, datetime)
    inside = events.filter((pl.col("ts") >= first) & (pl.col("ts") < end))
    if not inside.height:
        raise RealizedFormatError(
            f"{csv_path.name}: none of its {events.height:,} events fall in the modelled window "
            f"{first:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC of {symbol}"
        )
    realized = realized_per_bar(inside.select("ts", "side", "usd"), bars)
    scores = score(
        predicted_liquidations(bars, ModelParams()),
        realized,
        baseline=baseline_liquidations(bars),
    )
    notes = [
        f"{inside.height:,} of {events.height:,} events of {csv_path.name} fall in the modelled "
        f"window {first:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC; scored against this file "
        "alone"
    ]
    if store is not None:
        import_realized(settings, symbol, csv_path, exchange=exchange, source=store)
        model_symbol(settings, symbol, exchange=exchange, days=days)
        notes.append(
            f"stored {events.height:,} events as source {store!r} ({exchange} {symbol}); the "
            "stored backtest now scores every stored source (`liqheat realized list`)"
        )
    else:
        notes.append("nothing stored (use --store SOURCE to keep the file's events)")
    return FileBacktest(
        symbol=symbol,
        exchange=exchange,
        file=csv_path.name,
        events=events.height,
        in_window=inside.height,
        start=first,
        end=end,
        scores=scores.select(
            "method", "side", "capture_auc", "top_decile_overlap", "log_corr"
        ).to_dicts(),
        notes=notes,
    )


def scores_table(result: FileBacktest) -> Table:
    """A rich table of model vs baseline for :func:`backtest_file`'s result."""
    table = Table(title=f"{result.symbol}: model vs baseline ({result.file})")
    for col in ("side", "method", "capture AUC", "top-decile overlap", "log corr"):
        table.add_column(col, justify="right" if col not in ("side", "method") else "left")
    for row in sorted(result.scores, key=lambda r: (r["side"], r["method"] != "model")):
        table.add_row(
            row["side"],
            row["method"],
            f"{row['capture_auc']:.3f}",
            f"{row['top_decile_overlap']:.3f}",
            f"{row['log_corr']:.3f}",
        )
    return table


def stored_sources(db_path: Path) -> pl.DataFrame:
    """Stored realized liquidations per (exchange, symbol, source): events, span, USD."""
    from warehouse.reads import query

    return query(
        db_path,
        "SELECT source, exchange, symbol, count(*) AS events, min(ts) AS first_ts, "
        "max(ts) AS last_ts, sum(usd) AS usd FROM realized_liquidations "
        "GROUP BY ALL ORDER BY source, exchange, symbol",
    )


def sources_table(frame: pl.DataFrame) -> Table:
    """A rich table of :func:`stored_sources`."""
    table = Table(title="stored realized liquidations", title_justify="left")
    for col in ("source", "exchange", "symbol", "events", "first", "last", "USD"):
        table.add_column(col, justify="right" if col in ("events", "USD") else "left")
    for row in frame.iter_rows(named=True):
        table.add_row(
            escape(str(row["source"])),
            row["exchange"],
            row["symbol"],
            f"{row['events']:,}",
            f"{row['first_ts']:%Y-%m-%d %H:%M}",
            f"{row['last_ts']:%Y-%m-%d %H:%M}",
            f"{row['usd']:,.0f}",
        )
    return table


def remove_source(
    db_path: Path, source: str, *, symbol: str | None = None, exchange: str | None = None
) -> int:
    """Delete the stored events of ``source`` (optionally one symbol / exchange); return
    how many. Raises :class:`RealizedFormatError` naming the stored sources when none match.

    Examples
    --------
    >>> remove_source(db_path, "csv:liqs.csv")  # doctest: +SKIP
    1250
    """
    from warehouse import writes

    frame = stored_sources(db_path)
    match = frame.filter(pl.col("source") == source)
    if symbol is not None:
        match = match.filter(pl.col("symbol") == symbol)
    if exchange is not None:
        match = match.filter(pl.col("exchange") == exchange)
    if not match.height:
        names = sorted(set(frame["source"].to_list()))
        has = ", ".join(names) if names else "none"
        where = "".join(f" {k} {v}" for k, v in (("for", symbol), ("on", exchange)) if v)
        raise RealizedFormatError(
            f"no realized liquidations stored under source {source!r}{where} (sources: {has})"
        )
    keys: dict[str, Any] = {"source": source}
    if symbol is not None:
        keys["symbol"] = symbol
    if exchange is not None:
        keys["exchange"] = exchange
    writes.replace_partition(db_path, "realized_liquidations", keys, pl.DataFrame())
    return int(match["events"].sum())


def import_realized(
    settings: Settings,
    symbol: str,
    csv_path: Path,
    *,
    exchange: str = "binance",
    source: str | None = None,
) -> int:
    """Load a realized-liquidations CSV for one symbol (replacing that source's rows)."""
    from warehouse import writes

    events = read_realized_csv(csv_path)
    src = source or f"csv:{csv_path.name}"
    frame = events.with_columns(
        pl.lit(exchange).alias("exchange"),
        pl.lit(symbol).alias("symbol"),
        pl.lit(src).alias("source"),
    )
    return writes.replace_partition(
        settings.db_path,
        "realized_liquidations",
        {"exchange": exchange, "symbol": symbol, "source": src},
        frame,
    )
