"""Pure polars frames of the liquidation map at display resolution (no I/O): the stored map
merged into at most ``max_bars`` price bars, stacked by leverage band, with cumulative curves,
totals, what lies outside the drawn window and the USD liquidated if price moves 1-10 %."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from reports.frames import choose_price_step, infer_step

#: columns of :func:`aggregate_map`
MAP_SCHEMA = pl.Schema(
    {
        "p0": pl.Float64(),
        "p1": pl.Float64(),
        "long_usd": pl.Float64(),
        "short_usd": pl.Float64(),
        "long_cum_usd": pl.Float64(),
        "short_cum_usd": pl.Float64(),
    }
)


def aggregate_map(
    liq_map: pl.DataFrame,
    *,
    price_lo: float | None = None,
    price_hi: float | None = None,
    max_bars: int = 120,
) -> pl.DataFrame:
    """Merge a liquidation-map snapshot into at most ``max_bars`` price bars.

    Per-bucket USD is summed; cumulative curves keep the value farthest from the reference
    price inside each bar (the curves grow away from price). Columns: :data:`MAP_SCHEMA`.

    Examples
    --------
    >>> m = pl.DataFrame({"price": [99.0, 100.0, 101.0, 102.0], "long_usd": [3.0, 1.0, 0.0, 0.0],
    ...                   "short_usd": [0.0, 0.0, 2.0, 4.0], "long_cum_usd": [4.0, 1.0, 0.0, 0.0],
    ...                   "short_cum_usd": [0.0, 0.0, 2.0, 6.0]})
    >>> aggregate_map(m, max_bars=2)["long_usd"].to_list()
    [3.0, 1.0, 0.0]
    """
    if liq_map.height == 0:
        return pl.DataFrame(schema=MAP_SCHEMA)
    frame = liq_map
    if price_lo is not None:
        frame = frame.filter(pl.col("price") >= price_lo)
    if price_hi is not None:
        frame = frame.filter(pl.col("price") < price_hi)
    if frame.height == 0:
        return pl.DataFrame(schema=MAP_SCHEMA)
    base = infer_step(frame["price"]) or 1.0
    lo = float(frame["price"].min())  # type: ignore[arg-type]
    hi = float(frame["price"].max()) + base  # type: ignore[arg-type]
    step = choose_price_step(lo, hi, base, max_rows=max_bars)
    return (
        frame.lazy()
        .with_columns(p0=((pl.col("price") + base * 1e-6) / step).floor() * step)
        .group_by("p0")
        .agg(
            pl.col("long_usd").sum(),
            pl.col("short_usd").sum(),
            pl.col("long_cum_usd").max(),
            pl.col("short_cum_usd").max(),
        )
        .with_columns(p1=pl.col("p0") + step)
        .sort("p0")
        .select(pl.col(name).cast(dtype) for name, dtype in MAP_SCHEMA.items())
        .collect()
    )


#: moves (in %) at which the page prints the USD liquidated on the way there
MOVES_PCT = (1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class MapView:
    """A liquidation map ready to draw: stacked bars inside a stated window and the totals.

    ``bars``: p0, p1, band, side, usd, y0, y1 (bars stacked by leverage band; ``band`` is
    ``"all"`` when the run has no band split). ``curves``: p, side, cum (USD liquidated from
    the reference price to p). ``totals``/``outside``: USD per side over the whole stored map
    and beyond the window. ``moves``: rows (pct, long_usd, short_usd): longs liquidated if the
    price falls pct %, shorts if it rises pct %.
    """

    bars: pl.DataFrame
    curves: pl.DataFrame
    ref_price: float
    lo: float
    hi: float
    window_pct: float | None
    step: float
    totals: dict[str, float]
    outside: dict[str, float]
    moves: list[dict[str, float]]


def map_view(
    liq_map: pl.DataFrame,
    band_map: pl.DataFrame | None = None,
    *,
    window_pct: float = 25.0,
    max_bars: int = 120,
) -> MapView:
    """Build a :class:`MapView` from the stored map (price, ref_price, long_usd, short_usd)
    and, when present, its split by leverage band (band, price, long_usd, short_usd).

    The window is the whole stored distribution when it fits in ``+-window_pct`` % of the
    reference price, else that band around it (``window_pct`` set); totals always cover every
    stored bucket, so ``totals == inside + outside``.

    Examples
    --------
    >>> m = pl.DataFrame({"ref_price": 100.0, "price": [50.0, 98.0, 101.0],
    ...                   "long_usd": [5.0, 3.0, 0.0], "short_usd": [0.0, 0.0, 2.0]})
    >>> v = map_view(m)
    >>> v.totals, v.outside
    ({'long': 8.0, 'short': 2.0}, {'long': 5.0, 'short': 0.0})
    >>> v.moves[1]
    {'pct': 2.0, 'long_usd': 3.0, 'short_usd': 2.0}
    """
    ref = float(liq_map["ref_price"][0])
    totals = {
        "long": float(liq_map["long_usd"].sum()),
        "short": float(liq_map["short_usd"].sum()),
    }
    moves = []
    for pct in MOVES_PCT:
        down = liq_map.filter(pl.col("price") >= ref * (1 - pct / 100))["long_usd"].sum()
        up = liq_map.filter(pl.col("price") <= ref * (1 + pct / 100))["short_usd"].sum()
        moves.append({"pct": pct, "long_usd": float(down), "short_usd": float(up)})
    base = infer_step(liq_map["price"]) or max(ref * 1e-3, 1e-12)
    data_lo = float(liq_map["price"].min())  # type: ignore[arg-type]
    data_hi = float(liq_map["price"].max()) + base  # type: ignore[arg-type]
    w_lo, w_hi = ref * (1 - window_pct / 100), ref * (1 + window_pct / 100)
    clipped = data_lo < w_lo or data_hi > w_hi
    lo, hi = (max(data_lo, w_lo), min(data_hi, w_hi)) if clipped else (data_lo, data_hi)
    inside = (pl.col("price") >= lo) & (pl.col("price") < hi)
    outside = {
        "long": float(liq_map.filter(~inside)["long_usd"].sum()),
        "short": float(liq_map.filter(~inside)["short_usd"].sum()),
    }
    step = choose_price_step(lo, hi, base, max_rows=max_bars)
    source = (
        band_map.select("band", "price", "long_usd", "short_usd")
        if band_map is not None and band_map.height
        else liq_map.select(pl.lit("all").alias("band"), "price", "long_usd", "short_usd")
    )
    long_form = (
        source.lazy()
        .filter(inside)
        .with_columns(p0=((pl.col("price") + base * 1e-6) / step).floor() * step)
        .unpivot(index=["band", "p0"], on=["long_usd", "short_usd"], variable_name="side")
        .with_columns(pl.col("side").str.replace("_usd", ""), usd=pl.col("value"))
        .filter(pl.col("usd") > 0)
        .group_by("p0", "side", "band")
        .agg(pl.col("usd").sum())
        .collect()
    )
    order = {b: k for k, b in enumerate(band_order(long_form["band"].unique().to_list()))}
    bars = (
        long_form.with_columns(rank=pl.col("band").replace_strict(order, return_dtype=pl.Int32))
        .sort("p0", "side", "rank")
        .with_columns(y1=pl.col("usd").cum_sum().over("p0", "side"))
        .with_columns(y0=pl.col("y1") - pl.col("usd"), p1=pl.col("p0") + step)
        .select("p0", "p1", "band", "side", "usd", "y0", "y1")
    )
    per_bar = (
        bars.group_by("p0", "side")
        .agg(pl.col("usd").sum())
        .sort("p0")
        .pivot(on="side", index="p0", values="usd")
    )
    for side in ("long", "short"):
        if side not in per_bar.columns:
            per_bar = per_bar.with_columns(pl.lit(0.0).alias(side))
    per_bar = per_bar.fill_null(0.0).sort("p0")
    curves = pl.concat(
        [
            per_bar.select(
                pl.col("p0").alias("p"),
                pl.lit("long").alias("side"),
                pl.col("long").cum_sum(reverse=True).alias("cum"),
            ).filter(pl.col("p") < ref),
            per_bar.select(
                (pl.col("p0") + step).alias("p"),
                pl.lit("short").alias("side"),
                pl.col("short").cum_sum().alias("cum"),
            ).filter(pl.col("p") > ref),
        ]
    )
    return MapView(
        bars=bars,
        curves=curves,
        ref_price=ref,
        lo=lo,
        hi=hi,
        window_pct=window_pct if clipped else None,
        step=step,
        totals=totals,
        outside=outside,
        moves=moves,
    )


#: leverage display bands as stored in liquidation_map_bands (transforms.leverage_bands.BANDS)
BAND_LABELS = ("<=10x", "10-25x", "25-50x", "50-100x", ">100x")


def band_order(labels: Sequence[str]) -> list[str]:
    known = list(BAND_LABELS)
    return [b for b in known if b in labels] + sorted(set(labels) - set(known))
