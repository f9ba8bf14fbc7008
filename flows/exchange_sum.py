"""The sum of the exchanges' model outputs of one symbol, stored under exchange ``"all"``.

:func:`aggregate_symbol` (re)runs each exchange's model on one shared price step when its
stored run is stale (:func:`flows.modelling.model_symbol`), reads the exchanges' outputs back,
sums them with `transforms.aggregate.sum_exchanges` (the sum's pure door) and writes the sum.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from flows.calibration import resolve_params
from flows.modelling import ModelSummary, model_symbol, score_lines
from flows.settings import Settings
from transforms.aggregate import ExchangeRun, sum_exchanges
from transforms.params import ModelParams
from warehouse import reads, writes
from warehouse import reads_outputs as ro
from warehouse import reads_report as rr
from warehouse.reads import AGGREGATE_EXCHANGE


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
    The exchanges' stored outputs are read back and summed by
    `transforms.aggregate.sum_exchanges` (the sum's one door): heatmap cells summed on
    (ts, price), liquidation map summed on price with the exchanges' reference prices weighted
    by their alive notional, key levels recomputed from the summed map, predicted
    liquidations summed per ts, and backtest scores of the summed prediction against every
    exchange's realized liquidations summed (baseline: the exchanges' baselines summed) when
    any exist. The "all" ``model_runs`` row has the same params and hash, ``bars`` = distinct
    bar times over the exchanges, ``levels`` = their sum.
    """
    db = settings.db_path
    params = resolve_params(settings, symbol, params)
    span = timedelta(days=days or settings.model_days)
    chosen = list(exchanges) if exchanges else rr.symbol_exchanges(db, symbol)
    windows: dict[str, tuple[datetime, datetime]] = {}
    for ex in dict.fromkeys(chosen):
        if ex == AGGREGATE_EXCHANGE:
            raise ValueError(f"{AGGREGATE_EXCHANGE!r} is the aggregate, not an exchange")
        last = reads.last_bar_ts(db, ex, symbol)
        if last is not None:
            end = last + reads.bar_size(db, ex, symbol)
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
        run = reads.model_run(db, ex, symbol, params_hash)
        n, first, last_ts = reads.window_bars(db, ex, symbol, start, end)
        loaded = reads.last_loaded(db, ex, symbol)
        fresh = (
            run is not None
            and run["bars"] == n
            and run["start_ts"] == first
            and run["end_ts"] == last_ts
            and (loaded is None or run["computed_at"] >= loaded)
        )
        if rerun or not fresh:
            model_symbol(settings, symbol, exchange=ex, params=params, days=days)
            run = reads.model_run(db, ex, symbol, params_hash)
        if run is not None:
            runs[ex] = run

    t0 = time.perf_counter()
    events = {ex: reads.realized_liquidations(db, ex, symbol, *windows[ex]) for ex in runs}
    scoring = any(e.height for e in events.values())
    parts = [
        ExchangeRun(
            start_ts=run["start_ts"],
            end_ts=run["end_ts"],
            heatmap=ro.heatmap_cells(db, ex, symbol, params_hash),
            heatmap_bands=ro.band_heatmap_cells(db, ex, symbol, params_hash),
            liquidation_map=ro.latest_liquidation_map(db, ex, symbol, params_hash),
            liquidation_map_bands=ro.latest_band_map(db, ex, symbol, params_hash),
            predicted=ro.predicted_liquidations(db, ex, symbol, params_hash),
            bars=reads.model_bars(db, ex, symbol, *windows[ex]) if scoring else None,
            realized=events[ex],
            bar=reads.bar_size(db, ex, symbol),
        )
        for ex, run in runs.items()
    ]
    total = sum_exchanges(parts, price_step=step, params=params)
    pred, scores = total.predicted, total.scores
    if scores.height:
        sources = {f"{ex}:{src}" for ex, e in events.items() for src in e["source"].to_list()}
        scores = scores.with_columns(
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
            "heatmap_cells": total.heatmap,
            "liquidation_map": total.liquidation_map,
            "key_levels": total.key_levels,
            "predicted_liquidations": pred,
            "backtest_scores": scores,
            "heatmap_band_cells": total.heatmap_bands,
            "liquidation_map_bands": total.liquidation_map_bands,
            **total.more_scores,
        },
    )
    return ModelSummary(
        exchange=AGGREGATE_EXCHANGE,
        symbol=symbol,
        params_hash=params_hash,
        bars=pred.height,
        levels=n_levels,
        heatmap_cells=total.heatmap.height,
        seconds=seconds,
        scores=score_lines(scores),
    )
