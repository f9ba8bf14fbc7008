"""The model of one (exchange, symbol), and of many in parallel: read -> compute -> write.

:func:`read_model_inputs` reads a pair's window (here), :func:`compute_model` runs
`transforms.model.run_model` (the model's one door; no I/O, so it runs in worker processes),
:func:`store_model` writes its outputs in one transaction (here, the single writer).
:func:`model_symbol` is one pair; :func:`model_symbols` many, computed in a process pool. The
route that decides which pairs to model and which exchanges to sum is
:mod:`flows.model_route`; the sum itself :mod:`flows.exchange_sum`. No Prefect here.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from flows.calibration import resolve_params
from flows.errors import first_line
from flows.settings import Settings
from transforms.levels import KEY_LEVELS_SCHEMA
from transforms.model import run_model
from transforms.params import ModelParams
from warehouse import reads, writes

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


@dataclass(frozen=True)
class ModelInputs:
    """Everything one model run reads from the warehouse (one read per (exchange, symbol))."""

    exchange: str
    symbol: str
    bars: pl.DataFrame
    events: pl.DataFrame


@dataclass(frozen=True)
class ModelComputed:
    """One model run's outputs, ready for the single writer (frames without key columns)."""

    exchange: str
    symbol: str
    params_hash: str
    run: pl.DataFrame
    outputs: dict[str, pl.DataFrame]
    summary: ModelSummary
    #: wall time of :func:`compute_model` (model, backtest and output frames)
    compute_seconds: float = 0.0


def read_model_inputs(
    settings: Settings, symbol: str, *, exchange: str = EXCHANGE, days: int | None = None
) -> ModelInputs | None:
    """Read one (exchange, symbol)'s model window (bars and realized liquidations) over one
    warehouse connection; ``None`` when it has no bars."""
    found = reads.model_window(settings.db_path, exchange, symbol, days or settings.model_days)
    if found is None:
        return None
    bars, events = found
    return ModelInputs(exchange, symbol, bars, events)


def compute_model(
    inputs: ModelInputs,
    params: ModelParams | None = None,
    *,
    price_step: float | None = None,
    keep_levels: bool = False,
) -> ModelComputed:
    """Run the model (`transforms.model.run_model`, the model's one door) on one symbol's
    inputs and shape its outputs for the single writer (no I/O: safe in a worker process).
    ``price_step`` overrides the price bucket of ``params``.

    The heatmaps are kept at display resolution; the raw levels (``liq_levels``, about 65k
    rows per symbol-day of 1-minute bars) only with ``keep_levels``: they are reproducible
    from the bars and the run's ``params_json``."""
    started = time.perf_counter()
    params = params or ModelParams()
    if price_step is not None:
        params = ModelParams.model_validate({**params.model_dump(), "price_step": price_step})
    bars, events = inputs.bars, inputs.events
    t0 = time.perf_counter()
    result = run_model(bars, params, realized=events if events.height else None)
    seconds = time.perf_counter() - t0
    stamp = [
        pl.lit(result.start_ts).alias("start_ts"),
        pl.lit(result.end_ts).alias("end_ts"),
        pl.lit(",".join(sorted(set(events["source"].to_list())))).alias("realized_source"),
        pl.lit(datetime.now(UTC)).alias("computed_at"),
    ]
    scores = result.scores.with_columns(stamp) if result.scores.height else result.scores
    more = {name: frame.with_columns(stamp) for name, frame in result.more_scores.items()}
    params_hash = params.params_hash()
    run = pl.DataFrame(
        {
            "params_json": [params.to_json()],
            "start_ts": [result.start_ts],
            "end_ts": [result.end_ts],
            "bars": [result.bars],
            "levels": [result.levels.height],
            "price_step": [float(result.price_step)],
            "seconds": [seconds],
            "computed_at": [datetime.now(UTC)],
        }
    )
    levels = result.levels.select(
        "created_at", "side", "leverage", "price", "notional_usd", "liquidated_at"
    )
    outputs: dict[str, pl.DataFrame] = {
        **({"liq_levels": levels} if keep_levels else {}),
        "heatmap_cells": result.heatmap,
        "liquidation_map": result.liquidation_map.select(
            "as_of",
            "ref_price",
            "price",
            "long_usd",
            "short_usd",
            "long_cum_usd",
            "short_cum_usd",
        ),
        "key_levels": result.key_levels.select(list(KEY_LEVELS_SCHEMA)),
        "predicted_liquidations": result.predicted.select("ts", "long_usd", "short_usd"),
        "backtest_scores": scores,
        "heatmap_band_cells": result.heatmap_bands,
        "liquidation_map_bands": result.liquidation_map_bands,
        "heatmap_fine_cells": result.fine.heatmap,
        "heatmap_fine_band_cells": result.fine.heatmap_bands,
        **more,
    }
    summary = ModelSummary(
        exchange=inputs.exchange,
        symbol=inputs.symbol,
        params_hash=params_hash,
        bars=result.bars,
        levels=result.levels.height,
        heatmap_cells=result.heatmap.height,
        seconds=seconds,
        scores=score_lines(scores),
    )
    return ModelComputed(
        inputs.exchange,
        inputs.symbol,
        params_hash,
        run,
        outputs,
        summary,
        compute_seconds=time.perf_counter() - started,
    )


