"""The header says how old the newest bar is (reports/templates/_age.html), counted live in a
real headless Chromium."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.reports.conftest import BuiltSite
from tests.reports.test_browser import DESKTOP, Watched, browser  # noqa: F401 (fixture)


def test_the_header_says_how_old_the_newest_bar_is(built_site: BuiltSite, browser: Any) -> None:  # noqa: F811
    w = Watched(browser, DESKTOP)
    page = w.open(built_site.root / "BTCUSDT" / "3d.html")
    age = page.locator("header .age")
    bar_ms = int(age.get_attribute("data-bar-ms"))
    text = age.inner_text()
    minutes = (time.time() * 1000 - bar_ms) // 60_000
    days = int(minutes // 1440)
    assert re.fullmatch(r"· \d+ (min|h|d) old", text.strip()), text
    if minutes >= 2880:  # the fixture's bars are days old
        assert text.strip() == f"· {days} d old"
    assert w.problems == []
    w.close()
