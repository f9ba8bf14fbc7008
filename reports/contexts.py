"""Page contexts: the dictionaries the Jinja templates render, built from a loaded symbol
view (:mod:`reports.views`): headline, cards, key levels, heatmap, long/short, map, scores,
model run, lineage, and the index cards."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from reports import charts, frames, map_frames
from reports.files import safe_component
from reports.heatmap_context import heatmap_context
from reports.params_card import param_table
from reports.ranges import Range
from reports.render import fmt_span, fmt_time, tick_decimals
from reports.views import Built, Symbol, View, exchange_label, price_step_of
from reports.where_words import verdict, where_sentences
from transforms.importing import bar_label
from warehouse import reads_outputs as ro
from warehouse import reads_report as rr


def score_rows(scores: pl.DataFrame) -> list[dict[str, Any]]:
    """One row per side: model vs baseline metrics and whether the model wins."""
    rows: list[dict[str, Any]] = []
    for side in ("long", "short"):
        part = scores.filter(pl.col("side") == side)
        by_method = {r["method"]: r for r in part.to_dicts()}
        model = by_method.get("model")
        baseline = by_method.get("baseline")
        if model is None and baseline is None:
            continue
        ref = model or baseline or {}
        metrics = []
        for key, label in (
            ("capture_auc", "capture AUC"),
            ("top_decile_overlap", "top-decile overlap"),
            ("log_corr", "log correlation"),
        ):
            m = None if model is None else model.get(key)
            b = None if baseline is None else baseline.get(key)
            wins = m is not None and b is not None and m > b
            metrics.append({"label": label, "model": m, "baseline": b, "wins": wins})

        def opt(row: dict[str, Any] | None, key: str, scale: float = 1.0) -> float | None:
            value = None if row is None else row.get(key)
            return None if value is None else float(value) * scale

        rows.append(
            {
                "side": side,
                "top_capture": opt(model, "top_decile_capture", 100.0),
                "top_capture_base": opt(baseline, "top_decile_capture", 100.0),
                "near_share": opt(model, "near_key_level_share", 100.0),
                "overlap": opt(model, "top_decile_overlap"),
                "overlap_base": opt(baseline, "top_decile_overlap"),
                "metrics": metrics,
                "beats": bool(metrics[0]["wins"]),
                "bars": ref.get("bars"),
                "realized_usd": ref.get("realized_usd"),
                "source": ref.get("realized_source") or "–",
                "start": ref.get("start_ts"),
                "end": ref.get("end_ts"),
            }
        )
    return rows


def lineage_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in frame.to_dicts():
        url = r["source_url"] or ""
        rows.append(
            {
                **r,
                "file": url.rsplit("/", 1)[-1] if url else "–",
                # only plain web links become hrefs: a hostile javascript: URL stays text
                "href": url if url.startswith(("https://", "http://")) else None,
                "sha_short": (r["sha256"] or "")[:12],
            }
        )
    return rows


def level_rows(sym: Symbol) -> list[dict[str, Any]]:
    """Key levels (clusters) with their price range when stored, largest first; each row
    marked ``nearest``/``largest`` per side (stored flags, else computed: the largest by USD,
    the nearest to the price among those with at least a quarter of the side's largest)."""
    if sym.key_levels.height == 0:
        return []
    rows = sym.key_levels.sort("usd", descending=True).to_dicts()
    for side in ("long", "short"):
        part = [r for r in rows if r["side"] == side]
        if not part:
            continue
        if not any(r.get("is_largest") is not None for r in part):
            part[0]["is_largest"] = True
        if not any(r.get("is_nearest") is not None for r in part):
            big = part[0]["usd"]
            near = min(
                (r for r in part if r["usd"] >= 0.25 * big), key=lambda r: abs(r["distance_pct"])
            )
            near["is_nearest"] = True
    for r in rows:
        r["nearest"] = bool(r.get("is_nearest"))
        r["largest"] = bool(r.get("is_largest"))
        r.setdefault("price_low", None)
        r.setdefault("price_high", None)
    shown_ranges(rows, price_step_of(sym))
    return rows


def shown_ranges(rows: list[dict[str, Any]], step: float | None) -> None:
    """Set ``range_low``/``range_high`` on key-level rows: the cluster's buckets from the
    first bucket's lower edge to the last bucket's lower edge (stored ranges are half-open,
    so neighbours touch), pushed apart so no two ranges on the page touch or overlap.

    >>> rows = [{"price": 93100.0, "price_low": 92300.0, "price_high": 99000.0},
    ...         {"price": 99100.0, "price_low": 99000.0, "price_high": 99600.0}]
    >>> shown_ranges(rows, 100.0)
    >>> [(r["range_low"], r["range_high"]) for r in rows]
    [(92300.0, 98900.0), (99000.0, 99500.0)]
    """
    step = step or 0.0
    ranged = sorted(
        (r for r in rows if r.get("price_low") is not None and r.get("price_high") is not None),
        key=lambda r: float(r["price_low"]),
    )
    last_high: float | None = None
    for r in rows:
        r["range_low"] = r["range_high"] = None
    for r in ranged:
        low = float(r["price_low"])
        high = max(low, float(r["price_high"]) - step)
        if last_high is not None and low <= last_high:
            low = last_high + (step or (high - low) * 1e-3 or 1e-9)
            high = max(high, low)
        r["range_low"], r["range_high"] = low, high
        last_high = high


def ladder(rows: list[dict[str, Any]], ref: float | None) -> dict[str, Any]:
    """Key levels as a price ladder: shorts above (highest first), the reference price, then
    longs below (nearest first); ``top`` is the largest USD, for bar widths."""
    if not rows:
        return {"shorts": [], "longs": [], "ref": ref, "top": 0.0}
    by_price = sorted(rows, key=lambda r: -r["price"])
    return {
        "shorts": [r for r in by_price if r["side"] == "short"],
        "longs": [r for r in by_price if r["side"] == "long"],
        "ref": ref,
        "top": max(r["usd"] for r in rows),
    }


def picks(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Per side the nearest significant cluster and the largest one (for the cards)."""
    out: dict[str, dict[str, Any] | None] = {}
    for side in ("long", "short"):
        part = [r for r in rows if r["side"] == side]
        out[f"{side}_nearest"] = next((r for r in part if r["nearest"]), None)
        out[f"{side}_largest"] = next((r for r in part if r["largest"]), None)
        out[side] = out[f"{side}_largest"]
    return out


def map_context(sym: Symbol) -> dict[str, Any]:
    """The liquidation map of the view (one per symbol view, shared by its range pages)."""
    if sym.liq_map.height == 0:
        return {"map_spec": None, "map": None}
    view = map_frames.map_view(sym.liq_map, sym.band_map if sym.band_map.height else None)
    title = f"{sym.symbol} · liquidation map · estimate"
    as_of = fmt_time(sym.liq_map["as_of"][0])
    spec = charts.liquidation_map_spec(view, title=title, subtitle=f"liqheat · {as_of}")
    bands = [b for b in sym.band_map["band"].unique().to_list()] if sym.band_map.height else []
    return {
        "map_spec": spec,
        "map": {
            "totals": view.totals,
            "outside": view.outside,
            "window_pct": view.window_pct,
            "lo": view.lo,
            "hi": view.hi,
            "moves": view.moves,
            "ref": view.ref_price,
            "bands": [
                {"label": b, "colour": charts.BAND_COLOURS[b]}
                for b in map_frames.band_order(bands)
                if b in charts.BAND_COLOURS
            ],
        },
    }


def range_page(
    db_path: Path, view: View, sym: Symbol, rng: Range, levels: list[dict[str, Any]]
) -> dict[str, Any]:
    """Context of one symbol x range page."""
    assert sym.span is not None
    bar = rr.bar_size(db_path, view.price_exchange, sym.symbol)  # the stored bar size
    end = sym.span[1] + bar
    start = max(end - rng.span, sym.span[0].replace(minute=0, second=0, microsecond=0))
    path = rr.price_path(db_path, view.price_exchange, sym.symbol, start, end)
    stats: dict[str, Any] = {
        "last": None,
        "change": None,
        "high": None,
        "low": None,
        "decimals": None,
    }
    last_ts = None
    if path.height:
        first_open = float(path["open"][0])
        last = float(path["close"][-1])
        last_ts = path["ts"][-1]
        stats = {
            "last": last,
            "change": (last / first_open - 1) * 100 if first_open else None,
            "high": float(path["high"].max()),  # type: ignore[arg-type]
            "low": float(path["low"].min()),  # type: ignore[arg-type]
            "decimals": tick_decimals(path["close"].tail(500).to_list()),
        }
    heat: dict[str, Any] = {
        "heatmap_spec": None,
        "grid": None,
        "axis": None,
        "edges": [],
        "window_total": None,
        "has_realized": False,
        "has_sweeps": False,
        "has_bands": False,
    }
    ls_spec: dict[str, Any] | None = None
    every = "1h" if rng.hours <= 72 else "4h" if rng.hours <= 720 else "1d"
    label = f"{sym.symbol} · {view.label} · {rng.label}"
    if sym.run is not None and path.height:
        heat = heatmap_context(
            db_path,
            view,
            sym,
            label=label,
            start=start,
            end=end,
            path=path,
            last=stats["last"],
            levels=levels,
            decimals=stats["decimals"],
        )
        ph = str(sym.run["params_hash"])
        ls = sym.cached(
            ("ls", every), lambda: ro.long_short_over_time(db_path, view.key, sym.symbol, ph, every)
        )
        ls = ls.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        if ls.height:
            ls_spec = charts.long_short_spec(
                ls, start=start, end=end, every=every, title=f"{label} long vs short levels"
            )
    data_span = sym.span[1] + timedelta(minutes=1) - sym.span[0]
    short_note = None
    if data_span < rng.span:
        short_note = (
            f"The data covers {duration_text(data_span)}, less than {rng.label}: "
            "this page shows all of it."
        )
    return {
        "range_key": rng.key,
        "range_label": rng.label,
        "start": start,
        "end": end,
        "stats": stats,
        "last_ts": last_ts,
        "bar_label": bar_label(int(bar.total_seconds())),
        **heat,
        "long_short_spec": ls_spec,
        "long_short_every": every,
        "short_note": short_note,
        "export_name": f"{sym.slug}-{view.key}-{rng.key}-liqheat-estimate",
    }


def duration_text(span: timedelta) -> str:
    """The data's span in the site's one wording (see :func:`reports.render.fmt_span`)."""
    return fmt_span(span)


def duration(step: timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def where_context(where: pl.DataFrame) -> dict[str, Any] | None:
    """The where-scores panel: plain-words sentences, the magnet verdict, the decision span."""
    magnet = where.filter(
        (pl.col("name") == "magnet") & (pl.col("side") == "both") & (pl.col("bin") == "all")
    ) if where.height else where  # fmt: skip
    if not magnet.height:
        return None
    row = magnet.row(0, named=True)
    return {
        "sentences": where_sentences(where),
        "magnet_verdict": verdict(float(row["lo"]), float(row["hi"])),
        "first": row["first_decision"],
        "last": row["last_decision"],
        "step_hours": row["step_hours"],
        "realized": bool(where.filter(pl.col("name") == "realized_near").height),
    }


def symbol_common(sym: Symbol) -> dict[str, Any]:
    run = sym.run
    run_ctx = None
    if run is not None:
        run_ctx = {
            "params_hash": run["params_hash"],
            "params": param_table(str(run["params_json"]), run["price_step"]),
            "computed_at": run["computed_at"],
            "start_ts": run["start_ts"],
            "end_ts": run["end_ts"],
            "bars": run["bars"],
            "levels": run["levels"],
            "price_step": run["price_step"],
            "seconds": run["seconds"],
        }
    lineage = lineage_rows(sym.lineage)
    statuses = sym.lineage["status"].value_counts().to_dicts() if sym.lineage.height else []
    view = sym.view
    aggregate = view.key == rr.AGGREGATE_EXCHANGE
    venue = (
        " + ".join(exchange_label(ex) for ex in view.exchanges) + " · aggregated"
        if aggregate
        else view.label
    )
    levels = level_rows(sym)
    ref = float(sym.liq_map["ref_price"][0]) if sym.liq_map.height else None
    return {
        "symbol": sym.symbol,
        "slug": sym.slug,
        "exchange": view.key,
        "exchange_label": view.label,
        "venue": venue,
        "aggregate": aggregate,
        "price_exchange": exchange_label(view.price_exchange),
        "lineage_exchange": len(view.exchanges) > 1,
        "synthetic": sym.synthetic,
        "updated": sym.span[1] if sym.span else None,
        "run": run_ctx,
        "price_step": price_step_of(sym),
        "key_levels": levels,
        "has_ranges": any(r["price_low"] is not None for r in levels),
        "ladder": ladder(levels, ref),
        "strongest": picks(levels),
        "map_as_of": sym.liq_map["as_of"][0] if sym.liq_map.height else None,
        "scores": score_rows(sym.scores) if sym.scores.height else [],
        "where_scores": where_context(sym.where),
        "lineage": lineage,
        "lineage_counts": {str(r["status"]): int(r["count"]) for r in statuses},
        **map_context(sym),
        "one_total": one_total(sym),
    }


def one_total(sym: Symbol) -> dict[str, Any] | None:
    """The one total every panel of a page shows: the whole stored liquidation map of the
    current run (all leverage, every price bucket) at its time, longs and shorts."""
    if sym.liq_map.height == 0:
        return None
    return {
        "long": float(sym.liq_map["long_usd"].sum()),
        "short": float(sym.liq_map["short_usd"].sum()),
        "as_of": sym.liq_map["as_of"][0],
    }


def alerts_of(db_path: Path) -> list[dict[str, Any]]:
    """The alerts of the current runs (clusters near the price), for the banners (none on a
    warehouse without the alerts view)."""
    try:
        frame = ro.latest_alerts(db_path)
    except duckdb.CatalogException:
        return []
    return [
        {**r, "slug": safe_component(str(r["symbol"])), "label": exchange_label(str(r["exchange"]))}
        for r in frame.to_dicts()
    ]


def page_title(symbol: str, view: View, rng: Range, multi: bool) -> str:
    venue = f" · {view.label}" if multi else ""
    return f"{symbol}{venue} · {rng.label} liquidation heatmap"


def index_row(db_path: Path, built: list[Built], sym_dir: Path) -> dict[str, Any]:
    """The index card of one symbol: its default view, plus which exchanges it has."""
    main = built[0]
    sym = main.sym
    levels = level_rows(sym)
    spark_spec = None
    last = change = None
    decimals: int | None = None
    if sym.span is not None:
        start = sym.span[1] - timedelta(days=7)
        path = rr.price_path(db_path, main.view.price_exchange, sym.symbol, start, None)
        if path.height:
            spark_spec = charts.sparkline_chart(frames.sparkline(path)).to_dict(validate=False)
            last = float(path["close"][-1])
            decimals = tick_decimals(path["close"].tail(500).to_list())
            day_ago = path.filter(pl.col("ts") >= sym.span[1] - timedelta(days=1))
            first = float(day_ago["open"][0]) if day_ago.height else float(path["open"][0])
            change = (last / first - 1) * 100 if first else None
    days = sym.days.to_dicts()
    exchanges = [
        {
            "key": b.view.key,
            "label": b.view.label,
            "href": f"{b.view.rel}index.html"
            if b.wanted or (sym_dir / b.view.rel / "index.html").exists()
            else None,
        }
        for b in built
        if b.view.key != rr.AGGREGATE_EXCHANGE
    ]
    run = main.sym.run
    return {
        "symbol": sym.symbol,
        "slug": sym.slug,
        "synthetic": sym.synthetic,
        "has_page": bool(main.wanted) or (sym_dir / "index.html").exists(),
        "ranges": main.links,
        "last": last,
        "change_24h": change,
        "spark_spec": spark_spec,
        "strongest": picks(levels),
        "price_step": price_step_of(sym),
        "days": [
            {**d, "complete": d["bars"] * (d.get("bar_seconds") or 60) >= 86400} for d in days
        ],
        "first_day": days[-1]["day"] if days else None,
        "last_day": days[0]["day"] if days else None,
        "run": {"computed_at": run["computed_at"]} if run else None,
        "aggregate": main.view.key == rr.AGGREGATE_EXCHANGE,
        "exchanges": exchanges,
        "multi": len(built) > 1,
        "last_ts": sym.span[1] if sym.span is not None else None,
        "span": sym.span[1] + timedelta(minutes=1) - sym.span[0] if sym.span is not None else None,
        "decimals": decimals,
    }


#: a symbol whose newest bar is this much older than the newest across symbols is stale
STALE_AFTER = timedelta(days=2)


def mark_stale(rows: list[dict[str, Any]], after: timedelta = STALE_AFTER) -> None:
    """Set ``row["stale"]`` on index rows: True when the symbol's newest bar (``last_ts``) is
    more than ``after`` older than the newest bar of any symbol (its data stopped updating).

    Examples
    --------
    >>> from datetime import datetime
    >>> rows = [{"last_ts": datetime(2024, 1, 9)}, {"last_ts": datetime(2024, 1, 5)}]
    >>> mark_stale(rows)
    >>> [r["stale"] for r in rows]
    [False, True]
    """
    known = [r["last_ts"] for r in rows if r.get("last_ts") is not None]
    newest = max(known) if known else None
    for r in rows:
        last = r.get("last_ts")
        r["stale"] = newest is not None and last is not None and last < newest - after
