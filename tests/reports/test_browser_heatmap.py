"""The heatmap a trader reads (issue 20), in real headless Chromium at 1440x900 and 390x844:
a tight price axis with far key levels as edge markers, colour bars with USD ticks, the
threshold control, tables that fit a phone, and labels that never cover the price line.
One browser for the module, one page per viewport."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import BuiltSite
from .test_browser import ALL_RENDERED, ARGS, CHROMIUM, DESKTOP, PHONE

pytestmark = pytest.mark.browser

#: every mark of the heatmap's scenegraph: type, role, item count, texts with x/y, bounds
MARKS = """() => { const v = window.liqheatViews['heatmap-chart']; const out = [];
  function walk(node) { if (!node) return;
    if (node.marktype) { const items = node.items || [];
      out.push({type: node.marktype, role: node.role, name: node.name || '', n: items.length,
        texts: node.marktype === 'text' ? items.map(i => ({text: String(i.text), x: i.x, y: i.y,
          y1: i.bounds ? i.bounds.y1 : i.y, y2: i.bounds ? i.bounds.y2 : i.y})) : []});
      items.forEach(walk); }
    else if (node.items) { node.items.forEach(walk); } }
  walk(v.scenegraph().root); return out; }"""


@pytest.fixture(scope="module")
def pages(built_site: BuiltSite) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make browser-deps`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            out = {}
            for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                page = browser.new_page(viewport=viewport)
                page.goto((built_site.root / "BTCUSDT" / "12h.html").as_uri())
                page.wait_for_function(ALL_RENDERED, timeout=30_000)
                out[name] = page
            yield out
        finally:
            browser.close()


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _marks(page: Any) -> list[dict[str, Any]]:
    marks: list[dict[str, Any]] = page.evaluate(MARKS)
    return marks


def _texts(marks: list[dict[str, Any]], role: str = "mark") -> list[dict[str, Any]]:
    return [t for m in marks if m["type"] == "text" and m["role"] == role for t in m["texts"]]


@pytest.mark.parametrize("which", ["desktop", "phone"])
def test_axis_is_tight_and_every_level_is_on_it_or_an_edge_marker(
    pages: dict[str, Any], which: str
) -> None:
    page = pages[which]
    hl = page.locator(".quote .hl").inner_text()  # "H 92,820.7 L 91,396.6"
    m = re.search(r"H\s+([\d,.]+)\s+L\s+([\d,.]+)", hl)
    assert m is not None, hl
    high, low = _num(m.group(1)), _num(m.group(2))
    lo, hi = page.evaluate(
        "() => window.liqheatViews['heatmap-chart'].scale('concat_0_y').domain()"
    )
    assert lo < low
    assert hi > high
    assert hi - lo <= 3 * (high - low), (lo, hi, low, high)
    labels = [t["text"] for t in _texts(_marks(page)) if t["text"][:1] in "▲▼"]
    prices = [
        _num(p) for p in page.locator("tr[data-level-price] td[data-label=price]").all_inner_texts()
    ]
    assert prices
    off_axis = [p for p in prices if not lo <= p < hi]
    assert off_axis, "the fixture's 12h page has levels beyond its axis"
    for p in off_axis:
        assert any(f" {p:,.0f} · $" in t for t in labels), (p, labels)
    for t in labels:
        assert re.match(r"[▲▼] (long|short) [\d,.]+ · \$[\d.]+[BMK]? · [+-][\d.]+%$", t), t


def test_colour_bars_have_usd_ticks(pages: dict[str, Any]) -> None:
    marks = _marks(pages["desktop"])
    titles = [t["text"] for t in _texts(marks, "legend-title")]
    assert "longs USD" in titles
    assert "shorts USD" in titles
    ticks = [t["text"] for t in _texts(marks, "legend-label")]
    assert len(ticks) >= 4
    assert all(re.fullmatch(r"\$[\d.]+[BMK]?", t) for t in ticks), ticks
    # the log scale re-labels the bar in USD decades
    page = pages["desktop"]
    page.select_option('#heatmap-chart select[name="cscale"]', "log")
    page.wait_for_timeout(300)
    log_ticks = [t["text"] for t in _texts(_marks(page), "legend-label")]
    assert log_ticks != ticks
    assert all(t.startswith("$") for t in log_ticks), log_ticks
    page.select_option('#heatmap-chart select[name="cscale"]', "sqrt")


def test_threshold_hides_small_cells(pages: dict[str, Any]) -> None:
    page = pages["desktop"]

    def cells() -> int:
        return sum(m["n"] for m in _marks(page) if m["name"].startswith("concat_0_layer_0_layer_"))

    canvas = page.locator("#heatmap-chart canvas")
    before, shot = cells(), canvas.screenshot()
    select = page.locator('#heatmap-chart select[name="floor"]')
    options = select.locator("option").all_inner_texts()
    assert options[0] == "show all"
    assert all(o.startswith("hide under $") for o in options[1:])
    select.select_option(index=len(options) - 1)
    page.wait_for_timeout(300)
    after = cells()
    assert 0 < after < before
    assert canvas.screenshot() != shot
    select.select_option(index=0)
    page.wait_for_timeout(300)
    assert cells() == before


def test_phone_tables_and_charts_fit(pages: dict[str, Any]) -> None:
    page = pages["phone"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    wide = page.evaluate(
        "() => [...document.querySelectorAll('table, .table-wrap, .scroll, .chart')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > "
        "window.innerWidth).map(e => e.className + ' ' + e.scrollWidth + '/' + e.clientWidth)"
    )
    assert wide == []
    # a chart's drawing (axis titles included) fits its box: nothing is cut off
    cut = page.evaluate(
        "() => [...document.querySelectorAll('.chart canvas')].filter(c => "
        "c.getBoundingClientRect().width > c.closest('.chart').clientWidth + 0.5)"
        ".map(c => c.closest('.chart').id)"
    )
    assert cut == []


@pytest.mark.parametrize("which", ["desktop", "phone"])
def test_labels_never_cover_the_price_line(pages: dict[str, Any], which: str) -> None:
    page = pages[which]
    marks = _marks(page)
    last = page.locator(".quote .last").inner_text()
    tags = [t for t in _texts(marks) if t["text"] == last]
    assert tags, f"no price tag {last}"
    width = page.evaluate("() => window.liqheatViews['heatmap-chart'].scale('x').range()[1]")
    # the last price's tag sits on the price axis, right of the plot
    assert all(t["x"] >= width - 0.5 for t in tags), (tags, width)
    y = page.evaluate(
        "([lo, hi]) => { const s = window.liqheatViews['heatmap-chart'].scale('concat_0_y');"
        " return [s(lo), s(hi)]; }",
        [_num(v) for v in re.findall(r"[\d,]+\.?\d*", page.locator(".quote .hl").inner_text())][
            ::-1
        ],
    )
    path_top, path_bottom = min(y), max(y)
    for t in _texts(marks):
        if t["text"][:1] in "▲▼":
            # edge markers live in the axis margin, clear of the traded range
            assert t["y2"] <= path_top + 1 or t["y1"] >= path_bottom - 1, (t, y)
