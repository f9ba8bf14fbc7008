"""Benchmark of the static site: page bytes, chart draw time and build time per page.

Builds the site from a warehouse (default ``$LIQHEAT_HOME/liqheat.duckdb``, i.e. ``data/``
after ``make demo``) into a temporary folder, then opens every symbol page in headless
Chromium (/usr/bin/chromium, file://) at 1440x900 and reads the time vega-embed took to draw
its charts (``data-draw-ms``, set by reports/static/liqheat.js). Prints figures only.

    .venv/bin/python benchmarks/bench_site.py [--db PATH] [--symbol S] [--no-browser]

Page bytes are the HTML of one page; the shared static files (Vega bundle, CSS, JS) are
printed once, as a browser caches them for the whole site.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from reports.ranges import RANGES
from reports.site import STATIC_DIR, build_site

CHROMIUM = Path("/usr/bin/chromium")
RENDERED = (
    "() => [...document.querySelectorAll('[data-vega-spec]')]"
    ".every(e => e.dataset.rendered === 'true' || e.textContent.includes('failed'))"
)


def _draw_times(pages: list[Path]) -> dict[Path, tuple[float, float]]:
    """Per page: (slowest chart draw in ms, navigation to all charts drawn in ms)."""
    from playwright.sync_api import sync_playwright

    out: dict[Path, tuple[float, float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        if pages:  # warm the cache with the shared bundle, as a visitor's second page would
            page.goto(pages[0].as_uri())
            page.wait_for_function(RENDERED, timeout=60_000)
        for path in pages:
            t0 = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_function(RENDERED, timeout=60_000)
            wall = (time.perf_counter() - t0) * 1000
            draws = page.evaluate(
                "() => [...document.querySelectorAll('[data-draw-ms]')]"
                ".map(e => Number(e.dataset.drawMs))"
            )
            out[path] = (max(draws) if draws else 0.0, wall)
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    home = Path(os.environ.get("LIQHEAT_HOME", "data"))
    parser.add_argument("--db", type=Path, default=home / "liqheat.duckdb")
    parser.add_argument("--symbol", action="append", help="only these symbols (repeatable)")
    parser.add_argument("--no-browser", action="store_true", help="skip the draw times")
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"error: no warehouse at {args.db}: run `make demo` first or pass --db")

    with tempfile.TemporaryDirectory(prefix="liqheat-bench-site-") as tmp:
        site = Path(tmp) / "site"
        t0 = time.perf_counter()
        result = build_site(args.db, site, symbols=args.symbol, force=True)
        full = time.perf_counter() - t0
        pages = sorted(p for p in set(result.pages) if p.name != "index.html")
        t0 = time.perf_counter()
        again = build_site(args.db, site, symbols=args.symbol)
        unchanged = time.perf_counter() - t0
        # one page on its own: the cost of `liqheat report --symbol S --days R`
        per_page: dict[str, float] = {}
        symbols = args.symbol or sorted({p.relative_to(site).parts[0] for p in pages})
        for sym in symbols[:2]:
            for rng in RANGES:
                if not (site / sym / rng.page).exists():
                    continue
                t0 = time.perf_counter()
                build_site(args.db, site, symbols=[sym], days=[rng], force=True)
                per_page[f"{sym}/{rng.key}"] = time.perf_counter() - t0

        static = sum(f.stat().st_size for f in (site / STATIC_DIR).iterdir())
        print(f"warehouse: {args.db}")
        print(f"shared static files (once per site): {static / 1e3:,.0f} kB")
        print(
            f"full build: {len(result.pages)} pages in {full:.2f} s "
            f"({full / max(1, len(result.pages)):.2f} s per page, one warehouse connection)"
        )
        print(f"rebuild with nothing changed: {unchanged:.2f} s ({len(again.kept)} pages kept)")
        draws = {} if args.no_browser or not CHROMIUM.exists() else _draw_times(pages)
        print(f"\n{'page':<34} {'kB':>7} {'draw ms':>8} {'load ms':>8}")
        for path in pages:
            rel = path.relative_to(site).as_posix()
            kb = path.stat().st_size / 1e3
            draw, wall = draws.get(path, (float("nan"), float("nan")))
            print(f"{rel:<34} {kb:>7,.0f} {draw:>8,.0f} {wall:>8,.0f}")
        if per_page:
            print(f"\n{'page built on its own':<34} {'s':>7}")
            for name, secs in per_page.items():
                print(f"{name:<34} {secs:>7.2f}")
        sizes = [p.stat().st_size / 1e3 for p in pages]
        if sizes:
            print(f"\npage kB: median {statistics.median(sizes):,.0f}, max {max(sizes):,.0f}")
        if draws:
            slow = [d for d, _ in draws.values()]
            print(f"draw ms: median {statistics.median(slow):,.0f}, max {max(slow):,.0f}")
        if per_page:
            vals = list(per_page.values())
            print(f"page build s: median {statistics.median(vals):.2f}, max {max(vals):.2f}")


if __name__ == "__main__":
    main()
