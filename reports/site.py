"""Static-site writer: reads the warehouse, renders Jinja pages with embedded Vega-Lite specs.

Layout of ``site_dir``::

    index.html                      every symbol: sparkline, strongest levels, days, links
    static/vega-bundle.js           Vega + Vega-Lite + vega-embed (classic script, no CDN)
    static/liqheat.css, liqheat.js  stylesheet and the embed bootstrap
    <SYMBOL>/index.html             the symbol's default range
    <SYMBOL>/<N>d.html              heatmap, liquidation map, levels, scores, params, lineage
    <SYMBOL>/<N>d.png               the heatmap as PNG (vl-convert)

Pages open straight from disk (``file://``) with no network. Every page is first written to
a temporary name and renamed only once all pages and PNGs rendered, the index last, so a
failed build never leaves a half-written index.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
import vl_convert

from reports import charts, frames
from warehouse import reads_report as rr

DEFAULT_DAYS = (1, 3, 7, 30)
#: Vega-Lite version of the bundled JavaScript (matches the Altair schema)
VL_VERSION = "6.4"
STATIC_DIR = "static"
BUNDLE_NAME = "vega-bundle.js"
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class SiteResult:
    """What :func:`build_site` wrote: the HTML pages, the heatmap PNGs and the index."""

    pages: list[Path]
    pngs: list[Path]
    index: Path


@dataclass
class _Staged:
    """Files rendered to temporary names, renamed into place together at the end."""

    moves: list[tuple[Path, Path]] = field(default_factory=list)

    def write(self, target: Path, data: str | bytes) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        self.moves.append((tmp, target))
        return target

    def commit(self) -> None:
        for tmp, target in self.moves:
            os.replace(tmp, target)
        self.moves.clear()

    def discard(self) -> None:
        for tmp, _ in self.moves:
            tmp.unlink(missing_ok=True)
        self.moves.clear()


def safe_component(name: str) -> str:
    """Return a file-name-safe version of ``name`` (a symbol) for use as a path component.

    Plain names are kept; anything else has unsafe characters replaced and a short hash of
    the original appended, so different names never collide.

    >>> safe_component("BTCUSDT")
    'BTCUSDT'
    >>> safe_component("../x")[:5]
    '___x-'
    """
    cleaned = re.sub(r"^\.+", lambda m: "_" * len(m.group()), _SAFE_RE.sub("_", name))
    if cleaned == name and name and name != STATIC_DIR:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[:40] or 'symbol'}-{digest}"


def environment() -> jinja2.Environment:
    """Return the Jinja environment: package templates, autoescape on, StrictUndefined."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = fmt_usd
    env.filters["price"] = fmt_price
    env.filters["pct"] = fmt_pct
    env.filters["utc"] = fmt_time
    env.filters["num"] = fmt_num
    env.filters["step"] = fmt_step
    return env


# ---------------------------------------------------------------------------- formatting


def fmt_usd(value: float | None) -> str:
    """Compact USD: $1.23B, $45.6M, $789K, $12."""
    if value is None or not math.isfinite(value):
        return "–"
    sign = "-" if value < 0 else ""
    v = abs(value)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            return f"{sign}${v / div:,.3g}{suffix}"
    return f"{sign}${v:,.0f}"


def fmt_price(value: float | None) -> str:
    """Price with sensible precision for its magnitude."""
    if value is None or not math.isfinite(value):
        return "–"
    v = abs(value)
    digits = 2 if v >= 100 else 4 if v >= 1 else 6
    return f"{value:,.{digits}f}"


def fmt_pct(value: float | None, signed: bool = True) -> str:
    """Percent with two decimals (signed by default)."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def fmt_step(value: float | None) -> str:
    """A price step without trailing zeros: 50, 0.25, 0.0001."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.8g}"


