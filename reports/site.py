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
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import polars as pl
import vl_convert

from reports import charts, frames
from reports.ranges import Range, available_ranges, default_range, parse_range
from transforms.importing import bar_label
from warehouse import reads
from warehouse import reads_report as rr

#: Vega-Lite version of the bundled JavaScript (matches the Altair schema)
VL_VERSION = "6.4"
STATIC_DIR = "static"
BUNDLE_NAME = "vega-bundle.js"
_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class SiteResult:
    """What :func:`build_site` did: pages written, pages left unchanged (same inputs), the
    index, notes for the reader (e.g. data shorter than a range asked for) and per-symbol
    failures ``(symbol, error)``."""

    pages: list[Path]
    kept: list[Path]
    index: Path
    notes: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


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

    def drop_under(self, folder: Path) -> None:
        """Forget (and delete) the staged files under ``folder`` (a failed symbol)."""
        keep = []
        for tmp, target in self.moves:
            if folder in target.parents:
                tmp.unlink(missing_ok=True)
            else:
                keep.append((tmp, target))
        self.moves[:] = keep

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
        auto_reload=False,  # package files: no need to stat them on every include
    )
    env.filters["usd"] = fmt_usd
    env.filters["price"] = fmt_price
    env.filters["pct"] = fmt_pct
    env.filters["utc"] = fmt_time
    env.filters["num"] = fmt_num
    env.filters["step"] = fmt_step
    env.filters["pstep"] = fmt_price_step
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


def fmt_price_step(value: float | None, step: float | None = None) -> str:
    """A price rounded to the model's price step, with the step's decimals (no stray cents).

    >>> fmt_price_step(61234.5678, 50.0), fmt_price_step(3050.123, 2.5)
    ('61,250', '3,050.0')
    >>> fmt_price_step(1.23456, 0.001)
    '1.235'
    """
    if value is None or not math.isfinite(value):
        return "–"
    if not step or step <= 0 or not math.isfinite(step):
        return fmt_price(value)
    rounded = round(value / step) * step
    text = f"{step:.10f}".rstrip("0")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{rounded:,.{decimals}f}"


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
    header = bundle_header(vl_version)
    cache = _bundle_cache(header)
    with suppress(OSError):
        text = cache.read_text(encoding="utf-8")
        if text.startswith(header + "\n"):
            return text
    # the default snippet assigns vegaEmbed, vega and vegaLite to window
    bundle = vl_convert.javascript_bundle(vl_version=vl_version)  # type: ignore[call-arg]
    text = f"{header}\n(function () {{\n{bundle}\n}})();\n"
    with suppress(OSError):  # best effort: a read-only environment builds it every time
        cache.parent.mkdir(parents=True, exist_ok=True)
        part = cache.with_name(f"{cache.name}.{os.getpid()}.part")
        part.write_text(text, encoding="utf-8")
        os.replace(part, cache)
    return text


def _bundle_cache(header: str) -> Path:
    """Where the built bundle is kept between runs: inside the environment (it depends only
    on the installed vl-convert), named by a hash of its version header."""
    digest = hashlib.sha256(header.encode()).hexdigest()[:16]
    return Path(sys.prefix) / "var" / "liqheat" / f"vega-bundle-{digest}.js"


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
    band_map: pl.DataFrame
    scores: pl.DataFrame
    lineage: pl.DataFrame
    days: pl.DataFrame
    ranges: list[Range]
    #: where-scores of the run (`warehouse.reads.latest_where_scores`; empty: none)
    where: pl.DataFrame = field(default_factory=pl.DataFrame)
    #: per-view reads shared by its range pages (heatmap source step, long/short series)
    memo: dict[Any, Any] = field(default_factory=dict)

    def cached(self, key: Any, compute: Any) -> Any:
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


def _union_span(
    spans: Sequence[tuple[datetime, datetime] | None],
) -> tuple[datetime, datetime] | None:
    present = [s for s in spans if s is not None]
    if not present:
        return None
    return min(s[0] for s in present), max(s[1] for s in present)


