"""The model on a real 6-day BTCUSDT 5m replay (price + open interest): runs, sane output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from transforms.model import run_model
from transforms.params import ModelParams


def load_replay(shared_data: Path) -> pl.DataFrame:
    raw = pl.read_csv(shared_data / "btcusdt-perp-5m-ohlc-oi-2026-06-08_14.csv")
    return raw.select(
        pl.from_epoch("open_time_ms", time_unit="ms").dt.replace_time_zone("UTC").alias("ts"),
        "open",
        "high",
        "low",
        "close",
        pl.col("open_interest_usd").alias("oi_usd"),
    )


def test_real_replay_runs_and_is_sane(shared_data: Path) -> None:
    bars = load_replay(shared_data)
    assert bars.height == 1716
    res = run_model(bars, ModelParams(), time_step="1h")
    last_close = bars["close"][-1]
    assert res.price_step == 50.0  # 0.1 % of ~64k rounded to a nice tick
    lv = res.levels
    assert lv.height > 1000
    assert (lv["notional_usd"] > 0).all()
    assert np.isfinite(lv["price"].to_numpy()).all()
    assert (
        lv.filter(pl.col("side") == "long")["price"]
        < lv.filter(pl.col("side") == "long")["entry_price"]
    ).all()
    alive = lv.filter(pl.col("liquidated_at").is_null())
    assert (alive.filter(pl.col("side") == "long")["price"] < last_close).all()
    assert (alive.filter(pl.col("side") == "short")["price"] > last_close).all()
    # created notional is of the order of the OI increases (billions of USD), not absurd
    total_opened = lv.filter(pl.col("side") == "long")["notional_usd"].sum()
    assert 1e8 < total_opened < 1e12
    hm = res.heatmap
    assert hm.height > 100
    assert np.isfinite(hm.select("long_usd", "short_usd").to_numpy()).all()
    assert hm["ts"].n_unique() == bars["ts"].dt.truncate("1h").n_unique()
    lm = res.liquidation_map
    assert (lm.filter(pl.col("long_usd") > 0)["price"] < last_close).all()
    assert (
        lm.filter(pl.col("short_usd") > 0)["price"] >= lm["ref_price"][0] - res.price_step
    ).all()
    assert lm["long_cum_usd"].max() == pytest.approx(lm["long_usd"].sum(), rel=1e-12)
    kl = res.key_levels
    assert kl.filter(pl.col("side") == "long")["distance_pct"].max() < 0
    assert kl.filter(pl.col("side") == "short")["distance_pct"].min() > 0
    for side in ("long", "short"):  # the top 5 clusters, plus the nearest when not among them
        part = kl.filter(pl.col("side") == side)
        assert 1 <= part.height <= 6
        assert part["is_largest"].sum() == part["is_nearest"].sum() == 1
    pred = res.predicted
    assert pred.height == bars.height
    assert pred["long_usd"].sum() > 0
    assert pred["short_usd"].sum() > 0
    # liquidated + alive never exceeds created
    assert lv["liquidated_usd"].sum() + lv["alive_usd"].sum() <= lv["notional_usd"].sum() * (
        1 + 1e-9
    )
