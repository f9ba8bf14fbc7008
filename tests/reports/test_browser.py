"""Every generated page in headless Chromium from file://: no console errors, no network,
and charts that actually render."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

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


@pytest.mark.browser
def test_every_page_renders_offline(built_site: BuiltSite, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install the Debian package "
            "(`make browser-deps`, or `apt-get install chromium`)"
        )
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: (
                    None if r.url.startswith("file://") else problems.append(f"request {r.url}")
                ),
            )
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            pages = sorted(set(built_site.result.pages))
            rels = {p.relative_to(built_site.root).as_posix() for p in pages}
            # the aggregate and every exchange's own pages are opened
            assert {"BTCUSDT/3d.html", "BTCUSDT/binance/3d.html", "BTCUSDT/bybit/1d.html"} <= rels
            assert len(pages) >= 12
            for path in pages:
                page.goto(path.as_uri())
                page.wait_for_function(ALL_RENDERED, timeout=20_000)
                charts = page.locator("[data-vega-spec]")
                for k in range(charts.count()):
                    assert charts.nth(k).get_attribute("data-rendered") == "true", (
                        f"{path}: chart {k} failed to render"
                    )
                rel = path.relative_to(built_site.root).as_posix()
                if page.locator("#heatmap-chart").count():
                    canvas = page.locator("#heatmap-chart canvas")
                    assert canvas.count() == 1, rel
                    box = canvas.bounding_box()
                    assert box is not None, rel
                    assert box["width"] > 200, rel
                    assert box["height"] > 200, rel
                if rel == "BTCUSDT/3d.html":
                    shot = tmp_path / "symbol.png"
                    page.screenshot(path=str(shot), full_page=True)
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(shot, SHOTS / "symbol.png")
                    # the heatmap tooltip shows time, price bucket, long and short USD
                    box = page.locator("#heatmap-chart canvas").bounding_box()
                    assert box is not None
                    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.8)
                    tip = page.locator("#vg-tooltip-element")
                    tip.wait_for(state="visible", timeout=5_000)
                    text = tip.inner_text()
                    for label in ("time", "price bucket", "long USD", "short USD"):
                        assert label in text
                    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d UTC", text), text
                    page.mouse.move(0, 0)
                if rel == "BTCUSDT/3d.html":
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SHOTS / "symbol-all.png"), full_page=False)
                    # the exchange switch navigates to that exchange's page of the same range
                    page.locator('nav.exchanges a[data-exchange="bybit"]').click()
                    page.wait_for_url("**/BTCUSDT/bybit/3d.html")
                    page.wait_for_function(ALL_RENDERED, timeout=20_000)
                    active = page.locator("nav.exchanges .range.active").inner_text()
                    assert active == "Bybit"
                    assert page.locator("#heatmap-chart canvas").count() == 1
                    page.locator('nav.exchanges a[data-exchange="all"]').click()
                    page.wait_for_url("**/BTCUSDT/3d.html")
                if rel == "index.html":
                    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(tmp_path / "index.png", SHOTS / "index.png")
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
    assert not dialogs, f"markup from data was executed: {dialogs}"
    assert (tmp_path / "symbol.png").stat().st_size > 50_000