def _load_symbol(db_path: Path, view: _View, symbol: str, run: dict[str, Any] | None) -> _Symbol:
    span = _union_span([rr.kline_span(db_path, ex, symbol) for ex in view.exchanges])
    empty = pl.DataFrame()
    if run is not None:
        ph = str(run["params_hash"])
        key_levels = rr.latest_key_levels(db_path, view.key, symbol, ph)
        liq_map = rr.latest_liquidation_map(db_path, view.key, symbol, ph)
        band_map = rr.latest_band_map(db_path, view.key, symbol, ph)
        scores = rr.latest_scores(db_path, view.key, symbol, ph)
        where = reads.latest_where_scores(db_path, view.key, symbol, ph)
        if not where.height and view.price_exchange != view.key:  # the sum has no single run
            where = reads.latest_where_scores(db_path, view.price_exchange, symbol, ph)
        if span is None:
            span = rr.heatmap_span(db_path, view.key, symbol, ph)
    else:
        key_levels = liq_map = band_map = scores = where = empty
    ranges = available_ranges(span[1] - span[0] + timedelta(minutes=1)) if span else []
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
        band_map=band_map,
        scores=scores,
        where=where,
        lineage=lineage,
        days=rr.price_days(db_path, view.price_exchange, symbol),
        ranges=ranges,
    )


def _step(sym: _Symbol) -> float | None:
    step = sym.run.get("price_step") if sym.run else None
    return float(step) if step else None


def _levels(sym: _Symbol) -> list[dict[str, Any]]:
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
    return rows


def _ladder(rows: list[dict[str, Any]], ref: float | None) -> dict[str, Any]:
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


def _picks(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Per side the nearest significant cluster and the largest one (for the cards)."""
    out: dict[str, dict[str, Any] | None] = {}
    for side in ("long", "short"):
        part = [r for r in rows if r["side"] == side]
        out[f"{side}_nearest"] = next((r for r in part if r["nearest"]), None)
        out[f"{side}_largest"] = next((r for r in part if r["largest"]), None)
        out[side] = out[f"{side}_largest"]
    return out


def _realized(
    db_path: Path, view: _View, symbol: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Realized liquidations of every exchange of the view (all of them on the aggregate)."""
    frames_ = [rr.realized_liquidations(db_path, ex, symbol, start, end) for ex in view.exchanges]
    return pl.concat(frames_, how="diagonal_relaxed").sort("ts")


#: display resolution of the heatmap (columns x rows): keeps pages light and fast to draw
HEAT_COLUMNS = 180
HEAT_ROWS = 110


def _map_context(sym: _Symbol) -> dict[str, Any]:
    """The liquidation map of the view (one per symbol view, shared by its range pages)."""
    if sym.liq_map.height == 0:
        return {"map_spec": None, "map": None}
    view = frames.map_view(sym.liq_map, sym.band_map if sym.band_map.height else None)
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
                for b in frames._band_order(bands)
                if b in charts.BAND_COLOURS
            ],
        },
    }


