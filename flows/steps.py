"""Pipeline steps as plain functions (no Prefect): ingest, model, backtest, report.

The Prefect flows in :mod:`flows.pipeline` wrap these in thin tasks that pass keys and paths;
the quick CLI commands (``ingest``, ``model``, ``report``, ``backtest``) call them directly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from flows.settings import Settings
from warehouse import reads, writes

if TYPE_CHECKING:
    from flows.ingest import IngestReport
    from reports.site import SiteResult
    from transforms.params import ModelParams

EXCHANGE = "binance"


@dataclass(frozen=True)
class ModelSummary:
    """What one model run computed and stored (keys only, no frames)."""

    exchange: str
    symbol: str
    params_hash: str
    bars: int
    levels: int
    heatmap_cells: int
    seconds: float
    scores: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        """Return a one-line human summary."""
        if not self.bars:
            return f"{self.symbol}: no bars in the warehouse, model skipped"
        text = (
            f"{self.symbol}: {self.bars:,} bars -> {self.levels:,} levels, "
            f"{self.heatmap_cells:,} heatmap cells in {self.seconds:.2f}s "
            f"(params {self.params_hash})"
        )
        model = {s["side"]: s for s in self.scores if s["method"] == "model"}
        base = {s["side"]: s for s in self.scores if s["method"] == "baseline"}
        for side in ("long", "short"):
            if side in model and side in base:
                text += (
                    f"; {side} AUC {model[side]['capture_auc']:.3f} "
                    f"vs baseline {base[side]['capture_auc']:.3f}"
                )
        return text


def run_ingest(
    settings: Settings,
    symbols: Sequence[str],
    days: Sequence[date],
    *,
    base_url: str | None = None,
    with_trades: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> IngestReport:
    """Ingest archive files for symbol-days into the warehouse (see :mod:`flows.ingest`)."""
    from flows.ingest import ingest

    return ingest(
        settings.db_path,
        settings.raw_dir,
        base_url or settings.binance_base_url,
        list(symbols),
        list(days),
        with_trades=with_trades,
        force=force,
        progress=progress,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )


def import_realized(
    settings: Settings,
    symbol: str,
    csv_path: Path,
    *,
    exchange: str = EXCHANGE,
    source: str | None = None,
) -> int:
    """Load a realized-liquidations CSV for one symbol (replacing that source's rows)."""
    from flows.realized import read_realized_csv

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


def _time_step(bars: pl.DataFrame) -> str:
    first, last = bars["ts"].min(), bars["ts"].max()
    if isinstance(first, datetime) and isinstance(last, datetime):
        return "5m" if last - first <= timedelta(days=3) else "15m"
    return "15m"


def model_symbol(
    settings: Settings,
    symbol: str,
    *,
    exchange: str = EXCHANGE,
    params: ModelParams | None = None,
    days: int | None = None,
    price_step: float | None = None,
) -> ModelSummary:
    """Run the liquidation model over the last ``days`` of one symbol and store every output
    (levels, heatmap, liquidation map, key levels, predictions, backtest) in one transaction.

    ``price_step`` overrides the price bucket of ``params`` (default: its own, auto = 0.1 % of
    the median close); it is part of the params hash the outputs are stored under."""
    from transforms.backtest import score
    from transforms.model import run_model
    from transforms.params import ModelParams
    from transforms.realized import realized_per_bar

    params = params or ModelParams()
    if price_step is not None:
        params = ModelParams.model_validate({**params.model_dump(), "price_step": price_step})
    db = settings.db_path
    last = reads.last_bar_ts(db, exchange, symbol)
    if last is None:
        return ModelSummary(exchange, symbol, params.params_hash(), 0, 0, 0, 0.0)
    end = last + timedelta(minutes=1)
    start = end - timedelta(days=days or settings.model_days)
    bars = reads.model_bars(db, exchange, symbol, start, end)
    t0 = time.perf_counter()
    result = run_model(bars, params, time_step=_time_step(bars))
    seconds = time.perf_counter() - t0

    events = reads.realized_liquidations(db, exchange, symbol, start, end)
    scores = pl.DataFrame()
    if events.height:
        realized = realized_per_bar(events.select("ts", "side", "usd"), bars)
        scores = score(result.predicted, realized, baseline=result.baseline).with_columns(
            pl.lit(bars["ts"].min()).alias("start_ts"),
            pl.lit(bars["ts"].max()).alias("end_ts"),
            pl.lit(",".join(sorted(set(events["source"].to_list())))).alias("realized_source"),
            pl.lit(datetime.now(UTC)).alias("computed_at"),
        )
    params_hash = params.params_hash()
    run = pl.DataFrame(
        {
            "params_json": [params.to_json()],
            "start_ts": [bars["ts"].min()],
            "end_ts": [bars["ts"].max()],
            "bars": [bars.height],
            "levels": [result.levels.height],
            "price_step": [float(result.price_step)],
            "seconds": [seconds],
            "computed_at": [datetime.now(UTC)],
        }
    )
    outputs: dict[str, pl.DataFrame] = {
        "liq_levels": result.levels.select(
            "created_at", "side", "leverage", "price", "notional_usd", "liquidated_at"
        ),
        "heatmap_cells": result.heatmap.select("ts", "price", "long_usd", "short_usd"),
        "liquidation_map": result.liquidation_map.select(
            "as_of",
            "ref_price",
            "price",
            "long_usd",
            "short_usd",
            "long_cum_usd",
            "short_cum_usd",
        ),
        "key_levels": result.key_levels.select(
            "as_of", "side", "rank", "price", "usd", "distance_pct"
        ),
        "predicted_liquidations": result.predicted.select("ts", "long_usd", "short_usd"),
        "backtest_scores": scores,
    }
    writes.write_model_outputs(
        db, exchange=exchange, symbol=symbol, params_hash=params_hash, run=run, outputs=outputs
    )
    return ModelSummary(
        exchange=exchange,
        symbol=symbol,
        params_hash=params_hash,
        bars=bars.height,
        levels=result.levels.height,
        heatmap_cells=result.heatmap.height,
        seconds=seconds,
        scores=scores.select(
            "method", "side", "capture_auc", "top_decile_overlap", "log_corr"
        ).to_dicts()
        if scores.height
        else [],
    )


def aggregate_symbol(
    settings: Settings,
    symbol: str,
    exchanges: Sequence[str] | None = None,
    *,
    params: ModelParams | None = None,
    days: int | None = None,
    rerun: bool = False,
) -> ModelSummary:
    """Sum every exchange's model outputs of one symbol and store them under exchange "all".

    One price step serves every exchange so their buckets align: ``params.price_step`` when
    set, else the auto step of the binance bars (else of the first exchange with bars). Each
    exchange's model is (re)run with that step unless a run with the same params hash already
    covers its current window and is newer than its last load (``rerun=True`` always reruns).
    The stored aggregate (see :mod:`transforms.aggregate`): heatmap cells summed on
    (ts, price), liquidation map summed on price with the exchanges' reference prices weighted
    by their alive notional, key levels recomputed from the summed map, predicted
    liquidations summed per ts, and backtest scores of the summed prediction against every
    exchange's realized liquidations summed (baseline: the exchanges' baselines summed) when
    any exist. The "all" ``model_runs`` row has the same params and hash, ``bars`` = distinct
    bar times over the exchanges, ``levels`` = their sum.
    """
    from transforms.aggregate import (
        AGGREGATE_EXCHANGE,
        key_levels_from_map,
        sum_heatmaps,
        sum_liquidation_maps,
        sum_per_ts,
    )
    from transforms.backtest import baseline_liquidations, score
    from transforms.params import ModelParams
    from transforms.realized import realized_per_bar
    from warehouse import reads_report as rr

    db = settings.db_path
    params = params or ModelParams()
    span = timedelta(days=days or settings.model_days)
    chosen = list(exchanges) if exchanges else rr.symbol_exchanges(db, symbol)
    windows: dict[str, tuple[datetime, datetime]] = {}
    for ex in dict.fromkeys(chosen):
        if ex == AGGREGATE_EXCHANGE:
            raise ValueError(f"{AGGREGATE_EXCHANGE!r} is the aggregate, not an exchange")
        last = reads.last_bar_ts(db, ex, symbol)
        if last is not None:
            end = last + timedelta(minutes=1)
            windows[ex] = (end - span, end)
    if not windows:
        return ModelSummary(AGGREGATE_EXCHANGE, symbol, params.params_hash(), 0, 0, 0, 0.0)

    step = params.price_step
    if step is None:
        ref = "binance" if "binance" in windows else next(iter(windows))
        step = params.resolve_price_step(reads.model_bars(db, ref, symbol, *windows[ref]))
    params = ModelParams.model_validate({**params.model_dump(), "price_step": step})
    params_hash = params.params_hash()

    runs: dict[str, dict[str, Any]] = {}
    for ex, (start, end) in windows.items():
        run = rr.model_run(db, ex, symbol, params_hash)
        n, first, last_ts = rr.window_bars(db, ex, symbol, start, end)
        loaded = rr.last_loaded(db, ex, symbol)
        fresh = (
            run is not None
            and run["bars"] == n
            and run["start_ts"] == first
            and run["end_ts"] == last_ts
            and (loaded is None or run["computed_at"] >= loaded)
        )
        if rerun or not fresh:
            model_symbol(settings, symbol, exchange=ex, params=params, days=days)
            run = rr.model_run(db, ex, symbol, params_hash)
        if run is not None:
            runs[ex] = run

    t0 = time.perf_counter()
    parts = []
    maps = []
    predicted = []
    for ex, run in runs.items():
        cells = rr.heatmap_cells(db, ex, symbol, params_hash)
        parts.append((cells, _time_step(pl.DataFrame({"ts": [run["start_ts"], run["end_ts"]]}))))
        maps.append(rr.latest_liquidation_map(db, ex, symbol, params_hash))
        predicted.append(rr.predicted_liquidations(db, ex, symbol, params_hash))
    heat = sum_heatmaps(parts, price_step=step)
    liq_map = sum_liquidation_maps(maps, price_step=step)
    levels = key_levels_from_map(liq_map, price_step=step)
    pred = sum_per_ts(predicted)

    scores = pl.DataFrame()
    realized_parts = []
    baselines = []
    sources: set[str] = set()
    events_by_ex = {ex: reads.realized_liquidations(db, ex, symbol, *windows[ex]) for ex in runs}
    if pred.height and any(e.height for e in events_by_ex.values()):
        for ex, events in events_by_ex.items():
            bars = reads.model_bars(db, ex, symbol, *windows[ex])
            baselines.append(baseline_liquidations(bars))
            if events.height:
                realized_parts.append(realized_per_bar(events.select("ts", "side", "usd"), bars))
                sources |= {f"{ex}:{src}" for src in events["source"].to_list()}
        scores = score(
            pred, sum_per_ts(realized_parts), baseline=sum_per_ts(baselines)
        ).with_columns(
            pl.lit(pred["ts"].min()).alias("start_ts"),
            pl.lit(pred["ts"].max()).alias("end_ts"),
            pl.lit(",".join(sorted(sources))).alias("realized_source"),
            pl.lit(datetime.now(UTC)).alias("computed_at"),
        )
    seconds = time.perf_counter() - t0
    n_levels = sum(int(r["levels"] or 0) for r in runs.values())
    run_row = pl.DataFrame(
        {
            "params_json": [params.to_json()],
            "start_ts": [min(r["start_ts"] for r in runs.values())] if runs else [None],
            "end_ts": [max(r["end_ts"] for r in runs.values())] if runs else [None],
            "bars": [pred.height],
            "levels": [n_levels],
            "price_step": [float(step)],
            "seconds": [seconds],
            "computed_at": [datetime.now(UTC)],
        }
    )
    writes.write_model_outputs(
        db,
        exchange=AGGREGATE_EXCHANGE,
        symbol=symbol,
        params_hash=params_hash,
        run=run_row,
        outputs={
            "heatmap_cells": heat,
            "liquidation_map": liq_map,
            "key_levels": levels,
            "predicted_liquidations": pred,
            "backtest_scores": scores,
        },
    )
    return ModelSummary(
        exchange=AGGREGATE_EXCHANGE,
        symbol=symbol,
        params_hash=params_hash,
        bars=pred.height,
        levels=n_levels,
        heatmap_cells=heat.height,
        seconds=seconds,
        scores=scores.select(
            "method", "side", "capture_auc", "top_decile_overlap", "log_corr"
        ).to_dicts()
        if scores.height
        else [],
    )


def run_models(
    settings: Settings, symbols: Sequence[str] | None, *, days: int | None = None
) -> list[str]:
    """Model every requested (default: every loaded) symbol; return one line per symbol."""
    chosen = list(symbols) if symbols else reads.symbols_loaded(settings.db_path)
    if not chosen:
        return ["no symbols in the warehouse yet: run `liqheat ingest` or `liqheat demo`"]
    return [model_symbol(settings, s, days=days).line() for s in chosen]


def run_report(
    settings: Settings, symbols: Sequence[str] | None = None, *, days: int | None = None
) -> SiteResult:
    """Rebuild the static site from the warehouse."""
    from reports.site import build_site

    ranges = (days,) if days else (1, 3, 7, 30)
    return build_site(settings.db_path, settings.site_dir, symbols=symbols, days=ranges)


def run_backtest(
    settings: Settings,
    symbol: str,
    realized_csv: Path,
    *,
    exchange: str = EXCHANGE,
    store: str | None = None,
) -> Any:
    """Score the model against the realized liquidations of ``realized_csv`` alone (stored
    only under ``store``, see :func:`flows.realized.backtest_file`); return a rich table of
    model vs baseline."""
    from flows.realized import backtest_file, scores_table

    return scores_table(
        backtest_file(settings, symbol, realized_csv, exchange=exchange, store=store)
    )
