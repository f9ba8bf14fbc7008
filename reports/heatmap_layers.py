"""The heatmap's time/price frame and its overlay layers, as plain Vega-Lite dicts: candles
(or the close line), realized liquidations, sweeps, the last price's tag on the price axis,
key levels beyond the axis as edge markers, and the volume and open-interest panels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from reports.charts import (
    BG,
    DOWN,
    PRICE,
    PRICE_FORMAT,
    REALIZED_LONG,
    REALIZED_SHORT,
    TIME_LABEL,
    UP,
    USD_FULL,
    axis,
    ms,
    sig,
    usd_label_expr,
)
from reports.frames import HeatmapGrid

#: one edge-marker line on the shortest chart (px; see reports.heatmap_context)
EDGE_LINE_PX = 13.0
SHORTEST_CHART_PX = 340.0


@dataclass(frozen=True)
class Frame:
    """The time and price frame every layer shares: time origin and step (ms), the shared
    x encoding and the price scale."""

    t0: int
    dt: int
    t_end: int
    x_enc: dict[str, Any]
    y_scale: dict[str, Any]
    y_axis: dict[str, Any]


def frame(grid: HeatmapGrid) -> Frame:
    t0, t_end = ms(grid.t0), ms(grid.t_end)
    # an expression domain: a literal one makes Vega-Lite warn about x/x2 domain conflicts
    x_scale = {"type": "utc", "domain": {"expr": f"[{t0}, {t_end}]"}, "nice": False}
    return Frame(
        t0=t0,
        dt=int(grid.time_step.total_seconds() * 1000),
        t_end=t_end,
        x_enc={
            "field": "t",
            "type": "temporal",
            "scale": x_scale,
            "title": None,
            "axis": axis(labels=False, ticks=False, domain=False, tickCount=8),
        },
        y_scale={"domain": [grid.p0, grid.price_hi], "nice": False, "zero": False},
        y_axis=axis(
            orient="right",
            format=PRICE_FORMAT,
            tickCount=10,
            minExtent=60,
            maxExtent=60,
            title="price (USDT)",
        ),
    )


def candle_layer(candles: pl.DataFrame, fr: Frame) -> tuple[dict[str, Any], pl.DataFrame]:
    """Candles (wick rule and body rect) or, when columns are too narrow (``dense``), the
    close line."""
    rows = candles.select(
        ((pl.col("ts").dt.epoch("ms") - fr.t0) // fr.dt).cast(pl.Int64).alias("i"),
        *[sig(pl.col(c)).alias(c[0]) for c in ("open", "high", "low", "close")],
    ).filter(pl.col("i") >= 0)
    calc = [
        {"calculate": f"{fr.t0} + (datum.i + 0.5) * {fr.dt}", "as": "t"},
        {"calculate": f"{fr.t0} + (datum.i + 0.15) * {fr.dt}", "as": "ta"},
        {"calculate": f"{fr.t0} + (datum.i + 0.85) * {fr.dt}", "as": "tb"},
        {"calculate": TIME_LABEL, "as": "time"},
    ]
    up_down = {"condition": {"test": "datum.c >= datum.o", "value": UP}, "value": DOWN}
    tip = [
        {"field": "time", "type": "nominal", "title": "time (UTC)"},
        {"field": "o", "type": "quantitative", "title": "open", "format": PRICE_FORMAT},
        {"field": "h", "type": "quantitative", "title": "high", "format": PRICE_FORMAT},
        {"field": "l", "type": "quantitative", "title": "low", "format": PRICE_FORMAT},
        {"field": "c", "type": "quantitative", "title": "close", "format": PRICE_FORMAT},
    ]
    layers: list[dict[str, Any]] = [
        {
            "mark": {"type": "rule", "strokeWidth": 1, "opacity": {"expr": "dense ? 0 : 0.95"}},
            "encoding": {
                "x": {"field": "t", "type": "temporal"},
                "y": {"field": "l", "type": "quantitative"},
                "y2": {"field": "h"},
                "color": up_down,
            },
        },
        {
            "mark": {"type": "rect", "opacity": {"expr": "dense ? 0 : 0.95"}},
            "encoding": {
                "x": {"field": "ta", "type": "temporal"},
                "x2": {"field": "tb"},
                "y": {"field": "o", "type": "quantitative"},
                "y2": {"field": "c"},
                "color": up_down,
                "tooltip": tip,
            },
        },
        {
            "mark": {
                "type": "line",
                "color": PRICE,
                "strokeWidth": 1.3,
                "opacity": {"expr": "dense ? 1 : 0"},
            },
            "encoding": {
                "x": {"field": "t", "type": "temporal"},
                "y": {"field": "c", "type": "quantitative"},
            },
        },
    ]
    return {"data": {"name": "candles"}, "transform": calc, "layer": layers}, rows


def realized_layer(realized: pl.DataFrame) -> tuple[dict[str, Any], pl.DataFrame]:
    """Realized liquidations: hollow circles sized by USD at the column's low or high."""
    dots = realized.select(
        pl.col("ts").dt.epoch("ms").alias("t"),
        "side",
        pl.col("usd").round(0),
        sig(pl.col("price")).alias("c"),
    )
    layer = {
        "data": {"name": "realized"},
        "transform": [{"calculate": TIME_LABEL, "as": "time"}],
        "mark": {"type": "circle", "filled": False, "strokeWidth": 1.2, "opacity": 0.9},
        "encoding": {
            "x": {"field": "t", "type": "temporal"},
            "y": {"field": "c", "type": "quantitative"},
            "size": {
                "field": "usd",
                "type": "quantitative",
                "legend": None,
                "scale": {"type": "sqrt", "range": [8, 260]},
            },
            "stroke": {
                "field": "side",
                "type": "nominal",
                "legend": None,
                "scale": {"domain": ["long", "short"], "range": [REALIZED_LONG, REALIZED_SHORT]},
            },
            "tooltip": [
                {"field": "time", "type": "nominal", "title": "time (UTC)"},
                {"field": "side", "type": "nominal", "title": "realized"},
                {
                    "field": "usd",
                    "type": "quantitative",
                    "title": "realized USD",
                    "format": USD_FULL,
                },
            ],
        },
    }
    return layer, dots


