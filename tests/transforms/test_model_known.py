"""Known-answer tests: hand-built bars where every level, crossing and OI decrease is computed
by hand (long P*(1-1/L)/(1-mmr), short P*(1+1/L)/(1+mmr), mmr 0.004)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from transforms.backtest import baseline_liquidations, predicted_liquidations
from transforms.bars import BARS_SCHEMA, model_input
from transforms.heatmap import heatmap, liquidation_map
from transforms.levels import (
    LEVELS_SCHEMA,
    key_levels,
    liquidatable_fraction,
    liquidation_levels,
    turnover_share,
    warmup_hours,
)
from transforms.leverage import bin_weights, leverage_density
from transforms.model import run_model
from transforms.params import ModelParams

T0 = datetime(2024, 3, 1, tzinfo=UTC)
#: the whole opened notional in the book (hand-computed answers; the size knobs are tested apart)
WHOLE = {"leveraged_share": 1.0, "closed_before_liquidation": 0.0}
#: the net-OI mode (no turnover, one entry per bar, no intra-bar rule): the old model's answers
P = ModelParams(
    leverages=(10.0, 20.0), weights=(0.5, 0.5), mmr=0.004, price_step=1.0,
    turnover_half_life_hours=None, intrabar=False, entry_points=1, **WHOLE,
)  # fmt: skip


def five_minute_bars() -> pl.DataFrame:
    """8 bars of 5m; OI on every bar, given at the bar's open.

    bar 0: base OI 10 -> 20 over the bar: 10 contracts opened at typical (101+99+100)/3 = 100,
           i.e. 1000 USD per side, 500 per tier.
    bar 2: base 20 -> 15: 25 % of every open level closes at bar 3 (D = 0.75 from bar 3).
    bar 3: high 105 crosses short 20x at 100*1.05/1.004 = 104.58.
    bar 4: low 95 crosses long 20x at 100*0.95/0.996 = 95.38.
    long 10x (90.36) and short 10x (109.56) stay alive.
    """
    opens = [100.0, 100.0, 100.0, 100.0, 104.0, 96.0, 95.0, 95.0]
    highs = [101.0, 101.0, 101.0, 105.0, 104.5, 97.0, 96.0, 96.0]
    lows = [99.0, 99.0, 99.0, 99.0, 95.0, 94.0, 94.0, 94.0]
    closes = [100.0, 100.0, 100.0, 104.0, 96.0, 95.0, 95.0, 95.0]
    base = [10.0, 20.0, 20.0, 15.0, 15.0, 15.0, 15.0, 15.0]
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=5 * i) for i in range(8)],
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "oi_usd": [b * o for b, o in zip(base, opens, strict=True)],
        }
    )


def test_levels_known_answer() -> None:
    lv = liquidation_levels(five_minute_bars(), P)
    assert lv.schema == pl.Schema(LEVELS_SCHEMA)
    rows = {(r["side"], r["leverage"]): r for r in lv.iter_rows(named=True)}
    assert len(rows) == 4
    assert rows[("long", 10.0)]["price"] == pytest.approx(100 * 0.9 / 0.996, rel=1e-12)
    assert rows[("long", 20.0)]["price"] == pytest.approx(100 * 0.95 / 0.996, rel=1e-12)
    assert rows[("short", 10.0)]["price"] == pytest.approx(100 * 1.1 / 1.004, rel=1e-12)
    assert rows[("short", 20.0)]["price"] == pytest.approx(100 * 1.05 / 1.004, rel=1e-12)
    for r in rows.values():
        assert r["created_at"] == T0
        assert r["notional_usd"] == pytest.approx(500.0)
        assert r["entry_price"] == pytest.approx(100.0)
    assert rows[("short", 20.0)]["liquidated_at"] == T0 + timedelta(minutes=15)
    assert rows[("long", 20.0)]["liquidated_at"] == T0 + timedelta(minutes=20)
    assert rows[("short", 20.0)]["liquidated_usd"] == pytest.approx(375.0)
    assert rows[("long", 20.0)]["liquidated_usd"] == pytest.approx(375.0)
    for key in (("long", 10.0), ("short", 10.0)):
        assert rows[key]["liquidated_at"] is None
        assert rows[key]["alive_usd"] == pytest.approx(375.0)
        assert rows[key]["liquidated_usd"] == 0.0


def test_predicted_and_baseline_known_answer() -> None:
    bars = five_minute_bars()
    pred = predicted_liquidations(bars, P)
    assert pred["long_usd"].to_list() == pytest.approx([0, 0, 0, 0, 375, 0, 0, 0])
    assert pred["short_usd"].to_list() == pytest.approx([0, 0, 0, 375, 0, 0, 0, 0])
    base = baseline_liquidations(bars)
    # bar 4: OI 15 * 104 = 1560 USD, (open - low) / open = 9 / 104
    assert base["long_usd"][4] == pytest.approx(1560 * 9 / 104)
    assert base["short_usd"][3] == pytest.approx(1500 * 5 / 100)


def test_heatmap_known_answer() -> None:
    bars = five_minute_bars()
    lv = liquidation_levels(bars, P)
    hm = heatmap(lv, bars, 1.0, "10m", params=P)
    got = {(r["ts"], r["price"]): (r["long_usd"], r["short_usd"]) for r in hm.iter_rows(named=True)}
    b = [T0 + timedelta(minutes=10 * k) for k in range(4)]
    expected = {
        # bucket 0 (bars 0, 1): all four levels at 500
        (b[0], 90.0): (500, 0), (b[0], 95.0): (500, 0),
        (b[0], 104.0): (0, 500), (b[0], 109.0): (0, 500),
        # bucket 1 (bars 2, 3): bar 2 at 500, bar 3 at 375 (short 20x liquidated in bar 3)
        (b[1], 90.0): (437.5, 0), (b[1], 95.0): (437.5, 0),
        (b[1], 104.0): (0, 250), (b[1], 109.0): (0, 437.5),
        # bucket 2 (bars 4, 5): long 20x liquidated in bar 4
        (b[2], 90.0): (375, 0), (b[2], 109.0): (0, 375),
        (b[3], 90.0): (375, 0), (b[3], 109.0): (0, 375),
    }  # fmt: skip
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_liquidation_map_and_key_levels_known_answer() -> None:
    bars = five_minute_bars()
    lv = liquidation_levels(bars, P)
    at = T0 + timedelta(minutes=10)  # bar 2: close 100, all levels alive, D = 1
    lm = liquidation_map(lv, at, bars=bars, params=P)
    assert lm["ref_price"].to_list() == [100.0] * 4
    assert lm.select("price", "long_usd", "short_usd", "long_cum_usd", "short_cum_usd").rows() == [
        (90.0, 500.0, 0.0, 1000.0, 0.0),
        (95.0, 500.0, 0.0, 500.0, 0.0),
        (104.0, 0.0, 500.0, 0.0, 500.0),
        (109.0, 0.0, 500.0, 0.0, 1000.0),
    ]
    kl = key_levels(lv, bars, T0 + timedelta(minutes=35), params=P, price_step=1.0)
    # last bar: close 95; long 10x (90.36) and short 10x (109.56) at 375 each: one cluster
    # per side, in the 1.0 bucket of the exact price, at that bucket's lower edge
    assert kl.select("side", "rank", "usd", "price", "price_low", "price_high").rows() == [
        ("long", 1, 375.0, 90.0, 90.0, 91.0),
        ("short", 1, 375.0, 109.0, 109.0, 110.0),
    ]
    assert kl["is_nearest"].all()
    assert kl["is_largest"].all()
    dist = dict(zip(kl["side"], kl["distance_pct"], strict=True))
    assert dist["long"] == pytest.approx((90 / 95 - 1) * 100)
    assert dist["short"] == pytest.approx((109 / 95 - 1) * 100)


def one_minute_bars() -> pl.DataFrame:
    """10 bars of 1m, OI sampled at bars 0, 5 (and 9): interval 0 opens 4 contracts spread by
    volume 1:3 over bars 0 and 1 (bars 2-4 have no volume); interval 1 is flat."""
    n = 10
    highs = [101.0, 104.0, 101.0, 101.0, 101.0] + [101.0] * 5
    lows = [99.0, 102.0, 99.0, 99.0, 99.0] + [99.0] * 5
    closes = [100.0, 103.0, 100.0, 100.0, 100.0] + [100.0] * 5
    oi = [1000.0, None, None, None, None, 1400.0, None, None, None, 1400.0]
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=i) for i in range(n)],
            "open": 100.0,
            "high": highs,
            "low": lows,
            "close": closes,
            "oi_usd": oi,
            "volume": [1.0, 3.0, 0.0, 0.0, 0.0] + [1.0] * 5,
        }
    )


def test_net_increase_spreads_by_volume() -> None:
    p = ModelParams(leverages=(10.0,), weights=(1.0,), turnover_half_life_hours=None,
                    entry_points=1, **WHOLE)  # fmt: skip
    lv = liquidation_levels(one_minute_bars(), p).filter(pl.col("side") == "long")
    # one entry per bar at the middle of its path: bar 0 100 -> 99 -> 101 -> 100 (length 4,
    # middle 100); bar 1 (close 103 >= open 100) 100 -> 102 -> 104 -> 103 (length 5, middle at
    # 2.5 = 102.5)
    assert lv.select("created_at", "entry_price", "notional_usd").rows() == [
        (T0, pytest.approx(100.0), pytest.approx(1 * 100.0)),
        (T0 + timedelta(minutes=1), pytest.approx(102.5), pytest.approx(3 * 102.5)),
    ]


def test_entry_points_spread_along_the_path() -> None:
    """A 4h-like bar: O 100, L 90, H 110, C 105 (closes up: O -> L -> H -> C, length 35).

    entry_resolution 0.05 of the range 20/105 -> ceil(3.81) = 4 points at path lengths 4.375,
    13.125, 21.875, 30.625: prices 95.625, 93.125, 101.875, 110 - 0.625 = 109.375.
    """
    bars = pl.DataFrame({"ts": [T0, T0 + timedelta(hours=4)], "open": [100.0, 105.0],
                         "high": [110.0, 106.0], "low": [90.0, 104.0], "close": [105.0, 105.0],
                         "oi_usd": [1000.0, 1000.0]})  # fmt: skip
    p = ModelParams(leverages=(10.0,), weights=(1.0,), turnover_half_life_hours=4.0,
                    turnover_volume=False, entry_resolution=0.05, oi_decrease="ignore",
                    **WHOLE)  # fmt: skip
    lv = liquidation_levels(bars, p).filter(
        (pl.col("created_at") == T0) & (pl.col("side") == "long")
    )
    assert lv["entry_price"].to_list() == pytest.approx([95.625, 93.125, 101.875, 109.375])
    # turnover: tau = 1 - 2**-1 = 0.5 of 10 contracts (OI 1000 at open 100), split in 4 points
    assert lv["notional_usd"].to_list() == pytest.approx(
        [1.25 * x for x in (95.625, 93.125, 101.875, 109.375)]
    )


def test_intrabar_rule_known_answer() -> None:
    """A wide bar (O 100, L 80, H 110, C 105): a level is liquidated inside its creation bar
    when the part of the path after its entry reaches it (long 10x at entry * 0.9 / 0.996,
    short 10x at entry * 1.1 / 1.004)."""
    bars = pl.DataFrame({"ts": [T0, T0 + timedelta(hours=4)], "open": [100.0, 105.0],
                         "high": [110.0, 106.0], "low": [80.0, 104.0], "close": [105.0, 105.0],
                         "oi_usd": [1000.0, 1000.0]})  # fmt: skip
    # O 100 -> L 80 -> H 110 -> C 105 (length 55); resolution 0.1 of 30/105 -> 3 points at
    # 9.1667, 27.5, 45.8333: prices 90.8333, then on the up-leg 80 + 7.5 = 87.5, 80 + 25.8333
    p = ModelParams(leverages=(10.0,), weights=(1.0,), turnover_half_life_hours=4.0,
                    turnover_volume=False, entry_resolution=0.1, oi_decrease="ignore",
                    **WHOLE)  # fmt: skip
    lv = liquidation_levels(bars, p).filter(pl.col("created_at") == T0).sort("side", "entry_price")
    longs = lv.filter(pl.col("side") == "long")
    assert longs["entry_price"].to_list() == pytest.approx([87.5, 90.8333333, 105.8333333])
    # long 10x of 90.83 = 82.08: the rest of the path reaches 80 -> liquidated in the bar;
    # of 87.5 = 79.07 (after the low: the rest stays >= 87.5) -> alive;
    # of 105.83 = 95.64 (rest: 110, 105) -> alive
    liq = dict(zip(longs["entry_price"].round(4), longs["liquidated_at"], strict=True))
    assert liq[90.8333] == T0
    assert liq[87.5] is None
    assert liq[105.8333] is None
    shorts = lv.filter(pl.col("side") == "short")
    # short 10x of 90.83 = 99.52 and of 87.5 = 95.87: the rest reaches 110 -> liquidated;
    # of 105.83 = 115.95 -> alive
    liq = dict(zip(shorts["entry_price"].round(4), shorts["liquidated_at"], strict=True))
    assert liq[90.8333] == T0
    assert liq[87.5] == T0
    assert liq[105.8333] is None
    pred = predicted_liquidations(bars, p)
    one = 10 * 0.5 / 3  # contracts per point
    assert pred["long_usd"][0] == pytest.approx(one * 90.8333333)
    assert pred["short_usd"][0] == pytest.approx(one * (90.8333333 + 87.5))
    off = ModelParams(**{**p.model_dump(), "intrabar": False})
    assert predicted_liquidations(bars, off)["long_usd"][0] == 0.0


def test_turnover_known_answer() -> None:
    """Flat OI, hourly bars, half-life 1h: each bar opens tau = 0.5 of the OI and closes half
    of every older level; with volume, tau follows the bar's volume over its running mean."""
    n = 4
    bars = pl.DataFrame({"ts": [T0 + timedelta(hours=i) for i in range(n)], "open": 100.0,
                         "high": 100.5, "low": 99.5, "close": 100.0, "oi_usd": 1000.0})  # fmt: skip
    p = ModelParams(leverages=(10.0,), weights=(1.0,), turnover_half_life_hours=1.0,
                    entry_points=1, **WHOLE)  # fmt: skip
    lv = liquidation_levels(bars, p).filter(pl.col("side") == "long")
    assert lv["notional_usd"].to_list() == pytest.approx([500.0] * n)
    # alive after the last bar: 500 * (0.5**3, 0.5**2, 0.5, 1) -> total 937.5 -> approaches OI
    assert lv["alive_usd"].to_list() == pytest.approx([62.5, 125.0, 250.0, 500.0])
    # conservation: created = alive + closed (nothing liquidated)
    closed = lv["notional_usd"] - lv["alive_usd"] - lv["liquidated_usd"]
    assert closed.to_list() == pytest.approx([437.5, 375.0, 250.0, 0.0])
    vol = bars.with_columns(pl.Series("volume", [1.0, 1.0, 3.0, 1.0]))
    tau = turnover_share(vol, p)
    # running mean (half-life 72 h) after bar 2 is a bit above 1, so rel < 3
    assert tau[:2].tolist() == pytest.approx([0.5, 0.5])
    assert 0.8 < tau[2] < 0.875
    assert warmup_hours(p) == pytest.approx(math.log2(10))


