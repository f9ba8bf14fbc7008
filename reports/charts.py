"""Chart builders: pure functions from pre-aggregated polars frames to Altair charts.

No I/O here. Frames come from :mod:`reports.frames`; the specs are embedded into the pages
with ``|tojson`` and rendered by vega-embed, and the heatmap is also written as PNG.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, cast

import altair as alt
import polars as pl

from reports.frames import HeatmapGrid, MapView

# palette shared with the page stylesheet
BG = "#0b0f17"
PANEL = "#111723"
GRID = "#1c2432"
TEXT = "#c9d2de"
MUTED = "#7d889a"
LONG = "#22c7e8"
SHORT = "#f5487f"
PRICE = "#f4f1e8"
#: realized liquidation markers (hollow circles over the heatmap)
REALIZED_LONG = "#e8fbff"
REALIZED_SHORT = "#ffe6a8"
#: colour ramps from near-background to bright: longs cyan, shorts rose/amber
LONG_RAMP = ["#0d1b2a", "#0b4f6c", "#0f8fb8", "#35d0f0", "#b9f3ff"]
SHORT_RAMP = ["#1d0f1c", "#6b1740", "#c22a63", "#ff6a86", "#ffd6a5"]

FONT = "Inter, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
USD_FORMAT = "$,.3~s"
USD_FULL = "$,.0f"
TIME_FORMAT = "%Y-%m-%d %H:%M UTC"
#: tooltip time label computed in Vega (``formatType="utc"`` compiles to Vega's ``utc()``
#: date constructor in Vega-Lite 6, which shows NaN)
TIME_LABEL = f"utcFormat(datum.t, '{TIME_FORMAT}')"

#: heatmap cell records carry short field names to keep pages small
HEAT_FIELDS = ("i", "j", "l", "s")
#: fraction of a cell by which heatmap rects overlap their neighbours (hides seams)
OVERLAP = 0.2


def dark_config(chart: Any) -> Any:
    """Apply the dark trading-tool theme to a top-level chart."""
    return (
        chart.configure(background=BG, font=FONT, padding={"left": 8, "right": 8, "top": 8})
        .configure_view(stroke=None, fill=PANEL)
        .configure_axis(
            domainColor=GRID,
            gridColor=GRID,
            gridOpacity=0.6,
            tickColor=GRID,
            labelColor=MUTED,
            titleColor=TEXT,
            labelFontSize=11,
            titleFontSize=11,
            titleFontWeight="normal",
            labelFont=FONT,
            titleFont=FONT,
        )
        .configure_legend(
            labelColor=MUTED,
            titleColor=TEXT,
            labelFontSize=11,
            titleFontSize=11,
            titleFontWeight="normal",
            gradientLength=160,
            gradientThickness=10,
            titlePadding=8,
            labelFont=FONT,
            titleFont=FONT,
        )
        .configure_title(color=TEXT, font=FONT, fontSize=13, anchor="start", fontWeight="normal")
    )


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _usd_domain(values: pl.Series) -> list[float]:
    """Colour domain [0, q]: the 99th percentile, so one huge cell does not wash out the rest."""
    positive = values.filter(values > 0)
    if positive.len() == 0:
        return [0.0, 1.0]
    q = positive.quantile(0.99, interpolation="higher")
    return [0.0, float(q) if q is not None and q > 0 else 1.0]


def inline_csv(frame: pl.DataFrame) -> alt.InlineData:
    """Embed ``frame`` as inline CSV text with explicit numeric parsing.

    A single string keeps specs small (a third of JSON records) and keeps Altair from
    deep-copying and schema-validating every row, which takes seconds for a 300 x 200 grid.
    Columns must be numeric or plain strings without commas.
    """
    parse = {
        name: "number" if dtype.is_numeric() else "string" for name, dtype in frame.schema.items()
    }
    return alt.InlineData(
        values=frame.write_csv(float_precision=None),
        format={"type": "csv", "parse": parse},
    )


def heatmap_frame(grid: HeatmapGrid) -> pl.DataFrame:
    """Return the grid cells as compact columns ``i, j, l, s`` (USD rounded to 3 digits)."""

    def r3(x: pl.Expr) -> pl.Expr:
        # three significant digits: plenty for a colour, a third of the bytes
        mag = pl.when(x > 0).then(10 ** (x.log10().floor() - 2)).otherwise(1.0)
        return ((x / mag).round(0) * mag).round(0)

    frame = grid.cells.select("i", "j", l=r3(pl.col("long_usd")), s=r3(pl.col("short_usd")))
    return frame.with_columns(pl.col("l", "s").cast(pl.Int64))


#: leverage band colours of the liquidation map (lowest leverage first) and the sides
BAND_COLOURS = {
    "<=10x": "#3d5a80",
    "10-25x": "#6a7fdb",
    "25-50x": "#a06cd5",
    "50-100x": "#e0a458",
    ">100x": "#ffd166",
    "long": LONG,
    "short": SHORT,
}
UP = "#2fd68a"
DOWN = "#ff5c6c"
#: candles need at least this many pixels per column, else the close line is drawn
CANDLE_MIN_PX = 3.0
PRICE_FORMAT = ",.6~g"


def usd_label_expr(field: str = "datum.value") -> str:
    """Vega expression formatting USD the way traders write it: $5B, $12.5M, $800K, $12.

    (d3's SI format would print $5G.)
    """
    a = f"abs({field})"
    return (
        f"({field} < 0 ? '-$' : '$') + ({a} >= 1e9 ? format({a} / 1e9, '.3~r') + 'B' : "
        f"{a} >= 1e6 ? format({a} / 1e6, '.3~r') + 'M' : "
        f"{a} >= 1e3 ? format({a} / 1e3, '.3~r') + 'K' : format({a}, '.0f'))"
    )


def _csv(frame: pl.DataFrame) -> dict[str, Any]:
    """Inline CSV data (a third of JSON records' bytes; parsed as numbers by Vega)."""
    parse = {n: "number" if d.is_numeric() else "string" for n, d in frame.schema.items()}
    return {
        "values": frame.write_csv(float_precision=None),
        "format": {"type": "csv", "parse": parse},
    }


def _sig(x: pl.Expr, digits: int = 6) -> pl.Expr:
    """Round to ``digits`` significant digits (prices on the page: a few bytes each)."""
    mag = pl.when(x.abs() > 0).then(10 ** (x.abs().log10().floor() - (digits - 1))).otherwise(1.0)
    return (x / mag).round(0) * mag


def _axis(**extra: Any) -> dict[str, Any]:
    base = {
        "domainColor": GRID,
        "gridColor": GRID,
        "gridOpacity": 0.6,
        "tickColor": GRID,
        "labelColor": MUTED,
        "titleColor": TEXT,
        "labelFontSize": 11,
        "titleFontSize": 11,
        "titleFontWeight": "normal",
    }
    return {**base, **extra}


def _config() -> dict[str, Any]:
    return {
        "background": BG,
        "padding": {"left": 4, "right": 4, "top": 6, "bottom": 4},
        "config": {
            "font": FONT,
            "view": {"stroke": None, "fill": PANEL},
            "title": {
                "color": TEXT,
                "fontSize": 12,
                "anchor": "start",
                "fontWeight": "normal",
                "subtitleColor": MUTED,
                "subtitleFontSize": 11,
            },
        },
    }


#: space the JavaScript keeps free beside the plots for the right-hand axes (px)
AXIS_RESERVE = 78


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
    height: int = 460,
) -> dict[str, Any]:
    """Vega-Lite spec: time x price heatmap of estimated liquidation USD with candles (or the
    close line where candles would be too dense), realized liquidations, sweeps and the last
    price, over volume and open-interest panels sharing its time axis.

    A plain dict (no Altair object tree or schema validation: this runs for every page).
    ``grid.cells`` has ``long_usd``/``short_usd`` and, when the run stored its leverage split,
    ``long_low`` .. ``short_high``: then a leverage filter (all/low/medium/high) is bound
    under the chart. An intensity control clips the colour scales; zoom and pan with the
    mouse wheel and drag (double-click resets). Widths are set by ``liqheat.js`` to fit the
    page (``usermeta.liqheat``).
    """
    t0 = _ms(grid.t0)
    dt = int(grid.time_step.total_seconds() * 1000)
    t_end = _ms(grid.t_end)
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
    q = {k: _usd_domain(cells[src])[1] for k, src in cols.items()}
    q["l"] = _usd_domain(cells["long_usd"])[1]
    q["s"] = _usd_domain(cells["short_usd"])[1]

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
            return f"[0, clip * {q[side]!r}]"
        return (
            f"[0, clip * (lev == 'low' ? {q[side + '0']!r} : lev == 'medium' ? {q[side + '1']!r}"
            f" : lev == 'high' ? {q[side + '2']!r} : {q[side]!r})]"
        )

    # an expression domain: a literal one makes Vega-Lite warn about x/x2 domain conflicts
    x_scale = {"type": "utc", "domain": {"expr": f"[{t0}, {t_end}]"}, "nice": False}
    x_enc = {
        "field": "t",
        "type": "temporal",
        "scale": x_scale,
        "title": None,
        "axis": _axis(labels=False, ticks=False, domain=False, tickCount=8),
    }
    y_scale = {"domain": [grid.p0, grid.price_hi], "nice": False, "zero": False}
    y_axis = _axis(
        orient="right",
        format=PRICE_FORMAT,
        tickCount=10,
        minExtent=60,
        maxExtent=60,
        title="price (USDT)",
    )
    calc = [
        {"calculate": f"{t0} + datum.i * {dt}", "as": "t"},
        {"calculate": f"{t0} + (datum.i + {1 + OVERLAP}) * {dt}", "as": "t2"},
        {"calculate": f"{grid.p0!r} + datum.j * {grid.price_step!r}", "as": "p"},
        {"calculate": f"{grid.p0!r} + (datum.j + {1 + OVERLAP}) * {grid.price_step!r}", "as": "p2"},
        {"calculate": pick("l"), "as": "L"},
        {"calculate": pick("s"), "as": "S"},
        {"filter": "datum.L > 0 || datum.S > 0"},
    ]

    def rects(side: str, field: str, ramp: list[str], keep: str) -> dict[str, Any]:
        layer: dict[str, Any] = {
            "transform": [{"filter": keep}],
            # the raw datum: liqheat.js formats it on hover (per-cell tooltip text would
            # cost a second of drawing for a full grid)
            "mark": {"type": "rect", "strokeWidth": 0, "tooltip": {"content": "data"}},
            "encoding": {
                "x": x_enc,
                "x2": {"field": "t2"},
                "y": {"field": "p", "type": "quantitative", "scale": y_scale, "axis": y_axis},
                "y2": {"field": "p2"},
                "color": {
                    "field": field,
                    "type": "quantitative",
                    "scale": {
                        "type": "sqrt",
                        "domain": {"expr": dom(side)},
                        "range": ramp,
                        "clamp": True,
                    },
                    "legend": None,
                },
            },
        }
        return layer

    longs = rects("l", "L", LONG_RAMP, "datum.L >= datum.S")
    longs["params"] = [
        {"name": "zoom", "select": {"type": "interval", "encodings": ["x", "y"]}, "bind": "scales"}
    ]
    shorts = rects("s", "S", SHORT_RAMP, "datum.S > datum.L")
    candle_rows = candles.select(
        ((pl.col("ts").dt.epoch("ms") - t0) // dt).cast(pl.Int64).alias("i"),
        *[_sig(pl.col(c)).alias(c[0]) for c in ("open", "high", "low", "close")],
    ).filter(pl.col("i") >= 0)
    candle_calc = [
        {"calculate": f"{t0} + (datum.i + 0.5) * {dt}", "as": "t"},
        {"calculate": f"{t0} + (datum.i + 0.15) * {dt}", "as": "ta"},
        {"calculate": f"{t0} + (datum.i + 0.85) * {dt}", "as": "tb"},
        {"calculate": TIME_LABEL, "as": "time"},
    ]
    up_down = {"condition": {"test": "datum.c >= datum.o", "value": UP}, "value": DOWN}
    candle_tip = [
        {"field": "time", "type": "nominal", "title": "time (UTC)"},
        {"field": "o", "type": "quantitative", "title": "open", "format": PRICE_FORMAT},
        {"field": "h", "type": "quantitative", "title": "high", "format": PRICE_FORMAT},
        {"field": "l", "type": "quantitative", "title": "low", "format": PRICE_FORMAT},
        {"field": "c", "type": "quantitative", "title": "close", "format": PRICE_FORMAT},
    ]
    candle_layers: list[dict[str, Any]] = [
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
                "tooltip": candle_tip,
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
    layers: list[dict[str, Any]] = [
        {
            "data": {"name": "cells"},
            "transform": calc,
            "layer": [longs, shorts],
            "resolve": {"scale": {"color": "independent"}},
        },
        {"data": {"name": "candles"}, "transform": candle_calc, "layer": candle_layers},
    ]
    datasets: dict[str, Any] = {"cells": data, "candles": candle_rows}
    if realized is not None and realized.height:
        dots = realized.select(
            pl.col("ts").dt.epoch("ms").alias("t"),
            "side",
            pl.col("usd").round(0),
            _sig(pl.col("price")).alias("c"),
        )
        datasets["realized"] = dots
        layers.append(
            {
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
                        "scale": {
                            "domain": ["long", "short"],
                            "range": [REALIZED_LONG, REALIZED_SHORT],
                        },
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
        )
    if swept is not None and swept.height:
        datasets["sweeps"] = swept.select(
            pl.col("ts").dt.epoch("ms").alias("t"),
            "side",
            pl.col("usd").round(0),
            _sig(pl.col("price")).alias("c"),
            pl.col("realized").round(0)
            if "realized" in swept.columns
            else pl.lit(None).alias("realized"),
        )
        layers.append(
            {
                "data": {"name": "sweeps"},
                "transform": [
                    {"calculate": f"datum.t + {dt / 2}", "as": "tm"},
                    {"calculate": TIME_LABEL, "as": "time"},
                    {
                        "calculate": "datum.side == 'long' ? 'longs swept' : 'shorts swept'",
                        "as": "what",
                    },
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
                        "scale": {
                            "domain": ["long", "short"],
                            "range": ["triangle-up", "triangle-down"],
                        },
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
        )
    if ref_price is not None and math.isfinite(ref_price):
        when = last_ts.astimezone(UTC).strftime("%m-%d %H:%M UTC") if last_ts else ""
        label = f"last {ref_price:,.6g} · {when}".strip(" ·")
        datasets["last"] = [{"c": ref_price, "t": t_end, "label": label}]
        layers.append(
            {
                "data": {"name": "last"},
                "mark": {"type": "rule", "color": PRICE, "strokeDash": [2, 3], "opacity": 0.6},
                "encoding": {"y": {"field": "c", "type": "quantitative"}},
            }
        )
        layers.append(
            {
                "data": {"name": "last"},
                "mark": {
                    "type": "text",
                    "color": PRICE,
                    "align": "right",
                    "dy": -7,
                    "fontSize": 11,
                    "fontWeight": 600,
                },
                "encoding": {
                    "x": {"field": "t", "type": "temporal"},
                    "y": {"field": "c", "type": "quantitative"},
                    "text": {"field": "label"},
                },
            }
        )
    panels: list[dict[str, Any]] = [{"height": height, "layer": layers}]
    bottom_axis = _axis(format="%b %d %H:%M", tickCount=6, labelOverlap=True, title="time (UTC)")
    if context is not None and context.height:
        ctx = context.select(
            ((pl.col("ts").dt.epoch("ms") - t0) // dt).cast(pl.Int64).alias("i"),
            _sig(pl.col("volume_usd").fill_null(0.0), 3).alias("v"),
            _sig(pl.col("oi_usd"), 4).alias("oi"),
        ).filter(pl.col("i") >= 0)
        datasets["context"] = ctx
        ctx_calc = [
            {"calculate": f"{t0} + datum.i * {dt}", "as": "t"},
            {"calculate": f"{t0} + (datum.i + 0.9) * {dt}", "as": "t2"},
            {"calculate": f"{t0} + (datum.i + 0.5) * {dt}", "as": "tm"},
            {"calculate": TIME_LABEL, "as": "time"},
        ]
        usd_axis = _axis(
            orient="right", labelExpr=usd_label_expr(), tickCount=3, minExtent=60, maxExtent=60
        )
        has_oi = ctx["oi"].drop_nulls().len() > 0
        panels.append(
            {
                "height": 56,
                "data": {"name": "context"},
                "transform": ctx_calc,
                "mark": {"type": "rect", "color": "#56627a"},
                "encoding": {
                    "x": {**x_enc, "axis": bottom_axis if not has_oi else x_enc["axis"]},
                    "x2": {"field": "t2"},
                    "y": {
                        "field": "v",
                        "type": "quantitative",
                        "title": "volume",
                        "axis": usd_axis,
                    },
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
        )
        if has_oi:
            panels.append(
                {
                    "height": 56,
                    "data": {"name": "context"},
                    "transform": [*ctx_calc, {"filter": "isValid(datum.oi)"}],
                    "mark": {"type": "line", "color": "#f5b83d", "strokeWidth": 1.3},
                    "encoding": {
                        "x": {
                            "field": "tm",
                            "type": "temporal",
                            "scale": x_scale,
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
    else:
        longs["encoding"]["x"] = {**x_enc, "axis": bottom_axis}
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
    spec: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        **_config(),
        "title": {"text": title, "subtitle": subtitle},
        "params": params,
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
            inline[name] = _csv(value)
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


def liquidation_map_spec(
    view: MapView, *, title: str, subtitle: str, height: int = 300
) -> dict[str, Any]:
    """Vega-Lite spec of a liquidation map: bars stacked by leverage band (longs below the
    reference price, shorts above) and the cumulative curves on a second axis.

    ``view`` comes from :func:`reports.frames.map_view`. A plain dict, widths set by
    ``liqheat.js``.
    """
    bars = view.bars.with_columns(
        k=pl.when(pl.col("band") == "all").then(pl.col("side")).otherwise(pl.col("band")),
        usd=pl.col("usd").round(0),
        y0=pl.col("y0").round(0),
        y1=pl.col("y1").round(0),
        p0=_sig(pl.col("p0"), 8),
        p1=_sig(pl.col("p1"), 8),
    ).drop("band")
    curves = view.curves.with_columns(pl.col("cum").round(0), _sig(pl.col("p"), 8))
    x_scale = {"domain": [view.lo, view.hi], "nice": False, "zero": False}
    usd_axis = _axis(labelExpr=usd_label_expr(), tickCount=5)
    keys = list(BAND_COLOURS)
    spec: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        **_config(),
        "title": {"text": title, "subtitle": subtitle},
        "height": height,
        "layer": [
            {
                "data": _csv(bars),
                "transform": [
                    {
                        "calculate": "datum.k == 'long' || datum.k == 'short' ? 'all' : datum.k",
                        "as": "band",
                    }
                ],
                "params": [
                    {
                        "name": "mapzoom",
                        "select": {"type": "interval", "encodings": ["x"]},
                        "bind": "scales",
                    }
                ],
                "mark": {"type": "rect", "opacity": 0.92},
                "encoding": {
                    "x": {
                        "field": "p0",
                        "type": "quantitative",
                        "scale": x_scale,
                        "title": "price (USDT)",
                        "axis": _axis(format=PRICE_FORMAT, tickCount=8),
                    },
                    "x2": {"field": "p1"},
                    "y": {
                        "field": "y0",
                        "type": "quantitative",
                        "title": "USD per bucket",
                        "axis": usd_axis,
                    },
                    "y2": {"field": "y1"},
                    "color": {
                        "field": "k",
                        "type": "nominal",
                        "legend": None,
                        "scale": {"domain": keys, "range": [BAND_COLOURS[k] for k in keys]},
                    },
                    "tooltip": [
                        {"field": "side", "type": "nominal"},
                        {"field": "band", "type": "nominal", "title": "leverage"},
                        {
                            "field": "p0",
                            "type": "quantitative",
                            "title": "from price",
                            "format": PRICE_FORMAT,
                        },
                        {
                            "field": "p1",
                            "type": "quantitative",
                            "title": "to price",
                            "format": PRICE_FORMAT,
                        },
                        {
                            "field": "usd",
                            "type": "quantitative",
                            "title": "USD",
                            "format": USD_FULL,
                        },
                    ],
                },
            },
            {
                "data": _csv(curves),
                "mark": {"type": "line", "strokeWidth": 2, "interpolate": "step-after"},
                "encoding": {
                    "x": {"field": "p", "type": "quantitative", "scale": x_scale},
                    "y": {
                        "field": "cum",
                        "type": "quantitative",
                        "title": "cumulative USD",
                        "axis": _axis(
                            labelExpr=usd_label_expr(), orient="right", grid=False, tickCount=5
                        ),
                    },
                    "color": {
                        "field": "side",
                        "type": "nominal",
                        "legend": None,
                        "scale": {"domain": ["long", "short"], "range": [LONG, SHORT]},
                    },
                    "detail": {"field": "side"},
                    "tooltip": [
                        {"field": "side", "type": "nominal"},
                        {
                            "field": "p",
                            "type": "quantitative",
                            "title": "price",
                            "format": PRICE_FORMAT,
                        },
                        {
                            "field": "cum",
                            "type": "quantitative",
                            "title": "liquidated on the way",
                            "format": USD_FULL,
                        },
                    ],
                },
            },
            {
                "data": {"values": [{"p": view.ref_price, "label": f"now {view.ref_price:,.6g}"}]},
                "mark": {"type": "rule", "color": PRICE, "strokeDash": [4, 3]},
                "encoding": {"x": {"field": "p", "type": "quantitative"}},
            },
            {
                "data": {"values": [{"p": view.ref_price, "label": f"now {view.ref_price:,.6g}"}]},
                "mark": {
                    "type": "text",
                    "color": PRICE,
                    "align": "left",
                    "dx": 5,
                    "dy": 4,
                    "baseline": "top",
                    "fontSize": 11,
                },
                "encoding": {
                    "x": {"field": "p", "type": "quantitative"},
                    "y": {"value": 0},
                    "text": {"field": "label"},
                },
            },
        ],
        "resolve": {"scale": {"y": "independent", "color": "independent"}},
        "usermeta": {"liqheat": {"reserve": 130}},
    }
    return spec


def sparkline_chart(
    path: pl.DataFrame, *, width: int | str = "container", height: int = 56
) -> alt.Chart:
    """Tiny close-price area (columns ts, close) for the index page, coloured by direction;
    as wide as its container by default."""
    values = path.select(
        pl.col("ts").dt.epoch("ms").alias("t"), pl.col("close").round(8).alias("c")
    )
    up = values.height < 2 or values["c"][-1] >= values["c"][0]
    colour = LONG if up else SHORT
    lo = float(values["c"].min()) if values.height else 0.0  # type: ignore[arg-type]
    hi = float(values["c"].max()) if values.height else 1.0  # type: ignore[arg-type]
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    chart = (
        alt.Chart(inline_csv(values))
        .mark_area(
            line={"color": colour, "strokeWidth": 1.5},
            color={
                "gradient": "linear",
                "stops": [{"color": PANEL, "offset": 0}, {"color": colour, "offset": 1}],
                "x1": 1,
                "x2": 1,
                "y1": 1,
                "y2": 0,
            },
            opacity=0.45,
        )
        .encode(
            x=alt.X("t:T", axis=None, scale=alt.Scale(type="utc")),
            y=alt.Y("c:Q", axis=None, scale=alt.Scale(domain=[lo, hi], zero=False, nice=False)),
            y2=alt.datum(lo),
        )
        .properties(width=width, height=height)
    )
    configured = chart.configure(
        background="transparent", autosize={"type": "fit", "contains": "padding"}
    ).configure_view(stroke=None)
    return cast(alt.Chart, configured)


def long_short_spec(
    frame: pl.DataFrame, *, start: datetime, end: datetime, every: str, title: str
) -> dict[str, Any]:
    """Vega-Lite spec: total long and short liquidation-level USD over time (lines) and their
    difference (bars, long minus short), per ``every`` period; ``frame`` has ts, long_usd,
    short_usd, delta_usd (`warehouse.reads_report.long_short_over_time`)."""
    t0, t1 = _ms(start), _ms(end)
    data = frame.select(
        pl.col("ts").dt.epoch("ms").alias("t"),
        _sig(pl.col("long_usd"), 4).alias("long"),
        _sig(pl.col("short_usd"), 4).alias("short"),
        _sig(pl.col("delta_usd"), 4).alias("delta"),
    )
    x = {
        "field": "t",
        "type": "temporal",
        "title": "time (UTC)",
        "scale": {"type": "utc", "domain": {"expr": f"[{t0}, {t1}]"}, "nice": False},
        "axis": _axis(format="%b %d %H:%M", tickCount=6, labelOverlap=True),
    }
    usd_axis = _axis(labelExpr=usd_label_expr(), tickCount=4, orient="right")
    tip = [
        {"field": "time", "type": "nominal", "title": f"{every} from (UTC)"},
        {"field": "long", "type": "quantitative", "title": "long levels USD", "format": USD_FULL},
        {"field": "short", "type": "quantitative", "title": "short levels USD", "format": USD_FULL},
        {"field": "delta", "type": "quantitative", "title": "long − short", "format": USD_FULL},
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        **_config(),
        "title": {"text": title, "subtitle": f"liqheat · per {every} · estimate"},
        "data": _csv(data),
        "transform": [{"calculate": TIME_LABEL, "as": "time"}],
        "vconcat": [
            {
                "height": 150,
                "transform": [{"fold": ["long", "short"], "as": ["side", "usd"]}],
                "mark": {"type": "line", "strokeWidth": 1.6, "interpolate": "step-after"},
                "encoding": {
                    "x": {**x, "axis": _axis(labels=False, ticks=False), "title": None},
                    "y": {
                        "field": "usd",
                        "type": "quantitative",
                        "title": "level USD",
                        "axis": usd_axis,
                    },
                    "color": {
                        "field": "side",
                        "type": "nominal",
                        "legend": None,
                        "scale": {"domain": ["long", "short"], "range": [LONG, SHORT]},
                    },
                    "tooltip": tip,
                },
            },
            {
                "height": 70,
                "mark": {"type": "bar"},
                "encoding": {
                    "x": x,
                    "y": {
                        "field": "delta",
                        "type": "quantitative",
                        "title": "long − short",
                        "axis": usd_axis,
                    },
                    "color": {
                        "condition": {"test": "datum.delta >= 0", "value": LONG},
                        "value": SHORT,
                    },
                    "tooltip": tip,
                },
            },
        ],
        "spacing": 4,
        "resolve": {"scale": {"x": "shared"}},
        "usermeta": {"liqheat": {"reserve": AXIS_RESERVE}},
    }