def fmt_num(value: float | None, digits: int = 3) -> str:
    """Plain number with ``digits`` decimals."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def fmt_time(value: datetime | None) -> str:
    """UTC timestamp as ``YYYY-MM-DD HH:MM UTC``."""
    if value is None:
        return "–"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------- static files


def bundle_header(vl_version: str = VL_VERSION) -> str:
    """First line of the bundled script: names the library versions it contains."""
    embed, vega = vl_convert.get_vega_embed_version(), vl_convert.get_vega_version()
    return f"/* vega-embed {embed}, vega {vega}, vega-lite {vl_version}: bundled by vl-convert */"


@lru_cache(maxsize=2)
def vega_bundle(vl_version: str = VL_VERSION) -> str:
    """Vega, Vega-Lite and vega-embed as one classic (non-module) script defining
    ``window.vegaEmbed``; built by vl-convert from its bundled sources (takes ~2 s, cached).

    Chromium does not load ES modules from ``file://``, so this must stay a classic script.
    The bundle is wrapped in a function so its top-level names stay out of the page scope.
    """
    # the default snippet assigns vegaEmbed, vega and vegaLite to window
    bundle = vl_convert.javascript_bundle(vl_version=vl_version)  # type: ignore[call-arg]
    return f"{bundle_header(vl_version)}\n(function () {{\n{bundle}\n}})();\n"


def _package_text(name: str) -> str:
    return (resources.files("reports") / "static" / name).read_text(encoding="utf-8")


def write_static(site_dir: Path) -> list[Path]:
    """Write the JavaScript bundle, stylesheet and embed script under ``site_dir/static``.

    Files already holding the same bytes are left alone (so rebuilds are cheap).
    """
    out = site_dir / STATIC_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    bundle_path = out / BUNDLE_NAME
    header = bundle_header().encode("utf-8")
    current = False
    with suppress(OSError), bundle_path.open("rb") as fh:
        current = fh.read(len(header)) == header
    if not (bundle_path.exists() and current):
        _replace_bytes(bundle_path, vega_bundle().encode("utf-8"))
    written.append(bundle_path)
    for name in ("liqheat.css", "liqheat.js"):
        target = out / name
        data = _package_text(name).encode("utf-8")
        if not target.exists() or target.read_bytes() != data:
            _replace_bytes(target, data)
        written.append(target)
    return written


def _replace_bytes(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)


# ---------------------------------------------------------------------------- page data


def available_ranges(span: timedelta, days: Sequence[int]) -> list[int]:
    """Ranges (in days) worth a page for data covering ``span``: ascending, stopping at the
    first range that already shows all the data.

    >>> available_ranges(timedelta(days=3), (1, 3, 7, 30))
    [1, 3]
    >>> available_ranges(timedelta(days=2, hours=12), (1, 3, 7, 30))
    [1, 3]
    """
    out: list[int] = []
    for d in sorted(set(days)):
        if d <= 0:
            continue
        out.append(d)
        if span <= timedelta(days=d):
            break
    return out


def _params(params_json: str) -> list[tuple[str, str]]:
    try:
        parsed = json.loads(params_json)
    except (TypeError, ValueError):
        return [("params_json", str(params_json))]
    if not isinstance(parsed, dict):
        return [("params", json.dumps(parsed))]
    out: list[tuple[str, str]] = []
    for key, value in sorted(parsed.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        out.append((str(key), text))
    return out


def _score_rows(scores: pl.DataFrame) -> list[dict[str, Any]]:
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
        rows.append(
            {
                "side": side,
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


def _lineage_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
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


#: tab labels of the exchange switch
EXCHANGE_LABELS = {
    rr.AGGREGATE_EXCHANGE: "All exchanges",
    "binance": "Binance",
    "bybit": "Bybit",
    "okx": "OKX",
}


def exchange_label(exchange: str) -> str:
    """Display name of an exchange id (``"all"`` is the aggregate).

    >>> exchange_label("okx"), exchange_label("all"), exchange_label("kraken")
    ('OKX', 'All exchanges', 'Kraken')
    """
    return EXCHANGE_LABELS.get(exchange, exchange.title())


@dataclass(frozen=True)
class _View:
    """One exchange view of a symbol: the aggregate ("all") or a single exchange.

    ``exchanges`` are the venues whose bars, realized liquidations and ingest ledger the view
    shows; ``price_exchange`` draws the price line; ``rel`` is the view's folder inside the
    symbol folder ("" for the default view, "<exchange>/" for the others).
    """

    key: str
    exchanges: tuple[str, ...]
    price_exchange: str
    rel: str

    @property
    def label(self) -> str:
        return exchange_label(self.key)


def _views(db_path: Path, symbol: str, exchanges: Sequence[str] | None) -> list[_View]:
    """The views of ``symbol``: "all" first when an aggregated run exists, then every exchange
    with bars or a model run (restricted to ``exchanges`` when given)."""
    present = rr.symbol_exchanges(db_path, symbol)
    if exchanges is not None:
        present = [ex for ex in present if ex in exchanges]
    has_all = rr.model_run_exists(db_path, rr.AGGREGATE_EXCHANGE, symbol) and (
        exchanges is None or rr.AGGREGATE_EXCHANGE in exchanges
    )
    if not present:
        return []
    with_bars = [ex for ex in present if rr.kline_span(db_path, ex, symbol) is not None]
    price_ex = "binance" if "binance" in with_bars else (with_bars or present)[0]
    keys = ([rr.AGGREGATE_EXCHANGE] if has_all else []) + present
    multi = len(keys) > 1
    views = []
    for key in keys:
        if key == rr.AGGREGATE_EXCHANGE:
            views.append(_View(key, tuple(present), price_ex, ""))
        else:
            # every exchange has its own folder when there is a choice (stable URLs)
            rel = f"{safe_component(key)}/" if multi else ""
            views.append(_View(key, (key,), key, rel))
    return views


@dataclass
class _Symbol:
    symbol: str
    slug: str
    view: _View
    run: dict[str, Any] | None
    span: tuple[datetime, datetime] | None
    synthetic: bool
    key_levels: pl.DataFrame
    liq_map: pl.DataFrame
    scores: pl.DataFrame
    lineage: pl.DataFrame
    days: pl.DataFrame
    ranges: list[int]


def _union_span(
    spans: Sequence[tuple[datetime, datetime] | None],
) -> tuple[datetime, datetime] | None:
    present = [s for s in spans if s is not None]
    if not present:
        return None
    return min(s[0] for s in present), max(s[1] for s in present)


def _load_symbol(
    db_path: Path, view: _View, symbol: str, run: dict[str, Any] | None, days: Sequence[int]
) -> _Symbol:
    span = _union_span([rr.kline_span(db_path, ex, symbol) for ex in view.exchanges])
    empty = pl.DataFrame()
    if run is not None:
        ph = str(run["params_hash"])
        key_levels = rr.latest_key_levels(db_path, view.key, symbol, ph)
        liq_map = rr.latest_liquidation_map(db_path, view.key, symbol, ph)
        scores = rr.latest_scores(db_path, view.key, symbol, ph)
        if span is None:
            span = rr.heatmap_span(db_path, view.key, symbol, ph)
    else:
        key_levels = liq_map = scores = empty
    ranges = available_ranges(span[1] - span[0] + timedelta(minutes=1), days) if span else []
    lineage = pl.concat(
        [rr.lineage(db_path, ex, symbol) for ex in view.exchanges], how="diagonal_relaxed"
    )
    if lineage.height and len(view.exchanges) > 1:
        lineage = lineage.sort(["day", "exchange", "dataset"], descending=[True, False, False])
    return _Symbol(
        symbol=symbol,
        slug=safe_component(symbol),
        view=view,
        run=run,
        span=span,
        synthetic=any(rr.is_synthetic(db_path, ex, symbol) for ex in view.exchanges),
        key_levels=key_levels,
        liq_map=liq_map,
        scores=scores,
        lineage=lineage,
        days=rr.price_days(db_path, view.price_exchange, symbol),
        ranges=ranges,
    )


def _levels(sym: _Symbol) -> list[dict[str, Any]]:
    if sym.key_levels.height == 0:
        return []
    return sym.key_levels.sort("usd", descending=True).to_dicts()


def _ladder(sym: _Symbol, last_price: float | None) -> dict[str, Any]:
    """Key levels as a price ladder: shorts above (highest first), the reference price, then
    longs below (nearest first); ``top`` is the largest USD, for bar widths."""
    ref = float(sym.liq_map["ref_price"][0]) if sym.liq_map.height else last_price
    if sym.key_levels.height == 0:
        return {"shorts": [], "longs": [], "ref": ref, "top": 0.0}
    by_price = sym.key_levels.sort("price", descending=True)
    return {
        "shorts": by_price.filter(pl.col("side") == "short").to_dicts(),
        "longs": by_price.filter(pl.col("side") == "long").to_dicts(),
        "ref": ref,
        "top": float(sym.key_levels["usd"].max()),  # type: ignore[arg-type]
    }


def _strongest(sym: _Symbol) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {"long": None, "short": None}
    for side in out:
        if sym.key_levels.height:
            part = sym.key_levels.filter(pl.col("side") == side).sort("usd", descending=True)
            out[side] = part.row(0, named=True) if part.height else None
    return out


def _realized(
    db_path: Path, view: _View, symbol: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Realized liquidations of every exchange of the view (all of them on the aggregate)."""
    frames = [rr.realized_liquidations(db_path, ex, symbol, start, end) for ex in view.exchanges]
    return pl.concat(frames, how="diagonal_relaxed").sort("ts")


