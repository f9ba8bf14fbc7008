"""The site writer against a real warehouse: files, sizes, escaping, atomicity, templates."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from reports import site
from warehouse import reads_report as rr

from .conftest import HOSTILE, HOSTILE_NOTE, BuiltSite


def test_pages_and_pngs(built_site: BuiltSite) -> None:
    root = built_site.root
    result = built_site.result
    assert result.index == root / "index.html"
    names = {p.relative_to(root).as_posix() for p in result.pages}
    # 3 days of BTCUSDT: the 1d and 3d ranges, no 7d/30d; 1 day of ETHUSDT
    assert {"index.html", "BTCUSDT/1d.html", "BTCUSDT/3d.html", "BTCUSDT/index.html"} <= names
    assert "ETHUSDT/1d.html" in names
    assert not any("7d" in n or "30d" in n for n in names)
    # BTCUSDT is on binance and bybit: the aggregate at the top, one folder per exchange
    assert {p.relative_to(root).as_posix() for p in result.pngs} == {
        "BTCUSDT/1d.png",
        "BTCUSDT/3d.png",
        "BTCUSDT/binance/1d.png",
        "BTCUSDT/binance/3d.png",
        "BTCUSDT/bybit/1d.png",
        "BTCUSDT/bybit/3d.png",
        "ETHUSDT/1d.png",
    }
    assert {"BTCUSDT/binance/index.html", "BTCUSDT/bybit/3d.html"} <= names
    assert not any(n.startswith(("BTCUSDT/okx", "BTCUSDT/all", "ETHUSDT/binance")) for n in names)
    for png in result.pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for page in result.pages:
        assert page.stat().st_size < 3_000_000, page
    assert (root / "static" / site.BUNDLE_NAME).stat().st_size > 300_000
    assert not list(root.rglob(".*.tmp-*"))


def test_symbol_page_content(built_site: BuiltSite) -> None:
    html = (built_site.root / "BTCUSDT" / "3d.html").read_text()
    assert 'href="3d.png"' in html
    assert 'href="1d.html"' in html
    assert 'src="../static/vega-bundle.js"' in html
    assert html.count("vega-bundle.js") == 1
    assert not re.search(r'(src|href)="(https?:)?//', html.replace('href="https://data.b', ""))
    assert "These are estimates" in html
    assert "SYNTHETIC DATA" not in html
    assert "beats baseline" in html
    assert "realized liquidations (size = USD)" in html
    assert spec_layers(html) == ["rect", "rect", "line", "circle", "rule"]
    for needle in ("Key levels", "Backtest", "Model run", "Data lineage", "leverage_tiers"):
        assert needle in html
    spec = _spec(html, "heatmap-chart")
    assert spec["layer"][0]["encoding"]["color"]["field"] == "l"
    eth = (built_site.root / "ETHUSDT" / "1d.html").read_text()
    assert "SYNTHETIC DATA" in eth


def spec_layers(html: str) -> list[str]:
    return [layer["mark"]["type"] for layer in _spec(html, "heatmap-chart")["layer"]]


def _spec(html: str, chart_id: str) -> dict[str, Any]:
    m = re.search(
        rf'<script type="application/json" id="{chart_id}-spec">(.*?)</script>', html, re.S
    )
    assert m is not None, chart_id
    spec: dict[str, Any] = json.loads(m.group(1))
    return spec


def test_hostile_names_are_escaped_and_paths_safe(built_site: BuiltSite) -> None:
    slug = site.safe_component(HOSTILE)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", slug)
    page = built_site.root / slug / "1d.html"
    assert page in built_site.result.pages
    for path in [*built_site.result.pages]:
        html = path.read_text()
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
    index = built_site.result.index.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    hostile_page = page.read_text()
    assert "&lt;img src=x onerror=alert(2)&gt;" in hostile_page  # the failed file's error
    btc = (built_site.root / "BTCUSDT" / "1d.html").read_text()
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


def test_available_ranges() -> None:
    assert site.available_ranges(timedelta(hours=5), (1, 3, 7, 30)) == [1]
    assert site.available_ranges(timedelta(days=10), (1, 3, 7, 30)) == [1, 3, 7, 30]
    assert site.available_ranges(timedelta(days=31), (1, 3, 7, 30)) == [1, 3, 7, 30]
    assert site.available_ranges(timedelta(days=7), (7, 3)) == [3, 7]


def test_reads_report(report_db: Path) -> None:
    assert rr.is_synthetic(report_db, "binance", "ETHUSDT")
    assert not rr.is_synthetic(report_db, "binance", "BTCUSDT")
    runs = rr.current_runs(report_db, "binance")
    assert sorted(runs["symbol"].to_list()) == ["BTCUSDT", "ETHUSDT"]
    assert set(rr.report_symbols(report_db, "binance")) == {"BTCUSDT", "ETHUSDT", HOSTILE}
    levels = rr.latest_key_levels(report_db, "binance", "BTCUSDT", runs["params_hash"][0])
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
    result = site.build_site(report_db, tmp_path, symbols=["BTCUSDT"], days=(30,), pngs=False)
    names = {p.relative_to(tmp_path).as_posix() for p in result.pages}
    # 30 days asked, 3 days there: the range showing all data is built
    assert names == {
        f"BTCUSDT/{rel}{page}"
        for rel in ("", "binance/", "bybit/")
        for page in ("3d.html", "index.html")
    } | {"index.html"}
    index = result.index.read_text()
    assert 'href="BTCUSDT/3d.html"' in index
    assert 'href="ETHUSDT/' not in index  # not built: not linked


def test_unknown_symbol_is_refused(report_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no data for symbol"):
        site.build_site(report_db, tmp_path, symbols=["NOPEUSDT"])


def test_failed_build_keeps_previous_index(
    built_site: BuiltSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = site.build_site(built_site.db, tmp_path, symbols=["BTCUSDT"], days=(1,), pngs=False)
    before = first.index.read_bytes()
    calls = {"n": 0}
    real = site._range_page

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(site, "_range_page", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        site.build_site(built_site.db, tmp_path, days=(1, 3), pngs=False)
    assert first.index.read_bytes() == before
    assert not (tmp_path / "BTCUSDT" / "3d.html").exists()
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
    layer = next(
        lay for lay in _spec(html, "heatmap-chart")["layer"] if lay["mark"]["type"] == "circle"
    )
    spec = _spec(html, "heatmap-chart")
    name = layer["data"]["name"]
    rows = spec["datasets"][name].strip().splitlines()
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
    assert 'href="1d.html"' in binance
    assert 'href="3d.png"' in binance
    assert "Binance + Bybit · aggregated" in top
    assert "Price line and quote: Binance" in top
    # each view has its own heatmap, map, levels and scores
    specs = {
        name: _spec((root / name).read_text(), "heatmap-chart")["datasets"]
        for name in ("3d.html", "binance/3d.html", "bybit/3d.html")
    }
    assert len({json.dumps(v, sort_keys=True) for v in specs.values()}) == 3
    for name in ("3d.html", "binance/3d.html", "bybit/3d.html"):
        html = (root / name).read_text()
        for needle in ('id="map-chart"', "Key levels", "beats baseline", "Data lineage"):
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
    eth = (built_site.root / "ETHUSDT" / "1d.html").read_text()
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
        report_db, tmp_path, symbols=["BTCUSDT"], days=(1,), exchanges=["bybit"], pngs=False
    )
    names = {p.relative_to(tmp_path).as_posix() for p in result.pages}
    assert names == {"BTCUSDT/1d.html", "BTCUSDT/index.html", "index.html"}
    html = (tmp_path / "BTCUSDT" / "1d.html").read_text()
    assert _tabs(html) == []
    assert '<span class="venue">bybit' in html
