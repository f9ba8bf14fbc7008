"""The site writer against a real warehouse: files, sizes, escaping, atomicity, templates."""

from __future__ import annotations

import difflib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from reports import build, contexts, ranges, site
from warehouse import reads_outputs as ro
from warehouse import reads_report as rr
from warehouse.reads import query

from .conftest import HOSTILE, HOSTILE_NOTE, BuiltSite


def test_pages(built_site: BuiltSite) -> None:
    root = built_site.root
    result = built_site.result
    assert result.index == root / "index.html"
    names = {p.relative_to(root).as_posix() for p in result.pages}
    # 3 days of BTCUSDT: 12h, 24h and 3d (which shows all of it), no 7d or longer
    assert {"index.html", "BTCUSDT/12h.html", "BTCUSDT/24h.html", "BTCUSDT/3d.html"} <= names
    assert {"BTCUSDT/index.html", "ETHUSDT/12h.html", "ETHUSDT/24h.html"} <= names
    assert not any(r in n for n in names for r in ("7d", "30d", "90d", "1y"))
    assert {"BTCUSDT/binance/index.html", "BTCUSDT/bybit/3d.html"} <= names
    assert not any(n.startswith(("BTCUSDT/okx", "BTCUSDT/all", "ETHUSDT/binance")) for n in names)
    assert not list(root.rglob("*.png"))  # PNG export is the chart's own, in the browser
    for page in result.pages:
        assert page.stat().st_size < 1_000_000, page
    # index.html of a symbol is its default range: the longest it has below 7d
    assert (root / "BTCUSDT" / "index.html").read_bytes() == (
        root / "BTCUSDT" / "3d.html"
    ).read_bytes()
    assert (root / "static" / site.BUNDLE_NAME).stat().st_size > 300_000
    assert not list(root.rglob(".*.tmp-*"))
    assert result.failures == []


def test_symbol_page_content(built_site: BuiltSite) -> None:
    html = (built_site.root / "BTCUSDT" / "3d.html").read_text()
    assert 'href="24h.html"' in html
    assert 'href="12h.html"' in html
    assert 'src="../static/vega-bundle.js"' in html
    assert html.count("vega-bundle.js") == 1
    assert not re.search(r'(src|href)="(https?:)?//', html.replace('href="https://data.b', ""))
    assert "These are estimates" in html
    assert "SYNTHETIC DATA" not in html
    assert "beats the naive baseline" in html
    # where-scores in trader words (stored: magnet lift 1.02, interval 0.97-1.07)
    assert "reached no more often than any level at the same distance from price" in html
    assert "a level at the same distance: 47 % (lift 1.02, 95 % interval 0.97-1.07)" in html
    assert "realized liquidations (size = USD)" in html
    assert "USDⓈ" not in html
    assert "USD-M perpetual" in html
    for needle in ("Key levels", "How well the model did", "Model run", "Data lineage"):
        assert needle in html
    assert 'data-export="BTCUSDT-all-3d-liqheat-estimate"' in html
    spec = _spec(html, "heatmap-chart")
    assert "estimate" in spec["title"]["text"]
    assert "3D" in spec["title"]["text"]
    marks = _marks(spec)
    assert {"rect", "rule", "line", "circle", "text"} <= set(marks)
    names = {p["name"] for p in spec["params"]}
    assert {"lev", "clip", "dense"} <= names  # leverage filter, intensity, candle/line switch
    lev = next(p for p in spec["params"] if p["name"] == "lev")
    assert lev["bind"]["options"] == ["all", "high", "medium", "low"]
    assert "Leverage filter: low = up to 10x, medium = over 10x up to 50x, high = over 50x" in html
    # volume and open interest share the heatmap's time axis
    assert len(spec["vconcat"]) >= 2
    assert spec["resolve"]["scale"]["x"] == "shared"
    eth = (built_site.root / "ETHUSDT" / "24h.html").read_text()
    assert "SYNTHETIC DATA" in eth


