"""The index flags a symbol whose data stopped updating (newest bar > 2 days behind the newest
symbol's) as STALE; fresh symbols are not flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from reports.site import build_site, mark_stale
from warehouse.writes import replace_partition


def _bars(symbol: str, end: datetime, minutes: int = 600) -> pl.DataFrame:
    ts = [end - timedelta(minutes=minutes - i) for i in range(minutes)]
    price = [100.0 + (i % 7) for i in range(minutes)]
    return pl.DataFrame(
        {
            "exchange": "binance",
            "symbol": symbol,
            "ts": ts,
            "open": price,
            "high": [p + 1 for p in price],
            "low": [p - 1 for p in price],
            "close": price,
            "volume": 1.0,
            "quote_volume": 100.0,
            "trades": 3,
            "taker_buy_volume": 0.5,
            "taker_buy_quote_volume": 50.0,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def test_index_marks_stale_symbols(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    newest = datetime(2026, 6, 10, 12, tzinfo=UTC)
    ends = {
        "BTCUSDT": newest,
        "ETHUSDT": newest - timedelta(days=1),  # a day behind: fine
        "SOLUSDT": newest - timedelta(days=3),  # stopped three days ago: stale
    }
    for symbol, end in ends.items():
        frame = _bars(symbol, end)
        keys = {"exchange": "binance", "symbol": symbol, "ts": (end - timedelta(days=1), end)}
        replace_partition(db, "klines", keys, frame)
    index = build_site(db, tmp_path / "site", days=["24h"]).index.read_text()
    body = index.split('<section class="symbols">', 1)[1]  # the cards, not the symbol switch
    cards = {s: body.split(f">{s}<", 1)[1].split("</h2>", 1)[0] for s in ends}
    assert "STALE" in cards["SOLUSDT"]
    assert "STALE" not in cards["BTCUSDT"]
    assert "STALE" not in cards["ETHUSDT"]
    assert index.count('class="tag stale"') == 1


def test_mark_stale_rule() -> None:
    t = datetime(2026, 1, 10, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"last_ts": t},
        {"last_ts": t - timedelta(days=2)},  # exactly 2 days: not yet stale
        {"last_ts": t - timedelta(days=2, minutes=1)},
        {"last_ts": None},
    ]
    mark_stale(rows)
    assert [r["stale"] for r in rows] == [False, False, True, False]
    empty: list[dict[str, Any]] = [{"last_ts": None}]
    mark_stale(empty)
    assert empty[0]["stale"] is False
