"""Aggregating per-exchange model outputs: known answers and hypothesis properties."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.aggregate import (
    PER_TS_SCHEMA,
    aggregate_ref_price,
    align_cells,
    as_timedelta,
    key_levels_from_map,
    sum_heatmaps,
    sum_liquidation_maps,
    sum_per_ts,
)
from transforms.clusters import cluster_key_levels
from transforms.heatmap import HEATMAP_SCHEMA, LIQUIDATION_MAP_SCHEMA
from transforms.levels import KEY_LEVELS_SCHEMA
from transforms.model import run_model
from transforms.params import ModelParams

T0 = datetime(2024, 3, 1, tzinfo=UTC)
USD = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)


def _cells(
    rows: list[tuple[int, int, float, float]], step_min: int, price_step: float
) -> pl.DataFrame:
    """Cells from (time bucket, price bucket, long, short) on a grid (duplicates merged)."""
    merged: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for tb, pb, lo, sh in rows:
        merged[(tb, pb)][0] += lo
        merged[(tb, pb)][1] += sh
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=step_min * tb) for tb, _ in merged],
            "price": [pb * price_step for _, pb in merged],
            "long_usd": [v[0] for v in merged.values()],
            "short_usd": [v[1] for v in merged.values()],
        },
        schema=HEATMAP_SCHEMA,
    )


CELL_ROWS = st.lists(
    st.tuples(st.integers(0, 11), st.integers(1000, 1030), USD, USD), min_size=0, max_size=40
)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(CELL_ROWS, min_size=1, max_size=4))
def test_sum_of_parts_equals_aggregate_per_cell(
    parts: list[list[tuple[int, int, float, float]]],
) -> None:
    step = 2.5
    frames = [_cells(rows, 15, step) for rows in parts]
    out = sum_heatmaps([(f, "15m") for f in frames], price_step=step)
    expected: dict[tuple[datetime, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for frame in frames:
        for ts, price, lo, sh in frame.iter_rows():
            expected[(ts, round(price / step))][0] += lo
            expected[(ts, round(price / step))][1] += sh
    expected = {k: v for k, v in expected.items() if v[0] > 0 or v[1] > 0}
    got = {(ts, round(p / step)): [lo, sh] for ts, p, lo, sh in out.iter_rows()}
    assert got.keys() == expected.keys()
    for key, (lo, sh) in expected.items():
        assert got[key][0] == pytest.approx(lo, rel=1e-12, abs=1e-6)
        assert got[key][1] == pytest.approx(sh, rel=1e-12, abs=1e-6)
    assert out.schema == pl.Schema(HEATMAP_SCHEMA)
    assert out.select(pl.struct("ts", "price").is_unique().all()).item()


@settings(max_examples=60, deadline=None)
@given(rows=CELL_ROWS, ratio=st.sampled_from([1, 3]), merge=st.sampled_from([1, 2, 4]))
def test_alignment_never_double_counts(
    rows: list[tuple[int, int, float, float]], ratio: int, merge: int
) -> None:
    """Every fine cell lands in exactly one coarse cell: per coarse cell the value is the sum of
    its fine cells / time ratio, and notional x time is preserved overall."""
    fine = _cells(rows, 5, 10.0)
    target = timedelta(minutes=5 * ratio)
    out = align_cells(fine, price_step=10.0 * merge, time_step=target, source_time_step="5m")
    expected: dict[tuple[int, int], float] = defaultdict(float)
    for ts, price, lo, _ in fine.iter_rows():
        tb = (ts - T0) // target
        expected[(tb, round(price / 10.0) // merge)] += lo / ratio
    got = {((ts - T0) // target, round(p / (10.0 * merge))): lo for ts, p, lo, _ in out.iter_rows()}
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-6)
    assert out["long_usd"].sum() * ratio == pytest.approx(fine["long_usd"].sum(), rel=1e-9)
    assert out["short_usd"].sum() * ratio == pytest.approx(fine["short_usd"].sum(), rel=1e-9)


def test_alignment_known_answer_and_refusals() -> None:
    t = [T0 + timedelta(minutes=m) for m in (0, 5, 10, 15)]
    cells = pl.DataFrame(
        {
            "ts": t,
            "price": [100.0, 100.0, 105.0, 100.0],
            "long_usd": [3.0, 6.0, 9.0, 12.0],
            "short_usd": 0.0,
        }
    )
    out = align_cells(cells, price_step=10.0, time_step="15m", source_time_step="5m")
    assert out.select("price", "long_usd").rows() == [(100.0, 6.0), (100.0, 4.0)]
    assert out["ts"].to_list() == [T0, T0 + timedelta(minutes=15)]
    with pytest.raises(ValueError, match="whole multiple"):
        align_cells(cells, price_step=10.0, time_step="10m", source_time_step="15m")
    with pytest.raises(ValueError, match="whole multiple"):
        align_cells(cells, price_step=10.0, time_step="15m", source_time_step="10m")
    with pytest.raises(ValueError, match="price_step"):
        align_cells(cells, price_step=0.0, time_step="15m", source_time_step="5m")
    with pytest.raises(ValueError, match="time step"):
        as_timedelta("fortnight")


def test_mixed_time_steps_sum_on_the_coarser_grid() -> None:
    fine = _cells([(k, 4000, 3.0, 0.0) for k in range(6)], 5, 25.0)  # 30 min at 5m
    coarse = _cells([(0, 4000, 10.0, 1.0), (1, 4000, 10.0, 1.0)], 15, 25.0)
    out = sum_heatmaps([(fine, "5m"), (coarse, "15m")], price_step=25.0)
    assert out.select("long_usd", "short_usd").rows() == [(13.0, 1.0), (13.0, 1.0)]


def _map(
    prices: list[float], longs: list[float], shorts: list[float], ref: float, as_of: datetime = T0
) -> pl.DataFrame:
    frame = pl.DataFrame({"price": prices, "long_usd": longs, "short_usd": shorts}).sort("price")
    return frame.select(
        pl.lit(as_of).alias("as_of"),
        pl.lit(ref).alias("ref_price"),
        "price",
        "long_usd",
        "short_usd",
        pl.col("long_usd").cum_sum(reverse=True).alias("long_cum_usd"),
        pl.col("short_usd").cum_sum().alias("short_cum_usd"),
    ).select([pl.col(c).cast(t) for c, t in LIQUIDATION_MAP_SCHEMA.items()])


MAP_ROWS = st.lists(
    st.tuples(st.integers(90, 130), USD, USD), min_size=1, max_size=25, unique_by=lambda r: r[0]
)


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(MAP_ROWS, min_size=1, max_size=3),
    refs=st.lists(st.floats(100.0, 120.0), min_size=3, max_size=3),
)
def test_summed_map_and_cumulative_curves(
    parts: list[list[tuple[int, float, float]]], refs: list[float]
) -> None:
    maps = [
        _map([pb * 1.0 for pb, _, _ in rows], [r[1] for r in rows], [r[2] for r in rows], ref)
        for rows, ref in zip(parts, refs, strict=False)
    ]
    out = sum_liquidation_maps(maps, price_step=1.0)
    assert out.schema == pl.Schema(LIQUIDATION_MAP_SCHEMA)
    for price, lo, sh, lcum, scum in out.select(
        "price", "long_usd", "short_usd", "long_cum_usd", "short_cum_usd"
    ).iter_rows():
        assert lo == pytest.approx(
            sum(m.filter(pl.col("price") == price)["long_usd"].sum() for m in maps),
            rel=1e-12,
            abs=1e-6,
        )
        assert sh == pytest.approx(
            sum(m.filter(pl.col("price") == price)["short_usd"].sum() for m in maps),
            rel=1e-12,
            abs=1e-6,
        )
        # the cumulative curve of the sum is the sum of the parts' curves at that price
        assert lcum == pytest.approx(
            sum(m.filter(pl.col("price") >= price)["long_usd"].sum() for m in maps),
            rel=1e-9,
            abs=1e-3,
        )
        assert scum == pytest.approx(
            sum(m.filter(pl.col("price") <= price)["short_usd"].sum() for m in maps),
            rel=1e-9,
            abs=1e-3,
        )
    ref = out["ref_price"][0] if out.height else None
    if ref is not None:
        assert min(refs[: len(maps)]) - 1e-9 <= ref <= max(refs[: len(maps)]) + 1e-9


def test_ref_price_weighting() -> None:
    a = _map([90.0, 110.0], [300.0, 0.0], [0.0, 100.0], 100.0)
    b = _map([95.0], [100.0], [0.0], 110.0, as_of=T0 + timedelta(minutes=1))
    assert aggregate_ref_price([a]) == 100.0
    assert aggregate_ref_price([a, b]) == pytest.approx((100.0 * 400 + 110.0 * 100) / 500)
    assert aggregate_ref_price([]) is None
    out = sum_liquidation_maps([a, b], price_step=5.0)
    assert out["as_of"].unique().to_list() == [T0 + timedelta(minutes=1)]
    assert sum_liquidation_maps([], price_step=5.0).height == 0


@settings(max_examples=40, deadline=None)
@given(rows=MAP_ROWS, top=st.integers(1, 6))
def test_key_levels_from_map_are_its_clusters(
    rows: list[tuple[int, float, float]], top: int
) -> None:
    m = _map([pb * 10.0 for pb, _, _ in rows], [r[1] for r in rows], [r[2] for r in rows], 1100.0)
    out = key_levels_from_map(m, price_step=10.0, top=top)
    assert out.schema == pl.Schema(KEY_LEVELS_SCHEMA)
    assert out.equals(cluster_key_levels(m, price_step=10.0, top=top))
    for side in ("long", "short"):
        part = out.filter(pl.col("side") == side)
        if m.filter(pl.col(f"{side}_usd") > 0).height:
            assert part["is_largest"].sum() == part["is_nearest"].sum() == 1
    expected_pct = (out["price"] / 1100.0 - 1) * 100
    assert ((out["distance_pct"] - expected_pct).abs() < 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(
        st.lists(st.tuples(st.integers(0, 30), USD, USD), max_size=20, unique_by=lambda r: r[0]),
        min_size=0,
        max_size=3,
    )
)
def test_sum_per_ts(parts: list[list[tuple[int, float, float]]]) -> None:
    frames = [
        pl.DataFrame(
            {
                "ts": [T0 + timedelta(minutes=m) for m, _, _ in rows],
                "long_usd": [r[1] for r in rows],
                "short_usd": [r[2] for r in rows],
            },
            schema=PER_TS_SCHEMA,
        )
        for rows in parts
    ]
    out = sum_per_ts(frames)
    assert out.schema == pl.Schema(PER_TS_SCHEMA)
    assert out["ts"].is_sorted()
    assert out["ts"].is_unique().all()
    stamps = {t for f in frames for t in f["ts"].to_list()}
    assert set(out["ts"].to_list()) == stamps
    total = sum(float(f["long_usd"].sum()) for f in frames)
    assert float(out["long_usd"].sum()) == pytest.approx(total, rel=1e-9, abs=1e-6)


def _bars(price: float, seed: int, n: int = 600) -> pl.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    open_ = np.r_[price, close[:-1]]
    ts = [T0 + timedelta(minutes=k) for k in range(n)]
    oi = 1e8 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    return pl.DataFrame(
        {
            "ts": ts,
            "open": open_,
            "high": np.maximum(open_, close) * 1.0007,
            "low": np.minimum(open_, close) * 0.9993,
            "close": close,
            "volume": 10.0,
            "oi_usd": pl.Series([float(v) if k % 5 == 0 else None for k, v in enumerate(oi)]),
        }
    )


def test_one_exchange_aggregates_to_itself() -> None:
    """With a single exchange the aggregate equals its outputs exactly (heatmap and map)."""
    params = ModelParams(price_step=50.0)
    res = run_model(_bars(60_000.0, 1), params, time_step="5m")
    heat = sum_heatmaps([(res.heatmap, "5m")], price_step=50.0)
    assert heat.equals(res.heatmap.filter((pl.col("long_usd") > 0) | (pl.col("short_usd") > 0)))
    lm = sum_liquidation_maps([res.liquidation_map], price_step=50.0)
    assert lm.select("price", "long_usd", "short_usd", "ref_price").equals(
        res.liquidation_map.select("price", "long_usd", "short_usd", "ref_price")
    )
    assert lm["long_cum_usd"].to_list() == pytest.approx(res.liquidation_map["long_cum_usd"])
    kl = key_levels_from_map(lm, price_step=50.0)
    # the same clusters as the model's own key levels
    mine = res.key_levels
    assert kl.select("side", "rank", "price", "price_low", "price_high").equals(
        mine.select("side", "rank", "price", "price_low", "price_high")
    )
    assert kl["usd"].to_list() == pytest.approx(mine["usd"].to_list(), rel=1e-12)


def test_two_real_models_sum() -> None:
    params = ModelParams(price_step=50.0)
    a = run_model(_bars(60_000.0, 1), params, time_step="15m")
    b = run_model(_bars(60_040.0, 2), params, time_step="15m")
    heat = sum_heatmaps([(a.heatmap, "15m"), (b.heatmap, "15m")], price_step=50.0)
    total = float(a.heatmap["long_usd"].sum()) + float(b.heatmap["long_usd"].sum())
    assert heat["long_usd"].sum() == pytest.approx(total, rel=1e-12)
    assert heat.height < a.heatmap.height + b.heatmap.height  # shared buckets merged