def test_mark_prices_trigger_liquidations() -> None:
    bars = five_minute_bars().with_columns(
        pl.col("high").alias("mark_high"), pl.col("low").alias("mark_low")
    )
    # mark low of bar 4 stays above the long 20x level: no long liquidation there any more
    bars = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 4)
        .then(96.0)
        .otherwise(pl.col("mark_low"))
        .alias("mark_low")
    )
    pred = predicted_liquidations(bars, P)
    assert pred["long_usd"].to_list() == pytest.approx([0, 0, 0, 0, 0, 375, 0, 0])


def test_oi_decrease_ignore_and_decay() -> None:
    bars = five_minute_bars()
    ignore = ModelParams(**{**P.model_dump(), "oi_decrease": "ignore"})
    pred = predicted_liquidations(bars, ignore)
    assert pred["short_usd"][3] == pytest.approx(500.0)
    decay = ModelParams(**{**ignore.model_dump(), "decay_half_life_hours": 0.25})
    # 15 minutes between bar 0 and bar 3 = one half-life
    assert predicted_liquidations(bars, decay)["short_usd"][3] == pytest.approx(250.0)


def test_side_tilt_and_density() -> None:
    p = ModelParams(leverage_bins=8, leverage_median=25.0, side_tilt=0.5,
                    turnover_half_life_hours=1.0)  # fmt: skip
    lv = liquidation_levels(five_minute_bars(), p)
    med = lv.group_by("side").agg(pl.col("leverage").median()).sort("side")
    long_med, short_med = med["leverage"].to_list()
    assert long_med > 25.0 > short_med  # longs more leveraged with a positive tilt
    w = dict(lv.group_by("side").agg(pl.col("notional_usd").sum()).iter_rows())
    assert w["long"] == pytest.approx(w["short"])  # both sides open the same notional


