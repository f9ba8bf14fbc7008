"""Hypothesis properties of the vectorized model, checked against a plain per-bar simulation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import transforms.heatmap as heatmap_module
from tests.transforms.model_reference import reference
from transforms.backtest import predicted_liquidations
from transforms.bars import model_input
from transforms.brackets import brackets_for
from transforms.heatmap import heatmap
from transforms.levels import liquidation_levels
from transforms.params import ModelParams

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@st.composite
def bars_and_params(draw: st.DrawFn) -> tuple[pl.DataFrame, ModelParams]:
    n = draw(st.integers(2, 30))
    minutes = draw(st.sampled_from([1, 5, 240]))
    rets = draw(st.lists(st.floats(-0.03, 0.03), min_size=n, max_size=n))
    close = 100 * np.exp(np.cumsum(rets))
    open_ = np.r_[100.0, close[:-1]]
    up = np.array(draw(st.lists(st.floats(0, 0.02), min_size=n, max_size=n)))
    dn = np.array(draw(st.lists(st.floats(0, 0.02), min_size=n, max_size=n)))
    high = np.maximum(open_, close) * (1 + up)
    low = np.minimum(open_, close) * (1 - dn)
    oi = np.array(draw(st.lists(st.floats(500, 2000), min_size=n, max_size=n)))
    every = draw(st.sampled_from([1, 1, 3]))
    oi_col = [float(v) if i % every == 0 else None for i, v in enumerate(oi)]
    cols: dict[str, object] = {
        "ts": [T0 + timedelta(minutes=minutes * i) for i in range(n)],
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "oi_usd": oi_col,
    }
    if draw(st.booleans()):
        vol = np.array(draw(st.lists(st.floats(0, 10), min_size=n, max_size=n)))
        cols["volume"] = vol
        cols["taker_buy_volume"] = vol * np.array(
            draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
        )
    if draw(st.booleans()):
        cols["mark_high"] = high * 0.999
        cols["mark_low"] = low * 1.001
    tiers = draw(
        st.sampled_from([(None, None), ((10.0,), (1.0,)), ((5.0, 25.0, 100.0), (0.5, 0.3, 0.2))])
    )
    params = ModelParams(
        leverages=tiers[0],
        weights=tiers[1],
        leverage_bins=draw(st.sampled_from([1, 3])),
        leverage_median=draw(st.sampled_from([10.0, 40.0])),
        leverage_setting_share=draw(st.sampled_from([0.0, 0.5, 1.0])),
        leveraged_share=draw(st.sampled_from([1.0, 0.5])),
        closed_before_liquidation=draw(st.sampled_from([0.0, 0.9])),
        side_tilt=draw(st.sampled_from([0.0, 0.4])),
        turnover_half_life_hours=draw(st.sampled_from([None, 1.0, 24.0])),
        turnover_volume=draw(st.booleans()),
        intrabar=draw(st.booleans()),
        entry_points=draw(st.sampled_from([1, 3])),
        entry_resolution=draw(st.sampled_from([0.002, 0.01])),
        brackets=draw(st.sampled_from([None, brackets_for("BTCUSDT")])),
        position_usd=draw(st.sampled_from([1e4, 5e6])),
        oi_decrease=draw(st.sampled_from(["proportional", "ignore"])),
        decay_half_life_hours=draw(st.sampled_from([None, 2.0, 200.0])),
        price_step=0.5,
    )
    return pl.DataFrame(cols), params


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fast_sorted(lv: pl.DataFrame) -> pl.DataFrame:
    """Levels in a total order: ties (e.g. a point on the way down and one on the way up at
    the same price, one reached by the rest of the bar and one not) broken by liquidation."""
    return lv.sort(
        "created_at", "side", pl.col("entry_price").round(9), "leverage", "liquidated_at",
        nulls_last=True,
    )  # fmt: skip


@SETTINGS
@given(bars_and_params())
def test_matches_per_bar_reference(case: tuple[pl.DataFrame, ModelParams]) -> None:
    bars, p = case
    ref = reference(bars, p, 0.5)
    lv = liquidation_levels(bars, p)
    norm = model_input(bars)
    ts = norm["ts"].to_list()
    assert lv.height == len(ref.levels)
    ref_sorted = sorted(
        ref.levels, key=lambda r: (r["j"], r["side"], round(r["entry"], 9), r["lev"], r["m"])
    )
    fast = _fast_sorted(lv).iter_rows(named=True)
    for r, f in zip(ref_sorted, fast, strict=True):
        assert f["created_at"] == ts[int(r["j"])]
        assert f["side"] == ("long" if r["side"] == 0 else "short")
        assert f["price"] == pytest.approx(r["price"], rel=1e-9)
        assert f["leverage"] == pytest.approx(r["lev"], rel=1e-9)
        assert f["entry_price"] == pytest.approx(r["entry"], rel=1e-12)
        assert f["notional_usd"] == pytest.approx(r["notional"], rel=1e-9)
        expect_m = None if r["m"] == norm.height else ts[int(r["m"])]
        assert f["liquidated_at"] == expect_m
        assert f["liquidated_usd"] == pytest.approx(r["liq_usd"], rel=1e-9, abs=1e-9)
        assert f["alive_usd"] == pytest.approx(r.get("alive", 0.0), rel=1e-9, abs=1e-9)
    pred = predicted_liquidations(norm, p)
    np.testing.assert_allclose(
        pred["long_usd"].to_numpy(), ref.predicted["long"], rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        pred["short_usd"].to_numpy(), ref.predicted["short"], rtol=1e-9, atol=1e-9
    )


@SETTINGS
@given(bars_and_params())
def test_conservation_created_alive_liquidated_closed(
    case: tuple[pl.DataFrame, ModelParams],
) -> None:
    bars, p = case
    ref = reference(bars, p, 0.5)
    lv = liquidation_levels(bars, p)
    created = lv["notional_usd"].sum()
    liquidated = (
        predicted_liquidations(bars, p)
        .select(pl.col("long_usd") + pl.col("short_usd"))
        .sum()
        .item()
    )
    alive = lv["alive_usd"].sum()
    assert created == pytest.approx(alive + liquidated + ref.closed_usd, rel=1e-9, abs=1e-9)
    assert lv.filter(pl.col("liquidated_at").is_not_null())[
        "liquidated_usd"
    ].sum() == pytest.approx(liquidated, rel=1e-9, abs=1e-9)


@SETTINGS
@given(bars_and_params())
def test_no_liquidation_before_creation_and_only_on_crossing(
    case: tuple[pl.DataFrame, ModelParams],
) -> None:
    bars, p = case
    norm = model_input(bars)
    lv = liquidation_levels(norm, p)
    assert lv.filter(pl.col("liquidated_at") < pl.col("created_at")).height == 0
    # inside the creation bar only by the intra-bar rule, and only within the bar's mark range
    same = lv.filter(pl.col("liquidated_at") == pl.col("created_at"))
    if not p.intrabar:
        assert same.height == 0
    inside = same.join(
        norm.select("ts", "mark_low", "mark_high"), left_on="created_at", right_on="ts"
    )
    reach = pl.when(pl.col("side") == "long").then(pl.col("price") >= pl.col("mark_low") - 1e-9)
    reach = reach.otherwise(pl.col("price") <= pl.col("mark_high") + 1e-9)
    assert inside.filter(~reach).height == 0
    # a long level is never liquidated by a bar whose mark low stays above it (short symmetric):
    # every bar in (created_at, liquidated_at) leaves the level uncrossed, the liquidation bar
    # crosses it
    pairs = lv.with_row_index("id").join_where(
        norm.select("ts", "mark_low", "mark_high"),
        pl.col("ts") > pl.col("created_at"),
        (pl.col("ts") <= pl.col("liquidated_at")) | pl.col("liquidated_at").is_null(),
    )
    crossed = pl.when(pl.col("side") == "long").then(pl.col("mark_low") <= pl.col("price"))
    crossed = crossed.otherwise(pl.col("mark_high") >= pl.col("price"))
    pairs = pairs.with_columns(
        crossed.alias("crossed"), (pl.col("ts") == pl.col("liquidated_at")).alias("at_liq")
    )
    assert pairs.filter(pl.col("crossed") != pl.col("at_liq").fill_null(False)).height == 0


@SETTINGS
@given(bars_and_params(), st.randoms(use_true_random=False))
def test_invariant_to_row_order(case: tuple[pl.DataFrame, ModelParams], rnd: object) -> None:
    bars, p = case
    perm = list(range(bars.height))
    rnd.shuffle(perm)  # type: ignore[attr-defined]
    shuffled = bars[perm]
    a = _fast_sorted(liquidation_levels(bars, p))
    b = _fast_sorted(liquidation_levels(shuffled, p))
    assert a.equals(b)
    pa = predicted_liquidations(bars, p)
    pb = predicted_liquidations(shuffled, p)
    assert pb["ts"].to_list() == shuffled["ts"].to_list()  # one row per input row, same order
    assert pa.sort("ts").equals(pb.sort("ts"))


@SETTINGS
@given(
    bars_and_params(), st.sampled_from(["1m", "10m", "1h", "4h"]), st.sampled_from([300.0, 0.05])
)
def test_heatmap_equals_alive_notional_per_bucket(
    case: tuple[pl.DataFrame, ModelParams], time_step: str, chunk_range: float
) -> None:
    bars, p = case
    ref = reference(bars, p, 0.5)
    norm = model_input(bars)
    lv = liquidation_levels(norm, p)
    with pytest.MonkeyPatch.context() as mp:  # a tiny chunk range exercises the chunk splitting
        mp.setattr(heatmap_module, "_CHUNK_LOG_RANGE", chunk_range)
        hm = heatmap(lv, norm, 0.5, time_step, params=p)
    bucket = norm.select(pl.col("ts").dt.truncate(time_step))["ts"].to_list()
    expected: dict[tuple[datetime, int, int], float] = {}
    counts: dict[datetime, int] = {}
    for i, cells in enumerate(ref.alive_per_bar):
        counts[bucket[i]] = counts.get(bucket[i], 0) + 1
        for (side, pb), usd in cells.items():
            key = (bucket[i], side, pb)
            expected[key] = expected.get(key, 0.0) + usd
    got: dict[tuple[datetime, int, int], float] = {}
    for r in hm.iter_rows(named=True):
        pb = round(r["price"] / 0.5)
        got[(r["ts"], 0, pb)] = r["long_usd"]
        got[(r["ts"], 1, pb)] = r["short_usd"]
    for key, total in expected.items():
        assert got.get(key, 0.0) == pytest.approx(total / counts[key[0]], rel=1e-7, abs=1e-7), key
    for key, value in got.items():
        assert value == pytest.approx(expected.get(key, 0.0) / counts[key[0]], rel=1e-7, abs=1e-7)
    assert (hm["long_usd"] + hm["short_usd"]).min() is None or (
        hm["long_usd"] + hm["short_usd"]
    ).min() > 0
