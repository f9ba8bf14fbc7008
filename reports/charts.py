"""Vega-Lite specs of the smaller charts (liquidation map, long vs short, sparkline) and the
palette, axis and data helpers every chart shares (the heatmap: :mod:`reports.heatmap_chart`).

Pure: frames in (from :mod:`reports.frames`), plain spec dicts out, embedded into the pages
with ``|tojson`` and drawn by vega-embed. Only the sparkline goes through Altair.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import altair as alt
import polars as pl

from reports.map_frames import MapView

#: space the JavaScript keeps free beside the plots for the right-hand axes (px)
AXIS_RESERVE = 78

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


def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def usd_domain(values: pl.Series) -> list[float]:
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


def csv_data(frame: pl.DataFrame) -> dict[str, Any]:
    """Inline CSV data (a third of JSON records' bytes; parsed as numbers by Vega)."""
    parse = {n: "number" if d.is_numeric() else "string" for n, d in frame.schema.items()}
    return {
        "values": frame.write_csv(float_precision=None),
        "format": {"type": "csv", "parse": parse},
    }


def sig(x: pl.Expr, digits: int = 6) -> pl.Expr:
    """Round to ``digits`` significant digits (prices on the page: a few bytes each)."""
    mag = pl.when(x.abs() > 0).then(10 ** (x.abs().log10().floor() - (digits - 1))).otherwise(1.0)
    return (x / mag).round(0) * mag


def axis(**extra: Any) -> dict[str, Any]:
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


def base_config() -> dict[str, Any]:
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
        p0=sig(pl.col("p0"), 8),
        p1=sig(pl.col("p1"), 8),
    ).drop("band")
    curves = view.curves.with_columns(pl.col("cum").round(0), sig(pl.col("p"), 8))
    x_scale = {"domain": [view.lo, view.hi], "nice": False, "zero": False}
    usd_axis = axis(labelExpr=usd_label_expr(), tickCount=5)
    keys = list(BAND_COLOURS)
    spec: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        **base_config(),
        "title": {"text": title, "subtitle": subtitle},
        "height": height,
        "layer": [
            {
                "data": csv_data(bars),
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
                        "axis": axis(format=PRICE_FORMAT, tickCount=8),
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
                "data": csv_data(curves),
                "mark": {"type": "line", "strokeWidth": 2, "interpolate": "step-after"},
                "encoding": {
                    "x": {"field": "p", "type": "quantitative", "scale": x_scale},
                    "y": {
                        "field": "cum",
                        "type": "quantitative",
                        "title": "cumulative USD",
                        "axis": axis(
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
    short_usd, delta_usd (`warehouse.reads_outputs.long_short_over_time`)."""
    t0, t1 = ms(start), ms(end)
    data = frame.select(
        pl.col("ts").dt.epoch("ms").alias("t"),
        sig(pl.col("long_usd"), 4).alias("long"),
        sig(pl.col("short_usd"), 4).alias("short"),
        sig(pl.col("delta_usd"), 4).alias("delta"),
    )
    x = {
        "field": "t",
        "type": "temporal",
        "title": "time (UTC)",
        "scale": {"type": "utc", "domain": {"expr": f"[{t0}, {t1}]"}, "nice": False},
        "axis": axis(format="%b %d %H:%M", tickCount=6, labelOverlap=True),
    }
    usd_axis = axis(labelExpr=usd_label_expr(), tickCount=4, orient="right")
    tip = [
        {"field": "time", "type": "nominal", "title": f"{every} from (UTC)"},
        {"field": "long", "type": "quantitative", "title": "long levels USD", "format": USD_FULL},
        {"field": "short", "type": "quantitative", "title": "short levels USD", "format": USD_FULL},
        {"field": "delta", "type": "quantitative", "title": "long − short", "format": USD_FULL},
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        **base_config(),
        "title": {"text": title, "subtitle": f"liqheat · per {every} · estimate"},
        "data": csv_data(data),
        "transform": [{"calculate": TIME_LABEL, "as": "time"}],
        "vconcat": [
            {
                "height": 150,
                "transform": [{"fold": ["long", "short"], "as": ["side", "usd"]}],
                "mark": {"type": "line", "strokeWidth": 1.6, "interpolate": "step-after"},
                "encoding": {
                    "x": {**x, "axis": axis(labels=False, ticks=False), "title": None},
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
        "usermeta": {"liqheat": {"reserve": AXIS_RESERVE + 18}},
    }
