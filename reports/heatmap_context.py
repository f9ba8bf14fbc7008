"""The heatmap part of a range page: the price axis of the shown window (its traded range plus
a margin, never stretched to far key levels), the levels outside it as edge markers, the
display grid read from the warehouse, and the chart spec with its candles, realized
liquidations, sweeps and market context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from reports import frames, heatmap_chart
from reports.heatmap_layers import EDGE_LINE_PX, SHORTEST_CHART_PX
from reports.render import fmt_pct, fmt_price_step, fmt_span, fmt_tick, fmt_time, fmt_usd
from reports.views import Symbol, View, price_step_of, realized_of
from transforms.display import FINE_DIVISOR, traded_window
from warehouse import reads_outputs as ro
from warehouse import reads_report as rr

#: display resolution of the heatmap (columns x rows): keeps pages light and fast to draw
HEAT_COLUMNS = 180
HEAT_ROWS = 110
#: the axis margin: the larger of this share of the traded range and this many average bars
MARGIN_SHARE = 0.3
MARGIN_BARS = 3.0
#: pages of at most this range grid at the fine cells' step when the run has them
FINE_RANGE = timedelta(hours=24)
#: edge markers: at most this many per edge (the key levels: 5 largest + the nearest per side)
MAX_EDGE_MARKERS = 6


def axis_window(
    low: float,
    high: float,
    bar_range: float,
    *,
    markers: tuple[int, int] = (0, 0),
    share: float = MARGIN_SHARE,
    bars: float = MARGIN_BARS,
) -> tuple[float, float]:
    """The price axis of a window that traded ``low`` .. ``high`` with an average bar range of
    ``bar_range``: padded by the larger of ``share`` x the range and ``bars`` average bars, and
    on each edge enough room for ``markers`` = (below, above) edge labels of
    :data:`EDGE_LINE_PX` on a :data:`SHORTEST_CHART_PX` chart (so labels never cover the path).

    Examples
    --------
    >>> axis_window(100.0, 110.0, 0.5)
    (97.0, 113.0)
    >>> axis_window(100.0, 110.0, 2.0)
    (94.0, 116.0)
    >>> lo, hi = axis_window(100.0, 110.0, 0.5, markers=(5, 0))
    >>> round(lo, 2), hi
    (96.41, 113.0)
    """
    rng = max(high - low, abs(high) * 1e-4, 1e-12)
    base = low - traded_window(low, high, bar_range, share=share, bars=bars)[0]
    pads = []
    for n in markers:
        # n labels of EDGE_LINE_PX in a margin m of the span (rng + 2 m) on SHORTEST_CHART_PX
        f = min((n * EDGE_LINE_PX + 6) / SHORTEST_CHART_PX, 0.4) if n else 0.0
        pads.append(max(base, rng * f / (1 - 2 * f)) if f else base)
    return low - pads[0], high + pads[1]


def edge_markers(
    levels: list[dict[str, Any]], lo: float, hi: float, step: float | None
) -> list[dict[str, Any]]:
    """Key levels outside ``lo`` .. ``hi`` as labelled edge markers (nearest to the window
    first, at most :data:`MAX_EDGE_MARKERS` per edge): edge ("top"/"bottom"), k (place from
    the edge), side, price, usd, distance_pct and the label text.

    Examples
    --------
    >>> rows = [{"side": "long", "price": 80.0, "usd": 2e6, "distance_pct": -20.0},
    ...         {"side": "short", "price": 105.0, "usd": 1e6, "distance_pct": 5.0}]
    >>> [m["label"] for m in edge_markers(rows, 90.0, 110.0, 1.0)]
    ['▼ long 80 · $2M · -20.00%']
    """
    out: list[dict[str, Any]] = []
    below = sorted((r for r in levels if r["price"] < lo), key=lambda r: -r["price"])
    above = sorted((r for r in levels if r["price"] >= hi), key=lambda r: r["price"])
    for edge, part, arrow in (("bottom", below, "▼"), ("top", above, "▲")):
        for k, r in enumerate(part[:MAX_EDGE_MARKERS]):
            price = fmt_price_step(r["price"], step)
            label = (
                f"{arrow} {r['side']} {price} · {fmt_usd(r['usd'])} · {fmt_pct(r['distance_pct'])}"
            )
            out.append(
                {
                    "edge": edge,
                    "k": k,
                    "side": r["side"],
                    "price": float(r["price"]),
                    "usd": float(r["usd"]),
                    "distance_pct": float(r["distance_pct"]),
                    "label": label,
                }
            )
    return out


def _bar_range(path: pl.DataFrame, step: timedelta, start: datetime) -> float:
    bars = frames.path_at_step(path, step, start)
    mean = (bars["high"] - bars["low"]).mean() if bars.height else None
    return float(mean) if isinstance(mean, int | float) else 0.0


def window_total(grid: frames.HeatmapGrid) -> dict[str, float] | None:
    """USD per side in the grid's last column (the chart's price range at the last time)."""
    if grid.cells.height == 0:
        return None
    last = grid.cells.filter(pl.col("i") == pl.col("i").max())
    return {"long": float(last["long_usd"].sum()), "short": float(last["short_usd"].sum())}


def _fine_covers(
    db_path: Path,
    view: View,
    sym: Symbol,
    params_hash: str,
    *,
    start: datetime,
    end: datetime,
    lo: float,
    hi: float,
    step: float,
) -> bool:
    """Whether a page of ``start`` .. ``end`` with the axis ``lo`` .. ``hi`` can use the run's
    fine cells: a range of at most :data:`FINE_RANGE` whose start and axis they cover."""
    if end - start > FINE_RANGE:
        return False
    extent = sym.cached(
        "fine", lambda: ro.fine_cells_extent(db_path, view.key, sym.symbol, params_hash)
    )
    if extent is None:
        return False
    first, p_lo, p_hi = extent
    if first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    return bool(first <= start and p_lo <= lo and hi <= p_hi + step)


def heatmap_context(
    db_path: Path,
    view: View,
    sym: Symbol,
    *,
    label: str,
    start: datetime,
    end: datetime,
    path: pl.DataFrame,
    last: float | None,
    levels: list[dict[str, Any]],
    decimals: int | None = None,
) -> dict[str, Any]:
    """The heatmap of one range page: ``heatmap_spec``, ``grid`` (its size), ``axis`` (the
    price window), ``edges`` (levels outside it) and which overlays it has."""
    assert sym.run is not None
    ph = str(sym.run["params_hash"])
    run_step = price_step_of(sym)
    base = run_step or max(abs(last or 1.0) * 1e-4, 1e-9)
    source_step = sym.cached(
        ("step", start),
        lambda: ro.heatmap_source_step(db_path, view.key, sym.symbol, ph, since=start),
    )
    time_step = frames.choose_time_step(
        start, end, min_step=source_step or timedelta(minutes=1), max_columns=HEAT_COLUMNS
    )
    low = float(path["low"].min())  # type: ignore[arg-type]
    high = float(path["high"].max())  # type: ignore[arg-type]
    bar = _bar_range(path, time_step, start)
    lo, hi = axis_window(low, high, bar)
    edges = edge_markers(levels, lo, hi, run_step)
    counts = (
        sum(e["edge"] == "bottom" for e in edges),
        sum(e["edge"] == "top" for e in edges),
    )
    if any(counts):
        lo, hi = axis_window(low, high, bar, markers=counts)
    fine = run_step is not None and _fine_covers(
        db_path, view, sym, ph, start=start, end=end, lo=lo, hi=hi, step=run_step / FINE_DIVISOR
    )
    if fine:
        assert run_step is not None
        base = run_step / FINE_DIVISOR
    geometry = frames.grid_geometry(
        start=start,
        end=end,
        price_lo=lo,
        price_hi=hi,
        base_step=base,
        source_step=source_step,
        max_columns=HEAT_COLUMNS,
        max_rows=HEAT_ROWS,
    )
    shape: dict[str, Any] = {
        "start": start,
        "end": end,
        "time_step": geometry.time_step,
        "columns": geometry.columns,
        "p0": geometry.p0,
        "price_step": geometry.price_step,
        "rows": geometry.rows,
        "tolerance": base * 1e-6,
    }
    has_bands = sym.band_map.height > 0
    cells = ro.heatmap_grid_cells(
        db_path, view.key, sym.symbol, ph, bands=has_bands, fine=fine, **shape
    )
    band_cells = pl.DataFrame()
    if has_bands:
        band_cells = cells.filter(pl.col("band").is_not_null())
        cells = cells.filter(pl.col("band").is_null()).drop("band")
    if has_bands and band_cells.height == 0:  # a run with a band map but no band cells
        cells = ro.heatmap_grid_cells(db_path, view.key, sym.symbol, ph, fine=fine, **shape)
        has_bands = False
    grid = frames.with_cells(geometry, cells, band_cells)
    candles = frames.path_at_step(path, grid.time_step, start)
    minutes = max(1, int(grid.time_step.total_seconds() // 60))
    context = rr.market_context(db_path, list(view.exchanges), sym.symbol, start, end, minutes)
    realized = frames.realized_at_step(
        realized_of(db_path, view, sym.symbol, start, end), path, grid.time_step, start
    )
    swept = frames.sweeps(grid, candles)
    if swept.height and realized.height:
        swept = swept.join(
            realized.select("ts", "side", pl.col("usd").alias("realized")),
            on=["ts", "side"],
            how="left",
        )
    spec = heatmap_chart.heatmap_spec(
        grid,
        candles,
        ref_price=last,
        title=f"{label} liquidation heatmap · estimate",
        subtitle=f"liqheat · {fmt_time(start)} → {fmt_time(end)}",
        context=context,
        realized=realized,
        swept=swept,
        edges=edges,
        price_text=fmt_tick(last, decimals),
    )
    return {
        "heatmap_spec": spec,
        "grid": {
            "columns": grid.columns,
            "rows": grid.rows,
            "time_step": fmt_span(grid.time_step),
            "price_step": grid.price_step,
            "cells": grid.cells.height,
            "fine": fine,
        },
        "axis": {"lo": grid.p0, "hi": grid.price_hi, "low": low, "high": high},
        "edges": edges,
        "window_total": window_total(grid),
        "has_realized": realized.height > 0,
        "has_sweeps": swept.height > 0,
        "has_bands": has_bands,
    }
