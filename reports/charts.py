"""Chart builders: pure functions from pre-aggregated polars frames to Altair charts.

No I/O here. Frames come from :mod:`reports.frames`; the specs are embedded into the pages
with ``|tojson`` and rendered by vega-embed, and the heatmap is also written as PNG.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, cast

import altair as alt
import polars as pl

from reports.frames import HeatmapGrid

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


def heatmap_chart(
    grid: HeatmapGrid,
    path: pl.DataFrame,
    *,
    width: int = 1040,
    height: int = 520,
    ref_price: float | None = None,
    realized: pl.DataFrame | None = None,
) -> alt.LayerChart:
    """Time x price heatmap of estimated liquidation USD with the price path drawn over it.

    ``grid`` comes from :func:`reports.frames.aggregate_heatmap`; ``path`` has columns ts and
    close at the grid's time step. Cells where longs dominate use the cyan scale, cells where
    shorts dominate the rose scale, each with its own legend in USD; tooltips show time, price
    bucket, long USD and short USD. ``realized`` (ts, side, usd, price from
    :func:`reports.frames.realized_at_step`) is drawn as hollow circles sized by USD.
    """
    t0 = _ms(grid.t0)
    dt = int(grid.time_step.total_seconds() * 1000)
    cells = inline_csv(heatmap_frame(grid))
    long_dom = _usd_domain(grid.cells["long_usd"])
    short_dom = _usd_domain(grid.cells["short_usd"])
    # an expression domain: a literal one makes Vega-Lite warn about x/x2 domain conflicts
    x_scale = alt.Scale(type="utc", domain={"expr": f"[{t0}, {_ms(grid.t_end)}]"}, nice=False)
    y_scale = alt.Scale(domain=[grid.p0, grid.price_hi], nice=False, zero=False)
    # cells overlap their neighbours by a sliver so no hairline seams show between them
    base = alt.Chart(cells).transform_calculate(
        t=f"{t0} + datum.i * {dt}",
        time=TIME_LABEL,
        t2=f"{t0} + (datum.i + {1 + OVERLAP}) * {dt}",
        p=f"{grid.p0!r} + datum.j * {grid.price_step!r}",
        p2=f"{grid.p0!r} + (datum.j + {1 + OVERLAP}) * {grid.price_step!r}",
        bucket=(
            f"format(datum.p, ',.6~g') + ' – ' + "
            f"format({grid.p0!r} + (datum.j + 1) * {grid.price_step!r}, ',.6~g')"
        ),
    )
    tooltip = [
        alt.Tooltip("time:N", title="time"),
        alt.Tooltip("bucket:N", title="price bucket"),
        alt.Tooltip("l:Q", title="long USD", format=USD_FULL),
        alt.Tooltip("s:Q", title="short USD", format=USD_FULL),
    ]
    x = alt.X("t:T", title=None, scale=x_scale, axis=alt.Axis(format="%b %d %H:%M", tickCount=8))
    y = alt.Y(
        "p:Q",
        title="price (USDT)",
        scale=y_scale,
        axis=alt.Axis(orient="right", format=",.6~g", tickCount=12),
    )
    longs = (
        base.transform_filter("datum.l >= datum.s")
        .mark_rect(strokeWidth=0)
        .encode(
            x=x,
            x2="t2:T",
            y=y,
            y2="p2:Q",
            color=alt.Color(
                "l:Q",
                title="longs (USD)",
                scale=alt.Scale(type="sqrt", domain=long_dom, range=LONG_RAMP, clamp=True),
                legend=alt.Legend(format=USD_FORMAT, orient="left", tickCount=4),
            ),
            tooltip=tooltip,
        )
    )
    shorts = (
        base.transform_filter("datum.s > datum.l")
        .mark_rect(strokeWidth=0)
        .encode(
            x=x,
            x2="t2:T",
            y=y,
            y2="p2:Q",
            color=alt.Color(
                "s:Q",
                title="shorts (USD)",
                scale=alt.Scale(type="sqrt", domain=short_dom, range=SHORT_RAMP, clamp=True),
                legend=alt.Legend(format=USD_FORMAT, orient="left", tickCount=4),
            ),
            tooltip=tooltip,
        )
    )
    line_data = path.select(
        pl.col("ts").dt.epoch("ms").alias("t"), pl.col("close").round(8).alias("c")
    ).filter(pl.col("t") >= t0)
    price_line = (
        alt.Chart(inline_csv(line_data))
        .transform_calculate(time=TIME_LABEL)
        .mark_line(color=PRICE, strokeWidth=1.4, interpolate="monotone")
        .encode(
            x=alt.X("t:T"),
            y=alt.Y("c:Q"),
            tooltip=[
                alt.Tooltip("time:N", title="time"),
                alt.Tooltip("c:Q", title="close", format=",.6~g"),
            ],
        )
    )
    layers: list[Any] = [longs, shorts, price_line]
    if realized is not None and realized.height:
        dots = realized.select(
            pl.col("ts").dt.epoch("ms").alias("t"),
            "side",
            pl.col("usd").round(0),
            pl.col("price").round(8).alias("c"),
        )
        layers.append(
            alt.Chart(inline_csv(dots))
            .transform_calculate(time=TIME_LABEL)
            .mark_circle(filled=False, strokeWidth=1.2, opacity=0.9)
            .encode(
                x=alt.X("t:T"),
                y=alt.Y("c:Q"),
                size=alt.Size("usd:Q", scale=alt.Scale(type="sqrt", range=[8, 260]), legend=None),
                stroke=alt.Stroke(
                    "side:N",
                    scale=alt.Scale(
                        domain=["long", "short"], range=[REALIZED_LONG, REALIZED_SHORT]
                    ),
                    legend=None,
                ),
                tooltip=[
                    alt.Tooltip("time:N", title="time"),
                    alt.Tooltip("side:N", title="realized"),
                    alt.Tooltip("usd:Q", title="realized USD", format=USD_FULL),
                ],
            )
        )
    if ref_price is not None and math.isfinite(ref_price):
        last = alt.Chart(alt.InlineData(values=[{"c": ref_price}]))
        layers.append(last.mark_rule(color=PRICE, strokeDash=[2, 3], opacity=0.55).encode(y="c:Q"))
    chart = (
        alt.layer(*layers).resolve_scale(color="independent").properties(width=width, height=height)
    )
    return cast(alt.LayerChart, dark_config(chart))


def liquidation_map_chart(
    bars: pl.DataFrame,
    *,
    ref_price: float,
    width: int = 1040,
    height: int = 300,
) -> alt.LayerChart:
    """Liquidation map at one time: long bars below the reference price, short bars above,
    with the cumulative curves ("USD liquidated on the way to this price") on a second axis.

    ``bars`` comes from :func:`reports.frames.aggregate_map` (p0, p1, long_usd, short_usd,
    long_cum_usd, short_cum_usd).
    """
    long_rows = bars.filter(pl.col("long_usd") > 0).select(
        "p0", "p1", usd=pl.col("long_usd"), cum=pl.col("long_cum_usd"), side=pl.lit("long")
    )
    short_rows = bars.filter(pl.col("short_usd") > 0).select(
        "p0", "p1", usd=pl.col("short_usd"), cum=pl.col("short_cum_usd"), side=pl.lit("short")
    )
    rows = pl.concat([long_rows, short_rows]).with_columns(pl.col("usd", "cum").round(0))
    data = inline_csv(rows)
    side_scale = alt.Scale(domain=["long", "short"], range=[LONG, SHORT])
    lo = float(bars["p0"].min()) if bars.height else ref_price * 0.9  # type: ignore[arg-type]
    hi = float(bars["p1"].max()) if bars.height else ref_price * 1.1  # type: ignore[arg-type]
    x_scale = alt.Scale(domain=[lo, hi], nice=False, zero=False)
    x = alt.X("p0:Q", title="price (USDT)", scale=x_scale, axis=alt.Axis(format=",.6~g"))
    bars_layer = (
        alt.Chart(data)
        .mark_rect(opacity=0.9)
        .encode(
            x=x,
            x2="p1:Q",
            y=alt.Y("usd:Q", title="USD per bucket", axis=alt.Axis(format=USD_FORMAT)),
            color=alt.Color(
                "side:N",
                scale=side_scale,
                legend=alt.Legend(title=None, orient="top", direction="horizontal"),
            ),
            tooltip=[
                alt.Tooltip("side:N"),
                alt.Tooltip("p0:Q", title="from price", format=",.6~g"),
                alt.Tooltip("p1:Q", title="to price", format=",.6~g"),
                alt.Tooltip("usd:Q", title="USD in bucket", format=USD_FULL),
                alt.Tooltip("cum:Q", title="cumulative USD", format=USD_FULL),
            ],
        )
    )
    curves = (
        alt.Chart(data)
        .transform_calculate(mid="(datum.p0 + datum.p1) / 2")
        .mark_line(strokeWidth=2, interpolate="step-after")
        .encode(
            x=alt.X("mid:Q", scale=x_scale),
            y=alt.Y(
                "cum:Q",
                title="cumulative USD",
                axis=alt.Axis(format=USD_FORMAT, orient="right", grid=False),
            ),
            color=alt.Color("side:N", scale=side_scale),
            detail="side:N",
        )
    )
    rule_data = alt.InlineData(values=[{"p": ref_price, "label": f"now {ref_price:,.6g}"}])
    rule = alt.Chart(rule_data).mark_rule(color=PRICE, strokeDash=[4, 3]).encode(x="p:Q")
    label = (
        alt.Chart(rule_data)
        .mark_text(color=PRICE, align="left", dx=5, dy=4, baseline="top", fontSize=11)
        .encode(x="p:Q", y=alt.value(0), text="label:N")
    )
    chart = (
        alt.layer(bars_layer, curves, rule, label)
        .resolve_scale(y="independent")
        .properties(width=width, height=height)
    )
    return cast(alt.LayerChart, dark_config(chart))


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
