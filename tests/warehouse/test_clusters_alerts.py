"""Schema version 7 on a real DuckDB file: key-level cluster columns, alerts and
v_latest_alerts, long vs short level size (v_long_short and long_short_over_time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from transforms.clusters import cluster_key_levels
from transforms.levels import KEY_LEVELS_SCHEMA
from warehouse import reads_outputs as ro
from warehouse.reads import query
from warehouse.writes import replace_partition, write_alert_state, write_model_outputs

T0 = datetime(2026, 6, 8, tzinfo=UTC)
SYMBOL = "BTCUSDT"


def _run(computed_at: datetime, step: float = 50.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "params_json": ["{}"],
            "start_ts": [T0],
            "end_ts": [T0 + timedelta(hours=30)],
            "bars": [1800],
            "levels": [10],
            "price_step": [step],
            "seconds": [0.1],
            "computed_at": [computed_at],
        }
    )


def _cells(scale: float) -> pl.DataFrame:
    """15m cells over 30 hours: per bucket k two long cells (k and 1 x 1e6) and one short cell
    (2e6), times ``scale``."""
    rows = []
    for k in range(30 * 4):
        ts = T0 + timedelta(minutes=15 * k)
        rows += [
            (ts, 60_000.0, scale * k * 1e6, 0.0),
            (ts, 60_500.0, scale * 1e6, 0.0),
            (ts, 66_000.0, 0.0, scale * 2e6),
        ]
    return pl.DataFrame(rows, schema=["ts", "price", "long_usd", "short_usd"], orient="row")


def _map(scale: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "as_of": [T0 + timedelta(hours=30)] * 3,
            "ref_price": [64_000.0] * 3,
            "price": [62_000.0, 63_500.0, 65_000.0],
            "long_usd": [scale * 5e8, scale * 2e8, 0.0],
            "short_usd": [0.0, 0.0, scale * 3e8],
            "long_cum_usd": [scale * 7e8, scale * 2e8, 0.0],
            "short_cum_usd": [0.0, 0.0, scale * 3e8],
        }
    )


def _store(db: Path, params_hash: str, computed_at: datetime, scale: float) -> None:
    liq_map = _map(scale)
    write_model_outputs(
        db,
        exchange="all",
        symbol=SYMBOL,
        params_hash=params_hash,
        run=_run(computed_at),
        outputs={
            "heatmap_cells": _cells(scale),
            "liquidation_map": liq_map,
            "key_levels": cluster_key_levels(liq_map, price_step=50.0),
        },
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "liqheat.duckdb"
    _store(path, "old0", T0 + timedelta(hours=31), scale=0.5)
    _store(path, "new1", T0 + timedelta(hours=32), scale=1.0)
    return path


def test_key_levels_store_the_cluster_columns(db: Path) -> None:
    got = ro.latest_key_clusters(db, "all", SYMBOL, "new1")
    assert tuple(got.columns) == ro.KEY_CLUSTER_COLUMNS == tuple(KEY_LEVELS_SCHEMA)
    assert got.select("side", "rank", "price", "price_low", "price_high", "usd").rows() == [
        ("long", 1, 62_000.0, 62_000.0, 62_050.0, 5e8),
        ("long", 2, 63_500.0, 63_500.0, 63_550.0, 2e8),
        ("short", 1, 65_000.0, 65_000.0, 65_050.0, 3e8),
    ]
    assert got.select("is_nearest", "is_largest").rows() == [
        (False, True),
        (True, False),
        (True, True),
    ]
    view = query(
        db,
        "SELECT side, rank, price_low, price_high, is_nearest, is_largest, params_hash "
        "FROM v_latest_key_levels ORDER BY side, rank",
    )
    assert set(view["params_hash"]) == {"new1"}
    assert (
        view.drop("params_hash").rows()
        == got.select("side", "rank", "price_low", "price_high", "is_nearest", "is_largest").rows()
    )


def test_long_short_view_is_hourly_means_of_the_current_run(db: Path) -> None:
    got = query(db, "SELECT * FROM v_long_short ORDER BY ts")
    assert set(got["params_hash"]) == {"new1"}
    assert got.height == 30
    assert got["buckets"].to_list() == [4] * 30
    # hour h holds buckets 4h..4h+3: longs mean (4h + 1.5) * 1e6 + 1e6, shorts 2e6
    assert got["ts"].to_list() == [T0 + timedelta(hours=h) for h in range(30)]
    assert got["long_usd"].to_list() == pytest.approx([(4 * h + 2.5) * 1e6 for h in range(30)])
    assert got["short_usd"].to_list() == pytest.approx([2e6] * 30)
    assert got["delta_usd"].to_list() == pytest.approx([(4 * h + 0.5) * 1e6 for h in range(30)])


def test_long_short_over_time_per_period(db: Path) -> None:
    hourly = ro.long_short_over_time(db, "all", SYMBOL, "new1")
    assert hourly.columns == ["ts", "long_usd", "short_usd", "delta_usd"]
    view = query(db, "SELECT ts, long_usd, short_usd, delta_usd FROM v_long_short ORDER BY ts")
    assert hourly.equals(view)
    four = ro.long_short_over_time(db, "all", SYMBOL, "new1", every="4h")
    # 30 hours from midnight: 7 full 4h periods and one of 2 hours (buckets 112..119)
    assert four["ts"].to_list() == [T0 + timedelta(hours=4 * p) for p in range(8)]
    assert four["long_usd"].to_list() == pytest.approx(
        [(16 * p + 7.5 + 1) * 1e6 for p in range(7)] + [(115.5 + 1) * 1e6]
    )
    daily = ro.long_short_over_time(db, "all", SYMBOL, "new1", every="1d")
    assert daily["ts"].to_list() == [T0, T0 + timedelta(days=1)]
    assert daily["long_usd"].to_list() == pytest.approx([(47.5 + 1) * 1e6, (107.5 + 1) * 1e6])
    assert daily["short_usd"].to_list() == pytest.approx([2e6, 2e6])
    # the older run's heatmap cells are gone: a new run keeps only its own (retention)
    old = ro.long_short_over_time(db, "all", SYMBOL, "old0", every="1d")
    assert old.height == 0
    with pytest.raises(ValueError, match="every must be one of 1h, 4h, 1d"):
        ro.long_short_over_time(db, "all", SYMBOL, "new1", every="2h")


def _alerts(
    run_id: str, created_at: datetime, params_hash: str, prices: list[float]
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": run_id,
            "created_at": created_at,
            "ts": T0 + timedelta(hours=30),
            "exchange": "all",
            "symbol": SYMBOL,
            "params_hash": params_hash,
            "side": ["short"] * len(prices),
            "price": prices,
            "price_low": prices,
            "price_high": [p + 50.0 for p in prices],
            "usd": 3e8,
            "distance_pct": [100 * (p / 64_000.0 - 1) for p in prices],
            "ref_price": 64_000.0,
            "message": [f"short at {p:,.0f}" for p in prices],
        }
    )


def test_latest_alerts_are_the_newest_evaluation_after_the_current_model_run(db: Path) -> None:
    assert ro.latest_alerts(db).height == 0
    computed = T0 + timedelta(hours=32)
    # raised before the current model run was computed: stale, never shown
    replace_partition(
        db,
        "alerts",
        {"run_id": "r0"},
        _alerts("r0", computed - timedelta(minutes=1), "new1", [65_000.0]),
    )
    assert ro.latest_alerts(db).height == 0
    replace_partition(
        db,
        "alerts",
        {"run_id": "r1"},
        _alerts("r1", computed + timedelta(minutes=1), "new1", [65_000.0, 64_500.0]),
    )
    got = ro.latest_alerts(db)
    assert tuple(got.columns) == ro.ALERT_COLUMNS
    assert got["price"].to_list() == [64_500.0, 65_000.0]  # nearest first
    # the next check no longer finds r1's clusters (cleared) and raises a new one
    r1 = query(db, "SELECT rowid AS key FROM alerts WHERE run_id = 'r1'")["key"].to_list()
    later = computed + timedelta(minutes=2)
    write_alert_state(
        db,
        new=_alerts("r2", later, "new1", [65_500.0]).with_columns(last_seen_at=pl.lit(later)),
        kept=pl.DataFrame(),
        cleared=r1,
        now=later,
    )
    assert ro.latest_alerts(db, SYMBOL)["run_id"].to_list() == ["r2"]
    assert ro.latest_alerts(db, "ETHUSDT").height == 0
    # a newer model run makes every earlier alert stale
    _store(db, "new1", computed + timedelta(minutes=3), scale=1.0)
    assert ro.latest_alerts(db).height == 0
    assert ro.headline_run(db, SYMBOL) == {
        "exchange": "all",
        "params_hash": "new1",
        "price_step": 50.0,
        "computed_at": computed + timedelta(minutes=3),
    }
    assert ro.headline_run(db, "ETHUSDT") is None
