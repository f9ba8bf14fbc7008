"""The heatmap's Vega-Lite spec, written as plain dicts (no Altair: this runs for every page).

:func:`heatmap_spec` stacks one small function per layer: the cells (long and short colour
ramps), the candles or close line, realized liquidations, sweeps, the last price, then the
volume and open-interest panels under it on the same time axis, and the bound controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from reports.charts import (
    BG,
    DOWN,
    LONG_RAMP,
    MUTED,
    PRICE,
    PRICE_FORMAT,
    REALIZED_LONG,
    REALIZED_SHORT,
    SHORT_RAMP,
    TEXT,
    TIME_LABEL,
    UP,
    USD_FULL,
    axis,
    base_config,
    csv_data,
    ms,
    sig,
    usd_domain,
    usd_label_expr,
)
from reports.frames import HeatmapGrid
from reports.render import fmt_usd

#: space the JavaScript keeps free beside the plots for the right-hand axes (px)
AXIS_RESERVE = 86
#: fraction of a cell by which heatmap rects overlap their neighbours (hides seams)
OVERLAP = 0.2
#: candles need at least this many pixels per column, else the close line is drawn
CANDLE_MIN_PX = 3.0


@dataclass(frozen=True)
class _Frame:
    """The time and price frame every layer shares: time origin and step (ms), the shared
    x encoding and the price scale."""

    t0: int
    dt: int
    t_end: int
    x_enc: dict[str, Any]
    y_scale: dict[str, Any]
    y_axis: dict[str, Any]


def _frame(grid: HeatmapGrid) -> _Frame:
    t0, t_end = ms(grid.t0), ms(grid.t_end)
    # an expression domain: a literal one makes Vega-Lite warn about x/x2 domain conflicts
    x_scale = {"type": "utc", "domain": {"expr": f"[{t0}, {t_end}]"}, "nice": False}
    return _Frame(
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


def scaled(x: str) -> str:
    """Vega expression: USD ``x`` on the colour axis of the chosen scale (``cscale``)."""
    return (
        f"(cscale == 'log' ? log(max({x}, 1)) / LN10 : cscale == 'sqrt' ? sqrt(max({x}, 0)) : {x})"
    )


def unscaled(v: str) -> str:
    """Vega expression: the USD of colour-axis value ``v`` (inverse of :func:`scaled`)."""
    return f"(cscale == 'log' ? pow(10, {v}) : cscale == 'sqrt' ? {v} * {v} : {v})"


def _colour_bar(title: str) -> dict[str, Any]:
    """A colour bar with USD ticks above the heatmap (labels in the chosen scale's USD)."""
    return {
        "title": title,
        "orient": "top",
        "direction": "horizontal",
        "gradientLength": 130,
        "gradientThickness": 9,
        "tickCount": 4,
        "labelExpr": usd_label_expr(unscaled("datum.value")),
        "labelColor": MUTED,
        "titleColor": TEXT,
        "labelFontSize": 10,
        "titleFontSize": 11,
        "titleFontWeight": "normal",
        "titleOrient": "left",
        "titleAnchor": "end",
        "labelOverlap": True,
        "offset": 4,
    }


def _cell_layer(grid: HeatmapGrid, fr: _Frame) -> tuple[dict[str, Any], pl.DataFrame, float]:
    """The cells: long and short rects on colour ramps from dark (little) to bright (a lot),
    each with a colour bar in USD. The ramp's top is ``clip`` x the 99th percentile of the
    shown leverage group (the leverage filter rescales), its bottom the threshold ``floor``
    (cells under it are not drawn); ``cscale`` maps USD to colour by sqrt, linear or log
    (a linear scale over the transformed value: Vega-Lite scale types cannot change at run
    time). Returns the layer and its compact data (USD in integer units of ``unit``)."""
    cells = grid.cells
    has_bands = "long_low" in cells.columns
    top = float(pl.concat([cells["long_usd"], cells["short_usd"]]).max() or 0.0)  # type: ignore[arg-type]
    unit = 10 ** max(0, math.floor(math.log10(top)) - 4) if top > 0 else 1
    # with the leverage split, "all" is the sum of the groups (the total columns would only
    # repeat it: a third of the bytes)
    cols = {} if has_bands else {"l": "long_usd", "s": "short_usd"}
    if has_bands:
        for k, g in enumerate(("low", "medium", "high")):
            cols[f"l{k}"] = f"long_{g}"
            cols[f"s{k}"] = f"short_{g}"
    data = cells.select(
        "i",
        "j",
        *[(pl.col(src) / unit).round(0).cast(pl.Int64).alias(k) for k, src in cols.items()],
    )
    q = {k: usd_domain(cells[src])[1] for k, src in cols.items()}
    q["l"] = usd_domain(cells["long_usd"])[1]
    q["s"] = usd_domain(cells["short_usd"])[1]

    def pick(side: str) -> str:
        if not has_bands:
            return f"datum.{side} * {unit}"
        return (
            f"(lev == 'low' ? datum.{side}0 : lev == 'medium' ? datum.{side}1 : "
            f"lev == 'high' ? datum.{side}2 : datum.{side}0 + datum.{side}1 + datum.{side}2)"
            f" * {unit}"
        )

    def dom(side: str) -> str:
        if not has_bands:
            return f"clip * {q[side]!r}"
        return (
            f"clip * (lev == 'low' ? {q[side + '0']!r} : lev == 'medium' ? {q[side + '1']!r}"
            f" : lev == 'high' ? {q[side + '2']!r} : {q[side]!r})"
        )

    calc = [
        {"calculate": f"{fr.t0} + datum.i * {fr.dt}", "as": "t"},
        {"calculate": f"{fr.t0} + (datum.i + {1 + OVERLAP}) * {fr.dt}", "as": "t2"},
        {"calculate": f"{grid.p0!r} + datum.j * {grid.price_step!r}", "as": "p"},
        {"calculate": f"{grid.p0!r} + (datum.j + {1 + OVERLAP}) * {grid.price_step!r}", "as": "p2"},
        {"calculate": pick("l"), "as": "L"},
        {"calculate": pick("s"), "as": "S"},
        # the threshold control: cells under `floor` USD are not drawn
        {"filter": "datum.L >= max(floor, 1e-9) || datum.S >= max(floor, 1e-9)"},
        {"calculate": scaled("datum.L"), "as": "Lc"},
        {"calculate": scaled("datum.S"), "as": "Sc"},
    ]

    def rects(side: str, field: str, ramp: list[str], keep: str, title: str) -> dict[str, Any]:
        top = dom(side)
        # log: two decades under the top (or the threshold, when higher) to the top
        low = f"(cscale == 'log' ? {scaled(f'max(floor, {top} / 100)')} : {scaled('floor')})"
        return {
            "transform": [{"filter": keep}],
            # the raw datum: liqheat.js formats it on hover (per-cell tooltip text would
            # cost a second of drawing for a full grid)
            "mark": {"type": "rect", "strokeWidth": 0, "tooltip": {"content": "data"}},
            "encoding": {
                "x": fr.x_enc,
                "x2": {"field": "t2"},
                "y": {"field": "p", "type": "quantitative", "scale": fr.y_scale, "axis": fr.y_axis},
                "y2": {"field": "p2"},
                "color": {
                    "field": field,
                    "type": "quantitative",
                    "scale": {
                        "type": "linear",
                        "domain": {"expr": f"[{low}, {scaled(top)}]"},
                        "range": ramp,
                        "clamp": True,
                        "zero": False,
                        "nice": False,
                    },
                    "legend": _colour_bar(title),
                },
            },
        }

    longs = rects("l", "Lc", LONG_RAMP, "datum.L >= datum.S && datum.L >= floor", "longs USD")
    longs["params"] = [
        {"name": "zoom", "select": {"type": "interval", "encodings": ["x", "y"]}, "bind": "scales"}
    ]
    shorts = rects("s", "Sc", SHORT_RAMP, "datum.S > datum.L && datum.S >= floor", "shorts USD")
    layer = {
        "data": {"name": "cells"},
        "transform": calc,
        "layer": [longs, shorts],
        "resolve": {"scale": {"color": "independent"}},
    }
    return layer, data, max(q["l"], q["s"])


def _candle_layer(candles: pl.DataFrame, fr: _Frame) -> tuple[dict[str, Any], pl.DataFrame]:
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


def _realized_layer(realized: pl.DataFrame) -> tuple[dict[str, Any], pl.DataFrame]:
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


def _sweep_layer(swept: pl.DataFrame, fr: _Frame) -> tuple[dict[str, Any], pl.DataFrame]:
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


def _last_price_layers(
    ref_price: float, price_text: str | None, fr: _Frame
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


def _edge_layers(edges: list[dict[str, Any]], grid: HeatmapGrid) -> list[dict[str, Any]]:
    """Key levels outside the price axis as labels stacked at its top and bottom edges, in
    the axis margin kept free for them (see `reports.heatmap_context.axis_window`)."""
    span = grid.price_hi - grid.p0
    # one label line on the shortest chart (340 px), in price units
    line = span * 13.0 / 340.0
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
    return [
        {
            "data": {"values": rows},
            "mark": {
                "type": "text",
                "align": "left",
                "baseline": "middle",
                "fontSize": 10.5,
                "fontWeight": 600,
                "x": 4,
                "name": "edge_markers",
            },
            "encoding": {
                "y": {"field": "y", "type": "quantitative"},
                "text": {"field": "label"},
                "color": colour,
            },
        }
    ]


def _context_panels(
    context: pl.DataFrame, fr: _Frame, bottom_axis: dict[str, Any]
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


def nice_thresholds(top: float) -> list[float]:
    """Choices of the threshold control: 0 and 1-2-5 USD values from ~1 % to ~50 % of
    ``top`` (the colour ramp's top).

    >>> nice_thresholds(1.3e8)
    [0.0, 1000000.0, 2000000.0, 5000000.0, 10000000.0, 20000000.0, 50000000.0]
    """
    if not top > 0 or not math.isfinite(top):
        return [0.0]
    out = [0.0]
    mag = 10 ** math.floor(math.log10(top / 100))
    for k in range(4):
        for m in (1, 2, 5):
            v = float(m * mag * 10**k)
            if top / 100 * 0.7 <= v <= top / 2:
                out.append(v)
    return out


def _controls(has_bands: bool, top: float) -> list[dict[str, Any]]:
    """Top-level params: ``dense`` (set by liqheat.js), the colour clip, the threshold (hide
    cells under X USD), the colour scale (sqrt, linear, log) and, with the leverage split,
    the leverage filter."""
    floors = nice_thresholds(top)
    params: list[dict[str, Any]] = [
        {"name": "dense", "value": False},
        {
            "name": "clip",
            "value": 1,
            "bind": {
                "input": "range",
                "min": 0.05,
                "max": 1,
                "step": 0.05,
                "name": "colour clip (× 99th percentile) ",
            },
        },
        {
            "name": "floor",
            "value": 0,
            "bind": {
                "input": "select",
                "options": floors,
                "labels": ["show all"] + [f"hide under {fmt_usd(v)}" for v in floors[1:]],
                "name": "threshold ",
            },
        },
        {
            "name": "cscale",
            "value": "sqrt",
            "bind": {
                "input": "select",
                "options": ["sqrt", "linear", "log"],
                "labels": ["sqrt scale", "linear scale", "log scale"],
                "name": "colour ",
            },
        },
    ]
    if has_bands:
        params.append(
            {
                "name": "lev",
                "value": "all",
                "bind": {
                    "input": "select",
                    "options": ["all", "high", "medium", "low"],
                    "labels": ["all leverage", "high (> 50x)", "medium (10-50x)", "low (≤ 10x)"],
                    "name": "leverage ",
                },
            }
        )
    return params


def heatmap_spec(
    grid: HeatmapGrid,
    candles: pl.DataFrame,
    *,
    ref_price: float | None,
    last_ts: datetime | None,
    title: str,
    subtitle: str,
    context: pl.DataFrame | None = None,
    realized: pl.DataFrame | None = None,
    swept: pl.DataFrame | None = None,
    edges: list[dict[str, Any]] | None = None,
    price_text: str | None = None,
    height: int = 460,
) -> dict[str, Any]:
    """Vega-Lite spec: time x price heatmap of estimated liquidation USD with candles (or the
    close line where candles would be too dense), realized liquidations, sweeps and the last
    price (a tag on the price axis, ``price_text`` at the instrument's tick), key levels
    outside the price axis as labelled edge markers (``edges``, see
    `reports.heatmap_context.edge_markers`), over volume and open-interest panels sharing
    its time axis.

    ``grid.cells`` has ``long_usd``/``short_usd`` and, when the run stored its leverage split,
    ``long_low`` .. ``short_high``: then a leverage filter (all/low/medium/high) is bound
    under the chart. Controls: the colour clip, a threshold (hide cells under X USD) and the
    colour scale (sqrt, linear, log); a colour bar per side in USD; zoom and pan with the
    mouse wheel and drag (double-click resets). Widths are set by ``liqheat.js`` to fit the
    page (``usermeta.liqheat``).
    """
    fr = _frame(grid)
    cell_layer, cell_data, top = _cell_layer(grid, fr)
    candle_layer, candle_rows = _candle_layer(candles, fr)
    layers: list[dict[str, Any]] = [cell_layer, candle_layer]
    datasets: dict[str, Any] = {"cells": cell_data, "candles": candle_rows}
    if realized is not None and realized.height:
        layer, datasets["realized"] = _realized_layer(realized)
        layers.append(layer)
    if swept is not None and swept.height:
        layer, datasets["sweeps"] = _sweep_layer(swept, fr)
        layers.append(layer)
    if edges:
        layers += _edge_layers(edges, grid)
    if ref_price is not None and math.isfinite(ref_price):
        last_layers, datasets["last"] = _last_price_layers(ref_price, price_text, fr)
        layers += last_layers
    panels: list[dict[str, Any]] = [{"height": height, "layer": layers}]
    bottom_axis = axis(format="%b %d %H:%M", tickCount=6, labelOverlap=True, title="time (UTC)")
    if context is not None and context.height:
        ctx_panels, datasets["context"] = _context_panels(context, fr, bottom_axis)
        panels += ctx_panels
    else:
        longs = cell_layer["layer"][0]
        longs["encoding"]["x"] = {**fr.x_enc, "axis": bottom_axis}
    spec: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        **base_config(),
        "title": {"text": title, "subtitle": subtitle},
        "params": _controls("long_low" in grid.cells.columns, top),
        "datasets": datasets,
        "vconcat": panels,
        "spacing": 4,
        "resolve": {"scale": {"x": "shared", "color": "independent"}},
        "usermeta": {
            "liqheat": {
                "reserve": AXIS_RESERVE,
                "columns": grid.columns,
                "price_step": grid.price_step,
                "candle_px": CANDLE_MIN_PX,
                "phone_height": 340,
                "phone_legend": 110,
                "axis": [grid.p0, grid.price_hi],
                "edges": [e["price"] for e in edges or []],
            }
        },
    }
    return _csv_datasets(spec)


def _csv_datasets(spec: dict[str, Any]) -> dict[str, Any]:
    """Turn frame datasets into inline CSV: named datasets must be arrays, so the CSV-bearing
    layers reference their data inline instead (``data: {values, format}``)."""
    datasets = spec.pop("datasets")
    inline: dict[str, Any] = {}
    for name, value in datasets.items():
        if isinstance(value, pl.DataFrame):
            inline[name] = csv_data(value)
        else:
            inline[name] = {"values": value}

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and set(data) == {"name"} and data["name"] in inline:
                node["data"] = inline[data["name"]]
            for v in node.values():
                fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)

    fix(spec)
    return spec
