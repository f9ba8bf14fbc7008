"""The heatmap's Vega-Lite spec, written as plain dicts (no Altair: this runs for every page).

:func:`heatmap_spec` stacks one small function per layer: the cells (long and short colour
ramps with their colour bars, here), then from :mod:`reports.heatmap_layers` the candles or
close line, realized liquidations, sweeps, edge markers and the last price, the volume and
open-interest panels under it on the same time axis, and the bound controls (here).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from reports import heatmap_layers as hl
from reports.charts import (
    LONG_RAMP,
    MUTED,
    SHORT_RAMP,
    TEXT,
    axis,
    base_config,
    csv_data,
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
        "gradientLength": 170,
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


def _cell_layer(grid: HeatmapGrid, fr: hl.Frame) -> tuple[dict[str, Any], pl.DataFrame, float]:
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
    fr = hl.frame(grid)
    cell_layer, cell_data, top = _cell_layer(grid, fr)
    candle_layer, candle_rows = hl.candle_layer(candles, fr)
    layers: list[dict[str, Any]] = [cell_layer, candle_layer]
    datasets: dict[str, Any] = {"cells": cell_data, "candles": candle_rows}
    if realized is not None and realized.height:
        layer, datasets["realized"] = hl.realized_layer(realized)
        layers.append(layer)
    if swept is not None and swept.height:
        layer, datasets["sweeps"] = hl.sweep_layer(swept, fr)
        layers.append(layer)
    if edges:
        layers += hl.edge_layers(edges, grid)
    if ref_price is not None and math.isfinite(ref_price):
        last_layers, datasets["last"] = hl.last_price_layers(ref_price, price_text, fr)
        layers += last_layers
    panels: list[dict[str, Any]] = [{"height": height, "layer": layers}]
    bottom_axis = axis(format="%b %d %H:%M", tickCount=6, labelOverlap=True, title="time (UTC)")
    if context is not None and context.height:
        ctx_panels, datasets["context"] = hl.context_panels(context, fr, bottom_axis)
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
