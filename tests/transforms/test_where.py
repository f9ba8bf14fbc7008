"""Where-scores: known answers on tiny bars, no look-ahead, and the book's time semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.bars import model_input
from transforms.levels import liquidation_levels, log_survival, snapshot
from transforms.params import ModelParams
from transforms.where import (
    WHERE_SCORE_SCHEMA,
    WhereMethod,
    block_interval,
    book_buckets,
    decision_times,
    magnet_hits,
    where_scores,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
P = ModelParams(leverages=(10.0, 20.0), weights=(0.5, 0.5), turnover_half_life_hours=6.0,
                entry_points=1, turnover_volume=False)  # fmt: skip


def hourly(close: list[float], oi: list[float] | None = None) -> pl.DataFrame:
    c = np.asarray(close, dtype=np.float64)
    o = np.r_[c[0], c[:-1]]
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(hours=i) for i in range(len(c))],
            "open": o,
            "high": np.maximum(o, c) * 1.002,
            "low": np.minimum(o, c) * 0.998,
            "close": c,
            "oi_usd": oi if oi is not None else [1e6 + 1e3 * i for i in range(len(c))],
        }
    )


def test_snapshot_at_t_is_the_book_after_the_last_bar_closed_by_t() -> None:
    # bar 2 opens at T0+2h and jumps to 150: at T0+2h it has not happened yet
    bars = hourly([100.0, 100.0, 150.0, 150.0])
    lv = liquidation_levels(bars, P)
    at = T0 + timedelta(hours=2)
    snap = snapshot(lv, bars, at, P)
    assert snap.i == 1  # the old semantics picked bar 2, the bar OPENING at t
    assert snap.ref_price == 100.0
    created = lv["created_at"].to_numpy()[snap.index]
    assert (created < np.datetime64(at.replace(tzinfo=None))).all()
    # a moment later (bar 2 still running): the same book; at its close: bar 2's book
    assert snapshot(lv, bars, at + timedelta(minutes=59), P).i == 1
    assert snapshot(lv, bars, at + timedelta(hours=1), P).ref_price == 150.0
    # at=None keeps meaning "after the last bar"
    assert snapshot(lv, bars, None, P).i == 3
    with pytest.raises(ValueError, match="before the close of the first bar"):
        snapshot(lv, bars, T0 + timedelta(minutes=30), P)


def test_decision_grid_warmup_and_horizon() -> None:
    ts = (np.arange(0, 24 * 5) * 3_600_000_000).astype(np.int64)
    d = decision_times(ts, timedelta(hours=10), WhereMethod())
    hours = d.t_us // 3_600_000_000
    assert hours[0] == 72  # max(3 days, 10 h) on the 4 h grid
    assert hours[-1] == 24 * 5 - 24  # the last t with 24 h of bars after it
    assert (np.diff(hours) == 4).all()
    assert (d.i == hours - 1).all()  # the bar closing at t
    assert (d.end - d.start == 24).all()


def test_magnet_known_answer_and_null_of_a_constant_distance_is_one() -> None:
    exc = np.array([[0.02, 0.0], [0.005, 0.03], [0.0, 0.01], [0.04, 0.02]])
    elig = ~np.eye(4, dtype=bool)
    dist = np.full((4, 2), 0.01)
    hit, null = magnet_hits(dist, exc, elig)
    assert hit.tolist() == [[1, 0], [0, 1], [0, 1], [1, 1]]
    # every other time: (sum - own) / 3
    assert null[:, 0].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1 / 3])
    assert np.nansum(hit) / np.nansum(null) == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(
    exc=st.lists(st.floats(0.0, 0.1), min_size=6, max_size=30),
    d=st.floats(0.001, 0.09),
)
def test_a_level_at_a_fixed_distance_has_lift_one(exc: list[float], d: float) -> None:
    """The null against itself: one distance for every decision, every other time eligible."""
    e = np.array(exc)
    excursion = np.stack([e, e[::-1]], axis=1)
    n = e.shape[0]
    hit, null = magnet_hits(np.full((n, 2), d), excursion, ~np.eye(n, dtype=bool))
    if np.nansum(hit) > 0:
        assert np.nansum(hit) / np.nansum(null) == pytest.approx(1.0)


def test_block_bootstrap_known_answers() -> None:
    x = np.arange(1.0, 61.0)
    assert block_interval(x, x, block=6) == (1.0, 1.0)
    lo, hi = block_interval(2 * x, x, block=6)
    assert lo == pytest.approx(2.0)
    assert hi == pytest.approx(2.0)
    a = block_interval(x, x[::-1], block=6, seed=3)
    assert a == block_interval(x, x[::-1], block=6, seed=3)  # seeded
    assert a[0] < 1.0 < a[1]
    assert np.isnan(block_interval(np.zeros(0), np.zeros(0), block=3)[0])


def test_where_scores_known_touch_on_a_synthetic_book() -> None:
    # flat price, then a 5 % drop on day 5: every long cluster in 0.5-5 % is touched by the
    # decisions whose 24 h window holds the drop, none before
    close = [100.0] * (24 * 5) + [95.0] * 24 + [95.0] * 24
    bars = hourly(close)
    out = where_scores(bars, params=P, method=WhereMethod(draws=200))
    assert out.schema == pl.Schema(WHERE_SCORE_SCHEMA)
    long = out.filter((pl.col("name") == "magnet") & (pl.col("side") == "long")).row(0, named=True)
    # decisions at 72 h .. 144 h, every 4 h (19); the drop bar opens at 120 h: windows from 100 h
    assert long["n"] == 19
    assert long["model"] == pytest.approx(6 / 19)  # t = 100 (rounded to 4 h: 100..120)
    assert 0 < long["null"] < long["model"]  # eligible times are at least 24 h away


@settings(max_examples=8, deadline=None)
@given(
    steps=st.lists(st.floats(-0.02, 0.02), min_size=24 * 4 + 12, max_size=24 * 4 + 12),
    extra=st.integers(1, 30),
)
def test_appending_future_bars_never_changes_a_decisions_book(
    steps: list[float], extra: int
) -> None:
    close = list(100.0 * np.exp(np.cumsum(steps)))
    full = hourly(close)
    cut = full.head(len(close) - extra)
    m = WhereMethod(min_warmup=timedelta(hours=24), horizon=timedelta(hours=4))
    books = []
    for bars in (cut, full):
        norm = model_input(bars)
        ts = norm["ts"].dt.epoch("us").to_numpy()
        dec = decision_times(ts, timedelta(hours=1), m)
        b = book_buckets(liquidation_levels(norm, P), norm, log_survival(norm, P), dec.i, m)
        books.append((dec.t_us, b))
    (t_cut, b_cut), (t_full, b_full) = books
    k = t_cut.shape[0]
    assert (t_full[:k] == t_cut).all()
    np.testing.assert_allclose(b_full.usd[:k], b_cut.usd, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(b_full.ref[:k], b_cut.ref)


def test_too_few_blocks_give_no_interval_and_no_verdict() -> None:
    """Fewer than MIN_BLOCKS blocks of decisions: no interval, and the words say it is too
    early instead of claiming a verdict (a week of 4-hourly decisions is 1-2 blocks of 2 days)."""
    from reports.where_words import verdict, where_sentences
    from transforms.where import MIN_BLOCKS, block_interval

    x = np.arange(1.0, 13.0)
    assert np.isnan(block_interval(x, x[::-1], block=12)).all()
    lo, hi = block_interval(np.tile(x, MIN_BLOCKS), np.tile(x, MIN_BLOCKS), block=12)
    assert (lo, hi) == (1.0, 1.0)
    assert verdict(float("nan"), float("nan")) == "unknown"
    frame = pl.DataFrame(
        {"name": ["magnet"], "side": ["both"], "bin": ["all"], "n": [12], "model": [0.15],
         "null": [0.04], "lift": [3.9], "lo": [float("nan")], "hi": [float("nan")],
         "horizon_hours": [24.0]}
    )  # fmt: skip
    text = where_sentences(frame)[0]
    assert "too few decisions" in text
    assert "too early to tell" in text
    assert "more often" not in text
