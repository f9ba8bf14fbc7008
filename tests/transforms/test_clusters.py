"""Liquidation clusters: known answers on hand-made distributions, and hypothesis properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.clusters import (
    CLUSTERS_SCHEMA,
    cluster_key_levels,
    liquidation_clusters,
    round_to_step,
)
from transforms.levels import KEY_LEVELS_SCHEMA
from transforms.model import run_model
from transforms.params import ModelParams

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _map(
    ref: float, step: float, longs: dict[int, float], shorts: dict[int, float]
) -> pl.DataFrame:
    """A liquidation map from {bucket index: usd} per side (price = bucket lower edge)."""
    buckets = sorted(set(longs) | set(shorts))
    return pl.DataFrame(
        {
            "as_of": [T0] * len(buckets),
            "ref_price": [ref] * len(buckets),
            "price": [b * step for b in buckets],
            "long_usd": [longs.get(b, 0.0) for b in buckets],
            "short_usd": [shorts.get(b, 0.0) for b in buckets],
        },
        schema={
            "as_of": pl.Datetime("us", "UTC"),
            "ref_price": pl.Float64,
            "price": pl.Float64,
            "long_usd": pl.Float64,
            "short_usd": pl.Float64,
        },
    )


def _rows(out: pl.DataFrame, side: str) -> list[tuple[float, float, float, float]]:
    part = out.filter(pl.col("side") == side).sort("price")
    return part.select("price", "price_low", "price_high", "usd").rows()


def test_neighbouring_buckets_are_one_cluster_and_far_ones_are_not() -> None:
    # price 1000, step 1: smoothing h = round(0.3 % * 1000) = 3 buckets, merge within 5
    m = _map(1000.0, 1.0, {950: 10.0, 951: 30.0, 952: 10.0, 900: 5.0}, {1040: 8.0, 1041: 8.0})
    out = liquidation_clusters(m, price_step=1.0, smooth_pct=0.3, merge_pct=0.5)
    assert out.schema == pl.Schema(CLUSTERS_SCHEMA)
    assert _rows(out, "long") == [(900.0, 900.0, 901.0, 5.0), (951.0, 950.0, 953.0, 50.0)]
    # a flat pair: weighted mean of midpoints 1041.0 exactly -> 1041
    assert _rows(out, "short") == [(1041.0, 1040.0, 1042.0, 16.0)]
    longs = out.filter(pl.col("side") == "long").sort("rank")
    assert longs.select("rank", "is_largest", "is_nearest", "is_significant").rows() == [
        (1, True, True, True),  # 951 is nearer than 900
        (2, False, False, True),  # 5 / 55 = 9 % >= 5 %
    ]
    assert longs["distance_pct"].to_list() == pytest.approx([-4.9, -10.0])
    assert longs["share"].to_list() == pytest.approx([50 / 55, 5 / 55])


def test_peaks_within_the_merge_distance_merge_and_beyond_stay_apart() -> None:
    # no smoothing: two separate spikes 4 buckets apart, another 8 further
    m = _map(1000.0, 1.0, {}, {1010: 20.0, 1014: 30.0, 1022: 25.0})
    merged = liquidation_clusters(m, price_step=1.0, smooth_pct=0.0, merge_pct=0.4)
    assert _rows(merged, "short") == [
        (1014.0, 1010.0, 1015.0, 50.0),
        (1022.0, 1022.0, 1023.0, 25.0),
    ]
    apart = liquidation_clusters(m, price_step=1.0, smooth_pct=0.0, merge_pct=0.3)
    assert len(_rows(apart, "short")) == 3
    everything = liquidation_clusters(m, price_step=1.0, smooth_pct=0.0, merge_pct=5.0)
    # closest pair first (1010+1014), then 1014 (the higher peak) and 1022: one cluster
    assert _rows(everything, "short") == [(1014.0, 1010.0, 1023.0, 75.0)]


def test_smoothing_makes_a_noisy_band_one_cluster() -> None:
    band = {990 - k: (5.0 if k % 2 else 4.0) for k in range(9)}  # 982..990 zig-zag
    m = _map(1000.0, 1.0, band, {})
    raw = liquidation_clusters(m, price_step=1.0, smooth_pct=0.0, merge_pct=0.0)
    assert raw.height == 4  # every 5 is its own peak without smoothing or merging
    # h = 1: weights 1-2-1 flatten a period-2 zig-zag into one plateau (peak at its middle)
    smooth = liquidation_clusters(m, price_step=1.0, smooth_pct=0.1, merge_pct=0.0)
    assert _rows(smooth, "long") == [(986.0, 982.0, 991.0, sum(band.values()))]


def test_valley_splits_two_bands_and_assigns_every_bucket_once() -> None:
    # two bands separated by a shallow valley; the valley bucket goes to the lower cluster
    longs = {900: 2.0, 901: 10.0, 902: 2.0, 903: 1.0, 904: 2.0, 905: 10.0, 906: 2.0}
    m = _map(1000.0, 1.0, longs, {})
    out = liquidation_clusters(m, price_step=1.0, smooth_pct=0.1, merge_pct=0.2)
    assert _rows(out, "long") == [(901.0, 900.0, 904.0, 15.0), (905.0, 904.0, 907.0, 14.0)]


def test_nearest_significant_skips_a_tiny_near_cluster() -> None:
    longs = {990: 1.0, 950: 40.0, 900: 100.0}  # 1 / 141 < 5 %: not significant
    m = _map(1000.0, 1.0, longs, {1005: 3.0})
    out = liquidation_clusters(m, price_step=1.0, smooth_pct=0.0, merge_pct=0.5)
    flags = out.filter(pl.col("side") == "long").sort("price")
    assert flags.select("price", "is_significant", "is_nearest", "is_largest").rows() == [
        (900.0, True, False, True),
        (950.0, True, True, False),
        (990.0, False, False, False),
    ]
    kl = cluster_key_levels(m, price_step=1.0, top=1, smooth_pct=0.0, merge_pct=0.5)
    assert kl.schema == pl.Schema(KEY_LEVELS_SCHEMA)
    assert kl.select("side", "rank", "price", "is_nearest", "is_largest").rows() == [
        ("long", 1, 900.0, False, True),
        ("long", 2, 950.0, True, False),  # added: nearest significant, outside the top 1
        ("short", 1, 1005.0, True, True),
    ]
    # with a 0 threshold the 990 cluster counts and becomes the nearest
    loose = liquidation_clusters(m, price_step=1.0, smooth_pct=0.0, merge_pct=0.5, min_share=0)
    nearest = loose.filter(pl.col("is_nearest") & (pl.col("side") == "long"))
    assert nearest["price"].to_list() == [990.0]


def test_prices_are_rounded_to_the_step() -> None:
    # BTC-like: step 50, ref 64,000; a band over 3 buckets, USD-weighted core centre 62,362.5
    m = _map(64_000.0, 50.0, {1246: 1.0, 1247: 2.0, 1248: 1.0}, {})
    out = liquidation_clusters(m, price_step=50.0)
    (row,) = out.select("price", "price_low", "price_high").rows()
    assert row == (62_350.0, 62_300.0, 62_450.0)
    assert round_to_step(62_375.0, 50.0) == 62_350.0  # ties down
    assert round_to_step(62_375.1, 50.0) == 62_400.0
    assert round_to_step(0.1 + 0.2, 0.1) == 0.3


def test_empty_and_one_sided_maps() -> None:
    empty = _map(100.0, 1.0, {}, {})
    assert liquidation_clusters(empty, price_step=1.0).schema == pl.Schema(CLUSTERS_SCHEMA)
    assert cluster_key_levels(empty, price_step=1.0).height == 0
    only_longs = _map(100.0, 1.0, {90: 1.0}, {})
    assert cluster_key_levels(only_longs, price_step=1.0)["side"].to_list() == ["long"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"price_step": 0.0}, "price_step"),
        ({"price_step": 1.0, "smooth_pct": -1.0}, "smooth_pct"),
        ({"price_step": 1.0, "merge_pct": math.nan}, "merge_pct"),
        ({"price_step": 1.0, "min_share": 2.0}, "min_share"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        liquidation_clusters(_map(100.0, 1.0, {90: 1.0}, {}), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top"):
        cluster_key_levels(_map(100.0, 1.0, {90: 1.0}, {}), price_step=1.0, top=0)


USD = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)
SIDE = st.dictionaries(st.integers(0, 400), USD, max_size=60)


@settings(max_examples=120, deadline=None)
@given(
    longs=SIDE,
    shorts=SIDE,
    smooth=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
    merge=st.sampled_from([0.0, 0.2, 0.5, 2.0]),
    share=st.sampled_from([0.0, 0.05, 0.3]),
    top=st.integers(1, 6),
)
def test_clusters_partition_the_distribution(
    longs: dict[int, float],
    shorts: dict[int, float],
    smooth: float,
    merge: float,
    share: float,
    top: int,
) -> None:
    ref, step = 1000.0, 5.0  # 200 buckets per 100 %: smoothing and merging cover buckets
    m = _map(ref, step, longs, {b + 200: u for b, u in shorts.items()})
    out = liquidation_clusters(
        m, price_step=step, smooth_pct=smooth, merge_pct=merge, min_share=share
    )
    assert out.schema == pl.Schema(CLUSTERS_SCHEMA)
    for side in ("long", "short"):
        part = out.filter(pl.col("side") == side).sort("price_low")
        usd = m[f"{side}_usd"]
        present = m.filter(usd > 0)
        # merging never loses or invents USD
        assert float(part["usd"].sum()) == pytest.approx(float(usd.sum()), rel=1e-9, abs=1e-9)
        if present.height == 0:
            assert part.height == 0
            continue
        # clusters do not overlap, and every bucket with USD is in exactly one of them
        lows, highs = part["price_low"].to_list(), part["price_high"].to_list()
        assert all(h <= lo + 1e-9 for h, lo in zip(highs, lows[1:], strict=False))
        for price in present["price"].to_list():
            inside = [
                lo <= price + 1e-9 and price + step <= h + 1e-9
                for lo, h in zip(lows, highs, strict=True)
            ]
            assert sum(inside) == 1
        assert part["buckets"].sum() == present.height
        # prices are multiples of the step inside the cluster's range
        for p, lo, h in part.select("price", "price_low", "price_high").iter_rows():
            assert lo - 1e-9 <= p <= h + 1e-9
            assert abs(p / step - round(p / step)) < 1e-9
        # ranks, largest, nearest
        assert sorted(part["rank"].to_list()) == list(range(1, part.height + 1))
        assert part["is_largest"].sum() == 1
        assert part.filter(pl.col("is_largest"))["usd"].item() == part["usd"].max()
        assert part["is_nearest"].sum() == 1
        significant = part.filter(pl.col("is_significant"))
        near = part.filter(pl.col("is_nearest"))
        assert near["is_significant"].item()
        assert near["distance_pct"].abs().item() == significant["distance_pct"].abs().min()
        total = float(usd.sum())
        assert (
            significant.filter(
                (pl.col("usd") < share * total * (1 - 1e-12)) & ~pl.col("is_largest")
            ).height
            == 0
        )
        # key levels: the top clusters by USD plus the nearest
        kl = cluster_key_levels(
            m, price_step=step, top=top, smooth_pct=smooth, merge_pct=merge, min_share=share
        ).filter(pl.col("side") == side)
        assert kl.schema == pl.Schema(KEY_LEVELS_SCHEMA)
        expected = part.filter((pl.col("rank") <= top) | pl.col("is_nearest"))["rank"]
        assert kl["rank"].to_list() == sorted(expected.to_list())
        assert kl["is_nearest"].sum() == 1


def test_model_key_levels_are_clusters_of_its_own_map() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    n = 720
    close = 60_000.0 * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    open_ = np.r_[60_000.0, close[:-1]]
    bars = pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=k) for k in range(n)],
            "open": open_,
            "high": np.maximum(open_, close) * 1.0007,
            "low": np.minimum(open_, close) * 0.9993,
            "close": close,
            "volume": 10.0,
            "oi_usd": 1e8 * np.exp(np.cumsum(rng.normal(0.0005, 0.004, n))),
        }
    )
    res = run_model(bars, ModelParams(price_step=50.0))
    kl = res.key_levels
    assert kl.schema == pl.Schema(KEY_LEVELS_SCHEMA)
    assert kl.equals(cluster_key_levels(res.liquidation_map, price_step=50.0))
    assert ((kl["price"] / 50.0 - (kl["price"] / 50.0).round()).abs() < 1e-9).all()
    for side in ("long", "short"):
        part = kl.filter(pl.col("side") == side)
        assert part["is_largest"].sum() == 1
        assert part["is_nearest"].sum() == 1
    clusters = liquidation_clusters(res.liquidation_map, price_step=50.0)
    total = float(res.liquidation_map["long_usd"].sum())
    got = float(clusters.filter(pl.col("side") == "long")["usd"].sum())
    assert got == pytest.approx(total, rel=1e-12)