def _range_page(
    db_path: Path, view: _View, sym: _Symbol, n_days: int, *, png: bool = True
) -> tuple[dict[str, Any], bytes | None]:
    """Context for one symbol x range page, and the heatmap PNG bytes (None without a model)."""
    assert sym.span is not None
    end = sym.span[1] + timedelta(minutes=1)
    start = end - timedelta(days=n_days)
    path = rr.price_path(db_path, view.price_exchange, sym.symbol, start, end)
    stats: dict[str, Any] = {"last": None, "change": None, "high": None, "low": None}
    if path.height:
        first_open = float(path["open"][0])
        last = float(path["close"][-1])
        stats = {
            "last": last,
            "change": (last / first_open - 1) * 100 if first_open else None,
            "high": float(path["high"].max()),  # type: ignore[arg-type]
            "low": float(path["low"].min()),  # type: ignore[arg-type]
        }
    heat_spec: dict[str, Any] | None = None
    map_spec: dict[str, Any] | None = None
    png_bytes: bytes | None = None
    grid_info: dict[str, Any] | None = None
    realized = pl.DataFrame()
    if sym.run is not None and path.height:
        ph = str(sym.run["params_hash"])
        cells = rr.heatmap_cells(db_path, view.key, sym.symbol, ph, start, end)
        lo, hi = frames.price_window(path)
        ref_price = float(path["close"][-1])
        if sym.liq_map.height:
            ref_price = float(sym.liq_map["ref_price"][0])
        step = sym.run.get("price_step")
        grid = frames.aggregate_heatmap(
            cells,
            start=start,
            end=end,
            price_lo=lo,
            price_hi=hi,
            base_step=float(step) if step else None,
        )
        line = frames.path_at_step(path, min(grid.time_step, timedelta(minutes=15)), start)
        realized = frames.realized_at_step(
            _realized(db_path, view, sym.symbol, start, end), path, grid.time_step, start
        )
        chart = charts.heatmap_chart(grid, line, ref_price=ref_price, realized=realized)
        heat_spec = chart.to_dict()
        png_bytes = vl_convert.vegalite_to_png(heat_spec, scale=1.5) if png else None
        grid_info = {
            "columns": grid.columns,
            "rows": grid.rows,
            "time_step": _duration(grid.time_step),
            "price_step": grid.price_step,
            "cells": grid.cells.height,
        }
        if sym.liq_map.height:
            bars = frames.aggregate_map(sym.liq_map, price_lo=lo, price_hi=hi)
            if bars.height:
                map_spec = charts.liquidation_map_chart(bars, ref_price=ref_price).to_dict()
    context = {
        "range_days": n_days,
        "start": start,
        "end": end,
        "stats": stats,
        "heatmap_spec": heat_spec,
        "map_spec": map_spec,
        "grid": grid_info,
        "has_realized": bool(heat_spec is not None and realized.height),
    }
    return context, png_bytes


