"""The one scoring routine: per-bar scores and where-scores of one model run.

`all_scores` is the single entry the CLI (``liqheat backtest --file``), the warehouse
(``backtest_scores``, ``where_scores``) and the site use: the per-bar scores of
`transforms.backtest.score` (when realized liquidations are given) and the where-scores of
`transforms.where.where_scores` (always), both from the same run's levels and predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from transforms.backtest import SCORE_SCHEMA, baseline_liquidations, predicted_from_core, score
from transforms.bars import model_input
from transforms.levels import compute_core, levels_frame, warmup_hours
from transforms.params import ModelParams
from transforms.where import WhereMethod, where_scores

__all__ = ["AllScores", "all_scores"]


@dataclass(frozen=True)
class AllScores:
    """Scores of one model run.

    Attributes
    ----------
    per_bar
        `transforms.backtest.SCORE_SCHEMA` (model and baseline per side); empty without
        realized liquidations.
    where
        `transforms.where.WHERE_SCORE_SCHEMA`; ``realized_near`` rows only with realized
        liquidations; empty when the history is too short for a decision time.
    """

    per_bar: pl.DataFrame
    where: pl.DataFrame


def all_scores(
    bars: pl.DataFrame,
    params: ModelParams | None = None,
    *,
    realized: pl.DataFrame | None = None,
    levels: pl.DataFrame | None = None,
    predicted: pl.DataFrame | None = None,
    baseline: pl.DataFrame | None = None,
    near: pl.DataFrame | None = None,
    coverage: float = 1.0,
    method: WhereMethod | None = None,
) -> AllScores:
    """Per-bar scores and where-scores of one model run (the model runs once if needed).

    Parameters
    ----------
    bars
        Canonical bars (see `transforms.bars.model_input`).
    params
        The run's parameters; default `ModelParams()`.
    realized
        Realized liquidations per bar (``ts, long_usd, short_usd``) or None (bars-only: the
        magnet and direction scores only).
    levels, predicted
        The run's levels and per-bar predictions; when either is missing the model is run
        once on ``bars`` for both.
    baseline
        The baseline per bar; default `transforms.backtest.baseline_liquidations` of ``bars``.
    near
        Key-level proximity per bar (`transforms.backtest.key_level_proximity`), optional.
    coverage
        Share of the OI's market that the realized feed covers (``size_ratio_at_coverage``).
    method
        The where-scores' settings (default `transforms.where.WhereMethod()`).

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> import numpy as np
    >>> t = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(24 * 6)]
    >>> price = 100 * np.exp(0.01 * np.sin(np.arange(len(t)) / 5))
    >>> bars = pl.DataFrame({"ts": t, "open": price, "high": price * 1.01,
    ...                      "low": price * 0.99, "close": price, "oi_usd": 1e6})
    >>> real = pl.DataFrame({"ts": t, "long_usd": 1.0, "short_usd": 1.0})
    >>> s = all_scores(bars, realized=real, coverage=0.5, method=WhereMethod(draws=100))
    >>> s.per_bar.height, sorted(set(s.where["name"]))
    (4, ['direction_agree', 'direction_corr', 'magnet', 'realized_near'])
    """
    params = params or ModelParams()
    norm = model_input(bars)
    if levels is None or predicted is None:
        core = compute_core(norm, params)
        levels, predicted = levels_frame(core), predicted_from_core(core)
    has_realized = realized is not None and realized.height > 0
    per_bar = pl.DataFrame(schema=SCORE_SCHEMA)
    if has_realized:
        assert realized is not None
        per_bar = score(
            predicted,
            realized,
            baseline=baseline if baseline is not None else baseline_liquidations(norm),
            warmup=timedelta(hours=warmup_hours(params)),
            near=near,
            coverage=coverage,
        )
    where = where_scores(
        norm, levels, params, realized=realized if has_realized else None, method=method
    )
    return AllScores(per_bar=per_bar, where=where)
