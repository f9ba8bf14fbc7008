"""The stored, display-resolution heatmap: buckets that coarsen with age, the price window,
one pass for every leverage group, and no look-ahead in the key-level proximity."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.aggregate import align_cells, sum_heatmaps
from transforms.backtest import key_level_proximity
from transforms.bars import model_input
from transforms.display import FINE_DIVISOR, FINE_SPAN, fine_price_window, traded_window
from transforms.heatmap import (
    TimeTiers,
    display_price_range,
    display_tiers,
    heatmap,
    liquidation_map,
)
from transforms.levels import liquidation_levels
from transforms.leverage_bands import GROUPS, band_heatmaps, band_maps, group_expr
from transforms.model import fine_cells
from transforms.params import ModelParams

MIN = 60_000_000
DAY = 1440 * MIN
TIERS = TimeTiers(
    timedelta(minutes=15),
    ((timedelta(hours=12), timedelta(hours=1)), (timedelta(days=1), timedelta(hours=4))),
)
PARAMS = ModelParams(
    leverages=(5.0, 12.0, 30.0, 75.0, 125.0), weights=(0.3, 0.3, 0.2, 0.1, 0.1), price_step=0.5
)


def _bars(n: int, seed: int, minutes: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    ts = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes * i) for i in range(n)]
    oi = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    return model_input(
        pl.DataFrame(
            {
                "ts": ts,
                "open": close,
                "high": close * 1.002,
                "low": close * 0.998,
                "close": close,
                "oi_usd": oi,
            }
        )
    )


def _same(a: pl.DataFrame, b: pl.DataFrame, keys: list[str]) -> None:
    joined = a.join(b, on=keys, how="full", coalesce=True).fill_null(0.0)
    for col in ("long_usd", "short_usd"):
        assert joined[col].to_numpy() == pytest.approx(
            joined[f"{col}_right"].to_numpy(), rel=1e-9, abs=1e-6
        )


@settings(max_examples=40, deadline=None)
@given(
    ts=st.lists(st.integers(0, 5 * DAY), min_size=1, max_size=200),
    last=st.integers(0, 2 * DAY),
)
def test_tier_buckets_contain_their_timestamps_and_never_straddle_a_cut(
    ts: list[int], last: int
) -> None:
    arr = np.array(sorted([*ts, 5 * DAY + last]), dtype=np.int64)
    anchor = TimeTiers.anchor_us(arr)
    assert anchor > arr.max()
    assert anchor % DAY == 0
    assert anchor - arr.max() <= DAY
    starts, steps = TIERS.bucket_starts(arr, anchor), TIERS.steps_us(arr, anchor)
    assert np.all(starts <= arr)
    assert np.all(arr < starts + steps)
    assert np.all(starts % steps == 0)
    # older timestamps never get a finer bucket than newer ones
    assert np.all(np.diff(steps) <= 0)
    # every timestamp of one bucket has that bucket's step (no bucket straddles two tiers)
    frame = pl.DataFrame({"start": starts, "step": steps})
    assert frame.group_by("start").agg(pl.col("step").n_unique())["step"].max() == 1


def test_tiers_reject_steps_that_do_not_nest() -> None:
    with pytest.raises(ValueError, match="multiples"):
        TimeTiers(timedelta(minutes=15), ((timedelta(days=1), timedelta(minutes=40)),))
    with pytest.raises(ValueError, match="increasing"):
        TimeTiers(
            timedelta(minutes=15),
            ((timedelta(days=2), timedelta(hours=1)), (timedelta(days=1), timedelta(hours=4))),
        )
    assert display_tiers("5m").coarser[0] == (timedelta(days=4), timedelta(hours=1))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(300, 700))
def test_a_tiered_cell_is_the_mean_of_the_fine_cells_it_covers(seed: int, n: int) -> None:
    """On regular bars, each coarse bucket of the tiered heatmap equals the 15-minute heatmap
    averaged onto that bucket (notional x time preserved), and the newest tier is the fine
    heatmap itself."""
    bars = _bars(n, seed)
    levels = liquidation_levels(bars, PARAMS)
    fine = heatmap(levels, bars, 0.5, "15m", params=PARAMS)
    tiered = heatmap(levels, bars, 0.5, TIERS, params=PARAMS)
    ts_us = bars["ts"].dt.epoch("us").to_numpy()
    anchor = TimeTiers.anchor_us(ts_us)
    first_bucket = TIERS.bucket_starts(ts_us[:1], anchor)[0]
    for step, lo, hi in (
        ("4h", -np.inf, anchor - DAY),
        ("1h", anchor - DAY, anchor - DAY // 2),
        ("15m", anchor - DAY // 2, np.inf),
    ):

        def part(frame: pl.DataFrame, lo: float = lo, hi: float = hi) -> pl.DataFrame:
            us = frame["ts"].dt.epoch("us")
            return frame.filter((us >= lo) & (us < hi) & (us >= first_bucket))

        expected = align_cells(part(fine), price_step=0.5, time_step=step, source_time_step="15m")
        got = part(tiered)
        # a partial first or last bucket (bars start or end mid-bucket) averages over fewer
        # bars than the fine cells aligned onto it assume: compare whole buckets only
        inner = (pl.col("ts") > pl.col("ts").min()) & (pl.col("ts") < pl.col("ts").max())
        expected, got = expected.filter(inner), got.filter(inner)
        _same(got, expected, ["ts", "price"])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 200))
def test_one_grouped_pass_equals_one_heatmap_per_group(seed: int, n: int) -> None:
    bars = _bars(n, seed)
    levels = liquidation_levels(bars, PARAMS)
    tagged = levels.with_columns(group_expr())
    parts = band_heatmaps(levels, bars, 0.5, TIERS, params=PARAMS)
    for group in GROUPS:
        sub = tagged.filter(pl.col("band") == group.label).drop("band")
        alone = heatmap(sub, bars, 0.5, TIERS, params=PARAMS)
        got = parts.filter(pl.col("band") == group.label).drop("band")
        _same(got, alone, ["ts", "price"])
    assert parts["band"].to_list() == sorted(
        parts["band"].to_list(), key=[g.label for g in GROUPS].index
    )
    # the snapshot split by band sums to the map of all levels, bucket by bucket
    whole = liquidation_map(levels, bars=bars, price_step=0.5, params=PARAMS)
    split = band_maps(levels, bars=bars, price_step=0.5, params=PARAMS)
    summed = split.group_by("price").agg(pl.col("long_usd", "short_usd").sum())
    _same(whole.select("price", "long_usd", "short_usd"), summed, ["price"])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), lo=st.floats(80.0, 100.0), width=st.floats(1.0, 30.0))
def test_the_price_window_keeps_the_cells_inside_it_unchanged(
    seed: int, lo: float, width: float
) -> None:
    bars = _bars(150, seed)
    levels = liquidation_levels(bars, PARAMS)
    whole = heatmap(levels, bars, 0.5, "15m", params=PARAMS)
    # whole buckets inside the window: a level's price is inside iff its bucket is
    a, b = np.ceil(lo / 0.5) * 0.5, np.floor((lo + width) / 0.5) * 0.5
    cut = heatmap(levels, bars, 0.5, "15m", params=PARAMS, price_range=(a, b - 1e-9))
    inside = whole.filter((pl.col("price") >= a) & (pl.col("price") < b))
    _same(cut, inside, ["ts", "price"])


def test_display_window_covers_every_page_window() -> None:
    """The site pads a range's low..high by max(25 % of its range, 4 % of its mid) and widens
    it to the key levels +- 1 %: the stored window must contain that for any sub-range."""
    bars = _bars(2000, 3)
    keys = [70.0, 130.0]
    lo, hi = display_price_range(bars, keys)
    for start in range(0, 2000, 97):
        sub = bars[start : start + 150]
        s_lo, s_hi = float(sub["low"].min()), float(sub["high"].max())  # type: ignore[arg-type]
        pad = max(0.25 * (s_hi - s_lo), 0.04 * (s_hi + s_lo) / 2)
        page_lo = min(s_lo - pad, *(k * 0.99 for k in keys))
        page_hi = max(s_hi + pad, *(k * 1.01 for k in keys))
        assert lo <= page_lo
        assert page_hi <= hi


def test_tiered_exchanges_sum_on_the_common_tiers() -> None:
    bars = _bars(600, 5)
    levels = liquidation_levels(bars, PARAMS)
    one = heatmap(levels, bars, 0.5, TIERS, params=PARAMS)
    summed = sum_heatmaps([(one, TIERS), (one, TIERS)], price_step=0.5)
    doubled = one.with_columns(pl.col("long_usd") * 2, pl.col("short_usd") * 2)
    _same(summed, doubled, ["ts", "price"])


def test_proximity_lists_a_coarse_bucket_only_after_it_ends() -> None:
    """A 4-hour bucket's key level is known from its end, not 15 minutes after its start."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ts = [t0 + timedelta(minutes=15 * i) for i in range(4 * 24 * 2)]  # two days of 15m bars
    bars = pl.DataFrame(
        {"ts": ts, "open": 100.0, "high": 100.5, "low": [99.5] * len(ts), "close": 100.0,
         "oi_usd": 1.0}
    )  # fmt: skip
    # bar 2 (00:30) dips to the level at 95 listed by the first bucket (00:00, a 4h bucket)
    bars = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(95.2).otherwise(pl.col("low")).alias("low")
    )
    cells = pl.DataFrame(
        {"ts": [t0], "price": [95.0], "long_usd": [5.0], "short_usd": [0.0]},
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    # untiered: the bucket width is taken as the smallest gap (one bar): listed at 00:15
    assert key_level_proximity(bars, cells)["long_near"][2]
    # tiered: day 1 is older than a day before the anchor -> its buckets are 4 hours wide
    near = key_level_proximity(bars, cells, time_step=TIERS)
    assert not near["long_near"][2]
    assert not near["long_near"].any()


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(200, 480))
def test_fine_cells_split_the_display_cells_into_finer_prices(seed: int, n: int) -> None:
    """Known answer by construction: inside the fine window, the fine cells summed over each
    coarse price bucket's five fine buckets equal the display cells (same levels, same time
    buckets), and they cover only the last FINE_SPAN at the run's step / FINE_DIVISOR."""
    bars = _bars(n, seed)  # 17 to 40 hours of 5-minute bars
    levels = liquidation_levels(bars, PARAMS)
    tiers = display_tiers("5m")
    heat = heatmap(levels, bars, PARAMS.price_step, tiers, params=PARAMS)
    fine = fine_cells(levels, bars, PARAMS.price_step, tiers, params=PARAMS)
    assert fine.price_step == pytest.approx(PARAMS.price_step / FINE_DIVISOR)
    assert fine.heatmap.height > 0
    last = bars["ts"].max()
    assert isinstance(last, datetime)
    assert fine.heatmap["ts"].min() >= last - FINE_SPAN - timedelta(minutes=5)
    assert fine.heatmap["ts"].min() <= max(last - FINE_SPAN, bars["ts"].min())
    assert fine.heatmap["ts"].max() == heat["ts"].max()
    # the fine steps nest in the run's step: fine prices sit on multiples of the fine step
    k = fine.heatmap["price"] / fine.price_step
    assert ((k - k.round()).abs() < 1e-6).all()
    # a price window of whole coarse buckets well inside the fine window
    step = PARAMS.price_step
    lo = math.ceil(fine.price_range[0] / step) * step + step
    hi = math.floor(fine.price_range[1] / step) * step - step
    eps = step * 1e-6

    def per_bucket(cells: pl.DataFrame) -> pl.DataFrame:
        inside = cells.filter((pl.col("price") >= lo - eps) & (pl.col("price") < hi - eps))
        return inside.group_by("ts").agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())

    coarse = per_bucket(heat.filter(pl.col("ts") >= fine.heatmap["ts"].min()))
    _same(per_bucket(fine.heatmap), coarse, ["ts"])
    # the total is the sum of the leverage groups
    bands = fine.heatmap_bands.group_by("ts", "price").agg(
        pl.col("long_usd").sum(), pl.col("short_usd").sum()
    )
    _same(bands, fine.heatmap, ["ts", "price"])


def test_fine_window_holds_every_short_page_axis() -> None:
    """The fine window is at least as wide as a page's axis with the widest edge-marker margin."""
    lo, hi = fine_price_window(100.0, 110.0, 0.5)
    assert (lo, hi) == (80.0, 130.0)
    page_lo, page_hi = traded_window(100.0, 110.0, 0.5, share=2.0)
    assert lo <= page_lo
    assert page_hi <= hi