def _duration(step: timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _symbol_common(sym: _Symbol, updated: datetime | None) -> dict[str, Any]:
    run = sym.run
    run_ctx = None
    if run is not None:
        run_ctx = {
            "params_hash": run["params_hash"],
            "params": _params(str(run["params_json"])),
            "computed_at": run["computed_at"],
            "start_ts": run["start_ts"],
            "end_ts": run["end_ts"],
            "bars": run["bars"],
            "levels": run["levels"],
            "price_step": run["price_step"],
            "seconds": run["seconds"],
        }
    lineage = _lineage_rows(sym.lineage)
    statuses = sym.lineage["status"].value_counts().to_dicts() if sym.lineage.height else []
    view = sym.view
    aggregate = view.key == rr.AGGREGATE_EXCHANGE
    venue = (
        " + ".join(exchange_label(ex) for ex in view.exchanges) + " · aggregated"
        if aggregate
        else view.key
    )
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
        "updated": updated,
        "run": run_ctx,
        "key_levels": _levels(sym),
        "ladder": _ladder(sym, None),
        "strongest": _strongest(sym),
        "map_as_of": sym.liq_map["as_of"][0] if sym.liq_map.height else None,
        "scores": _score_rows(sym.scores) if sym.scores.height else [],
        "lineage": lineage,
        "lineage_counts": {str(r["status"]): int(r["count"]) for r in statuses},
    }


