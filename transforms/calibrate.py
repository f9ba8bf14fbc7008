"""Fit the model's few free parameters on realized liquidations, honestly split in time.

The free parameters: the position half-life (turnover), the leverage density's median and
width, the share of its mass on the common leverage settings, and the side tilt. They are
fitted by coordinate descent over a small grid (`GRID`) on the FIRST part of the history
(``train_share`` of the scored bars, in time order, never shuffled); the held-back LAST part is
scored once with the fitted parameters, next to the baseline and the shipped defaults. The
model is causal (a bar's prediction uses that bar and earlier ones only), so running it over
the whole window and scoring the held-back part is an out-of-sample test.

The two size knobs (``leveraged_share``, ``closed_before_liquidation``) scale every prediction
alike, so no rank score can fit them: they stay as given, and the size ratio (predicted /
realized USD) is reported for every split and method.

Every candidate is scored on the same bars: the first `scoring_start` of the window is dropped
for all of them (the warm-up of the slowest half-life in the grid, at most a fifth of the span).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from transforms.backtest import baseline_liquidations, predicted_liquidations, score
from transforms.bars import model_input
from transforms.levels import warmup_hours
from transforms.params import ModelParams

__all__ = ["CALIBRATION_SCHEMA", "GRID", "Calibration", "calibrate", "scoring_start"]

#: The free parameters and the values the search may take.
GRID: dict[str, tuple[float, ...]] = {
    "turnover_half_life_hours": (6.0, 12.0, 24.0, 48.0),
    "leverage_median": (5.0, 7.0, 10.0, 14.0, 20.0, 28.0),
    "leverage_sigma": (0.7, 1.0, 1.3),
    "leverage_setting_share": (0.0, 0.5, 0.9),
    "side_tilt": (-0.2, 0.0, 0.2),
}

#: One row per (split, method, side): ``method`` is ``fitted``, ``defaults`` or ``baseline``.
CALIBRATION_SCHEMA: dict[str, pl.DataType] = {
    "split": pl.String(),
    "method": pl.String(),
    "side": pl.String(),
    "bars": pl.Int64(),
    "capture_auc": pl.Float64(),
    "top_decile_overlap": pl.Float64(),
    "top_decile_capture": pl.Float64(),
    "log_corr": pl.Float64(),
    "size_ratio": pl.Float64(),
}


@dataclass(frozen=True)
class Calibration:
    """Result of `calibrate`.

    Attributes
    ----------
    params
        The fitted parameters (the base parameters with the free ones replaced).
    table
        `CALIBRATION_SCHEMA`: train and test scores of the fitted model, the defaults and the
        baseline.
    train, test
        ``(first, last)`` bar times of each part.
    size_ratio
        Predicted / realized USD of the fitted model on the test part, per side (realized feeds
        are throttled, so realized USD is a lower bound: the true ratio is lower).
    objective
        Mean train capture AUC of the fitted parameters (long and short).
    evaluations
        Parameter sets tried.
    """

    params: ModelParams
    table: pl.DataFrame
    train: tuple[datetime, datetime]
    test: tuple[datetime, datetime]
    size_ratio: dict[str, float]
    objective: float
    evaluations: int


def scoring_start(bars: pl.DataFrame, grid: dict[str, tuple[float, ...]] | None = None) -> datetime:
    """First bar time scored by calibration: the grid's slowest warm-up, at most 1/5 of the span.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> t = [datetime(2024, 1, 1) + timedelta(hours=4 * i) for i in range(300)]
    >>> b = pl.DataFrame({"ts": t, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
    ...                   "oi_usd": 1.0})
    >>> scoring_start(b).isoformat()
    '2024-01-07T16:00:00+00:00'
    """
    grid = GRID if grid is None else grid
    ts = model_input(bars).get_column("ts")
    first, last = ts.min(), ts.max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        raise ValueError("bars is empty")
    halves = grid.get("turnover_half_life_hours") or (ModelParams().turnover_half_life_hours or 0,)
    warm = timedelta(hours=warmup_hours(ModelParams(turnover_half_life_hours=max(halves))))
    start = first + min(warm, (last - first) / 5)
    later = ts.filter(ts >= start)
    value = later.min()
    return value if isinstance(value, datetime) else first


def _rows(scores: pl.DataFrame, split: str, method: str) -> list[dict[str, Any]]:
    picked = scores.filter(pl.col("method") == ("baseline" if method == "baseline" else "model"))
    return [
        {**{k: r[k] for k in CALIBRATION_SCHEMA if k in r}, "split": split, "method": method}
        for r in picked.iter_rows(named=True)
    ]


def calibrate(
    bars: pl.DataFrame,
    realized: pl.DataFrame,
    *,
    base: ModelParams | None = None,
    train_share: float = 0.7,
    grid: dict[str, tuple[float, ...]] | None = None,
    passes: int = 2,
    seed: int = 0,
) -> Calibration:
    """Fit the free parameters on the first part of the history, score the held-back rest.

    Parameters
    ----------
    bars
        Canonical bars (see `transforms.bars.model_input`), any bar size.
    realized
        Realized liquidations per bar: ``ts, long_usd, short_usd``.
    base
        Parameters the free ones start from (default `ModelParams()`, the shipped defaults).
    train_share
        Share of the scored bars (in time order) used for fitting; the rest is held back.
    grid
        Values per free parameter (default `GRID`).
    passes
        Coordinate-descent passes over the parameters.
    seed
        Order in which the parameters are visited in each pass (reproducible).

    Returns
    -------
    Calibration

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> rng = np.random.default_rng(1)
    >>> n = 120
    >>> close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    >>> t = [datetime(2024, 1, 1) + timedelta(hours=i) for i in range(n)]
    >>> bars = pl.DataFrame({"ts": t, "open": np.r_[100.0, close[:-1]], "high": close * 1.01,
    ...                      "low": close * 0.99, "close": close, "oi_usd": 1e6})
    >>> real = pl.DataFrame({"ts": t, "long_usd": rng.exponential(1.0, n),
    ...                      "short_usd": rng.exponential(1.0, n)})
    >>> small = {"leverage_median": (10.0, 25.0)}
    >>> cal = calibrate(bars, real, grid=small, passes=1)
    >>> cal.params.leverage_median in (10.0, 25.0), cal.table.height
    (True, 12)
    """
    if not 0.1 <= train_share <= 0.9:
        raise ValueError(f"train_share must be in [0.1, 0.9], got {train_share}")
    grid = GRID if grid is None else grid
    unknown = set(grid) - set(ModelParams.model_fields)
    if unknown:
        raise ValueError(f"unknown parameter(s) in grid: {', '.join(sorted(unknown))}")
    base = base or ModelParams()
    norm = model_input(bars)
    start = scoring_start(norm, grid)
    ts = norm.get_column("ts")
    scored = ts.filter(ts >= start)
    if scored.len() < 20:
        raise ValueError(f"too few bars to calibrate: {scored.len()} after the warm-up (need 20)")
    cut = scored[int(scored.len() * train_share)]
    real = realized.select("ts", "long_usd", "short_usd")
    base_line = baseline_liquidations(norm)

    def part(frame: pl.DataFrame, lo: datetime, hi: datetime | None) -> pl.DataFrame:
        keep = pl.col("ts") >= lo
        return frame.filter(keep if hi is None else keep & (pl.col("ts") < hi))

    cache: dict[str, float] = {}

    def objective(params: ModelParams) -> float:
        key = params.params_hash()
        if key not in cache:
            pred = part(predicted_liquidations(norm, params), start, cut)
            sc = score(pred, real)
            value = float(np.nanmean(sc.get_column("capture_auc").to_numpy()))
            cache[key] = value if math.isfinite(value) else -math.inf
        return cache[key]

    current = base
    best = objective(current)
    rng = np.random.default_rng(seed)
    names = list(grid)
    for _ in range(max(1, passes)):
        improved = False
        for idx in rng.permutation(len(names)):
            name = names[int(idx)]
            for value in grid[name]:
                cand = ModelParams.model_validate({**current.model_dump(), name: value})
                got = objective(cand)
                if got > best + 1e-12:
                    best, current, improved = got, cand, True
        if not improved:
            break

    rows: list[dict[str, Any]] = []
    ratio: dict[str, float] = {}
    for method, params in (("fitted", current), ("defaults", base)):
        pred = predicted_liquidations(norm, params)
        for split, lo, hi in (("train", start, cut), ("test", cut, None)):
            sc = score(part(pred, lo, hi), real, baseline=part(base_line, lo, hi))
            rows += _rows(sc, split, method)
            if method == "fitted":
                rows += _rows(sc, split, "baseline")
                if split == "test":
                    model_rows = sc.filter(pl.col("method") == "model")
                    ratio = dict(zip(model_rows["side"], model_rows["size_ratio"], strict=True))
    table = pl.DataFrame(rows, schema=CALIBRATION_SCHEMA).sort(
        pl.col("split").replace_strict({"train": 0, "test": 1}, return_dtype=pl.Int8),
        pl.col("method").replace_strict(
            {"fitted": 0, "defaults": 1, "baseline": 2}, return_dtype=pl.Int8
        ),
        "side",
    )
    last = ts.max()
    before_cut = scored.filter(scored < cut).max()
    if not isinstance(last, datetime) or not isinstance(before_cut, datetime):
        raise ValueError("no bars before the held-back part")
    return Calibration(
        params=current,
        table=table,
        train=(start, before_cut),
        test=(cut, last),
        size_ratio={k: float(v) for k, v in ratio.items()},
        objective=best,
        evaluations=len(cache),
    )
