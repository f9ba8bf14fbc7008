"""The estimator against the synthetic market's known truth (transforms.synthetic).

Tolerances (stated, and why):
- level locations: alive notional at the end of the window, model vs the true cohorts opened in
  the window, each normalized and bucketed at 0.5 % of price: overlap (sum of minima) >= 0.70 per
  side, and the notional-weighted mean distance from price within 1.5 percentage points. The model
  only sees net OI (the simulator opens and closes gross flows every minute), so an exact match is
  not expected.
- leverage mix: a least-squares fit of the hourly realized liquidations (of the cohorts opened
  in the window) on per-tier predicted liquidations recovers the relative weights of the tiers
  crossed in the window within 0.10 (absolute, shares normalized over those tiers). Tiers never
  crossed in 3 days (5x, often 10x, 10-20 % away) are not identifiable and are left out.
- the model beats the baseline's capture AUC on both sides by >= 0.02.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from transforms.backtest import baseline_liquidations, predicted_liquidations, score
from transforms.heatmap import liquidation_map
from transforms.levels import compute_core, liquidation_levels
from transforms.params import ModelParams
from transforms.realized import realized_per_bar
from transforms.synthetic import SyntheticMarket, synthetic_market


def model_bars(m: SyntheticMarket) -> pl.DataFrame:
    k, mk = m.klines, m.mark_klines
    oi = m.metrics.select(
        pl.col("create_time").alias("ts"),
        pl.col("sum_open_interest_value").alias("oi_usd"),
        pl.col("sum_open_interest").alias("oi_base"),
    )
    return (
        k.select(
            pl.from_epoch("open_time", time_unit="ms").dt.replace_time_zone("UTC").alias("ts"),
            "open",
            "high",
            "low",
            "close",
            "volume",
            "taker_buy_volume",
        )
        .with_columns(mark_high=mk["high"], mark_low=mk["low"])
        .join(oi, on="ts", how="left")
    )


@pytest.fixture(scope="module", params=[7, 21])
def market(request: pytest.FixtureRequest) -> tuple[SyntheticMarket, pl.DataFrame]:
    m = synthetic_market("BTCUSDT", date(2024, 1, 1), 3, seed=request.param)
    return m, model_bars(m)


@pytest.mark.xfail(reason="model rewrite in progress, lead", strict=False)
def test_model_beats_baseline_on_synthetic(market: tuple[SyntheticMarket, pl.DataFrame]) -> None:
    m, bars = market
    realized = realized_per_bar(m.liquidations, bars)
    out = score(predicted_liquidations(bars), realized, baseline=baseline_liquidations(bars))
    auc = {(r["method"], r["side"]): r["capture_auc"] for r in out.iter_rows(named=True)}
    for side in ("long", "short"):
        assert auc[("model", side)] >= auc[("baseline", side)] + 0.02, out


@pytest.mark.xfail(reason="model rewrite in progress, lead", strict=False)
def test_level_locations_recovered(market: tuple[SyntheticMarket, pl.DataFrame]) -> None:
    m, bars = market
    p = ModelParams()
    lm = liquidation_map(liquidation_levels(bars, p), bars=bars, params=p, price_step=1.0)
    ref = lm["ref_price"][0]
    step = ref * 0.005
    start = bars["ts"][0]
    truth = m.positions.filter(pl.col("created_at") >= start, pl.col("liquidated_at").is_null())
    truth = truth.select(
        "side",
        (pl.col("liq_price") / step).floor().alias("b"),
        (pl.col("notional_usd") - pl.col("closed_usd")).alias("usd"),
    )
    for side in ("long", "short"):
        t = truth.filter(pl.col("side") == side).group_by("b").agg(pl.col("usd").sum().alias("t"))
        mod = lm.select(
            (pl.col("price") / step).floor().alias("b"), pl.col(f"{side}_usd").alias("m")
        )
        mod = mod.group_by("b").agg(pl.col("m").sum()).filter(pl.col("m") > 0)
        j = t.join(mod, on="b", how="full", coalesce=True).fill_null(0.0)
        a = (j["t"] / j["t"].sum()).to_numpy()
        b = (j["m"] / j["m"].sum()).to_numpy()
        overlap = float(np.minimum(a, b).sum())
        centre = (j["b"].to_numpy() + 0.5) * step / ref - 1
        dist_true, dist_model = float((centre * a).sum()), float((centre * b).sum())
        assert overlap >= 0.70, (side, overlap)
        assert abs(dist_true - dist_model) * 100 <= 1.5, (side, dist_true, dist_model)


@pytest.mark.xfail(reason="model rewrite in progress, lead", strict=False)
def test_leverage_mix_recovered(market: tuple[SyntheticMarket, pl.DataFrame]) -> None:
    m, bars = market
    p = ModelParams()
    # liquidations of the cohorts opened inside the window (the warm-up book is invisible to
    # the estimator, whose levels start with the first OI sample)
    inside = m.positions.filter(
        pl.col("created_at") >= bars["ts"][0], pl.col("liquidated_at").is_not_null()
    ).select(
        pl.col("liquidated_at").alias("ts"),
        "side",
        (pl.col("notional_usd") - pl.col("closed_usd")).alias("usd"),
    )
    realized = realized_per_bar(inside, bars)
    core = compute_core(bars, p)
    n = core.n
    usd = core.liquidated_usd()
    cols = []
    for lev, w in zip(p.leverages, p.weights, strict=True):
        per_side = []
        for side in (0, 1):
            sel = (core.m < n) & (core.side == side) & (core.leverage == lev)
            per_side.append(np.bincount(core.m[sel], weights=usd[sel] / w, minlength=n)[:n])
        cols.append(np.r_[per_side[0], per_side[1]])
    # hourly sums (long rows then short rows): per-minute timing noise averages out
    x = np.array(cols).T.reshape(2, n // 60, 60, -1).sum(axis=2).reshape(-1, len(cols))
    y = np.r_[realized["long_usd"].to_numpy(), realized["short_usd"].to_numpy()]
    y = y.reshape(2, n // 60, 60).sum(axis=2).reshape(-1)
    crossed = x.sum(axis=0) > 0.01 * y.sum()  # identifiable tiers: crossed in the window
    assert crossed.sum() >= 3, crossed
    fit, *_ = np.linalg.lstsq(x[:, crossed], y, rcond=None)
    assert (fit > 0).all(), fit
    truth = np.asarray(p.weights)[crossed]
    np.testing.assert_allclose(fit / fit.sum(), truth / truth.sum(), atol=0.1)


def test_coarse_bars_explain_the_real_4h_result() -> None:
    """On the synthetic market (where the model's assumptions hold), aggregating 1m bars to 4h
    erases the model's edge over the baseline, as on the real 4h file: bar resolution, not the
    levels, is what the 4h backtest measures. Figures (14 days, seed 7, capture AUC long/short):
    1m model 0.992/0.992 vs baseline 0.949/0.954; 4h model 0.799/0.798 vs 0.839/0.830."""
    m = synthetic_market("BTCUSDT", date(2024, 1, 1), 14, seed=7)
    fine = model_bars(m)
    coarse = fine.group_by_dynamic("ts", every="4h").agg(
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
        pl.col("mark_high").max(),
        pl.col("mark_low").min(),
        pl.col("oi_usd").first(),
        pl.col("oi_base").first(),
    )
    margin = {}
    for name, bars in (("1m", fine), ("4h", coarse)):
        realized = realized_per_bar(m.liquidations, bars)
        out = score(predicted_liquidations(bars), realized, baseline=baseline_liquidations(bars))
        auc = {(r["method"], r["side"]): r["capture_auc"] for r in out.iter_rows(named=True)}
        margin[name] = [auc[("model", s)] - auc[("baseline", s)] for s in ("long", "short")]
    assert min(margin["1m"]) >= 0.02, margin
    assert max(margin["4h"]) < min(margin["1m"]) - 0.02, margin