def sweep_layer(swept: pl.DataFrame, fr: Frame) -> tuple[dict[str, Any], pl.DataFrame]:
    """Sweeps: triangles where price ran through a cluster, with the realized USD of that bar."""
    data = swept.select(
        pl.col("ts").dt.epoch("ms").alias("t"),
        "side",
        pl.col("usd").round(0),
        sig(pl.col("price")).alias("c"),
        pl.col("realized").round(0)
        if "realized" in swept.columns
        else pl.lit(None).alias("realized"),
    )
    layer = {
        "data": {"name": "sweeps"},
        "transform": [
            {"calculate": f"datum.t + {fr.dt / 2}", "as": "tm"},
            {"calculate": TIME_LABEL, "as": "time"},
            {"calculate": "datum.side == 'long' ? 'longs swept' : 'shorts swept'", "as": "what"},
        ],
        "mark": {
            "type": "point",
            "filled": True,
            "size": 70,
            "opacity": 0.95,
            "stroke": BG,
            "strokeWidth": 0.8,
        },
        "encoding": {
            "x": {"field": "tm", "type": "temporal"},
            "y": {"field": "c", "type": "quantitative"},
            "shape": {
                "field": "side",
                "type": "nominal",
                "legend": None,
                "scale": {"domain": ["long", "short"], "range": ["triangle-up", "triangle-down"]},
            },
            "color": {"value": "#ffe066"},
            "tooltip": [
                {"field": "time", "type": "nominal", "title": "time (UTC)"},
                {"field": "what", "type": "nominal", "title": "sweep"},
                {
                    "field": "usd",
                    "type": "quantitative",
                    "title": "model USD swept",
                    "format": USD_FULL,
                },
                {
                    "field": "realized",
                    "type": "quantitative",
                    "title": "realized USD (this bar)",
                    "format": USD_FULL,
                },
            ],
        },
    }
    return layer, data


def last_price_layers(
    ref_price: float, price_text: str | None, fr: Frame
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The last price: a dashed rule across the chart and a price tag on the price axis,
    outside the plot (it never covers the price line, candles or circles)."""
    rows = [{"c": ref_price, "t": fr.t_end, "label": price_text or f"{ref_price:,.6g}"}]
    tag = {
        "type": "text",
        "align": "left",
        "baseline": "middle",
        "dx": 3,
        "fontSize": 11,
        "fontWeight": 600,
    }
    encoding = {
        "x": {"field": "t", "type": "temporal"},
        "y": {"field": "c", "type": "quantitative"},
        "text": {"field": "label"},
    }
    layers: list[dict[str, Any]] = [
        {
            "data": {"name": "last"},
            "mark": {"type": "rule", "color": PRICE, "strokeDash": [2, 3], "opacity": 0.6},
            "encoding": {"y": {"field": "c", "type": "quantitative"}},
        },
        # a halo in the page colour under the tag hides the axis labels it sits on
        {
            "data": {"name": "last"},
            "mark": {
                **tag,
                "color": BG,
                "stroke": BG,
                "strokeWidth": 7,
                "strokeJoin": "round",
                "clip": False,
                "name": "last_halo",
            },
            "encoding": encoding,
        },
        {
            "data": {"name": "last"},
            "mark": {**tag, "color": PRICE, "clip": False, "name": "last_tag"},
            "encoding": encoding,
        },
    ]
    return layers, rows


def edge_layers(edges: list[dict[str, Any]], grid: HeatmapGrid) -> list[dict[str, Any]]:
    """Key levels outside the price axis as labels stacked at its top and bottom edges, in
    the axis margin kept free for them (see `reports.heatmap_context.axis_window`)."""
    span = grid.price_hi - grid.p0
    # one label line on the shortest chart (340 px), in price units
    line = span * EDGE_LINE_PX / SHORTEST_CHART_PX
    rows = []
    for e in edges:
        if e["edge"] == "top":
            y = grid.price_hi - (e["k"] + 0.7) * line
        else:
            y = grid.p0 + (e["k"] + 0.7) * line
        rows.append({"y": y, "side": e["side"], "label": e["label"]})
    colour = {
        "field": "side",
        "type": "nominal",
        "legend": None,
        "scale": {"domain": ["long", "short"], "range": [REALIZED_LONG, REALIZED_SHORT]},
    }
    text = {
        "type": "text",
        "align": "left",
        "baseline": "middle",
        "fontSize": 10.5,
        "fontWeight": 600,
        "x": 4,
    }
    encoding = {"y": {"field": "y", "type": "quantitative"}, "text": {"field": "label"}}
    return [
        # a dark halo keeps the labels readable on the brightest cells
        {
            "data": {"values": rows},
            "mark": {
                **text,
                "color": BG,
                "stroke": BG,
                "strokeWidth": 3.5,
                "strokeOpacity": 0.85,
                "strokeJoin": "round",
            },
            "encoding": encoding,
        },
        {
            "data": {"values": rows},
            "mark": {**text, "name": "edge_markers"},
            "encoding": {**encoding, "color": colour},
        },
    ]


def context_panels(
    context: pl.DataFrame, fr: Frame, bottom_axis: dict[str, Any]
) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """Volume bars and, when known, the open-interest line under the heatmap."""
    ctx = context.select(
        ((pl.col("ts").dt.epoch("ms") - fr.t0) // fr.dt).cast(pl.Int64).alias("i"),
        sig(pl.col("volume_usd").fill_null(0.0), 3).alias("v"),
        sig(pl.col("oi_usd"), 4).alias("oi"),
    ).filter(pl.col("i") >= 0)
    calc = [
        {"calculate": f"{fr.t0} + datum.i * {fr.dt}", "as": "t"},
        {"calculate": f"{fr.t0} + (datum.i + 0.9) * {fr.dt}", "as": "t2"},
        {"calculate": f"{fr.t0} + (datum.i + 0.5) * {fr.dt}", "as": "tm"},
        {"calculate": TIME_LABEL, "as": "time"},
    ]
    usd_axis = axis(
        orient="right", labelExpr=usd_label_expr(), tickCount=3, minExtent=60, maxExtent=60
    )
    has_oi = ctx["oi"].drop_nulls().len() > 0
    panels: list[dict[str, Any]] = [
        {
            "height": 56,
            "data": {"name": "context"},
            "transform": calc,
            "mark": {"type": "rect", "color": "#56627a"},
            "encoding": {
                "x": {**fr.x_enc, "axis": bottom_axis if not has_oi else fr.x_enc["axis"]},
                "x2": {"field": "t2"},
                "y": {"field": "v", "type": "quantitative", "title": "volume", "axis": usd_axis},
                "tooltip": [
                    {"field": "time", "type": "nominal", "title": "time (UTC)"},
                    {
                        "field": "v",
                        "type": "quantitative",
                        "title": "volume USD",
                        "format": USD_FULL,
                    },
                ],
            },
        }
    ]
    if has_oi:
        panels.append(
            {
                "height": 56,
                "data": {"name": "context"},
                "transform": [*calc, {"filter": "isValid(datum.oi)"}],
                "mark": {"type": "line", "color": "#f5b83d", "strokeWidth": 1.3},
                "encoding": {
                    "x": {
                        "field": "tm",
                        "type": "temporal",
                        "scale": fr.x_enc["scale"],
                        "title": None,
                        "axis": bottom_axis,
                    },
                    "y": {
                        "field": "oi",
                        "type": "quantitative",
                        "title": "open interest",
                        "scale": {"zero": False},
                        "axis": usd_axis,
                    },
                    "tooltip": [
                        {"field": "time", "type": "nominal", "title": "time (UTC)"},
                        {
                            "field": "oi",
                            "type": "quantitative",
                            "title": "open interest USD",
                            "format": USD_FULL,
                        },
                    ],
                },
            }
        )
    return panels, ctx
