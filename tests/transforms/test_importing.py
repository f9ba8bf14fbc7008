"""transforms.importing: the bar size, gaps and duplicates of any bar grid (hypothesis), and the
column mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.importing import (
    BAR_SIZES,
    COLUMN_ROLES,
    ImportDataError,
    bar_table,
    column_mapping,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from(BAR_SIZES),
    n=st.integers(min_value=8, max_value=200),
    data=st.data(),
)
def test_size_gaps_and_duplicates_of_any_grid(size: int, n: int, data: st.DataObject) -> None:
    # drop up to a quarter of the inner bars (the most common step stays the bar size) and
    # repeat a few rows identically
    inner = list(range(1, n - 1))
    dropped = set(data.draw(st.lists(st.sampled_from(inner), max_size=n // 4, unique=True)))
    kept = [k for k in range(n) if k not in dropped]
    repeats = data.draw(st.lists(st.sampled_from(kept), max_size=5))
    rows = kept + repeats
    order = data.draw(st.permutations(rows))
    ts_ms = [int((T0 + timedelta(seconds=size * k)).timestamp() * 1000) for k in order]
    raw = pl.DataFrame(
        {"open_time_ms": ts_ms, "open": 10.0, "high": 11.0, "low": 9.0,
         "close": [10.0 + 0.001 * k for k in order], "oi_usd": 1e6}
    )  # fmt: skip
    table = bar_table(raw, require=("open", "high", "low", "close", "oi"))
    assert table.bar_seconds == size
    assert table.bars.height == len(kept)
    assert table.duplicates == len(repeats)
    assert table.missing_bars == len(dropped)
    assert table.bars["ts"].is_sorted()


def test_mapping_prefers_exact_names_and_overrides_win() -> None:
    cols = ["Open_Time_MS", "open", "high", "low", "close", "open_interest_usd_binance", "oi"]
    assert column_mapping(cols)["oi_usd"] == "open_interest_usd_binance"  # a prefix match
    assert column_mapping(cols, {"oi_usd": "oi"})["oi_usd"] == "oi"
    with pytest.raises(ImportDataError, match="--map oi_usd=nope: no column 'nope'"):
        column_mapping(cols, {"oi_usd": "nope"})
    assert set(column_mapping(cols)) <= set(COLUMN_ROLES)


def test_docs_importing_lists_every_role_and_name() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "importing.md").read_text("utf-8")
    for role, (exact, prefixes) in COLUMN_ROLES.items():
        names = ", ".join([*(f"`{n}`" for n in exact), *(f"`{p}*`" for p in prefixes)])
        assert f"| `{role}` | {names} |" in doc, role
