"""Chart builders: the specs carry the expected encodings and display-resolution data."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from reports import charts, frames

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _csv(data: dict[str, Any], spec: dict[str, Any]) -> pl.DataFrame:
    """Rows of an inline-CSV dataset (Altair may move it to the top-level ``datasets``)."""
    values = data.get("values")
    if values is None:
        values = spec["datasets"][data["name"]]
    assert data["format"]["type"] == "csv"
    return pl.read_csv(io.StringIO(values))


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
    return frames.aggregate_heatmap(
        cells,
        start=T0,
        end=T0 + timedelta(days=7),
        price_lo=50_000.0,
        price_hi=70_000.0,
        base_step=50.0,
    )


@pytest.fixture(scope="module")
def heat_spec(grid: frames.HeatmapGrid) -> dict[str, Any]:
    path = pl.DataFrame(
        {
            "ts": [T0 + timedelta(hours=k) for k in range(7 * 24)],
            "close": 60_000.0 + np.sin(np.arange(7 * 24) / 10) * 500,
        }
    )
    chart = charts.heatmap_chart(grid, path, ref_price=60_100.0)
    spec: dict[str, Any] = chart.to_dict()
    return spec


def test_heatmap_layers_and_encodings(heat_spec: dict[str, Any]) -> None:
    longs, shorts, line, rule = heat_spec["layer"]
    for layer, field, title in ((longs, "l", "longs (USD)"), (shorts, "s", "shorts (USD)")):
        assert layer["mark"]["type"] == "rect"
        enc = layer["encoding"]
        assert enc["x"]["field"] == "t"
        assert enc["x"]["type"] == "temporal"
        assert enc["x"]["scale"]["type"] == "utc"
        assert enc["y"]["field"] == "p"
        assert enc["y"]["type"] == "quantitative"
        assert enc["x2"]["field"] == "t2"
        assert enc["y2"]["field"] == "p2"
        assert enc["color"]["field"] == field
        assert enc["color"]["title"] == title
        assert enc["color"]["legend"]["format"] == charts.USD_FORMAT
        assert [t["title"] for t in enc["tooltip"]] == [
            "time",
            "price bucket",
            "long USD",
            "short USD",
        ]
    assert (
        longs["encoding"]["color"]["scale"]["range"]
        != shorts["encoding"]["color"]["scale"]["range"]
    )
    assert heat_spec["resolve"]["scale"]["color"] == "independent"
    assert line["mark"]["type"] == "line"
    assert line["encoding"]["y"]["field"] == "c"
    assert rule["mark"]["type"] == "rule"
    assert heat_spec["config"]["background"] == charts.BG


def test_heatmap_data_is_display_resolution(
    heat_spec: dict[str, Any], grid: frames.HeatmapGrid
) -> None:
    cells = _csv(heat_spec["layer"][0]["data"], heat_spec)
    assert cells.columns == list(charts.HEAT_FIELDS)
    assert cells.height == grid.cells.height
    assert cells["i"].n_unique() <= 300
    assert cells["j"].n_unique() <= 200
    assert cells["i"].max() < grid.columns <= 300  # type: ignore[operator]
    assert cells["j"].max() < grid.rows <= 200  # type: ignore[operator]
    # USD rounded to 3 significant digits, never more than 0.5% off
    rel = (cells["l"] - grid.cells["long_usd"]).abs() / grid.cells["long_usd"].clip(1.0)
    assert rel.max() < 0.005  # type: ignore[operator]


def test_heatmap_filters_split_by_dominant_side(heat_spec: dict[str, Any]) -> None:
    longs, shorts = heat_spec["layer"][:2]
    assert {"filter": "datum.l >= datum.s"} in longs["transform"]
    assert {"filter": "datum.s > datum.l"} in shorts["transform"]


def test_liquidation_map_spec() -> None:
    prices = 100.0 + np.arange(200) * 0.5
    ref = 150.0
    bars = pl.DataFrame(
        {
            "p0": prices,
            "p1": prices + 0.5,
            "long_usd": np.where(prices < ref, 10.0, 0.0),
            "short_usd": np.where(prices >= ref, 20.0, 0.0),
            "long_cum_usd": np.where(prices < ref, 1.0, 0.0),
            "short_cum_usd": np.where(prices >= ref, 1.0, 0.0),
        }
    )
    spec = charts.liquidation_map_chart(bars, ref_price=ref).to_dict()
    bars_layer, curves, rule, label = spec["layer"]
    assert bars_layer["mark"]["type"] == "rect"
    assert bars_layer["encoding"]["color"]["scale"]["domain"] == ["long", "short"]
    assert curves["encoding"]["y"]["field"] == "cum"
    assert spec["resolve"]["scale"]["y"] == "independent"
    rows = _csv(bars_layer["data"], spec)
    assert (rows.filter(pl.col("side") == "long")["p0"] < ref).all()
    assert (rows.filter(pl.col("side") == "short")["p0"] >= ref).all()
    assert rule["encoding"]["x"]["field"] == "p"
    assert label["mark"]["type"] == "text"


def test_sparkline_spec_is_tiny() -> None:
    path = pl.DataFrame(
        {"ts": [T0 + timedelta(hours=k) for k in range(100)], "close": np.linspace(1, 2, 100)}
    )
    spec = charts.sparkline_chart(path).to_dict()
    assert spec["width"] == "container"
    assert spec["height"] <= 80
    assert spec["encoding"]["x"]["axis"] is None


def test_heatmap_with_realized_markers(grid: frames.HeatmapGrid) -> None:
    path = pl.DataFrame({"ts": [T0, T0 + timedelta(hours=1)], "close": [60_000.0, 60_100.0]})
    realized = pl.DataFrame(
        {
            "ts": [T0, T0 + timedelta(hours=1)],
            "side": ["long", "short"],
            "usd": [1e6, 2e6],
            "price": [59_000.0, 61_000.0],
        }
    )
    spec = charts.heatmap_chart(grid, path, realized=realized).to_dict()
    dots = spec["layer"][-1]
    assert dots["mark"]["type"] == "circle"
    assert dots["encoding"]["size"]["field"] == "usd"
    assert dots["encoding"]["stroke"]["field"] == "side"
    assert _csv(dots["data"], spec).height == 2