def test_model_input_normalizes() -> None:
    raw = five_minute_bars().reverse()
    raw = pl.concat([raw, raw.head(1)])  # a duplicate ts
    raw = raw.with_columns(pl.col("ts").dt.replace_time_zone(None))
    norm = model_input(raw)
    assert norm.schema == pl.Schema(BARS_SCHEMA)
    assert norm.height == 8
    assert norm["ts"].is_sorted()
    assert norm["mark_low"].to_list() == norm["low"].to_list()
    with pytest.raises(ValueError, match="missing required column"):
        model_input(raw.drop("oi_usd"))
    with pytest.raises(ValueError, match="non-positive prices"):
        model_input(raw.with_columns(pl.lit(-1.0).alias("low")))
    zero = five_minute_bars().with_columns(pl.lit(0.0).alias("oi_usd"))
    assert model_input(zero)["oi_usd"].null_count() == 8


def test_run_model_bundles_everything() -> None:
    res = run_model(five_minute_bars(), P, time_step="10m")
    assert res.price_step == 1.0
    assert res.levels.height == 4
    assert res.heatmap.height == 12
    assert res.predicted["short_usd"].sum() == pytest.approx(375.0)
    assert res.baseline.height == 8
    assert set(res.key_levels["side"]) == {"long", "short"}
    assert res.params.params_hash() == P.params_hash()