def _range_page(db_path: Path, view: _View, sym: _Symbol, rng: Range) -> dict[str, Any]:
    """Context of one symbol x range page."""
    assert sym.span is not None
    bar = rr.bar_size(db_path, view.price_exchange, sym.symbol)  # the stored bar size
    end = sym.span[1] + bar
    start = max(end - rng.span, sym.span[0].replace(minute=0, second=0, microsecond=0))
    path = rr.price_path(db_path, view.price_exchange, sym.symbol, start, end)
    stats: dict[str, Any] = {"last": None, "change": None, "high": None, "low": None}
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
        }
    heat_spec: dict[str, Any] | None = None
    ls_spec: dict[str, Any] | None = None
    last_ls: dict[str, Any] | None = None
    grid_info: dict[str, Any] | None = None
    has_realized = has_sweeps = has_bands = False
    if sym.run is not None and path.height:
        ph = str(sym.run["params_hash"])
        lo, hi = frames.window_with_levels(
            frames.price_window(path),
            sym.key_levels["price"].to_list() if sym.key_levels.height else [],
        )
        ref_price = float(sym.liq_map["ref_price"][0]) if sym.liq_map.height else stats["last"]
        base = _step(sym) or max(abs(stats["last"] or 1.0) * 1e-4, 1e-9)
        geometry = frames.grid_geometry(
            start=start,
            end=end,
            price_lo=lo,
            price_hi=hi,
            base_step=base,
            source_step=sym.cached(
                ("step", start),
                lambda: rr.heatmap_source_step(db_path, view.key, sym.symbol, ph, since=start),
            ),
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
        cells = rr.heatmap_grid_cells(db_path, view.key, sym.symbol, ph, bands=has_bands, **shape)
        band_cells = pl.DataFrame()
        if has_bands:
            band_cells = cells.filter(pl.col("band").is_not_null())
            cells = cells.filter(pl.col("band").is_null()).drop("band")
        if has_bands and band_cells.height == 0:  # a run with a band map but no band cells
            cells = rr.heatmap_grid_cells(db_path, view.key, sym.symbol, ph, **shape)
            has_bands = False
        grid = frames.with_cells(geometry, cells, band_cells)
        candles = frames.path_at_step(path, grid.time_step, start)
        minutes = max(1, int(grid.time_step.total_seconds() // 60))
        context = rr.market_context(db_path, list(view.exchanges), sym.symbol, start, end, minutes)
        realized = frames.realized_at_step(
            _realized(db_path, view, sym.symbol, start, end), path, grid.time_step, start
        )
        swept = frames.sweeps(grid, candles)
        if swept.height and realized.height:
            swept = swept.join(
                realized.select("ts", "side", pl.col("usd").alias("realized")),
                on=["ts", "side"],
                how="left",
            )
        has_realized, has_sweeps = realized.height > 0, swept.height > 0
        label = f"{sym.symbol} · {view.label} · {rng.label}"
        heat_spec = charts.heatmap_spec(
            grid,
            candles,
            ref_price=ref_price,
            last_ts=last_ts,
            title=f"{label} liquidation heatmap · estimate",
            subtitle=f"liqheat · {fmt_time(start)} → {fmt_time(end)}",
            context=context,
            realized=realized,
            swept=swept,
        )
        every = "1h" if rng.hours <= 72 else "4h" if rng.hours <= 720 else "1d"
        ls = sym.cached(
            ("ls", every), lambda: rr.long_short_over_time(db_path, view.key, sym.symbol, ph, every)
        )
        ls = ls.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        if ls.height:
            ls_spec = charts.long_short_spec(
                ls, start=start, end=end, every=every, title=f"{label} long vs short levels"
            )
            last_ls = ls.row(-1, named=True)
        grid_info = {
            "columns": grid.columns,
            "rows": grid.rows,
            "time_step": _duration(grid.time_step),
            "price_step": grid.price_step,
            "cells": grid.cells.height,
        }
    data_span = sym.span[1] + timedelta(minutes=1) - sym.span[0]
    short_note = None
    if data_span < rng.span:
        short_note = (
            f"The data covers {_duration_text(data_span)}, less than {rng.label}: "
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
        "heatmap_spec": heat_spec,
        "long_short_spec": ls_spec,
        "long_short_last": last_ls,
        "grid": grid_info,
        "has_realized": has_realized,
        "has_sweeps": has_sweeps,
        "has_bands": has_bands,
        "short_note": short_note,
        "export_name": f"{sym.slug}-{view.key}-{rng.key}-liqheat-estimate",
    }


def _duration_text(span: timedelta) -> str:
    """'2d 23h', '11h 30m' (for notes).

    >>> _duration_text(timedelta(days=2, hours=23, minutes=59))
    '2d 23h'
    """
    minutes = int(span.total_seconds() // 60)
    d, rest = divmod(minutes, 1440)
    h, m = divmod(rest, 60)
    if d:
        return f"{d}d {h}h" if h else f"{d}d"
    return f"{h}h {m}m" if m else f"{h}h"


def _duration(step: timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _where_context(where: pl.DataFrame) -> dict[str, Any] | None:
    """The where-scores panel: plain-words sentences, the magnet verdict, the decision span."""
    from transforms.where_words import verdict, where_sentences

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


def _symbol_common(sym: _Symbol) -> dict[str, Any]:
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
        else view.label
    )
    levels = _levels(sym)
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
        "price_step": _step(sym),
        "key_levels": levels,
        "has_ranges": any(r["price_low"] is not None for r in levels),
        "ladder": _ladder(levels, ref),
        "strongest": _picks(levels),
        "map_as_of": sym.liq_map["as_of"][0] if sym.liq_map.height else None,
        "scores": _score_rows(sym.scores) if sym.scores.height else [],
        "where_scores": _where_context(sym.where),
        "lineage": lineage,
        "lineage_counts": {str(r["status"]): int(r["count"]) for r in statuses},
        **_map_context(sym),
    }


# ---------------------------------------------------------------------------- build


@dataclass
class _Built:
    """One view of a symbol after its pages were rendered (for the tabs and the index)."""

    view: _View
    sym: _Symbol
    wanted: list[Range]
    links: list[dict[str, Any]]
    default: Range | None
    common: dict[str, Any] | None = None
    pages: dict[Range, dict[str, Any]] = field(default_factory=dict)


def _tabs(built: list[_Built], current: _Built, here: str, rng: Range) -> list[dict[str, Any]]:
    """The exchange switch of a page in folder ``here`` (relative to the symbol folder): one
    tab per view, linking to the same range when that view has it, else its default page."""
    if len(built) < 2:
        return []
    up = "../" * here.count("/")
    tabs = []
    for b in built:
        exists = {lk["key"] for lk in b.links if lk["exists"]}
        page = rng.page if rng.key in exists else "index.html"
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


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the report code, templates and static files: pages built by other code are
    rebuilt even when their data did not change."""
    digest = hashlib.sha256()
    root = resources.files("reports")
    for sub in ("", "templates", "static"):
        folder = root / sub if sub else root
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_file() and entry.name.endswith((".py", ".html", ".css", ".js")):
                digest.update(entry.name.encode())
                digest.update(entry.read_bytes())
    digest.update(Path(rr.__file__).read_bytes())
    digest.update(bundle_header().encode())
    return digest.hexdigest()[:16]


_FINGERPRINT_RE = re.compile(rb'<meta name="liqheat-inputs" content="([0-9a-f]+)">')


def _fingerprint(*parts: Any) -> str:
    text = json.dumps([code_version(), *parts], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _unchanged(target: Path, fingerprint: str) -> bool:
    """True when ``target`` exists and was built from the same inputs."""
    try:
        with target.open("rb") as fh:
            head = fh.read(2048)
    except OSError:
        return False
    m = _FINGERPRINT_RE.search(head)
    return m is not None and m.group(1).decode() == fingerprint


def build_site(
    db_path: Path,
    site_dir: Path,
    *,
    symbols: Sequence[str] | None = None,
    days: Sequence[Range | str | int] | None = None,
    exchanges: Sequence[str] | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SiteResult:
    """Render the report site from the warehouse at ``db_path`` into ``site_dir``; return the
    pages written, the pages left as they were, notes and per-symbol failures.

    Every symbol gets one view per exchange with data (``exchanges`` limits them) plus the
    aggregate ("all") when `flows.steps.aggregate_symbol` stored one. The default view (the
    aggregate, else the first exchange: binance, bybit, okx) lives at ``<SYMBOL>/<range>.html``;
    with more than one view each exchange also gets ``<SYMBOL>/<exchange>/<range>.html`` and
    every page shows an exchange switch. Ranges are :data:`reports.ranges.RANGES` (12h .. 1y);
    ``days`` limits the pages built to those ranges (keys like ``"3d"`` or day counts), but
    every page links every range the data covers, and ``<SYMBOL>/index.html`` is always the
    default range (7d, else the longest the data has), built when missing. A range longer
    than the data builds the range that shows all of it, with a note. ``symbols`` limits the
    symbol pages rebuilt (default: every symbol with data); the index always lists every
    symbol. Pages whose inputs did not change are left alone (``force`` rebuilds them). A
    symbol whose pages fail to build is reported in ``failures`` and never stops the others.
    Reads only, over one warehouse connection per process: from :data:`MIN_PARALLEL_SYMBOLS`
    symbols on, the symbols' pages are built in worker processes (``workers``, default the
    usable cores; see :func:`site_workers`) and every page is still renamed into place at the
    end, together. ``progress(done, total)`` is called after each symbol (``total``: the
    symbols on the index, ``done`` from 1 to ``total``).
    """
    db_path = Path(db_path)
    site_dir = Path(site_dir)
    with rr.one_connection(db_path):
        return _build(db_path, site_dir, symbols, days, exchanges, force, workers, progress)


def _requested(days: Sequence[Range | str | int] | None) -> list[Range] | None:
    if days is None:
        return None
    out = [d if isinstance(d, Range) else parse_range(str(d)) for d in days]
    return sorted(set(out))


def _build(
    db_path: Path,
    site_dir: Path,
    symbols: Sequence[str] | None,
    days: Sequence[Range | str | int] | None,
    exchanges: Sequence[str] | None,
    force: bool,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SiteResult:
    env = environment()
    requested = _requested(days)
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
    generated = datetime.now(UTC)
    write_static(site_dir)
    alerts = [
        {**a, "price_step": runs.get(a["exchange"], {}).get(a["symbol"], {}).get("price_step")}
        for a in _alerts(db_path)
    ]
    nav = [{"symbol": s, "slug": safe_component(s)} for s in all_symbols]

    staged = _Staged()
    pages: list[Path] = []
    kept: list[Path] = []
    notes: list[str] = []
    failures: list[tuple[str, str]] = []
    index_rows: list[dict[str, Any]] = []
    newest: datetime | None = None
    jobs = [
        _SymbolJob(
            db_path=db_path,
            site_dir=site_dir,
            symbol=symbol,
            runs=runs,
            requested=requested,
            exchanges=exchanges,
            build=symbol in chosen,
            nav=nav,
            generated=generated,
            force=force,
            alerts=[a for a in alerts if a["symbol"] == symbol],
        )
        for symbol in all_symbols
    ]
    try:
        for count, done in enumerate(_symbol_results(jobs, env, workers), start=1):
            staged.moves += done.moves
            pages += done.pages
            kept += done.kept
            notes += done.notes
            if done.error is not None:  # one symbol's failure never stops the others
                failures.append((done.symbol, done.error))
            elif done.row is not None:
                index_rows.append(done.row)
                last_ts = done.row["last_ts"]
                if last_ts is not None:
                    newest = max(newest, last_ts) if newest else last_ts
            if progress is not None:
                progress(count, len(all_symbols))
        mark_stale(index_rows)
        # symbols with a model first, then the most recent data, then by name
        index_rows.sort(key=lambda r: (r["run"] is None, -_ordinal(r["last_day"]), r["symbol"]))
        index_ctx = {
            "root": "",
            "title": "liqheat · liquidation heatmaps",
            "exchange": ", ".join(exchange_label(ex) for ex in _index_exchanges(index_rows)),
            "updated": newest,
            "generated": generated,
            "symbols": index_rows,
            "nav": nav,
            "current_slug": None,
            "failures": [{"symbol": s, "error": e} for s, e in failures],
            "alerts": alerts,
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
    return SiteResult(pages=pages, kept=kept, index=index, notes=notes, failures=failures)


@dataclass(frozen=True)
class _SymbolJob:
    """What one symbol's pages are built from (picklable: it may go to a worker process)."""

    db_path: Path
    site_dir: Path
    symbol: str
    runs: dict[str, dict[str, Any]]
    requested: list[Range] | None
    exchanges: Sequence[str] | None
    build: bool
    nav: list[dict[str, Any]]
    generated: datetime
    force: bool
    alerts: list[dict[str, Any]]


@dataclass
class _SymbolDone:
    """One symbol's staged pages (temporary files, renamed by the parent's commit), the pages
    left as they were, notes, its index card, or the error that stopped it."""

    symbol: str
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    pages: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    row: dict[str, Any] | None = None
    error: str | None = None


def _run_symbol_job(job: _SymbolJob, env: jinja2.Environment | None = None) -> _SymbolDone:
    """Build one symbol's pages to staged temporary files; never raises (the error is in the
    result, and the symbol's staged files are removed)."""
    env = env or environment()
    staged = _Staged()
    done = _SymbolDone(job.symbol)
    sym_dir = job.site_dir / safe_component(job.symbol)
    try:
        with rr.one_connection(job.db_path):
            built = _build_symbol(
                job.db_path,
                env,
                job.symbol,
                sym_dir,
                job.runs,
                job.requested,
                job.exchanges,
                build=job.build,
                nav=job.nav,
                generated=job.generated,
                force=job.force,
                staged=staged,
                pages=done.pages,
                kept=done.kept,
                notes=done.notes,
                alerts=job.alerts,
            )
            if built:
                done.row = _index_row(job.db_path, built, sym_dir)
    except Exception as exc:
        staged.discard()
        return _SymbolDone(job.symbol, notes=done.notes, error=f"{type(exc).__name__}: {exc}")
    done.moves = list(staged.moves)
    return done


#: symbols to build before the pages are spread over worker processes (fewer do not pay for
#: starting them: ~2 s of imports each)
MIN_PARALLEL_SYMBOLS = 8


def site_workers(symbols: int, workers: int | None = None) -> int:
    """Worker processes for building ``symbols`` symbols' pages: the usable cores (or
    ``workers``), 0 (build here) below :data:`MIN_PARALLEL_SYMBOLS` or on one core.

    Examples
    --------
    >>> site_workers(4, 2), site_workers(100, 2), site_workers(100, 1)
    (0, 2, 0)
    """
    cores = workers if workers is not None else len(os.sched_getaffinity(0))
    if symbols < MIN_PARALLEL_SYMBOLS or cores <= 1:
        return 0
    return min(cores, symbols)


def _symbol_results(
    jobs: list[_SymbolJob], env: jinja2.Environment, workers: int | None
) -> Iterator[_SymbolDone]:
    """Each job's result, in job order: built here, or in worker processes (pages render in
    Python under the GIL; every worker reads the warehouse over its own connection)."""
    n = site_workers(sum(j.build for j in jobs), workers)
    if n == 0:
        for job in jobs:
            yield _run_symbol_job(job, env)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # the flow process runs threads: never fork
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        yield from pool.map(_run_symbol_job, jobs, chunksize=1)


def _build_symbol(
    db_path: Path,
    env: jinja2.Environment,
    symbol: str,
    sym_dir: Path,
    runs: dict[str, dict[str, Any]],
    requested: list[Range] | None,
    exchanges: Sequence[str] | None,
    *,
    build: bool,
    nav: list[dict[str, Any]],
    generated: datetime,
    force: bool,
    staged: _Staged,
    pages: list[Path],
    kept: list[Path],
    notes: list[str],
    alerts: list[dict[str, Any]],
) -> list[_Built]:
    built: list[_Built] = []
    for view in _views(db_path, symbol, exchanges):
        run = runs.get(view.key, {}).get(symbol)
        sym = _load_symbol(db_path, view, symbol, run)
        default = default_range(sym.ranges)
        view_dir = sym_dir / view.rel
        wanted: list[Range] = []
        if build and sym.ranges:
            if requested is None:
                wanted = list(sym.ranges)
            else:
                wanted = [r for r in requested if r in sym.ranges]
                longer = [r for r in requested if r > sym.ranges[-1]]
                if longer:
                    have = _duration_text(sym.span[1] - sym.span[0] + timedelta(minutes=1))  # type: ignore[index]
                    notes.append(
                        f"{symbol} ({view.label}): data covers {have}, shorter than "
                        f"{', '.join(r.key for r in longer)}; built {sym.ranges[-1].key}, "
                        "which shows all of it"
                    )
                    wanted.append(sym.ranges[-1])
                if default is not None and not (view_dir / "index.html").exists():
                    wanted.append(default)
                wanted = sorted(set(wanted))
        links = [
            {
                "key": r.key,
                "label": r.label,
                "href": r.page,
                "exists": r in wanted or (view_dir / r.page).exists(),
            }
            for r in sym.ranges
        ]
        built.append(_Built(view, sym, wanted, links, default))
    # the default view also fills the symbol folder when it lives in its own folder
    folders = [(b, b.view.rel) for b in built]
    if built and built[0].view.rel:
        folders.insert(0, (built[0], ""))
    tabs_key = [(b.view.key, [lk["key"] for lk in b.links if lk["exists"]]) for b in built]
    for b, rel in folders:
        view_dir = sym_dir / rel
        root = "../" * (1 + rel.count("/"))
        sym = b.sym
        run = sym.run or {}
        loaded = (
            [rr.last_loaded(db_path, ex, symbol) for ex in b.view.exchanges] if b.wanted else []
        )
        for rng in b.wanted:
            targets = [view_dir / rng.page] + (
                [view_dir / "index.html"] if rng == b.default else []
            )
            fp = _fingerprint(
                symbol,
                b.view.key,
                rel,
                rng.key,
                sym.span,
                run.get("params_hash"),
                run.get("computed_at"),
                loaded,
                [lk for lk in b.links],
                tabs_key,
                nav,
                alerts,
            )
            if not force and all(_unchanged(t, fp) for t in targets):
                kept.extend(targets)
                continue
            if b.common is None:
                b.common = _symbol_common(sym)
            if rng not in b.pages:
                b.pages[rng] = _range_page(db_path, b.view, sym, rng)
            ctx = b.pages[rng]
            page = {
                **b.common,
                **ctx,
                "ladder": b.common["ladder"]
                if b.common["ladder"]["ref"] is not None
                else _ladder(b.common["key_levels"], ctx["stats"]["last"]),
                "root": root,
                "symbol_href": f"{'../' * rel.count('/')}index.html",
                "generated": generated,
                "ranges": [{**lk, "active": lk["key"] == rng.key} for lk in b.links],
                "tabs": _tabs(built, b, rel, rng),
                "nav": nav,
                "current_slug": sym.slug,
                "fingerprint": fp,
                "alerts": alerts,
                "title": _page_title(symbol, b.view, rng, len(built) > 1),
            }
            html = env.get_template("symbol.html").render(page)
            for t in targets:
                pages.append(staged.write(t, html))
    return built


def _alerts(db_path: Path) -> list[dict[str, Any]]:
    """The alerts of the current runs (clusters near the price), for the banners (none on a
    warehouse without the alerts view)."""
    try:
        frame = rr.latest_alerts(db_path)
    except duckdb.CatalogException:
        return []
    return [
        {**r, "slug": safe_component(str(r["symbol"])), "label": exchange_label(str(r["exchange"]))}
        for r in frame.to_dicts()
    ]


def _page_title(symbol: str, view: _View, rng: Range, multi: bool) -> str:
    venue = f" · {view.label}" if multi else ""
    return f"{symbol}{venue} · {rng.label} liquidation heatmap"


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
    sym = main.sym
    levels = _levels(sym)
    spark_spec = None
    last = change = None
    if sym.span is not None:
        start = sym.span[1] - timedelta(days=7)
        path = rr.price_path(db_path, main.view.price_exchange, sym.symbol, start, None)
        if path.height:
            spark_spec = charts.sparkline_chart(frames.sparkline(path)).to_dict(validate=False)
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
        "strongest": _picks(levels),
        "price_step": _step(sym),
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
