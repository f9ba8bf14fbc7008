"""Alert selection and texts: known answers and a hypothesis property of the webhook text."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.alerts import (
    ALERT_SCHEMA,
    WEBHOOK_TEXT_LIMIT,
    alert_rows,
    format_price,
    format_usd,
    webhook_text,
)
from transforms.clusters import liquidation_clusters

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _clusters() -> pl.DataFrame:
    # ref 1000, step 1: longs at -1 % (30), -2.5 % (3: a 3/133 share), -8 % (100); short +2 %
    m = pl.DataFrame(
        {
            "as_of": T0,
            "ref_price": 1000.0,
            "price": [920.0, 975.0, 990.0, 1020.0],
            "long_usd": [100.0, 3.0, 30.0, 0.0],
            "short_usd": [0.0, 0.0, 0.0, 50.0],
        }
    )
    return liquidation_clusters(m, price_step=1.0, smooth_pct=0.0, merge_pct=0.5)


def test_alerts_are_near_and_large_clusters_only() -> None:
    cl = _clusters()
    out = alert_rows(
        cl, exchange="binance", symbol="ETHUSDT", price_step=1.0, max_distance_pct=3.0, min_usd=10
    )
    assert out.schema == pl.Schema(ALERT_SCHEMA)
    # the -8 % cluster is too far, the 3-USD one too small; nearest first
    assert out.select("side", "price", "usd", "distance_pct").rows() == [
        ("long", 990.0, 30.0, pytest.approx(-1.0)),
        ("short", 1020.0, 50.0, pytest.approx(2.0)),
    ]
    assert out["message"].to_list() == [
        "ETHUSDT binance: $30 of longs at 990 (990-991), -1.0% from 1,000",
        "ETHUSDT binance: $50 of shorts at 1,020 (1,020-1,021), +2.0% from 1,000",
    ]
    assert set(out["ts"].to_list()) == {T0}
    # the share rule: 3 / 133 < 5 %, 30 / 133 >= 5 %
    shares = alert_rows(
        cl, exchange="all", symbol="ETHUSDT", price_step=1.0, max_distance_pct=3, min_share=0.05
    )
    assert shares["price"].to_list() == [990.0, 1020.0]
    assert shares["message"][0].startswith("ETHUSDT: ")  # "all" is not named
    loose = alert_rows(cl, exchange="all", symbol="ETHUSDT", price_step=1.0, max_distance_pct=3)
    assert loose["price"].to_list() == [990.0, 1020.0, 975.0]
    assert (
        alert_rows(cl, exchange="all", symbol="X", price_step=1.0, max_distance_pct=0.5).height == 0
    )
    with pytest.raises(ValueError, match="max_distance_pct"):
        alert_rows(cl, exchange="all", symbol="X", price_step=1.0, max_distance_pct=-1)


def test_formats() -> None:
    assert format_usd(3.05e9) == "$3.05B"
    assert format_usd(-2.5e6) == "$-2.5M"
    assert format_price(64_350.0, 50.0) == "64,350"
    assert format_price(0.012346, 0.00001) == "0.01235"
    assert webhook_text([], header="none") == "none"


@settings(max_examples=100, deadline=None)
@given(
    messages=st.lists(st.text(st.characters(blacklist_characters="\n"), max_size=300), max_size=40),
    limit=st.integers(60, WEBHOOK_TEXT_LIMIT),
)
def test_webhook_text_fits_and_accounts_for_every_alert(messages: list[str], limit: int) -> None:
    text = webhook_text(messages, header="liqheat: alerts", limit=limit)
    assert len(text) <= limit
    lines = text.split("\n")
    assert lines[0] == "liqheat: alerts"
    shown = [line for line in lines[1:] if line.startswith("- ")]
    # each message is one line, shown in order, the rest counted
    assert [s[2:] for s in shown] == messages[: len(shown)]
    rest = len(messages) - len(shown)
    if rest:
        assert lines[-1] == f"... and {rest} more"
    else:
        assert not lines[-1].startswith("... and")
