"""The heatmap's price axis (issue 20): the traded range plus a margin, never stretched to
far key levels, which become edge markers; properties over random windows and levels."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reports.heatmap_context import MAX_EDGE_MARKERS, axis_window, edge_markers

prices = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def windows(draw: Any) -> tuple[float, float, float, list[dict[str, Any]]]:
    low = draw(prices)
    high = low * (1 + draw(st.floats(min_value=1e-4, max_value=0.5)))
    bar = (high - low) * draw(st.floats(min_value=0.0, max_value=0.1))
    levels = []
    for side in ("long", "short"):
        for _ in range(draw(st.integers(0, MAX_EDGE_MARKERS))):
            # longs lie below the price, shorts above it (the price is inside the window)
            u = draw(st.floats(min_value=0.0, max_value=1.0))
            p = (
                0.5 * low + u * (high - 0.5 * low)
                if side == "long"
                else low + u * (0.5 * high + high - low)
            )
            levels.append({"side": side, "price": p, "usd": 1e6, "distance_pct": 0.0})
    return low, high, bar, levels


@settings(max_examples=200, deadline=None)
@given(windows())
def test_every_level_is_on_the_axis_or_an_edge_marker(
    window: tuple[float, float, float, list[dict[str, Any]]],
) -> None:
    low, high, bar, levels = window
    lo, hi = axis_window(low, high, bar)
    edges = edge_markers(levels, lo, hi, None)
    counts = (sum(e["edge"] == "bottom" for e in edges), sum(e["edge"] == "top" for e in edges))
    lo, hi = axis_window(low, high, bar, markers=counts)
    # the traded range is inside, with at most ~3x its size around it
    assert lo < low
    assert hi > high
    assert hi - lo <= 3 * (high - low) + 6 * bar + 1e-9 * high
    # the wider axis only takes levels off the marker list, never loses one
    marked = {e["price"] for e in edge_markers(levels, lo, hi, None)}
    for lv in levels:
        assert lo <= lv["price"] < hi or lv["price"] in marked


def test_markers_are_labelled_nearest_first() -> None:
    levels = [
        {"side": "short", "price": p, "usd": u, "distance_pct": d}
        for p, u, d in ((120.0, 2e9, 20.0), (110.0, 5e6, 10.0))
    ]
    edges = edge_markers(levels, 90.0, 105.0, 1.0)
    assert [e["price"] for e in edges] == [110.0, 120.0]
    assert [e["k"] for e in edges] == [0, 1]
    assert edges[0]["label"] == "▲ short 110 · $5M · +10.00%"
    assert edges[1]["label"] == "▲ short 120 · $2B · +20.00%"
