"""Retention of model outputs: one current run per (exchange, symbol), key-level and score
history kept, on a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from warehouse.db import migrate
from warehouse.reads import query
from warehouse.writes import CHECKPOINT_AFTER_ROWS, write_model_outputs

T0 = datetime(2026, 6, 10, tzinfo=UTC)


def _run(as_of: datetime, params_hash: str, cells: int = 100) -> dict[str, object]:
    ts = [as_of - timedelta(minutes=15 * i) for i in range(cells)]
    run = pl.DataFrame(
        {
            "params_json": [f'{{"p": "{params_hash}"}}'],
            "start_ts": [as_of - timedelta(days=30)],
            "end_ts": [as_of],
            "bars": [43_200],
            "levels": [cells],
            "price_step": [10.0],
            "seconds": [0.1],
            "computed_at": [as_of],
        }
    )
    outputs = {
        "liq_levels": pl.DataFrame(
            {
                "created_at": ts,
                "side": "long",
                "leverage": 10.0,
                "price": 90.0,
                "notional_usd": 1.0,
                "liquidated_at": [None] * cells,
            },
            schema_overrides={"liquidated_at": pl.Datetime("us", "UTC")},
        ),
        "heatmap_cells": pl.DataFrame(
            {"ts": ts, "price": 100.0, "long_usd": 1.0, "short_usd": 2.0}
        ),
        "heatmap_fine_cells": pl.DataFrame(
            {"ts": ts, "price": 100.2, "long_usd": 1.0, "short_usd": 2.0}
        ),
        "heatmap_fine_band_cells": pl.DataFrame(
            {"band": "low", "ts": ts, "price": 100.2, "long_usd": 1.0, "short_usd": 2.0}
        ),
        "liquidation_map": pl.DataFrame(
            {
                "as_of": [as_of],
                "ref_price": [100.0],
                "price": [90.0],
                "long_usd": [1.0],
                "short_usd": [0.0],
                "long_cum_usd": [1.0],
                "short_cum_usd": [0.0],
            }
        ),
        "key_levels": pl.DataFrame(
            {
                "as_of": [as_of, as_of],
                "side": ["long", "short"],
                "rank": pl.Series([1, 1], dtype=pl.Int32),
                "price": [90.0, 110.0],
                "usd": [5.0, 6.0],
                "distance_pct": [-10.0, 10.0],
            }
        ),
        "predicted_liquidations": pl.DataFrame({"ts": ts, "long_usd": 1.0, "short_usd": 1.0}),
        "backtest_scores": pl.DataFrame(
            {
                "method": ["model"],
                "side": ["long"],
                "capture_auc": [0.7],
                "top_decile_overlap": [0.3],
                "log_corr": [0.2],
                "bars": [43_200],
                "realized_usd": [1e6],
                "start_ts": [as_of - timedelta(days=30)],
                "end_ts": [as_of],
                "realized_source": ["test"],
                "computed_at": [as_of],
            }
        ),
    }
    return {"params_hash": params_hash, "run": run, "outputs": outputs}


def _write(db: Path, symbol: str, spec: dict[str, object]) -> None:
    write_model_outputs(db, exchange="binance", symbol=symbol, **spec)  # type: ignore[arg-type]


def _counts(db: Path, table: str) -> dict[tuple[str, str], int]:
    frame = query(
        db, f"SELECT symbol, params_hash, count(*) AS n FROM {table} GROUP BY ALL ORDER BY ALL"
    )
    return {(s, h): n for s, h, n in frame.iter_rows()}


def test_a_new_run_keeps_one_current_run_and_the_key_level_and_score_history(
    tmp_path: Path,
) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    _write(db, "BTCUSDT", _run(T0, "aaaa"))
    _write(db, "ETHUSDT", _run(T0, "aaaa"))
    # the next night, with other parameters: BTCUSDT's older bulky outputs go
    _write(db, "BTCUSDT", _run(T0 + timedelta(days=1), "bbbb", cells=50))

    for table in (
        "heatmap_cells",
        "liq_levels",
        "predicted_liquidations",
        "liquidation_map",
        "heatmap_fine_cells",
        "heatmap_fine_band_cells",
    ):
        counts = _counts(db, table)
        assert ("BTCUSDT", "aaaa") not in counts, table
        assert ("BTCUSDT", "bbbb") in counts, table
        assert ("ETHUSDT", "aaaa") in counts, table  # another symbol is untouched
    assert _counts(db, "heatmap_cells")[("BTCUSDT", "bbbb")] == 50
    assert _counts(db, "heatmap_fine_cells")[("BTCUSDT", "bbbb")] == 50
    # history stays: both nights' key levels and scores, and both runs' parameters
    assert _counts(db, "key_levels") == {
        ("BTCUSDT", "aaaa"): 2,
        ("BTCUSDT", "bbbb"): 2,
        ("ETHUSDT", "aaaa"): 2,
    }
    assert _counts(db, "backtest_scores")[("BTCUSDT", "aaaa")] == 1
    assert _counts(db, "backtest_scores")[("BTCUSDT", "bbbb")] == 1
    assert set(_counts(db, "model_runs")) == {
        ("BTCUSDT", "aaaa"),
        ("BTCUSDT", "bbbb"),
        ("ETHUSDT", "aaaa"),
    }
    # the views show the current run at its latest snapshot
    latest = query(
        db, "SELECT DISTINCT params_hash FROM v_latest_key_levels WHERE symbol = 'BTCUSDT'"
    )
    assert latest["params_hash"].to_list() == ["bbbb"]


def test_same_params_next_night_adds_a_snapshot_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    _write(db, "BTCUSDT", _run(T0, "aaaa"))
    _write(db, "BTCUSDT", _run(T0 + timedelta(days=1), "aaaa"))
    _write(db, "BTCUSDT", _run(T0 + timedelta(days=1), "aaaa"))  # a rerun of the same night
    snapshots = query(db, "SELECT as_of, count(*) AS n FROM key_levels GROUP BY 1 ORDER BY 1")
    assert snapshots["n"].to_list() == [2, 2]
    assert query(db, "SELECT count(*) AS n FROM backtest_scores")["n"][0] == 2
    assert query(db, "SELECT count(*) AS n FROM heatmap_cells")["n"][0] == 100
    assert query(db, "SELECT count(*) AS n FROM model_runs")["n"][0] == 1


def test_a_large_delete_is_checkpointed_and_the_file_stops_growing(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    cells = CHECKPOINT_AFTER_ROWS + 10_000
    sizes = []
    for night in range(4):
        _write(db, "BTCUSDT", _run(T0 + timedelta(days=night), "aaaa", cells=cells))
        sizes.append(db.stat().st_size)
        assert not db.with_name(db.name + ".wal").exists() or (
            db.with_name(db.name + ".wal").stat().st_size == 0
        )
    assert query(db, "SELECT count(*) AS n FROM heatmap_cells")["n"][0] == cells
    # freed blocks are reused: four nights of the same size need far less than four copies
    assert sizes[-1] < 2.5 * sizes[0], sizes


def test_source_step_is_read_where_the_page_starts(tmp_path: Path) -> None:
    """Stored heatmap buckets coarsen with age: a page reads the step at its own start."""
    from warehouse.reads_outputs import heatmap_source_step

    db = tmp_path / "liqheat.duckdb"
    migrate(db)
    parts = _run(T0, "ab12")
    run, outputs = parts["run"], dict(parts["outputs"])  # type: ignore[call-overload]
    old = [T0 - timedelta(days=10) + timedelta(hours=4 * i) for i in range(6)]
    new = [T0 - timedelta(hours=2) + timedelta(minutes=15 * i) for i in range(8)]
    outputs["heatmap_cells"] = pl.DataFrame(
        {"ts": old + new, "price": 100.0, "long_usd": 1.0, "short_usd": 0.0}
    )
    write_model_outputs(
        db,
        exchange="binance",
        symbol="BTCUSDT",
        params_hash="ab12",
        run=run,  # type: ignore[arg-type]
        outputs=outputs,
    )
    step = heatmap_source_step(db, "binance", "BTCUSDT", "ab12")
    assert step == timedelta(hours=4)
    since = T0 - timedelta(hours=3)
    assert heatmap_source_step(db, "binance", "BTCUSDT", "ab12", since=since) == timedelta(
        minutes=15
    )
