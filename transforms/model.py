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
from transforms.display import FINE_DIVISOR, FINE_SPAN, fine_price_window
from transforms.heatmap import (
    HEATMAP_SCHEMA,
    TimeTiers,
    display_price_range,
    display_tiers_for,
    heatmap,
    liquidation_map,
)
from transforms.levels import compute_core, levels_frame
from transforms.leverage_bands import (
    BAND_HEATMAP_SCHEMA,
    band_heatmaps,
    band_maps,
    heatmap_from_bands,
)
from transforms.params import ModelParams
from transforms.realized import realized_per_bar
from transforms.scoring import all_scores

__all__ = ["FineCells", "ModelResult", "fine_cells", "run_model"]


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
    fine
        The fine cells of the last `transforms.display.FINE_SPAN` (`FineCells`, for the 12h
        and 24h pages); empty unless the heatmap is at display resolution.
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
    fine: FineCells = field(default_factory=lambda: FineCells.empty())


@dataclass(frozen=True)
class FineCells:
    """The heatmap of the last `transforms.display.FINE_SPAN` at a finer price step.

    Attributes
    ----------
    heatmap, heatmap_bands
        `transforms.heatmap.HEATMAP_SCHEMA` and `transforms.leverage_bands.BAND_HEATMAP_SCHEMA`
        cells (the total summed from the groups), at the display tiers' time buckets.
    price_step
        Their price bucket: the run's step / `transforms.display.FINE_DIVISOR` (0 if empty).
    price_range
        The prices covered (`transforms.display.fine_price_window`).
    """

    heatmap: pl.DataFrame
    heatmap_bands: pl.DataFrame
    price_step: float
    price_range: tuple[float, float]

    @staticmethod
    def empty() -> FineCells:
        """No fine cells."""
        return FineCells(
            pl.DataFrame(schema=HEATMAP_SCHEMA),
            pl.DataFrame(schema=BAND_HEATMAP_SCHEMA),
            0.0,
            (0.0, 0.0),
        )


def fine_cells(
    levels: pl.DataFrame,
    bars: pl.DataFrame,
    price_step: float,
    tiers: TimeTiers,
    *,
    params: ModelParams,
) -> FineCells:
    """The fine cells of a display-resolution run: `band_heatmaps` at ``price_step`` /
    `transforms.display.FINE_DIVISOR` over `transforms.display.fine_price_window` of the
    last `transforms.display.FINE_SPAN` of ``bars`` (normalized bars), keeping the time
    buckets from the one holding the span's start. Inside that window they are the run's
    display cells split into finer price buckets (the same levels and time buckets), so summed
    over price they equal them. Cost: the levels alive in the span and inside the window.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> from transforms.display import display_tiers
    >>> from transforms.levels import liquidation_levels
    >>> t = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(4)]
    >>> bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
    ...                      "close": 100.0, "oi_usd": [1000.0, 2000.0, 2000.0, 2000.0]})
    >>> p = ModelParams()
    >>> fine = fine_cells(liquidation_levels(bars, p), bars, 1.0, display_tiers("5m"), params=p)
    >>> fine.price_step, fine.price_range
    (0.2, (87.0, 113.0))
    """
    bars = model_input(bars)
    last = bars.get_column("ts").max()
    assert isinstance(last, datetime)
    since = last - FINE_SPAN
    since -= (since - datetime(1970, 1, 1, tzinfo=since.tzinfo)) % tiers.step
    recent = bars.filter(pl.col("ts") >= since)
    hourly = recent.group_by(pl.col("ts").dt.truncate("1h")).agg(
        (pl.col("high").max() - pl.col("low").min()).alias("r")
    )
    mean = hourly.get_column("r").mean()
    low, high = recent.get_column("low").min(), recent.get_column("high").max()
    assert isinstance(low, int | float)
    assert isinstance(high, int | float)
    window = fine_price_window(
        float(low), float(high), float(mean) if isinstance(mean, int | float) else 0.0
    )
    fine_step = price_step / FINE_DIVISOR
    alive = levels.filter(pl.col("liquidated_at").is_null() | (pl.col("liquidated_at") >= since))
    bands = band_heatmaps(alive, bars, fine_step, tiers, params=params, price_range=window)
    bands = bands.filter(pl.col("ts") >= since)
    return FineCells(heatmap_from_bands(bands), bands, fine_step, window)


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
        display = display_tiers_for(first, last, bar)
        tiers: str | timedelta | TimeTiers = display
        window = display_price_range(norm, keys["price"].to_list() if keys.height else [])
        bands = band_heatmaps(levels, norm, step, tiers, params=params, price_range=window)
        heat = heatmap_from_bands(bands)
        fine = fine_cells(levels, norm, step, display, params=params)
    else:
        fine = FineCells.empty()
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
        fine=fine,
    )
