"""The model's one door: one pure call that returns everything a model run stores.

`run_model` takes bars (and optionally the realized liquidations and the parameters) and
returns a `ModelResult`: the run's summary values, the heatmaps at display resolution (total
and per leverage group), the liquidation map (total and per band), the key levels, the
predicted and baseline liquidations and, with realized liquidations, the backtest scores. The
flows (`flows.modelling.compute_model`) only read the inputs, call it and shape the write; the sum
over exchanges has its own door, `transforms.aggregate.sum_exchanges`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from transforms.backtest import (
    baseline_liquidations,
    key_level_proximity,
    predicted_from_core,
)
from transforms.bars import model_input
from transforms.clusters import cluster_key_levels
from transforms.heatmap import (
    TimeTiers,
    display_price_range,
    display_tiers_for,
    heatmap,
    liquidation_map,
)
from transforms.levels import compute_core, levels_frame
from transforms.leverage_bands import band_heatmaps, band_maps, heatmap_from_bands
from transforms.params import ModelParams
from transforms.realized import realized_per_bar
from transforms.scoring import all_scores

__all__ = ["ModelResult", "run_model"]


@dataclass(frozen=True)
class ModelResult:
    """Every output of one model run (what `flows.modelling.compute_model` stores).

    Attributes
    ----------
    levels
        `transforms.levels.LEVELS_SCHEMA` (stored only on request: reproducible).
    heatmap, heatmap_bands
        Heatmap cells (`transforms.heatmap.HEATMAP_SCHEMA`) and the same per leverage filter
        group (`transforms.leverage_bands.BAND_HEATMAP_SCHEMA`). At display resolution by
        default: ``time_step`` buckets inside the prices the site can show
        (`transforms.heatmap.display_price_range`), the total summed from the groups.
    liquidation_map, liquidation_map_bands
        The snapshot at ``at`` (`transforms.heatmap.LIQUIDATION_MAP_SCHEMA`) and the one at the
        last bar per display band (`transforms.leverage_bands.BAND_MAP_SCHEMA`).
    key_levels
        Liquidation clusters of ``liquidation_map`` (`transforms.clusters.KEY_LEVELS_SCHEMA`).
    predicted, baseline
        Per normalized bar (`transforms.backtest`).
    scores
        `transforms.backtest.SCORE_SCHEMA` against the realized liquidations (warm-up dropped,
        key-level proximity from ``heatmap``); empty without realized liquidations.
    more_scores
        Further score frames, by the warehouse table they are stored in: ``"where_scores"``
        (`transforms.where.WHERE_SCORE_SCHEMA`: magnet and direction, and realized near
        clusters with realized liquidations; from `transforms.scoring.all_scores`, the one
        scoring routine, on this run's levels). The flows write every entry.
    price_step, time_step, params
        The resolved price bucket, the heatmap's time buckets, the parameters used
        (``params.params_hash()`` keys stored results).
    start_ts, end_ts, bars
        The run's window (first and last bar) and its number of bars.
    """

    levels: pl.DataFrame
    heatmap: pl.DataFrame
    heatmap_bands: pl.DataFrame
    liquidation_map: pl.DataFrame
    liquidation_map_bands: pl.DataFrame
    key_levels: pl.DataFrame
    predicted: pl.DataFrame
    baseline: pl.DataFrame
    scores: pl.DataFrame
    price_step: float
    time_step: str | timedelta | TimeTiers
    params: ModelParams
    start_ts: datetime
    end_ts: datetime
    bars: int
    more_scores: dict[str, pl.DataFrame] = field(default_factory=dict)


def _bar_size(bars: pl.DataFrame) -> timedelta | None:
    """The stored bar size of warehouse bars (their ``bar_seconds``), else None."""
    if "bar_seconds" not in bars.columns:
        return None
    seconds = bars.get_column("bar_seconds").max()
    return timedelta(seconds=int(seconds)) if isinstance(seconds, int | float) else None


def run_model(
    bars: pl.DataFrame,
    params: ModelParams | None = None,
    *,
    realized: pl.DataFrame | None = None,
    time_step: str | timedelta | TimeTiers | None = None,
    at: datetime | None = None,
    top: int = 5,
) -> ModelResult:
    """Run the open-interest model once and return every output (the model's one door).

    Levels are computed once and shared by the heatmaps, liquidation maps, key levels,
    predicted liquidations and scores. O(n log n + N log n + C) (see `transforms.levels`).

    Parameters
    ----------
    bars
        Canonical bars (see `transforms.bars.model_input`); a ``bar_seconds`` column (the
        warehouse's stored bar size) keeps the stored heatmap no finer than the bars.
    params
        Model parameters; default `ModelParams()`.
    realized
        Realized liquidations, per event (``ts, side, usd``) or per bar (``ts, long_usd,
        short_usd``), see `transforms.realized.realized_per_bar`; with rows, ``scores`` holds
        the backtest of the prediction and the baseline.
    time_step
        Heatmap time bucket. Default: the stored display resolution
        (`transforms.heatmap.display_tiers_for` the bars' history) inside the prices the site
        can show; a duration string, timedelta or `TimeTiers`: those buckets over every price.
    at
        Snapshot time of the liquidation map and key levels (the book after the last bar
        closed by then, see `transforms.levels.snapshot`); default the last bar.
    top
        Key levels per side.

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
    >>> res.levels.height, res.price_step, res.predicted.height, res.time_step.step
    (1024, 0.1, 4, datetime.timedelta(seconds=300))
    >>> real = pl.DataFrame({"ts": t[3:], "side": "long", "usd": 5.0})
    >>> run_model(bars, realized=real).scores.select("method", "side").rows()[:2]
    [('model', 'long'), ('model', 'short')]
    """
    params = params or ModelParams()
    norm = model_input(bars)
    if norm.height == 0:
        raise ValueError("bars is empty")
    first, last = norm["ts"].min(), norm["ts"].max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    step = params.resolve_price_step(norm)
    core = compute_core(norm, params)
    levels = levels_frame(core)
    lm = liquidation_map(levels, at, bars=norm, price_step=step, params=params)
    keys = cluster_key_levels(lm, price_step=step, top=top)
    if time_step is None:
        bar = _bar_size(bars)
        tiers: str | timedelta | TimeTiers = display_tiers_for(first, last, bar)
        window = display_price_range(norm, keys["price"].to_list() if keys.height else [])
        bands = band_heatmaps(levels, norm, step, tiers, params=params, price_range=window)
        heat = heatmap_from_bands(bands)
    else:
        tiers = time_step
        bands = band_heatmaps(levels, norm, step, tiers, params=params)
        heat = heatmap(levels, norm, step, tiers, params=params)
    predicted = predicted_from_core(core)
    baseline = baseline_liquidations(norm)
    per_bar = realized_per_bar(realized, norm) if realized is not None and realized.height else None
    scored = all_scores(
        norm,
        params,
        realized=per_bar,
        levels=levels,
        predicted=predicted,
        baseline=baseline,
        near=key_level_proximity(
            norm, heat, time_step=tiers if isinstance(tiers, TimeTiers) else None
        )
        if per_bar is not None
        else None,
    )
    return ModelResult(
        levels=levels,
        heatmap=heat,
        heatmap_bands=bands,
        liquidation_map=lm,
        liquidation_map_bands=band_maps(levels, bars=norm, price_step=step, params=params),
        key_levels=keys,
        predicted=predicted,
        baseline=baseline,
        scores=scored.per_bar,
        price_step=step,
        time_step=tiers,
        params=params,
        start_ts=first,
        end_ts=last,
        bars=bars.height,
        more_scores={"where_scores": scored.where},
    )
