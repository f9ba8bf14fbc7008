"""What a symbol's pages show, read from the warehouse: its exchange views (the aggregate
"all" and each exchange) and, per view, the loaded run, map, levels, scores and lineage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from reports.files import safe_component
from reports.ranges import Range, available_ranges
from warehouse import reads
from warehouse import reads_outputs as ro
from warehouse import reads_report as rr

#: tab labels of the exchange switch
EXCHANGE_LABELS = {
    rr.AGGREGATE_EXCHANGE: "All exchanges",
    "binance": "Binance",
    "bybit": "Bybit",
    "okx": "OKX",
}


def exchange_label(exchange: str) -> str:
    """Display name of an exchange id (``"all"`` is the aggregate).

    >>> exchange_label("okx"), exchange_label("all"), exchange_label("kraken")
    ('OKX', 'All exchanges', 'Kraken')
    """
    return EXCHANGE_LABELS.get(exchange, exchange.title())


@dataclass(frozen=True)
class View:
    """One exchange view of a symbol: the aggregate ("all") or a single exchange.

    ``exchanges`` are the venues whose bars, realized liquidations and ingest ledger the view
    shows; ``price_exchange`` draws the price line; ``rel`` is the view's folder inside the
    symbol folder ("" for the default view, "<exchange>/" for the others).
    """

    key: str
    exchanges: tuple[str, ...]
    price_exchange: str
    rel: str

    @property
    def label(self) -> str:
        return exchange_label(self.key)


def views_of(db_path: Path, symbol: str, exchanges: Sequence[str] | None) -> list[View]:
    """The views of ``symbol``: "all" first when an aggregated run exists, then every exchange
    with bars or a model run (restricted to ``exchanges`` when given)."""
    present = rr.symbol_exchanges(db_path, symbol)
    if exchanges is not None:
        present = [ex for ex in present if ex in exchanges]
    has_all = rr.model_run_exists(db_path, rr.AGGREGATE_EXCHANGE, symbol) and (
        exchanges is None or rr.AGGREGATE_EXCHANGE in exchanges
    )
    if not present:
        return []
    with_bars = [ex for ex in present if rr.kline_span(db_path, ex, symbol) is not None]
    price_ex = "binance" if "binance" in with_bars else (with_bars or present)[0]
    keys = ([rr.AGGREGATE_EXCHANGE] if has_all else []) + present
    multi = len(keys) > 1
    views = []
    for key in keys:
        if key == rr.AGGREGATE_EXCHANGE:
            views.append(View(key, tuple(present), price_ex, ""))
        else:
            # every exchange has its own folder when there is a choice (stable URLs)
            rel = f"{safe_component(key)}/" if multi else ""
            views.append(View(key, (key,), key, rel))
    return views


@dataclass
class Symbol:
    symbol: str
    slug: str
    view: View
    run: dict[str, Any] | None
    span: tuple[datetime, datetime] | None
    synthetic: bool
    key_levels: pl.DataFrame
    liq_map: pl.DataFrame
    band_map: pl.DataFrame
    scores: pl.DataFrame
    lineage: pl.DataFrame
    days: pl.DataFrame
    ranges: list[Range]
    #: where-scores of the run (`warehouse.reads.latest_where_scores`; empty: none)
    where: pl.DataFrame = field(default_factory=pl.DataFrame)
    #: per-view reads shared by its range pages (heatmap source step, long/short series)
    memo: dict[Any, Any] = field(default_factory=dict)

    def cached(self, key: Any, compute: Any) -> Any:
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


def _union_span(
    spans: Sequence[tuple[datetime, datetime] | None],
) -> tuple[datetime, datetime] | None:
    present = [s for s in spans if s is not None]
    if not present:
        return None
    return min(s[0] for s in present), max(s[1] for s in present)


def load_symbol(db_path: Path, view: View, symbol: str, run: dict[str, Any] | None) -> Symbol:
    span = _union_span([rr.kline_span(db_path, ex, symbol) for ex in view.exchanges])
    empty = pl.DataFrame()
    if run is not None:
        ph = str(run["params_hash"])
        key_levels = ro.latest_key_levels(db_path, view.key, symbol, ph)
        liq_map = ro.latest_liquidation_map(db_path, view.key, symbol, ph)
        band_map = ro.latest_band_map(db_path, view.key, symbol, ph)
        scores = ro.latest_scores(db_path, view.key, symbol, ph)
        where = reads.latest_where_scores(db_path, view.key, symbol, ph)
        if not where.height and view.price_exchange != view.key:  # the sum has no single run
            where = reads.latest_where_scores(db_path, view.price_exchange, symbol, ph)
        if span is None:
            span = ro.heatmap_span(db_path, view.key, symbol, ph)
    else:
        key_levels = liq_map = band_map = scores = where = empty
    ranges = available_ranges(span[1] - span[0] + timedelta(minutes=1)) if span else []
    lineage = pl.concat(
        [rr.lineage(db_path, ex, symbol) for ex in view.exchanges], how="diagonal_relaxed"
    )
    if lineage.height and len(view.exchanges) > 1:
        lineage = lineage.sort(["day", "exchange", "dataset"], descending=[True, False, False])
    return Symbol(
        symbol=symbol,
        slug=safe_component(symbol),
        view=view,
        run=run,
        span=span,
        synthetic=any(rr.is_synthetic(db_path, ex, symbol) for ex in view.exchanges),
        key_levels=key_levels,
        liq_map=liq_map,
        band_map=band_map,
        scores=scores,
        where=where,
        lineage=lineage,
        days=rr.price_days(db_path, view.price_exchange, symbol),
        ranges=ranges,
    )


def price_step_of(sym: Symbol) -> float | None:
    step = sym.run.get("price_step") if sym.run else None
    return float(step) if step else None


def realized_of(
    db_path: Path, view: View, symbol: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Realized liquidations of every exchange of the view (all of them on the aggregate)."""
    frames_ = [rr.realized_liquidations(db_path, ex, symbol, start, end) for ex in view.exchanges]
    return pl.concat(frames_, how="diagonal_relaxed").sort("ts")


@dataclass
class Built:
    """One view of a symbol after its pages were rendered (for the tabs and the index)."""

    view: View
    sym: Symbol
    wanted: list[Range]
    links: list[dict[str, Any]]
    default: Range | None
    common: dict[str, Any] | None = None
    pages: dict[Range, dict[str, Any]] = field(default_factory=dict)
