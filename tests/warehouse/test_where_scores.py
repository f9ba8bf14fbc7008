"""where_scores: written by write_model_outputs like backtest_scores (history per scored
window, a rerun of the same window replaces), read back by latest_where_scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from transforms.params import ModelParams
from transforms.where import WHERE_SCORE_SCHEMA, WhereMethod, where_scores
from warehouse.reads import latest_where_scores, query
from warehouse.writes import write_model_outputs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _frame(start: datetime, end: datetime, computed: datetime) -> pl.DataFrame:
    t = [T0 + timedelta(hours=i) for i in range(24 * 6)]
    price = 100 * np.exp(0.02 * np.sin(np.arange(len(t)) / 7))
    bars = pl.DataFrame({"ts": t, "open": price, "high": price * 1.01, "low": price * 0.99,
                         "close": price, "oi_usd": 1e6})  # fmt: skip
    return where_scores(bars, params=ModelParams(), method=WhereMethod(draws=50)).with_columns(
        pl.lit(start).alias("start_ts"),
        pl.lit(end).alias("end_ts"),
        pl.lit("").alias("realized_source"),
        pl.lit(computed).alias("computed_at"),
    )


def _write(db: Path, frame: pl.DataFrame) -> None:
    run = pl.DataFrame({"params_json": ["{}"], "computed_at": [datetime.now(UTC)]})
    write_model_outputs(db, exchange="binance", symbol="BTCUSDT", params_hash="ab12", run=run,
                        outputs={"where_scores": frame})  # fmt: skip


def test_where_scores_history_and_latest_read(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    end = T0 + timedelta(days=6)
    first = _frame(T0, end, T0 + timedelta(days=7))
    assert first.height > 0
    _write(db, first)
    _write(db, first)  # the same window again: replaced, not duplicated
    count = "SELECT count(*) AS n FROM where_scores"
    assert query(db, count)["n"][0] == first.height
    later = _frame(T0 + timedelta(days=1), end + timedelta(days=1), T0 + timedelta(days=8))
    _write(db, later)  # another window: history kept
    assert query(db, count)["n"][0] == 2 * first.height
    got = latest_where_scores(db, "binance", "BTCUSDT", "ab12")
    assert got.height == first.height
    assert set(got["start_ts"].to_list()) == {T0 + timedelta(days=1)}
    assert set(WHERE_SCORE_SCHEMA) <= set(got.columns)
    magnet = got.filter((pl.col("name") == "magnet") & (pl.col("side") == "both"))
    assert magnet.filter(pl.col("bin") == "all")["n"][0] > 0
    assert latest_where_scores(db, "binance", "ETHUSDT", "ab12").height == 0