# ---------------------------------------------------------------------------- build


@dataclass
class _Built:
    """One view of a symbol after its pages were rendered (for the tabs and the index)."""

    view: _View
    sym: _Symbol
    wanted: list[int]
    links: list[dict[str, Any]]
    common: dict[str, Any]
    pages: dict[int, dict[str, Any]] = field(default_factory=dict)
    pngs: dict[int, bytes] = field(default_factory=dict)


def _tabs(built: list[_Built], current: _Built, here: str, n_days: int) -> list[dict[str, Any]]:
    """The exchange switch of a page in folder ``here`` (relative to the symbol folder): one
    tab per view, linking to the same range when that view has it, else its default page."""
    if len(built) < 2:
        return []
    up = "../" * here.count("/")
    tabs = []
    for b in built:
        exists = {lk["days"] for lk in b.links if lk["exists"]}
        page = f"{n_days}d.html" if n_days in exists else "index.html"
        tabs.append(
            {
                "key": b.view.key,
                "label": b.view.label,
                "href": f"{up}{b.view.rel}{page}",
                "active": b is current,
                "has_run": b.sym.run is not None,
            }
        )
    return tabs


def build_site(
    db_path: Path,
    site_dir: Path,
    *,
    symbols: Sequence[str] | None = None,
    days: Sequence[int] = DEFAULT_DAYS,
    exchanges: Sequence[str] | None = None,
    pngs: bool = True,
) -> SiteResult:
    """Render the report site from the warehouse at ``db_path`` into ``site_dir``; return the
    pages, PNGs and index written.

    Every symbol gets one view per exchange with data (``exchanges`` limits them) plus the
    aggregate ("all") when `flows.steps.aggregate_symbol` stored one. The default view (the
    aggregate, else the first exchange: binance, bybit, okx) lives at ``<SYMBOL>/<N>d.html``;
    with more than one view each exchange also gets ``<SYMBOL>/<exchange>/<N>d.html`` and every
    page shows an exchange switch. ``symbols`` limits the symbol pages rebuilt (default: every
    symbol with data); ``days`` the ranges (a range is built when the data reaches into it).
    The index always lists every symbol in the warehouse and links the pages present after
    the build. ``pngs=False`` skips the heatmap PNGs (a few seconds each). Reads only.
    """
    db_path = Path(db_path)
    site_dir = Path(site_dir)
    env = environment()
    all_symbols = rr.report_symbols(db_path, None)
    if exchanges is not None:
        all_symbols = [s for s in all_symbols if _views(db_path, s, exchanges)]
    if symbols is None:
        chosen = all_symbols
    else:
        missing = [s for s in symbols if s not in all_symbols]
        if missing:
            raise ValueError(f"no data for symbol(s) {', '.join(missing)} in {db_path}")
        chosen = list(dict.fromkeys(symbols))
    runs = {
        ex: {r["symbol"]: r for r in rr.current_runs(db_path, ex).to_dicts()}
        for ex in rr.report_exchanges(db_path)
    }
    updated = rr.last_updated(db_path, None)
    generated = datetime.now(UTC)
    all_days = sorted({*DEFAULT_DAYS, *(int(d) for d in days if int(d) > 0)})
    write_static(site_dir)

    staged = _Staged()
    pages: list[Path] = []
    png_paths: list[Path] = []
    index_rows: list[dict[str, Any]] = []
    try:
        for symbol in all_symbols:
            build = symbol in chosen
            sym_dir = site_dir / safe_component(symbol)
            built: list[_Built] = []
            for view in _views(db_path, symbol, exchanges):
                run = runs.get(view.key, {}).get(symbol)
                sym = _load_symbol(db_path, view, symbol, run, all_days)
                wanted = [d for d in sym.ranges if d in set(days)] if build else []
                if build and not wanted and sym.ranges:
                    # every requested range is longer than the data: show all there is
                    wanted = [sym.ranges[-1]]
                view_dir = sym_dir / view.rel
                links = [
                    {
                        "days": d,
                        "href": f"{d}d.html",
                        "exists": d in wanted or (view_dir / f"{d}d.html").exists(),
                    }
                    for d in sym.ranges
                ]
                b = _Built(view, sym, wanted, links, _symbol_common(sym, updated))
                for d in wanted:
                    b.pages[d], png = _range_page(db_path, view, sym, d, png=pngs)
                    if png is not None:
                        b.pngs[d] = png
                built.append(b)
            # the default view also fills the symbol folder when it lives in its own folder
            folders = [(b, b.view.rel) for b in built]
            if built and built[0].view.rel:
                folders.insert(0, (built[0], ""))
            for b, rel in folders:
                view_dir = sym_dir / rel
                root = "../" * (1 + rel.count("/"))
                for d in b.wanted:
                    ctx = b.pages[d]
                    png_name = f"{d}d.png" if d in b.pngs else None
                    if png_name is not None:
                        png_paths.append(staged.write(view_dir / png_name, b.pngs[d]))
                    page = {
                        **b.common,
                        **ctx,
                        "ladder": _ladder(b.sym, ctx["stats"]["last"]),
                        "root": root,
                        "symbol_href": f"{'../' * rel.count('/')}index.html",
                        "generated": generated,
                        "ranges": [{**lk, "active": lk["days"] == d} for lk in b.links],
                        "tabs": _tabs(built, b, rel, d),
                        "png_href": png_name,
                        "title": _page_title(symbol, b.view, d, len(built) > 1),
                    }
                    html = env.get_template("symbol.html").render(page)
                    pages.append(staged.write(view_dir / f"{d}d.html", html))
                    default = 7 if 7 in b.wanted else max(b.wanted)
                    if d == default:
                        pages.append(staged.write(view_dir / "index.html", html))
            if built:
                index_rows.append(_index_row(db_path, built, sym_dir))
        mark_stale(index_rows)
        # symbols with a model first, then the most recent data, then by name
        index_rows.sort(key=lambda r: (r["run"] is None, -_ordinal(r["last_day"]), r["symbol"]))
        index_ctx = {
            "root": "",
            "title": "liqheat · liquidation heatmaps",
            "exchange": ", ".join(exchange_label(ex) for ex in _index_exchanges(index_rows)),
            "updated": updated,
            "generated": generated,
            "symbols": index_rows,
            "any_synthetic": any(r["synthetic"] for r in index_rows),
        }
        index = site_dir / "index.html"
        html = env.get_template("index.html").render(index_ctx)
        staged.write(index, html)  # last: renamed after every page it links to
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    pages.append(index)
    return SiteResult(pages=pages, pngs=png_paths, index=index)


