"""Calibration (time split, reproducible), trader-terms scores, warm-up, and the real 4h set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from flows.calibration import read_calibration_csv
from transforms.backtest import (
    baseline_liquidations,
    key_level_proximity,
    predicted_liquidations,
    score,
    top_decile_capture,
)
from transforms.calibrate import calibrate, scoring_start
from transforms.levels import warmup_hours
from transforms.params import ModelParams

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT.parent / "shared" / "data" / "btc-4h-price-oi-liquidations-2025-10-06_11-22.csv"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def random_market(n: int = 200, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ret = rng.normal(0, 0.01, n)
    close = 100 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.exponential(0.004, n))
    low = np.minimum(open_, close) * (1 - rng.exponential(0.004, n))
    ts = [T0 + timedelta(hours=i) for i in range(n)]
    bars = pl.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.gamma(2.0, 1.0, n), "oi_usd": 1e6})  # fmt: skip
    # realized: convex in the adverse move, plus noise
    long_ = 1e4 * ((open_ - low) / open_) ** 2 * rng.lognormal(0, 0.5, n)
    short = 1e4 * ((high - open_) / open_) ** 2 * rng.lognormal(0, 0.5, n)
    return bars, pl.DataFrame({"ts": ts, "long_usd": long_, "short_usd": short})


def test_top_decile_capture_counts_realized_usd_in_the_top_bars() -> None:
    pred = np.array([9.0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    real = np.zeros(20)
    real[0], real[5] = 3.0, 1.0
    # top 2 bars of 20: bars 0 and 1 hold 3 of 4 realized USD
    assert top_decile_capture(pred, real) == pytest.approx(0.75)


def test_warmup_is_dropped_from_every_score() -> None:
    bars, real = random_market(48)
    real = real.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(1e12).otherwise(pl.col("long_usd"))
        .alias("long_usd")
    )  # fmt: skip
    pred = predicted_liquidations(bars)
    base = baseline_liquidations(bars)
    full = score(pred, real, baseline=base)
    cut = score(pred, real, baseline=base, warmup=timedelta(hours=10))
    assert set(full["bars"]) == {48}
    assert set(cut["bars"]) == {38}  # the first 10 hourly bars are gone, for both methods
    assert cut.filter(pl.col("side") == "long")["realized_usd"].max() < 1e12
    assert warmup_hours(ModelParams(turnover_half_life_hours=3.0)) == pytest.approx(9.966, 1e-3)


def test_key_level_proximity_has_no_look_ahead() -> None:
    ts = [T0 + timedelta(hours=i) for i in range(3)]
    bars = pl.DataFrame({"ts": ts, "open": 100.0, "high": 101.0, "low": [99.0, 95.2, 95.2],
                         "close": 100.0, "oi_usd": 1.0})  # fmt: skip
    # a level at 95.5 (bucket 95 + half step) listed in the heatmap bucket of bar 1 only
    hm = pl.DataFrame({"ts": [ts[1], ts[1]], "price": [95.0, 96.0], "long_usd": [5.0, 0.0],
                       "short_usd": [0.0, 0.0]})  # fmt: skip
    near = key_level_proximity(bars, hm)
    # bar 1 reaches it but it was listed only once bar 1 was over: only bar 2 counts
    assert near["long_near"].to_list() == [False, False, True]
    real = pl.DataFrame({"ts": ts, "long_usd": [0.0, 2.0, 6.0], "short_usd": 0.0})
    pred = pl.DataFrame({"ts": ts, "long_usd": [0.0, 1.0, 2.0], "short_usd": 0.0})
    got = score(pred, real, near=near).filter(pl.col("side") == "long")
    assert got["near_key_level_share"].item() == pytest.approx(6.0 / 8.0)
    assert got["size_ratio"].item() == pytest.approx(3.0 / 8.0)


def test_calibration_is_a_reproducible_time_split() -> None:
    bars, real = random_market()
    grid = {"turnover_half_life_hours": (2.0, 8.0), "leverage_median": (10.0, 40.0)}
    a = calibrate(bars, real, grid=grid, seed=5)
    b = calibrate(bars, real, grid=grid, seed=5)
    assert a.params == b.params
    assert a.table.equals(b.table)
    # the held-back part starts after the fitting part ends, and both are in time order
    assert a.train[0] == scoring_start(bars, grid)
    assert a.train[1] < a.test[0] <= a.test[1]
    bars_of = dict(
        a.table.filter(pl.col("method") == "fitted", pl.col("side") == "long")
        .select("split", "bars")
        .iter_rows()
    )
    first = bars["ts"].to_list().index(a.train[0])
    assert bars_of["train"] + bars_of["test"] == bars.height - first
    assert bars_of["train"] == int((bars.height - first) * 0.7)
    assert set(a.table["method"]) == {"fitted", "defaults", "baseline"}
    # fitting never picks something worse than the start on the fitting part
    train = a.table.filter(pl.col("split") == "train")
    fitted = train.filter(pl.col("method") == "fitted")["capture_auc"].mean()
    start = train.filter(pl.col("method") == "defaults")["capture_auc"].mean()
    assert isinstance(fitted, float)
    assert isinstance(start, float)
    assert fitted >= start - 1e-12
    with pytest.raises(ValueError, match="train_share"):
        calibrate(bars, real, train_share=0.95)
    with pytest.raises(ValueError, match="unknown parameter"):
        calibrate(bars, real, grid={"nope": (1.0,)})


@pytest.mark.skipif(not DEV.exists(), reason="needs ../shared/data")
def test_real_4h_set_defaults_beat_the_baseline() -> None:
    """The Done-when figure: on the real 4h set, with the shipped defaults and the first day
    dropped as warm-up, capture AUC beats the baseline on both sides and the top-decile overlap
    is not below it."""
    data = read_calibration_csv(DEV)
    assert data.bars.height == 285
    assert data.bars.columns == ["ts", "open", "high", "low", "close", "volume", "oi_usd"]
    pred = predicted_liquidations(data.bars)
    sc = score(pred, data.realized, baseline=baseline_liquidations(data.bars),
               warmup=timedelta(days=1))  # fmt: skip
    for side in ("long", "short"):
        rows = {r["method"]: r for r in sc.filter(pl.col("side") == side).iter_rows(named=True)}
        assert rows["model"]["capture_auc"] > rows["baseline"]["capture_auc"], side
        assert rows["model"]["top_decile_overlap"] >= rows["baseline"]["top_decile_overlap"], side


@pytest.mark.skipif(not DEV.exists(), reason="needs ../shared/data")
def test_real_4h_set_sizes_with_the_shipped_defaults() -> None:
    """Issue 19: predicted / realized USD at most 30 with the shipped defaults, on the whole
    file (first day dropped) and on the held-back last 30 % as `liqheat calibrate` splits it.
    The file's OI is all exchanges' and its realized USD Binance's (throttled): a ratio near
    7-10 before the feed's undercount is expected, so below 5 would be too small."""
    data = read_calibration_csv(DEV)
    pred = predicted_liquidations(data.bars)
    ts = data.bars["ts"]
    scored = ts.filter(ts >= scoring_start(data.bars))
    cut = scored[int(scored.len() * 0.7)]
    for start in (ts[0] + timedelta(days=1), cut):
        p = pred.filter(pl.col("ts") >= start)
        r = data.realized.filter(pl.col("ts") >= start)
        for side in ("long", "short"):
            ratio = p[f"{side}_usd"].sum() / r[f"{side}_usd"].sum()
            assert 5.0 <= ratio <= 30.0, (start, side, ratio)