def test_params_hash_and_validation() -> None:
    assert ModelParams().params_hash() == ModelParams().params_hash()
    assert len(ModelParams().params_hash()) == 12
    assert ModelParams(mmr=0.005).params_hash() != ModelParams().params_hash()
    tiers = (5, 10, 25, 50, 100)
    w = ModelParams(leverages=tiers, weights=(3, 3, 2, 1, 1)).weights
    assert w == pytest.approx((0.3, 0.3, 0.2, 0.1, 0.1))
    with pytest.raises(ValueError, match="differ in length"):
        ModelParams(leverages=tiers, weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="positive"):
        ModelParams(leverages=tiers, weights=(1, 1, 1, 1, -1))
    with pytest.raises(ValueError, match="go together"):
        ModelParams(weights=(1.0,))
    with pytest.raises(ValueError, match="leverage_min"):
        ModelParams(leverage_min=50.0, leverage_max=20.0)
    assert ModelParams().resolve_price_step(five_minute_bars()) == 0.1
    assert ModelParams.model_validate_json(P.to_json()) == P


def test_size_knobs_scale_the_book_and_the_predictions() -> None:
    """leveraged_share 0.5 and closed_before_liquidation 0.8 leave 0.5 * 0.2 = 0.1 of every
    opened notional in the book: 50 instead of 500 per tier, 37.5 instead of 375 liquidated."""
    p = ModelParams(**{**P.model_dump(), "leveraged_share": 0.5, "closed_before_liquidation": 0.8})
    assert liquidatable_fraction(p) == 0.1
    lv = liquidation_levels(five_minute_bars(), p)
    assert lv["notional_usd"].to_list() == pytest.approx([50.0] * 4)
    pred = predicted_liquidations(five_minute_bars(), p)
    assert pred["long_usd"].to_list() == pytest.approx([0, 0, 0, 0, 37.5, 0, 0, 0])
    assert pred["short_usd"].to_list() == pytest.approx([0, 0, 0, 37.5, 0, 0, 0, 0])
    # the rank of the bars does not change: every prediction is scaled alike
    whole = predicted_liquidations(five_minute_bars(), P)
    assert (pred["long_usd"] * 10.0).to_list() == pytest.approx(whole["long_usd"].to_list())
    bad: list[dict[str, float]] = [
        {"leveraged_share": 0.0}, {"leveraged_share": 1.5},
        {"closed_before_liquidation": 1.0}, {"closed_before_liquidation": -0.1},
    ]  # fmt: skip
    for kw in bad:
        with pytest.raises(ValueError, match=r"share|below 1"):
            ModelParams(**kw)