def _page_title(symbol: str, view: _View, n_days: int, multi: bool) -> str:
    venue = f" · {view.label}" if multi else ""
    return f"{symbol}{venue} · {n_days}d liquidation heatmap"


def _index_exchanges(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for ex in r["exchanges"]:
            seen.setdefault(ex["key"], None)
    return list(seen) or ["binance"]


def _ordinal(day: date | None) -> int:
    return day.toordinal() if day is not None else 0


def _index_row(db_path: Path, built: list[_Built], sym_dir: Path) -> dict[str, Any]:
    """The index card of one symbol: its default view, plus which exchanges it has."""
    main = built[0]
    sym, common = main.sym, main.common
    spark_spec = None
    last = change = None
    if sym.span is not None:
        start = sym.span[1] - timedelta(days=7)
        path = rr.price_path(db_path, main.view.price_exchange, sym.symbol, start, None)
        if path.height:
            spark_spec = charts.sparkline_chart(frames.sparkline(path)).to_dict()
            last = float(path["close"][-1])
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
    return {
        "symbol": sym.symbol,
        "slug": sym.slug,
        "synthetic": sym.synthetic,
        "has_page": bool(main.wanted) or (sym_dir / "index.html").exists(),
        "ranges": main.links,
        "last": last,
        "change_24h": change,
        "spark_spec": spark_spec,
        "strongest": common["strongest"],
        "days": [{**d, "complete": d["bars"] >= 1440} for d in days],
        "first_day": days[-1]["day"] if days else None,
        "last_day": days[0]["day"] if days else None,
        "run": common["run"],
        "aggregate": main.view.key == rr.AGGREGATE_EXCHANGE,
        "exchanges": exchanges,
        "multi": len(built) > 1,
        "last_ts": sym.span[1] if sym.span is not None else None,
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
