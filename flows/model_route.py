"""The model route of ``liqheat model`` and the flows: which (exchange, symbol) pairs to
model and which symbols' exchanges to sum (:func:`model_plan`), then running it
(:func:`run_model_plan`: :func:`flows.modelling.model_symbols`, then
:func:`flows.exchange_sum.aggregate_symbol` per sum). No Prefect here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flows.errors import first_line
from flows.exchange_sum import aggregate_symbol
from flows.modelling import EXCHANGE, ModelOutcome, model_symbols
from flows.settings import Settings
from transforms.params import ModelParams
from warehouse import reads
from warehouse import reads_report as rr
from warehouse.reads import AGGREGATE_EXCHANGE


@dataclass(frozen=True)
class ModelPlan:
    """The model route of some symbols (the same for ``liqheat model`` and the flows): the
    (exchange, symbol) pairs to model, then per symbol the exchanges to sum (exchange
    ``"all"``, see :func:`aggregate_symbol`) when two or more have data."""

    jobs: list[tuple[str, str]]
    sums: dict[str, list[str]]

    @property
    def steps(self) -> int:
        """Pairs to model plus sums to store."""
        return len(self.jobs) + len(self.sums)


def model_plan(
    settings: Settings, symbols: Sequence[str], exchanges: Sequence[str] | None = None
) -> ModelPlan:
    """Plan the model route of ``symbols``: every exchange of ``exchanges`` (default: every
    exchange with bars or runs of the symbol) that has bars (a symbol with none at all gets
    one binance job, which reports "no bars"), then the sum of the exchanges with bars when
    there are two or more."""
    jobs: list[tuple[str, str]] = []
    sums: dict[str, list[str]] = {}
    for symbol in symbols:
        chosen = (
            exchanges
            if exchanges is not None
            else [EXCHANGE, *rr.symbol_exchanges(settings.db_path, symbol)]
        )
        found = []
        for exchange in dict.fromkeys(chosen):
            has_data = reads.last_bar_ts(settings.db_path, exchange, symbol) is not None
            if has_data:
                found.append(exchange)
            if has_data:
                jobs.append((exchange, symbol))
        if not found:
            jobs.append((EXCHANGE, symbol))
        if len(found) >= 2:
            sums[symbol] = found
    return ModelPlan(jobs, sums)


def short_day_lines(
    settings: Settings, symbol: str, exchange: str, days: int | None = None
) -> list[str]:
    """A note when the modelled window holds days loaded incomplete (``ingest_log.complete``
    false: a short archive file, an import day with a hole): they are modelled as they are,
    with their gaps, and the user is told so."""
    short = reads.short_days(settings.db_path, exchange, symbol, days or settings.model_days)
    if not short:
        return []
    shown = ", ".join(f"{d} ({why})" for d, why in short[:3])
    more = f" and {len(short) - 3} more" if len(short) > 3 else ""
    return [
        f"  note: {len(short)} incomplete day(s) in the {exchange} {symbol} window, modelled "
        f"with their gaps: {shown}{more} (ingest_log.complete)"
    ]


def outcome_line(outcome: ModelOutcome) -> str:
    """One line for a modelled (exchange, symbol): its summary (``[exchange]`` first unless
    binance) or its error."""
    tag = "" if outcome.exchange == EXCHANGE else f"[{outcome.exchange}] "
    if outcome.summary is None:
        return f"{tag}{outcome.symbol}: failed: {outcome.error}"
    return f"{tag}{outcome.summary.line()}"


def run_model_plan(
    settings: Settings,
    plan: ModelPlan,
    *,
    days: int | None = None,
    params: ModelParams | None = None,
    on_done: Any = None,
) -> list[ModelOutcome]:
    """Run a :func:`model_plan`: model its pairs (:func:`model_symbols`), then store its sums
    (:func:`aggregate_symbol`). A pair or sum that fails is reported in its outcome and never
    stops the others; ``on_done(outcome)`` is called as each finishes. Returns the pairs'
    outcomes in plan order, then the sums'."""
    outcomes = model_symbols(settings, plan.jobs, days=days, params=params, on_done=on_done)
    for symbol, found in plan.sums.items():
        t0 = time.perf_counter()
        try:
            summary = aggregate_symbol(settings, symbol, found, params=params, days=days)
        except Exception as exc:
            error = first_line(exc)
            outcome = ModelOutcome(
                AGGREGATE_EXCHANGE, symbol, None, error, time.perf_counter() - t0
            )
        else:
            seconds = time.perf_counter() - t0
            outcome = ModelOutcome(AGGREGATE_EXCHANGE, symbol, summary, None, seconds)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes
