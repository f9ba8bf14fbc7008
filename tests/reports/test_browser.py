"""Every generated page in real headless Chromium from file://, at desktop (1440x900) and phone
(390x844) widths: no console errors or warnings, no network, no horizontal overflow, charts
that render; then the controls: tooltips, exchange and symbol switch, leverage filter,
intensity, zoom, map totals against the warehouse, and range navigation after
``liqheat report --days``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from warehouse import reads_report as rr

from .conftest import BuiltSite

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/liqheat-shots")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALL_RENDERED = (
    "() => { const c = document.querySelectorAll('[data-vega-spec]');"
    " return [...c].every(e => e.dataset.rendered === 'true'"
    " || e.textContent.includes('failed')); }"
)
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install the Debian package "
            "(`make browser-deps`, or `apt-get install chromium`)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page that records console errors/warnings, page errors, network and dialogs."""

    def __init__(self, browser: Any, viewport: dict[str, int]) -> None:
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport=viewport)
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "request",
            lambda r: (
                None if r.url.startswith("file://") else self.problems.append(f"request {r.url}")
            ),
        )
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def open(self, path: Path | str) -> Any:
        url = path.as_uri() if isinstance(path, Path) else path
        self.page.goto(url)
        self.page.wait_for_function(ALL_RENDERED, timeout=30_000)
        return self.page

    def close(self) -> None:
        self.page.close()
        assert not self.problems, "\n".join(self.problems)
        assert not self.dialogs, f"markup from data was executed: {self.dialogs}"


def _check_layout(page: Any, rel: str, width: int) -> None:
    charts = page.locator("[data-vega-spec]")
    for k in range(charts.count()):
        assert charts.nth(k).get_attribute("data-rendered") == "true", f"{rel}: chart {k}"
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{rel}: page is {overflow}px wide at {width}px"
    if page.locator("#heatmap-chart").count():
        canvas = page.locator("#heatmap-chart canvas")
        assert canvas.count() == 1, rel
        box = canvas.bounding_box()
        assert box is not None, rel
        # the whole chart (latest data and the price axis on its right) fits the screen
        assert box["x"] >= 0, (rel, box)
        assert box["x"] + box["width"] <= width, (rel, box)
        assert box["width"] > min(width * 0.75, 900), (rel, box)
        assert box["height"] > 250, rel


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_renders_and_fits(
    built_site: BuiltSite, browser: Any, viewport: dict[str, int]
) -> None:
    w = Watched(browser, viewport)
    pages = sorted(set(built_site.result.pages))
    rels = {p.relative_to(built_site.root).as_posix() for p in pages}
    assert {"BTCUSDT/3d.html", "BTCUSDT/binance/3d.html", "BTCUSDT/bybit/24h.html"} <= rels
    assert len(pages) >= 15
    for path in pages:
        page = w.open(path)
        rel = path.relative_to(built_site.root).as_posix()
        _check_layout(page, rel, viewport["width"])
        if rel in ("BTCUSDT/3d.html", "index.html"):
            SHOTS.mkdir(parents=True, exist_ok=True)
            name = rel.replace("/", "-").replace(".html", "")
            page.screenshot(path=str(SHOTS / f"{name}-{viewport['width']}.png"), full_page=True)
    w.close()


def test_heatmap_controls(built_site: BuiltSite, browser: Any) -> None:
    w = Watched(browser, DESKTOP)
    page = w.open(built_site.root / "BTCUSDT" / "3d.html")
    canvas = page.locator("#heatmap-chart canvas")
    box = canvas.bounding_box()
    assert box is not None
    # the tooltip of a cell: time (UTC), price bucket, long and short USD
    tip = page.locator("#vg-tooltip-element")
    for fx, fy in ((0.6, 0.45), (0.5, 0.3), (0.4, 0.55), (0.7, 0.35)):
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        page.wait_for_timeout(150)
        if tip.is_visible() and "price bucket" in tip.inner_text():
            break
    text = tip.inner_text()
    for label in ("time (UTC)", "price bucket", "long USD", "short USD"):
        assert label in text, text
    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d UTC", text), text
    page.mouse.move(0, 0)

    def state() -> Any:
        return page.evaluate(
            "() => { const v = window.liqheatViews['heatmap-chart'];"
            " return {x: v.scale('x').domain().map(Number), lev: v.signal('lev'),"
            " clip: v.signal('clip'), png: v.toImageURL ? true : false}; }"
        )

    before = state()
    assert before["lev"] == "all"
    assert before["clip"] == 1
    # zoom: the mouse wheel narrows the time axis (shared by volume and open interest)
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3)
    page.mouse.wheel(0, -500)
    page.wait_for_timeout(400)
    zoomed = state()
    assert zoomed["x"][1] - zoomed["x"][0] < 0.9 * (before["x"][1] - before["x"][0])
    # leverage filter and intensity are bound inputs under the chart
    shot = canvas.screenshot()
    page.select_option('#heatmap-chart select[name="lev"]', "high")
    page.wait_for_timeout(300)
    assert state()["lev"] == "high"
    assert canvas.screenshot() != shot  # the high-leverage cells differ from all leverage
    page.locator('#heatmap-chart input[name="clip"]').fill("0.3")
    page.wait_for_timeout(300)
    assert state()["clip"] == pytest.approx(0.3)
    # the chart's own export menu (PNG/SVG) is there
    assert page.locator("#heatmap-chart details summary").count() == 1
    # map totals on the page equal the warehouse's
    totals = rr.query(
        built_site.db,
        "SELECT sum(long_usd) AS l, sum(short_usd) AS s FROM liquidation_map "
        "WHERE exchange = 'all' AND symbol = 'BTCUSDT' AND as_of = (SELECT max(as_of) "
        "FROM liquidation_map WHERE exchange = 'all' AND symbol = 'BTCUSDT')",
    ).row(0)
    for side, total in zip(("long", "short"), totals, strict=True):
        # the one total: the same on every panel that shows it
        shown = page.locator(f'[data-total="{side}"]').all_inner_texts()
        assert len(shown) >= 3, shown
        for text in shown:
            assert _usd(text) == pytest.approx(total, rel=6e-3), (side, text, total)
    w.close()


def _usd(text: str) -> float:
    m = re.fullmatch(r"\$([\d.,]+)([BMK]?)", text.strip())
    assert m is not None, text
    return float(m.group(1).replace(",", "")) * {"B": 1e9, "M": 1e6, "K": 1e3, "": 1.0}[m.group(2)]


def test_exchange_and_symbol_switch(built_site: BuiltSite, browser: Any) -> None:
    w = Watched(browser, PHONE)
    page = w.open(built_site.root / "BTCUSDT" / "3d.html")
    page.locator('nav.exchanges a[data-exchange="bybit"]').click()
    page.wait_for_url("**/BTCUSDT/bybit/3d.html")
    page.wait_for_function(ALL_RENDERED, timeout=30_000)
    assert page.locator("nav.exchanges .range.active").inner_text() == "Bybit"
    page.locator('nav.exchanges a[data-exchange="all"]').click()
    page.wait_for_url("**/BTCUSDT/3d.html")
    page.wait_for_function(ALL_RENDERED, timeout=30_000)
    # the alert raised by the run is on the symbol page and the index
    assert "shorts at" in page.locator("#alerts").inner_text().lower()
    # the symbol switch is on every page
    page.select_option("select[data-nav]", label="ETHUSDT")
    page.wait_for_url("**/ETHUSDT/index.html")
    page.wait_for_function(ALL_RENDERED, timeout=30_000)
    assert page.locator("h1").inner_text().startswith("ETHUSDT")
    assert page.locator("#alerts").count() == 0  # ETHUSDT has no alert
    page.goto((built_site.root / "index.html").as_uri())
    page.wait_for_function(ALL_RENDERED, timeout=30_000)
    assert "BTCUSDT" in page.locator("#alerts").inner_text()
    page.select_option("select[data-nav]", label="BTCUSDT")
    page.wait_for_url("**/BTCUSDT/index.html")
    w.close()


def test_range_navigation_after_report_days(report_db: Path, browser: Any, tmp_path: Path) -> None:
    """`liqheat report --days 3d`, then `--days 12h`: every built range links to the others,
    the default page stays, and a range longer than the data says so."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(report_db, home / "liqheat.duckdb")
    env = {**os.environ, "LIQHEAT_HOME": str(home)}
    cli = [sys.executable, "-m", "flows.cli"]
    first = subprocess.run(
        [*cli, "report", "--symbol", "BTCUSDT", "--days", "3d"],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [*cli, "report", "--symbol", "BTCUSDT", "--days", "12h", "--days", "30"],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "shorter than 30d" in second.stdout
    bad = subprocess.run(
        [*cli, "report", "--days", "5d"], env=env, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "expected one of 12h, 24h, 3d" in bad.stderr
    site = home / "site" / "BTCUSDT"
    assert (site / "12h.html").exists()
    assert (site / "3d.html").exists()
    assert not (site / "24h.html").exists()
    w = Watched(browser, DESKTOP)
    page = w.open(site / "index.html")
    assert page.locator('nav[aria-label="time range"] .range.active').inner_text() == "3D"
    page.locator('.ranges a[data-range="12h"]').click()
    page.wait_for_url("**/BTCUSDT/12h.html")
    page.wait_for_function(ALL_RENDERED, timeout=30_000)
    assert page.locator('nav[aria-label="time range"] .range.active').inner_text() == "12H"
    assert page.locator('.ranges span.disabled[data-range="24h"]').count() == 1
    page.locator('.ranges a[data-range="3d"]').click()
    page.wait_for_url("**/BTCUSDT/3d.html")
    page.wait_for_function(ALL_RENDERED, timeout=30_000)
    index = home / "site" / "index.html"
    page.goto(index.as_uri())
    assert page.locator('a[href="BTCUSDT/12h.html"]').count() == 1
    w.close()
