"""Display aggregation: grid sizes, conservation of USD, OHLC resampling (pure polars)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports import frames, map_frames

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _cells(
    n_ts: int, n_prices: int, *, every: timedelta, step: float, seed: int = 0
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ts = [T0 + k * every for k in range(n_ts)]
    grid = pl.DataFrame({"ts": ts}).join(
        pl.DataFrame({"price": 50_000.0 + step * np.arange(n_prices)}), how="cross"
    )
    return grid.with_columns(
        long_usd=pl.Series(rng.gamma(1.0, 1e5, grid.height)),
        short_usd=pl.Series(rng.gamma(1.0, 1e5, grid.height)),
    )


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (1, timedelta(minutes=5)),
        (3, timedelta(minutes=15)),
        (7, timedelta(hours=1)),
        (30, timedelta(hours=3)),
    ],
)
def test_time_step_is_nice_and_fits(days: int, expected: timedelta) -> None:
    step = frames.choose_time_step(T0, T0 + timedelta(days=days))
    assert step == expected
    assert timedelta(days=days) / step <= frames.MAX_COLUMNS


def test_time_step_never_finer_than_source() -> None:
    step = frames.choose_time_step(T0, T0 + timedelta(days=1), min_step=timedelta(minutes=15))
    assert step == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("lo", "hi", "base", "expected"),
    [(100.0, 110.0, 0.1, 0.1), (50_000.0, 70_000.0, 50.0, 100.0), (0.5, 0.9, 0.0001, 0.002)],
)
def test_price_step_multiples(lo: float, hi: float, base: float, expected: float) -> None:
    step = frames.choose_price_step(lo, hi, base)
    assert step == pytest.approx(expected)
    assert (hi - lo) / step <= frames.MAX_ROWS


def test_price_step_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="price step must be positive"):
        frames.choose_price_step(1.0, 2.0, 0.0)


def test_heatmap_is_capped_at_display_resolution() -> None:
    # 30 days of 15m buckets x 1000 price buckets: 2.9M source cells
    cells = _cells(30 * 96, 1000, every=timedelta(minutes=15), step=10.0)
    grid = frames.aggregate_heatmap(
        cells,
        start=T0,
        end=T0 + timedelta(days=30),
        price_lo=50_000.0,
        price_hi=60_000.0,
        base_step=10.0,
    )
    assert grid.columns <= 300
    assert grid.rows <= 200
    assert grid.cells.height <= grid.columns * grid.rows
    assert grid.cells["i"].max() < grid.columns  # type: ignore[operator]
    assert grid.cells["j"].max() < grid.rows  # type: ignore[operator]
    assert grid.time_step == timedelta(hours=3)
    assert grid.price_step == 50.0


def test_heatmap_sums_over_price_and_keeps_max_over_time() -> None:
    cells = pl.DataFrame(
        {
            "ts": [T0, T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=15)],
            "price": [100.0, 100.5, 100.0, 101.0],
            "long_usd": [1.0, 2.0, 5.0, 7.0],
            "short_usd": [0.0, 0.0, 0.0, 3.0],
        }
    )
    grid = frames.aggregate_heatmap(
        cells,
        start=T0,
        end=T0 + timedelta(minutes=30),
        price_lo=100.0,
        price_hi=102.0,
        base_step=0.5,
        max_columns=1,
        max_rows=2,
    )
    assert grid.price_step == 1.0
    assert grid.time_step == timedelta(minutes=30)
    got = {(r["i"], r["j"]): (r["long_usd"], r["short_usd"]) for r in grid.cells.to_dicts()}
    # row 0 = [100, 101): t0 sums 1 + 2 = 3, t1 has 5 -> max 5; row 1 = [101, 102): 7 and 3
    assert got == {(0, 0): (5.0, 0.0), (0, 1): (7.0, 3.0)}


@settings(max_examples=25, deadline=None)
@given(
    n_prices=st.integers(1, 400),
    step=st.sampled_from([0.01, 0.5, 2.5, 50.0]),
    seed=st.integers(0, 10_000),
)
def test_heatmap_conserves_usd_over_price(n_prices: int, step: float, seed: int) -> None:
    """At the source time resolution, merging price buckets conserves the USD in the window."""
    cells = _cells(8, n_prices, every=timedelta(minutes=15), step=step, seed=seed)
    lo, hi = 50_000.0, 50_000.0 + step * n_prices
    grid = frames.aggregate_heatmap(
        cells,
        start=T0,
        end=T0 + timedelta(hours=2),
        price_lo=lo,
        price_hi=hi,
        base_step=step,
        max_columns=8,
    )
    assert grid.time_step == timedelta(minutes=15)
    assert grid.rows <= frames.MAX_ROWS
    assert grid.cells["long_usd"].sum() == pytest.approx(cells["long_usd"].sum(), rel=1e-9)


def test_path_at_step_is_ohlc() -> None:
    bars = pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=k) for k in range(10)],
            "open": [float(k) for k in range(10)],
            "high": [float(k) + 0.5 for k in range(10)],
            "low": [float(k) - 0.5 for k in range(10)],
            "close": [float(k) + 0.25 for k in range(10)],
        }
    )
    out = frames.path_at_step(bars, timedelta(minutes=5), T0)
    assert out.columns == list(frames.PATH_SCHEMA)
    assert out["open"].to_list() == [0.0, 5.0]
    assert out["high"].to_list() == [4.5, 9.5]
    assert out["low"].to_list() == [-0.5, 4.5]
    assert out["close"].to_list() == [4.25, 9.25]
    assert out["ts"].to_list() == [T0, T0 + timedelta(minutes=5)]


def test_aggregate_map_conserves_usd_and_keeps_cumulative_extremes() -> None:
    prices = 100.0 + np.arange(400) * 0.5
    ref = 200.0
    long_usd = np.where(prices < ref, 1.0, 0.0)
    short_usd = np.where(prices >= ref, 2.0, 0.0)
    m = pl.DataFrame(
        {
            "price": prices,
            "long_usd": long_usd,
            "short_usd": short_usd,
            "long_cum_usd": np.where(prices < ref, np.cumsum(long_usd[::-1])[::-1], 0.0),
            "short_cum_usd": np.where(prices >= ref, np.cumsum(short_usd), 0.0),
        }
    )
    bars = map_frames.aggregate_map(m, max_bars=50)
    assert bars.height <= 50
    assert bars["long_usd"].sum() == pytest.approx(long_usd.sum())
    assert bars["short_usd"].sum() == pytest.approx(short_usd.sum())
    assert bars["long_cum_usd"].max() == pytest.approx(long_usd.sum())
    assert bars["short_cum_usd"].max() == pytest.approx(short_usd.sum())
    assert (bars["p1"] - bars["p0"]).n_unique() == 1


def test_sparkline_downsamples() -> None:
    bars = pl.DataFrame(
        {"ts": [T0 + timedelta(minutes=k) for k in range(4320)], "close": np.arange(4320.0)}
    )
    out = frames.sparkline(bars, points=120)
    assert 100 <= out.height <= 121
    assert out["close"][-1] == 4319.0


def test_realized_at_step_places_dots_at_the_extremes() -> None:
    bars = pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=k) for k in range(30)],
            "open": np.full(30, 100.0),
            "high": 101.0 + np.arange(30.0),
            "low": 99.0 - np.arange(30.0),
            "close": np.full(30, 100.0),
        }
    )
    liq = pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=m) for m in (1, 2, 16, 20, 29)],
            "side": ["long", "long", "short", "short", "sideways"],
            "usd": [10.0, 5.0, 7.0, 1.0, 99.0],
        }
    )
    out = frames.realized_at_step(liq, bars, timedelta(minutes=15), T0)
    assert out.columns == list(frames.REALIZED_SCHEMA)
    assert out.select("side", "usd", "price").rows() == [
        ("long", 15.0, 99.0 - 14),  # lowest low of the first 15 minutes
        ("short", 8.0, 101.0 + 29),  # highest high of the second
    ]
    assert frames.realized_at_step(liq, bars, timedelta(minutes=15), T0, top=1)[
        "usd"
    ].to_list() == [15.0]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(5, 300),
    window=st.sampled_from([5.0, 25.0, 60.0]),
    seed=st.integers(0, 10_000),
)
def test_map_view_never_loses_usd(n: int, window: float, seed: int) -> None:
    """What the chart draws plus what the page says lies outside it = the stored totals."""
    rng = np.random.default_rng(seed)
    ref = 100.0
    prices = np.round(rng.uniform(40.0, 180.0, n) / 0.5) * 0.5
    frame = (
        pl.DataFrame({"price": prices, "usd": rng.gamma(1.0, 1e6, n)})
        .group_by("price")
        .agg(pl.col("usd").sum())
        .sort("price")
    )
    m = frame.select(
        ref_price=pl.lit(ref),
        price="price",
        long_usd=pl.when(pl.col("price") < ref).then("usd").otherwise(0.0),
        short_usd=pl.when(pl.col("price") >= ref).then("usd").otherwise(0.0),
    )
    view = map_frames.map_view(m, window_pct=window, max_bars=60)
    assert view.bars.select("p0").n_unique() <= 61
    drawn = view.bars["usd"].sum()
    assert drawn + sum(view.outside.values()) == pytest.approx(
        view.totals["long"] + view.totals["short"], rel=1e-9
    )
    assert view.totals["long"] == pytest.approx(m["long_usd"].sum())
    moves = {row["pct"]: row for row in view.moves}
    assert moves[10.0]["long_usd"] == pytest.approx(
        m.filter(pl.col("price") >= 90.0)["long_usd"].sum()
    )
    assert moves[1.0]["short_usd"] <= moves[2.0]["short_usd"] <= moves[10.0]["short_usd"]


def test_warehouse_grid_equals_in_memory_aggregate(tmp_path: Path) -> None:
    """The display grid aggregated in DuckDB equals frames.aggregate_heatmap on the same cells."""
    from warehouse import reads_outputs as ro
    from warehouse.writes import replace_partition

    cells = _cells(4 * 24, 300, every=timedelta(minutes=15), step=10.0, seed=3)
    db = tmp_path / "liqheat.duckdb"
    keys = {"exchange": "binance", "symbol": "BTCUSDT", "params_hash": "h"}
    replace_partition(
        db, "heatmap_cells", keys, cells.with_columns(**{k: pl.lit(v) for k, v in keys.items()})
    )
    kw = {
        "start": T0 + timedelta(days=1),
        "end": T0 + timedelta(days=4),
        "price_lo": 50_333.0,
        "price_hi": 52_000.0,
        "base_step": 10.0,
        "max_columns": 50,
        "max_rows": 40,
    }
    mem = frames.aggregate_heatmap(cells, **kw)
    geo = frames.grid_geometry(source_step=timedelta(minutes=15), **kw)
    assert (geo.time_step, geo.price_step, geo.p0, geo.rows) == (
        mem.time_step, mem.price_step, mem.p0, mem.rows,
    )  # fmt: skip
    sql = ro.heatmap_grid_cells(
        db, "binance", "BTCUSDT", "h", start=kw["start"], end=kw["end"],
        time_step=geo.time_step, columns=geo.columns, p0=geo.p0, price_step=geo.price_step,
        rows=geo.rows, tolerance=1e-5,
    )  # fmt: skip
    got = frames.with_cells(geo, sql, pl.DataFrame()).cells.sort("i", "j")
    want = mem.cells.sort("i", "j")
    assert got.select("i", "j").equals(want.select("i", "j"))
    assert got["long_usd"].to_numpy() == pytest.approx(want["long_usd"].to_numpy(), rel=1e-9)
    assert got["short_usd"].to_numpy() == pytest.approx(want["short_usd"].to_numpy(), rel=1e-9)