def test_leverage_settings_hold_their_share_of_the_density() -> None:
    """Settings 10x and 100x at share 0.5 around a median of sqrt(10 * 100): the two cells
    (split at the log-midpoint, the median) hold half the density each, so each setting gets
    0.25 of the notional and the 2 smooth bins 0.25 each; settings do not rotate."""
    p = ModelParams(leverage_bins=2, leverage_settings=(10.0, 100.0), leverage_setting_share=0.5,
                    leverage_median=math.sqrt(1000.0), leverage_sigma=1.0, leverage_min=1.01,
                    leverage_max=1e4, turnover_half_life_hours=1.0, entry_points=1,
                    **WHOLE)  # fmt: skip
    assert bin_weights(p).tolist() == pytest.approx([0.25, 0.25, 0.25, 0.25], abs=1e-3)
    lv = liquidation_levels(five_minute_bars(), p).filter(pl.col("side") == "long")
    per_bar = lv.group_by("created_at").agg(
        pl.col("leverage").filter(pl.col("leverage").is_in([10.0, 100.0])).count().alias("n"),
        pl.col("leverage").filter(~pl.col("leverage").is_in([10.0, 100.0])).alias("smooth"),
    )
    assert per_bar["n"].to_list() == [2] * per_bar.height  # every bar: both settings
    smooth = {tuple(round(x, 6) for x in s) for s in per_bar["smooth"].to_list()}
    assert len(smooth) > 1  # the smooth bins rotate from bar to bar
    density = leverage_density(p, points=400)
    assert density["share"].sum() == pytest.approx(1.0)
    spikes = density.filter(pl.col("leverage").is_in([10.0, 100.0]))["share"].to_list()
    assert spikes == pytest.approx([0.25, 0.25], abs=1e-3)
    with pytest.raises(ValueError, match="increasing"):
        ModelParams(leverage_settings=(20.0, 10.0))
    off = ModelParams(leverage_setting_share=0.0, leverage_bins=3)
    assert bin_weights(off).shape == (3,)
