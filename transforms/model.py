"""One call that runs the whole liquidation model (the entry point the flows use)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from transforms.backtest import _in_input_order, baseline_liquidations, predicted_from_core
from transforms.bars import model_input
from transforms.clusters import cluster_key_levels
from transforms.heatmap import HEATMAP_SCHEMA, TimeTiers, heatmap, liquidation_map
from transforms.levels import compute_core, levels_frame
from transforms.params import ModelParams

__all__ = ["ModelResult", "run_model"]


@dataclass(frozen=True)
class ModelResult:
    """All outputs of one model run.

    Attributes
    ----------
    levels, heatmap, liquidation_map, key_levels, predicted
        Frames as documented in `transforms.levels`, `transforms.heatmap`,
        `transforms.backtest` (``predicted`` has one row per normalized bar).
    baseline
        `transforms.backtest.baseline_liquidations` on the same bars (for `score`).
    price_step
        The resolved price bucket size.
    params
        The parameters used (``params.params_hash()`` keys stored results).
    """

    levels: pl.DataFrame
    heatmap: pl.DataFrame
    liquidation_map: pl.DataFrame
    key_levels: pl.DataFrame
    predicted: pl.DataFrame
    baseline: pl.DataFrame
    price_step: float
    params: ModelParams


def run_model(
    bars: pl.DataFrame,
    params: ModelParams | None = None,
    *,
    time_step: str | timedelta | TimeTiers = "15m",
    at: datetime | None = None,
    top: int = 5,
    with_heatmap: bool = True,
) -> ModelResult:
    """Run the open-interest model once and return every output.

    Levels are computed once and shared by the heatmap, liquidation map, key levels and
    predicted liquidations. O(n log n + N log n + C) (see `transforms.levels`).

    Parameters
    ----------
    bars
        Canonical bars (see `transforms.bars.model_input`).
    params
        Model parameters; default `ModelParams()`.
    time_step
        Heatmap time bucket (polars duration string, timedelta or `TimeTiers`).
    at
        Snapshot time of the liquidation map and key levels (the book after the last bar
        closed by then, see `transforms.levels.snapshot`); default the last bar.
    top
        Key levels per side.
    with_heatmap
        False: leave ``heatmap`` empty (the caller computes its own, e.g. the stored
        display-resolution heatmap of the flows).

    Returns
    -------
    ModelResult

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(4)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0, 2000.0]})
    >>> res = run_model(bars)
    >>> res.levels.height, res.price_step, res.predicted.height
    (1024, 0.1, 4)
    """
    params = params or ModelParams()
    norm = model_input(bars)
    if norm.height == 0:
        raise ValueError("bars is empty")
    step = params.resolve_price_step(norm)
    core = compute_core(norm, params)
    levels = levels_frame(core)
    return ModelResult(
        levels=levels,
        heatmap=(
            heatmap(levels, norm, step, time_step, params=params)
            if with_heatmap
            else pl.DataFrame(schema=HEATMAP_SCHEMA)
        ),
        liquidation_map=(
            lm := liquidation_map(levels, at, bars=norm, price_step=step, params=params)
        ),
        key_levels=cluster_key_levels(lm, price_step=step, top=top),
        predicted=predicted_from_core(core),
        baseline=_in_input_order(norm, baseline_liquidations(norm)),
        price_step=step,
        params=params,
    )
