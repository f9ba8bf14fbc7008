"""Chart builders: the specs carry the expected layers, controls and display-resolution data."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from reports import charts, frames, heatmap_chart, map_frames

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _csv(data: dict[str, Any]) -> pl.DataFrame:
    assert data["format"]["type"] == "csv"
    return pl.read_csv(io.StringIO(data["values"]))


@pytest.fixture(scope="module")
def grid() -> frames.HeatmapGrid:
    rng = np.random.default_rng(1)
    ts = [T0 + timedelta(minutes=15 * k) for k in range(7 * 96)]
    prices = 60_000.0 + 50.0 * np.arange(-300, 300)
    cells = pl.DataFrame({"ts": ts}).join(pl.DataFrame({"price": prices}), how="cross")
    cells = cells.with_columns(
        long_usd=pl.when(pl.col("price") < 60_000).then(pl.lit(1.0)).otherwise(0.0)
        * pl.Series(rng.gamma(1.0, 1e5, cells.height)),
        short_usd=pl.when(pl.col("price") >= 60_000).then(pl.lit(1.0)).otherwise(0.0)
        * pl.Series(rng.gamma(1.0, 1e5, cells.height)),
    )
    # leverage groups: a fixed share of each cell
    bands = pl.concat(
        [
            cells.select(
                pl.lit(g).alias("band"), "ts", "price", pl.col("long_usd", "short_usd") * share
            )
            for g, share in (("low", 0.5), ("medium", 0.3), ("high", 0.2))
        ]
    )
    return frames.aggregate_band_heatmap(
        cells,
        bands,
        start=T0,
        end=T0 + timedelta(days=7),
        price_lo=50_000.0,
        price_hi=70_000.0,
        base_step=50.0,
        max_columns=180,
        max_rows=110,
    )


def _candles() -> pl.DataFrame:
    ts = [T0 + timedelta(hours=k) for k in range(7 * 24)]
    close = 60_000.0 + np.sin(np.arange(7 * 24) / 10) * 500
    return pl.DataFrame(
        {"ts": ts, "open": close, "high": close + 80, "low": close - 80, "close": close + 10}
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


@pytest.fixture(scope="module")
def heat_spec(grid: frames.HeatmapGrid) -> dict[str, Any]:
    context = _candles().select("ts", volume_usd=pl.lit(1e7), oi_usd=pl.lit(5e9))
    return heatmap_chart.heatmap_spec(
        grid,
        _candles(),
        ref_price=60_100.0,
        title="BTCUSDT · 7D liquidation heatmap · estimate",
        subtitle="liqheat",
        context=context,
    )


def test_heatmap_layers_controls_and_panels(heat_spec: dict[str, Any]) -> None:
    heat, volume, oi = heat_spec["vconcat"]
    cells, candles, *rest = heat["layer"]
    longs, shorts = cells["layer"]
    assert longs["mark"]["type"] == shorts["mark"]["type"] == "rect"
    assert longs["params"][0]["bind"] == "scales"  # zoom and pan
    assert set(longs["params"][0]["select"]["encodings"]) == {"x", "y"}
    assert [m["mark"]["type"] for m in candles["layer"]] == ["rule", "rect", "line"]
    # the last price: a tag on the price axis, outside the plot
    text = next(m for m in rest if m["mark"].get("name") == "last_tag")
    assert text["data"]["values"][0]["label"] == "60,100"
    assert text["mark"]["clip"] is False
    assert text["mark"]["align"] == "left"
    assert volume["mark"]["type"] == "rect"
    assert oi["mark"]["type"] == "line"
    assert heat_spec["resolve"]["scale"]["x"] == "shared"
    assert oi["encoding"]["x"]["axis"]["title"] == "time (UTC)"
    params = {p["name"]: p for p in heat_spec["params"]}
    assert params["lev"]["bind"]["options"] == ["all", "high", "medium", "low"]
    assert params["clip"]["bind"]["input"] == "range"
    assert "clip *" in longs["encoding"]["color"]["scale"]["domain"]["expr"]
    # a colour bar per side with USD ticks, a threshold and the colour scale control
    legend = longs["encoding"]["color"]["legend"]
    assert legend["title"] == "longs USD"
    assert "'M'" in legend["labelExpr"]
    assert shorts["encoding"]["color"]["legend"]["title"] == "shorts USD"
    assert params["floor"]["bind"]["options"][0] == 0
    assert params["floor"]["bind"]["labels"][1].startswith("hide under $")
    assert params["cscale"]["bind"]["options"] == ["sqrt", "linear", "log"]
    assert "$schema" in heat_spec
    assert json.dumps(heat_spec)


def test_heatmap_data_is_display_resolution_and_compact(
    grid: frames.HeatmapGrid, heat_spec: dict[str, Any]
) -> None:
    data = _csv(heat_spec["vconcat"][0]["layer"][0]["data"])
    assert data.columns == ["i", "j", "l0", "s0", "l1", "s1", "l2", "s2"]
    assert data.height == grid.cells.height <= 180 * 110
    assert data["i"].max() < grid.columns  # type: ignore[operator]
    assert len(heat_spec["vconcat"][0]["layer"][0]["data"]["values"]) < 600_000


def test_usd_labels_say_b_not_g() -> None:
    expr = charts.usd_label_expr()
    assert "'B'" in expr
    assert "'M'" in expr
    assert "'K'" in expr
    assert "~s" not in expr


def test_liquidation_map_spec_stacks_bands() -> None:
    prices = 100.0 + np.arange(200) * 0.5
    ref = 150.0
    rows = []
    for band, share in (("<=10x", 0.6), ("25-50x", 0.4)):
        rows.append(
            pl.DataFrame(
                {
                    "band": band,
                    "price": prices,
                    "long_usd": np.where(prices < ref, share * 1e6, 0.0),
                    "short_usd": np.where(prices >= ref, 2e6 * share, 0.0),
                }
            )
        )
    band_map = pl.concat(rows)
    liq_map = (
        band_map.group_by("price")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .sort("price")
        .with_columns(ref_price=pl.lit(ref))
    )
    total = liq_map["long_usd"].sum() + liq_map["short_usd"].sum()
    # +-25 %: part of the map lies outside the window and is stated
    clipped = map_frames.map_view(liq_map, band_map)
    assert clipped.window_pct == 25.0
    inside = clipped.bars["usd"].sum()
    assert inside + sum(clipped.outside.values()) == pytest.approx(total)
    assert clipped.totals["long"] + clipped.totals["short"] == pytest.approx(total)
    view = map_frames.map_view(liq_map, band_map, window_pct=50.0)
    assert view.window_pct is None  # the whole distribution fits
    spec = charts.liquidation_map_spec(view, title="t", subtitle="s")
    bars = _csv(spec["layer"][0]["data"])
    assert set(bars["k"]) == {"<=10x", "25-50x"}
    assert bars["usd"].sum() == pytest.approx(total, rel=1e-3)
    # stacked: each band sits on top of the one below
    first = bars.filter(pl.col("p0") == bars["p0"].min()).sort("y0")
    assert first["y0"][0] == 0
    assert first["y0"][1] == pytest.approx(first["y1"][0], abs=1)
    curves = _csv(spec["layer"][1]["data"])
    assert set(curves["side"]) == {"long", "short"}
    assert curves.filter(pl.col("side") == "long")["cum"].max() == pytest.approx(
        liq_map["long_usd"].sum(), rel=1e-3
    )


def test_sparkline_spec_is_tiny() -> None:
    ts = [T0 + timedelta(hours=k) for k in range(120)]
    path = pl.DataFrame({"ts": ts, "close": np.linspace(100, 110, 120)})
    spec = charts.sparkline_chart(path).to_dict(validate=False)
    assert len(json.dumps(spec)) < 20_000