def score_lines(scores: pl.DataFrame) -> list[dict[str, Any]]:
    """The headline figures of a run's scores (for :class:`ModelSummary`)."""
    if not scores.height:
        return []
    return scores.select(
        "method", "side", "capture_auc", "top_decile_overlap", "log_corr"
    ).to_dicts()


def store_model(settings: Settings, computed: ModelComputed) -> ModelSummary:
    """Write one model run's outputs in one transaction (the single writer), dropping the
    (exchange, symbol)'s older bulky outputs (see :func:`warehouse.writes.write_model_outputs`)."""
    writes.write_model_outputs(
        settings.db_path,
        exchange=computed.exchange,
        symbol=computed.symbol,
        params_hash=computed.params_hash,
        run=computed.run,
        outputs=computed.outputs,
    )
    return computed.summary


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
    params = resolve_params(settings, symbol, params)
    inputs = read_model_inputs(settings, symbol, exchange=exchange, days=days)
    if inputs is None:
        if price_step is not None:
            params = ModelParams.model_validate({**params.model_dump(), "price_step": price_step})
        return ModelSummary(exchange, symbol, params.params_hash(), 0, 0, 0, 0.0)
    computed = compute_model(
        inputs, params, price_step=price_step, keep_levels=settings.store_levels
    )
    return store_model(settings, computed)


@dataclass(frozen=True)
class ModelOutcome:
    """One (exchange, symbol) of :func:`model_symbols`: its summary, or the error that stopped
    it (the other symbols still run), and its cost: read + compute + write seconds (time spent
    waiting for a free worker not included)."""

    exchange: str
    symbol: str
    summary: ModelSummary | None
    error: str | None
    seconds: float


def _compute_in_worker(
    inputs: ModelInputs, params: ModelParams | None, keep_levels: bool = False
) -> ModelComputed:
    """Process-pool entry point (module level, so ``spawn`` workers can import it)."""
    return compute_model(inputs, params, keep_levels=keep_levels)


def _no_bars(exchange: str, symbol: str) -> ModelSummary:
    """The summary of a pair without bars (nothing modelled)."""
    return ModelSummary(exchange, symbol, ModelParams().params_hash(), 0, 0, 0, 0.0)


#: this many jobs or fewer run in the flow process (a pool's start-up would cost more)
MIN_PARALLEL_JOBS = 2