def _marks(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        mark = node.get("mark")
        if mark is not None:
            out.append(mark if isinstance(mark, str) else mark["type"])
        for v in node.values():
            out.extend(_marks(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(_marks(v))
    return out


def _spec(html: str, chart_id: str) -> dict[str, Any]:
    m = re.search(
        rf'<script type="application/json" id="{chart_id}-spec">(.*?)</script>', html, re.S
    )
    assert m is not None, chart_id
    spec: dict[str, Any] = json.loads(m.group(1))
    return spec


def _usd(text: str) -> float:
    """Parse '$1.23B' / '$45.6M' / '$789K' / '$12'."""
    m = re.fullmatch(r"\$([\d.,]+)([BMK]?)", text.strip())
    assert m is not None, text
    return float(m.group(1).replace(",", "")) * {"B": 1e9, "M": 1e6, "K": 1e3, "": 1.0}[m.group(2)]


def test_map_totals_equal_the_warehouse(built_site: BuiltSite) -> None:
    """The map's printed totals are the whole stored map (v_latest_liquidation_map), and the
    moves table matches SQL on the warehouse."""
    for rel, exchange in (("3d.html", "all"), ("binance/3d.html", "binance")):
        html = (built_site.root / "BTCUSDT" / rel).read_text()
        sql = rr.query(
            built_site.db,
            "SELECT sum(long_usd) AS l, sum(short_usd) AS s, any_value(ref_price) AS ref "
            "FROM liquidation_map WHERE exchange = ? AND symbol = 'BTCUSDT' AND as_of = "
            "(SELECT max(as_of) FROM liquidation_map WHERE exchange = ? AND symbol = 'BTCUSDT')",
            [exchange, exchange],
        )
        long_total, short_total, ref = sql.row(0)
        for side, total in (("long", long_total), ("short", short_total)):
            m = re.search(rf'data-total="{side}">([^<]+)<', html)
            assert m is not None
            assert _usd(m.group(1)) == pytest.approx(total, rel=6e-3)
        moves = re.search(r'<table class="moves".*?</table>', html, re.S)
        assert moves is not None
        cells = re.findall(r'<td class="num (long|short)-text">([^<]+)</td>', moves.group(0))
        assert len(cells) == 8
        down2 = (
            rr.query(
                built_site.db,
                "SELECT sum(long_usd) AS v FROM liquidation_map WHERE exchange = ? "
                "AND symbol = 'BTCUSDT' AND price >= ? AND as_of = (SELECT max(as_of) "
                "FROM liquidation_map WHERE exchange = ? AND symbol = 'BTCUSDT')",
                [exchange, ref * 0.98, exchange],
            )["v"][0]
            or 0.0
        )
        assert cells[2][0] == "long"  # rows: 1 %, 2 %, ...; longs then shorts
        assert _usd(cells[2][1]) == pytest.approx(down2, rel=6e-3, abs=1.0)
        spec = _spec(html, "map-chart")
        layer = spec["layer"][0]
        rows = layer["data"]["values"].strip().splitlines()
        head = rows[0].split(",")
        usd = head.index("usd")
        drawn = sum(float(r.split(",")[usd]) for r in rows[1:])
        outside = [_usd(m) for m in re.findall(r'data-outside="(?:long|short)">([^<]+)<', html)]
        # what the chart draws plus what the page says lies outside it = the warehouse total
        assert drawn + sum(outside) == pytest.approx(long_total + short_total, rel=6e-3)


def test_alerts_banner_and_long_short(built_site: BuiltSite) -> None:
    index = built_site.result.index.read_text()
    banner = index[index.index('id="alerts"') :].split("</section>")[0]
    assert 'href="BTCUSDT/index.html">BTCUSDT</a>' in banner
    btc = (built_site.root / "BTCUSDT" / "3d.html").read_text()
    assert 'id="alerts"' in btc
    assert 'id="alerts"' not in (built_site.root / "ETHUSDT" / "24h.html").read_text()
    spec = _spec(btc, "long-short-chart")
    rows = spec["data"]["values"].strip().splitlines()
    assert rows[0] == "t,long,short,delta"
    assert len(rows) == 1 + 72  # 3 days per hour


def test_heatmap_axis_is_tight_and_far_levels_are_edge_markers(built_site: BuiltSite) -> None:
    """Issue 20: the price axis is the window's traded range plus a margin (at most ~3x the
    range), and every key level is either on the axis or an edge marker with its label."""
    for rel in ("12h.html", "3d.html"):
        html = (built_site.root / "BTCUSDT" / rel).read_text()
        spec = _spec(html, "heatmap-chart")
        lo, hi = spec["usermeta"]["liqheat"]["axis"]
        candles = spec["vconcat"][0]["layer"][1]["data"]["values"].strip().splitlines()
        head = candles[0].split(",")
        rows = [[float(x) for x in r.split(",")] for r in candles[1:]]
        low = min(r[head.index("l")] for r in rows)
        high = max(r[head.index("h")] for r in rows)
        assert lo < low
        assert hi > high
        assert hi - lo <= 3.2 * (high - low), (rel, lo, hi, low, high)
        prices = [float(p) for p in re.findall(r'data-level-price="([^"]+)"', html)]
        assert prices
        edges = spec["usermeta"]["liqheat"]["edges"]
        marker_layer = (
            next(
                m
                for m in spec["vconcat"][0]["layer"]
                if isinstance(m.get("mark"), dict) and m["mark"].get("name") == "edge_markers"
            )
            if edges
            else None
        )
        for p in prices:
            assert lo <= p < hi or p in edges, (rel, p, lo, hi, edges)
        if marker_layer is not None:
            labels = [v["label"] for v in marker_layer["data"]["values"]]
            assert len(labels) == len(edges)
            assert all(
                re.match(r"[▲▼] (long|short) [\d,.]+ · \$[\d.]+[BMK]? · [+-]", t) for t in labels
            )
    assert any(  # the 12h page of the fixture has levels beyond its axis
        _spec((built_site.root / "BTCUSDT" / "12h.html").read_text(), "heatmap-chart")["usermeta"][
            "liqheat"
        ]["edges"]
        for _ in [0]
    )


def test_key_levels_show_nearest_and_largest(built_site: BuiltSite) -> None:
    html = (built_site.root / "BTCUSDT" / "3d.html").read_text()
    for card in ("long-nearest", "long-largest", "short-nearest", "short-largest"):
        m = re.search(rf'data-card="{card}">.*?<div class="card-value">([^<]+)</div>', html, re.S)
        assert m is not None, card
        # prices rounded to the 50 USDT price step, no cents
        assert re.fullmatch(r"[\d,]+", m.group(1)), m.group(1)
    table = html[html.index('id="key-levels"') :].split("</section>")[0]
    assert table.count(">nearest<") == 2
    assert table.count(">largest<") == 2


def test_hostile_names_are_escaped_and_paths_safe(built_site: BuiltSite) -> None:
    slug = site.safe_component(HOSTILE)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", slug)
    page = built_site.root / slug / "24h.html"
    assert page in built_site.result.pages
    for path in [*built_site.result.pages]:
        html = path.read_text()
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
    index = built_site.result.index.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    hostile_page = page.read_text()
    assert "&lt;img src=x onerror=alert(2)&gt;" in hostile_page  # the failed file's error
    btc = (built_site.root / "BTCUSDT" / "24h.html").read_text()
    assert "&lt;img src=x onerror=alert(2)&gt;" in btc  # the model's params note


@pytest.mark.parametrize("name", ["", ".", "..", "static", "a/b", "../../etc", ".hidden", "Ä"])
def test_safe_component(name: str) -> None:
    slug = site.safe_component(name)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", slug)
    assert slug not in {".", "..", "static"}
    assert not slug.startswith(".")
    assert "/" not in slug


def test_safe_component_keeps_plain_names_and_separates_others() -> None:
    assert site.safe_component("BTCUSDT") == "BTCUSDT"
    assert site.safe_component("a/b") != site.safe_component("a_b")


def test_strict_undefined_catches_missing_context() -> None:
    env = site.environment()
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("_key_levels.html").render()


def test_autoescape_and_tojson_in_chart_partial() -> None:
    env = site.environment()
    html = env.get_template("_chart.html").render(
        chart_id="c1", chart_spec={"title": "</script><script>alert(3)</script>"}, chart_label="<b>"
    )
    assert "</script><script>" not in html
    assert "<b>" not in html
    assert "\\u003c/script\\u003e" in html


def test_ranges() -> None:
    keys = [r.key for r in ranges.available_ranges(timedelta(days=400))]
    assert keys == ["12h", "24h", "3d", "7d", "30d", "90d", "180d", "1y"]
    assert [r.key for r in ranges.available_ranges(timedelta(days=10))][-1] == "30d"
    assert [r.key for r in ranges.available_ranges(timedelta(hours=5))] == ["12h"]
    assert ranges.parse_range("7").key == "7d"
    assert ranges.parse_range("1").key == "24h"
    assert ranges.parse_range("365d").key == "1y"
    with pytest.raises(ValueError, match="expected one of 12h, 24h"):
        ranges.parse_range("2w")


def test_reads_report(report_db: Path) -> None:
    assert rr.is_synthetic(report_db, "binance", "ETHUSDT")
    assert not rr.is_synthetic(report_db, "binance", "BTCUSDT")
    runs = rr.current_runs(report_db, "binance")
    assert sorted(runs["symbol"].to_list()) == ["BTCUSDT", "ETHUSDT"]
    assert set(rr.report_symbols(report_db, "binance")) == {"BTCUSDT", "ETHUSDT", HOSTILE}
    levels = ro.latest_key_levels(report_db, "binance", "BTCUSDT", runs["params_hash"][0])
    assert set(levels["side"]) == {"long", "short"}
    assert rr.price_days(report_db, "binance", "BTCUSDT")["bars"].to_list() == [1440] * 3
    assert rr.last_updated(report_db, "binance") is not None
    assert rr.lineage(report_db, "binance", HOSTILE)["error"].drop_nulls().to_list() == [
        HOSTILE_NOTE
    ]
    assert rr.symbol_exchanges(report_db, "BTCUSDT") == ["binance", "bybit"]
    assert rr.symbol_exchanges(report_db, "ETHUSDT") == ["binance"]
    assert rr.report_exchanges(report_db) == ["all", "binance", "bybit"]
    assert rr.model_run_exists(report_db, "all", "BTCUSDT")
    assert not rr.model_run_exists(report_db, "all", "ETHUSDT")
    assert set(rr.report_symbols(report_db, "bybit")) == {"BTCUSDT"}
    assert set(rr.report_symbols(report_db, None)) == {"BTCUSDT", "ETHUSDT", HOSTILE}
    assert rr.current_runs(report_db, "all")["symbol"].to_list() == ["BTCUSDT"]


def test_one_symbol_and_range(report_db: Path, tmp_path: Path) -> None:
    result = site.build_site(report_db, tmp_path, symbols=["BTCUSDT"], days=["30d"])
    names = {p.relative_to(tmp_path).as_posix() for p in result.pages}
    # 30 days asked, 3 days there: the range showing all data is built (and is the default)
    assert names == {
        f"BTCUSDT/{rel}{page}"
        for rel in ("", "binance/", "bybit/")
        for page in ("3d.html", "index.html")
    } | {"index.html"}
    assert any("shorter than 30d; built 3d" in n for n in result.notes)
    html = (tmp_path / "BTCUSDT" / "3d.html").read_text()
    assert "less than 3D" not in html  # 3 full days: nothing to say
    # the other ranges are listed but not linked until built
    assert 'data-range="12h">12H</span>' in html
    index = result.index.read_text()
    assert 'href="BTCUSDT/3d.html"' in index
    assert 'href="ETHUSDT/' not in index  # not built: not linked
    # building 12h later links it from every page, the default page stays 3d
    again = site.build_site(report_db, tmp_path, symbols=["BTCUSDT"], days=["12h"])
    names = {p.relative_to(tmp_path).as_posix() for p in again.pages}
    assert "BTCUSDT/12h.html" in names
    assert "BTCUSDT/index.html" not in names
    assert 'data-range="3d">3D</a>' in (tmp_path / "BTCUSDT" / "12h.html").read_text()


def test_unchanged_pages_are_kept(report_db: Path, tmp_path: Path) -> None:
    first = site.build_site(report_db, tmp_path, symbols=["ETHUSDT"])
    built = {p for p in first.pages if "ETHUSDT" in p.parts}
    assert built
    again = site.build_site(report_db, tmp_path, symbols=["ETHUSDT"])
    assert not [p for p in again.pages if "ETHUSDT" in p.parts]
    assert set(again.kept) == built
    forced = site.build_site(report_db, tmp_path, symbols=["ETHUSDT"], force=True)
    assert {p for p in forced.pages if "ETHUSDT" in p.parts} == built


def test_unknown_symbol_is_refused(report_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no data for symbol"):
        site.build_site(report_db, tmp_path, symbols=["NOPEUSDT"])


def test_one_symbol_failure_never_stops_the_others(
    report_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = contexts.range_page

    def flaky(db: Path, view: Any, sym: Any, rng: Any, levels: Any) -> Any:
        if sym.symbol == "ETHUSDT":
            raise RuntimeError("disk on fire")
        return real(db, view, sym, rng, levels)

    monkeypatch.setattr(contexts, "range_page", flaky)
    result = site.build_site(report_db, tmp_path)
    assert [s for s, _ in result.failures] == ["ETHUSDT"]
    assert "disk on fire" in result.failures[0][1]
    assert (tmp_path / "BTCUSDT" / "3d.html").exists()
    assert not (tmp_path / "ETHUSDT").exists()
    index = result.index.read_text()
    assert "Some pages could not be rebuilt" in index
    assert "disk on fire" in index
    assert not list(tmp_path.rglob(".*.tmp-*"))


def test_failed_index_keeps_previous_site(
    built_site: BuiltSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = site.build_site(built_site.db, tmp_path, symbols=["BTCUSDT"], days=["24h"])
    before = first.index.read_bytes()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(contexts, "mark_stale", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        site.build_site(built_site.db, tmp_path, days=["24h", "12h"])
    assert first.index.read_bytes() == before
    assert not (tmp_path / "BTCUSDT" / "12h.html").exists()
    assert not list(tmp_path.rglob(".*.tmp-*"))


def _tabs(html: str) -> list[tuple[str, str | None]]:
    """(label, href or None when active) of the exchange switch."""
    nav = re.search(r'<nav class="ranges exchanges".*?</nav>', html, re.S)
    if nav is None:
        return []
    return [
        (label, href or None)
        for href, label in re.findall(
            r'(?:<a class="range" href="([^"]+)"|<span class="range active"[^>]*)'
            r"[^>]*>([^<]+)<",
            nav.group(0),
        )
    ]


def _circles(html: str) -> tuple[int, float]:
    """Number and total USD of the realized-liquidation circles of the heatmap."""
    spec = _spec(html, "heatmap-chart")
    layer = next(
        lay for lay in spec["vconcat"][0]["layer"] if lay.get("mark", {}).get("type") == "circle"
    )
    rows = layer["data"]["values"].strip().splitlines()
    usd_col = rows[0].split(",").index("usd")
    return len(rows) - 1, sum(float(r.split(",")[usd_col]) for r in rows[1:])


def test_exchange_switch_and_layout(built_site: BuiltSite) -> None:
    root = built_site.root / "BTCUSDT"
    top = (root / "3d.html").read_text()
    assert _tabs(top) == [
        ("All exchanges", None),
        ("Binance", "binance/3d.html"),
        ("Bybit", "bybit/3d.html"),
    ]
    binance = (root / "binance" / "3d.html").read_text()
    assert _tabs(binance) == [
        ("All exchanges", "../3d.html"),
        ("Binance", None),
        ("Bybit", "../bybit/3d.html"),
    ]
    assert 'src="../../static/vega-bundle.js"' in binance
    assert 'href="../index.html">BTCUSDT</a>' in binance  # crumbs back to the symbol
    assert 'href="24h.html"' in binance
    assert "Binance + Bybit · aggregated" in top
    assert "Candles: Binance" in top
    # each view has its own heatmap, map, levels and scores
    specs = {
        name: _spec((root / name).read_text(), "heatmap-chart")["vconcat"][0]["layer"][0]["data"]
        for name in ("3d.html", "binance/3d.html", "bybit/3d.html")
    }
    assert len({json.dumps(v, sort_keys=True) for v in specs.values()}) == 3
    for name in ("3d.html", "binance/3d.html", "bybit/3d.html"):
        html = (root / name).read_text()
        for needle in ('id="map-chart"', "Key levels", "naive baseline", "Data lineage"):
            assert needle in html, (name, needle)
    # the aggregate's lineage lists both exchanges, an exchange's only its own
    assert "<th>exchange</th>" in top
    assert "data.bybit.example" in top
    assert "data.binance.vision" in top
    assert "<th>exchange</th>" not in binance
    assert "data.bybit.example" not in binance
    # realized circles: each exchange its own, the aggregate both (same time columns)
    n_b, usd_b = _circles(binance)
    n_y, usd_y = _circles((root / "bybit" / "3d.html").read_text())
    n_all, usd_all = _circles(top)
    assert n_b > 0
    assert n_y > 0
    assert usd_all == pytest.approx(usd_b + usd_y, rel=1e-6, abs=n_all)
    assert n_all >= max(n_b, n_y)
    # a single-exchange symbol keeps the plain layout: no switch, no exchange folders
    eth = (built_site.root / "ETHUSDT" / "24h.html").read_text()
    assert _tabs(eth) == []
    assert not (built_site.root / "ETHUSDT" / "binance").exists()


def test_index_lists_exchanges(built_site: BuiltSite) -> None:
    index = built_site.result.index.read_text()
    card = index[index.index(">BTCUSDT</a>") :].split("</article>")[0]
    assert 'href="BTCUSDT/index.html" title="aggregated heatmap over every exchange"' in card
    assert 'href="BTCUSDT/binance/index.html">Binance</a>' in card
    assert 'href="BTCUSDT/bybit/index.html">Bybit</a>' in card
    assert "OKX" not in card
    eth = index[index.index(">ETHUSDT</a>") :].split("</article>")[0]
    assert '<span class="tag venue">Binance</span>' in eth


def test_exchange_filter(report_db: Path, tmp_path: Path) -> None:
    result = site.build_site(
        report_db, tmp_path, symbols=["BTCUSDT"], days=["24h"], exchanges=["bybit"]
    )
    names = {p.relative_to(tmp_path).as_posix() for p in result.pages}
    # the default page (3d) is built too: index.html is always the default range
    assert names == {"BTCUSDT/24h.html", "BTCUSDT/3d.html", "BTCUSDT/index.html", "index.html"}
    html = (tmp_path / "BTCUSDT" / "24h.html").read_text()
    assert _tabs(html) == []
    assert '<span class="venue">Bybit' in html


def test_pages_built_in_worker_processes_equal_pages_built_here(
    report_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From MIN_PARALLEL_SYMBOLS symbols on, worker processes build the symbols' pages; the
    site is the same page for page, committed together, with no temporary file left."""
    assert site.site_workers(site.MIN_PARALLEL_SYMBOLS, 2) == 2
    monkeypatch.setattr(build, "MIN_PARALLEL_SYMBOLS", 1)
    here = site.build_site(report_db, tmp_path / "here", workers=1)
    there = site.build_site(report_db, tmp_path / "there", workers=2)
    assert site.site_workers(3, 1) == 0
    assert site.site_workers(3, 2) == 2

    def pages(root: Path) -> dict[str, str]:
        stamp = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?[^\"<]*")
        return {
            str(p.relative_to(root)): stamp.sub("", p.read_text(encoding="utf-8"))
            for p in root.rglob("*.html")
        }

    assert len(there.pages) == len(here.pages) > 3
    a, b = pages(tmp_path / "there"), pages(tmp_path / "here")
    assert a.keys() == b.keys()
    for name in sorted(a):
        diff = difflib.unified_diff(b[name].splitlines(), a[name].splitlines(), lineterm="")
        assert a[name] == b[name], f"{name} differs:\n" + "\n".join(list(diff)[:40])
    assert not list((tmp_path / "there").rglob(".*.tmp-*"))


def test_one_total_on_every_panel(built_site: BuiltSite) -> None:
    """Issue 19 item 5: the headline, the heatmap, the long/short panel and the map show the
    one total (the whole stored map, all leverage), each the same; what else a panel prints
    says what it counts and is a part of it."""
    for rel, exchange in (("3d.html", "all"), ("12h.html", "all"), ("bybit/3d.html", "bybit")):
        html = (built_site.root / "BTCUSDT" / rel).read_text()
        sql = rr.query(
            built_site.db,
            "SELECT sum(long_usd) AS l, sum(short_usd) AS s FROM liquidation_map "
            "WHERE exchange = ? AND symbol = 'BTCUSDT' AND as_of = (SELECT max(as_of) "
            "FROM liquidation_map WHERE exchange = ? AND symbol = 'BTCUSDT')",
            [exchange, exchange],
        )
        for side, total in zip(("long", "short"), sql.row(0), strict=True):
            shown = re.findall(rf'data-total="{side}">([^<]+)<', html)
            assert len(shown) >= 3, (rel, side, shown)  # headline, long/short panel, map
            assert len(set(shown)) == 1, (rel, side, shown)
            assert _usd(shown[0]) == pytest.approx(total, rel=6e-3)
            part = re.search(rf'data-window-total="{side}">([^<]+)<', html)
            assert part is not None, rel
            assert _usd(part.group(1)) <= total * 1.006
        assert "Estimated USD that would be liquidated, all leverage, whole book at" in html
        assert "the mean over the heatmap's stored columns" in html
        levels = re.findall(r'data-label="est. USD">([^<]+)<', html)
        assert levels
        assert all(_usd(v) <= max(sql.row(0)) * 1.006 for v in levels)


def test_short_pages_use_the_fine_cells(built_site: BuiltSite) -> None:
    """Issue 20: the 12h and 24h pages grid at the fine cells' step (a fifth of the run's step
    and its nice multiples), finer than the run's step; the 3d page stays at the run's cells,
    and the exchanges' sum ("all", the symbol folder) has no fine cells: its run's step."""
    caption = re.compile(r"(\d+) × (\d+) cells · ([^<]+?) × \$?([\d,.]+)")
    steps = {}
    for rel in ("12h.html", "24h.html", "3d.html", "../12h.html"):
        html = (built_site.root / "BTCUSDT" / "binance" / rel).read_text()
        m = caption.search(html)
        assert m is not None, rel
        steps[rel] = float(m.group(4).replace(",", ""))
    run_step = float(
        query(
            built_site.db,
            "SELECT price_step FROM model_runs WHERE exchange = 'binance' AND symbol = 'BTCUSDT'",
        )["price_step"][0]
    )
    assert steps["12h.html"] < run_step, (steps, run_step)
    assert steps["24h.html"] < run_step, (steps, run_step)
    assert steps["3d.html"] >= run_step
    assert steps["../12h.html"] >= run_step
    fine = run_step / 5
    for rel in ("12h.html", "24h.html"):
        k = steps[rel] / fine
        assert abs(k - round(k)) < 1e-9, (rel, steps[rel], fine)
