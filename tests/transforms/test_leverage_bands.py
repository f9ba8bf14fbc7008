"""Leverage bands: edges, and the per-band heatmap and map split the totals exactly."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.bars import model_input
from transforms.heatmap import heatmap, liquidation_map
from transforms.levels import liquidation_levels
from transforms.leverage_bands import (
    BANDS,
    GROUPS,
    band_expr,
    band_heatmaps,
    band_maps,
    group_expr,
)
from transforms.params import ModelParams


def test_band_edges_known_answers() -> None:
    lev = pl.DataFrame({"leverage": [1.0, 10.0, 10.01, 25.0, 49.9, 50.0, 100.0, 100.5, 125.0]})
    out = lev.with_columns(band_expr(), group_expr().alias("group"))
    assert out["band"].to_list() == [
        "<=10x", "<=10x", "10-25x", "10-25x", "25-50x", "25-50x", "50-100x", ">100x", ">100x",
    ]  # fmt: skip
    assert out["group"].to_list() == [
        "low", "low", "medium", "medium", "medium", "medium", "high", "high", "high",
    ]  # fmt: skip
    assert [b.label for b in BANDS] == ["<=10x", "10-25x", "25-50x", "50-100x", ">100x"]
    assert [g.describe() for g in GROUPS] == ["up to 10x", "over 10x up to 50x", "over 50x"]


def _bars(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    ts = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(n)]
    oi = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    return pl.DataFrame(
        {
            "ts": ts,
            "open": close,
            "high": close * 1.002,
            "low": close * 0.998,
            "close": close,
            "oi_usd": oi,
        }
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 120))
def test_bands_split_heatmap_and_map_exactly(seed: int, n: int) -> None:
    """Summed over the groups (bands), the cells equal the heatmap (map) of all levels."""
    params = ModelParams(
        leverages=(5.0, 12.0, 30.0, 75.0, 125.0), weights=(0.3, 0.3, 0.2, 0.1, 0.1), price_step=0.5
    )
    bars = model_input(_bars(n, seed))
    levels = liquidation_levels(bars, params)
    whole = heatmap(levels, bars, 0.5, "15m", params=params)
    parts = band_heatmaps(levels, bars, 0.5, "15m", params=params)
    assert set(parts["band"].unique()) <= {"low", "medium", "high"}
    summed = parts.group_by("ts", "price").agg(pl.col("long_usd", "short_usd").sum())
    joined = whole.join(summed, on=["ts", "price"], how="full", coalesce=True).fill_null(0.0)
    assert joined["long_usd"].to_numpy() == pytest.approx(
        joined["long_usd_right"].to_numpy(), rel=1e-9, abs=1e-6
    )
    assert joined["short_usd"].to_numpy() == pytest.approx(
        joined["short_usd_right"].to_numpy(), rel=1e-9, abs=1e-6
    )
    snap = liquidation_map(levels, bars=bars, price_step=0.5, params=params)
    bands = band_maps(levels, bars=bars, price_step=0.5, params=params)
    assert bands["long_usd"].sum() == pytest.approx(snap["long_usd"].sum(), rel=1e-9, abs=1e-6)
    assert bands["short_usd"].sum() == pytest.approx(snap["short_usd"].sum(), rel=1e-9, abs=1e-6)