def model_workers(jobs: int, workers: int | None = None) -> int:
    """How many model worker processes to use for ``jobs`` (exchange, symbol) runs: the
    usable cores (or ``workers``), never more than the jobs; 0 = run in this process (one
    or two jobs do not pay for starting a pool).

    Examples
    --------
    >>> model_workers(2, 4), model_workers(100, 2), model_workers(100, 1)
    (0, 2, 0)
    """
    cores = workers if workers is not None else len(os.sched_getaffinity(0))
    if jobs <= MIN_PARALLEL_JOBS or cores <= 1:
        return 0
    return min(cores, jobs)


def model_symbols(
    settings: Settings,
    jobs: Sequence[tuple[str, str]],
    *,
    days: int | None = None,
    workers: int | None = None,
    on_done: Any = None,
    params: ModelParams | None = None,
) -> list[ModelOutcome]:
    """Model many (exchange, symbol) pairs: read each one's window (one read per pair) here,
    compute the models in a pool of worker processes (numpy/polars; see
    :func:`model_workers`), and write each result here, the single writer, in one transaction
    per pair. A pair that fails (bad data, a bug) is reported in its outcome with the reason
    and never stops the others. ``on_done(outcome)`` is called as each pair finishes.
    Returns the outcomes in ``jobs`` order."""
    n = model_workers(len(jobs), workers)
    outcomes: dict[tuple[str, str], ModelOutcome] = {}

    def params_of(key: tuple[str, str]) -> ModelParams:
        """The run's parameters (LIQHEAT_MODEL_PROFILE or defaults, the symbol's brackets)."""
        return resolve_params(settings, key[1], params)  # type: ignore[no-any-return]

    def done(key: tuple[str, str], outcome: ModelOutcome) -> None:
        outcomes[key] = outcome
        if on_done is not None:
            on_done(outcome)

    def fail(key: tuple[str, str], exc: BaseException, t0: float) -> None:
        done(key, ModelOutcome(*key, None, first_line(exc), time.perf_counter() - t0))

    def read(key: tuple[str, str]) -> ModelInputs | None:
        exchange, symbol = key
        return read_model_inputs(settings, symbol, exchange=exchange, days=days)

    if n == 0:
        for key in jobs:
            t0 = time.perf_counter()
            try:
                inputs = read(key)
                if inputs is None:
                    summary = _no_bars(*key)
                else:
                    computed = compute_model(
                        inputs, params_of(key), keep_levels=settings.store_levels
                    )
                    summary = store_model(settings, computed)
            except Exception as exc:
                fail(key, exc, t0)
            else:
                done(key, ModelOutcome(*key, summary, None, time.perf_counter() - t0))
        return [outcomes[k] for k in jobs]

    # spawn, not fork: the flow process runs threads (Prefect's), which fork would copy
    # mid-flight. At most 2 x workers inputs are in memory at once.
    ctx = multiprocessing.get_context("spawn")
    #: per pending job: its key and its read seconds
    pending: dict[Future[ModelComputed], tuple[tuple[str, str], float]] = {}
    todo = list(jobs)
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        while todo or pending:
            while todo and len(pending) < 2 * n:
                key = todo.pop(0)
                t0 = time.perf_counter()
                try:
                    inputs = read(key)
                except Exception as exc:
                    fail(key, exc, t0)
                    continue
                if inputs is None:
                    done(key, ModelOutcome(*key, _no_bars(*key), None, time.perf_counter() - t0))
                    continue
                try:
                    fut = pool.submit(
                        _compute_in_worker, inputs, params_of(key), settings.store_levels
                    )
                except Exception as exc:  # a broken pool (a worker was killed): this pair fails
                    fail(key, exc, t0)
                else:
                    pending[fut] = (key, time.perf_counter() - t0)
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                key, read_s = pending.pop(fut)
                t0 = time.perf_counter()
                try:
                    computed = fut.result()
                    summary = store_model(settings, computed)
                except Exception as exc:
                    fail(key, exc, t0 - read_s)
                else:
                    cost = read_s + computed.compute_seconds + time.perf_counter() - t0
                    done(key, ModelOutcome(*key, summary, None, cost))
    return [outcomes[k] for k in jobs]
