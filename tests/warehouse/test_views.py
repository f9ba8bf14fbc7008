"""Known answers for the friendly views on the populated test warehouse (see conftest.py):
each symbol has an old run (scale 0.5) and a newer current run (scale 1.0)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tests.warehouse.conftest import CURRENT_RUN, DAYS, OLD_RUN, SYMBOLS
from warehouse.reads import query


def test_latest_run_is_the_newest_model_run(warehouse_template: Path) -> None:
    frame = query(warehouse_template, "SELECT symbol, params_hash FROM v_latest_run ORDER BY 1")
    assert frame.rows() == [(s, CURRENT_RUN) for s in sorted(SYMBOLS)]
    runs = query(warehouse_template, "SELECT DISTINCT params_hash FROM model_runs ORDER BY 1")
    assert runs["params_hash"].to_list() == [OLD_RUN, CURRENT_RUN]


def test_latest_price_is_the_close_of_the_last_bar(warehouse_template: Path) -> None:
    expected = query(
        warehouse_template,
        "SELECT symbol, ts, close FROM klines WHERE ts = (SELECT max(ts) FROM klines) ORDER BY 1",
    )
    got = query(warehouse_template, "SELECT symbol, ts, close FROM v_latest_price ORDER BY 1")
    assert got.equals(expected)


def test_latest_key_levels_are_the_current_runs_with_distance_from_last_price(
    warehouse_template: Path,
) -> None:
    got = query(
        warehouse_template,
        "SELECT symbol, side, rank, price, usd, distance_pct, last_price, params_hash "
        "FROM v_latest_key_levels ORDER BY symbol, side, rank",
    )
    assert got.height == 2 * 6
    assert set(got["params_hash"]) == {CURRENT_RUN}
    # the current run has scale 1.0: rank 1 holds 500k on each side (the old run: 250k)
    assert got.filter(pl.col("rank") == 1)["usd"].to_list() == [500_000.0] * 4
    expected = 100 * (got["price"] / got["last_price"] - 1)
    assert (got["distance_pct"] - expected).abs().max() < 1e-12  # type: ignore[operator]
    longs = got.filter(pl.col("side") == "long")
    shorts = got.filter(pl.col("side") == "short")
    assert (longs["distance_pct"] < 0).all()
    assert (shorts["distance_pct"] > 0).all()


def test_latest_liquidation_map_is_one_snapshot_of_the_current_run(
    warehouse_template: Path,
) -> None:
    got = query(
        warehouse_template,
        "SELECT symbol, count(*) AS n, count(DISTINCT as_of) AS snaps, max(long_cum_usd) AS cum, "
        "any_value(params_hash) AS run FROM v_latest_liquidation_map GROUP BY 1 ORDER BY 1",
    )
    assert got.rows() == [(s, 10, 1, 1_500_000.0, CURRENT_RUN) for s in sorted(SYMBOLS)]


def test_heatmap_daily_known_answers(warehouse_template: Path) -> None:
    got = query(warehouse_template, "SELECT * FROM v_heatmap_daily ORDER BY symbol, day")
    assert got.select("symbol", "day").rows() == [(s, d) for s in sorted(SYMBOLS) for d in DAYS]
    # current run: 96 fifteen-minute buckets a day x 10 non-zero price offsets
    assert got["cells"].to_list() == [960] * 4
    # brightest cells are one step from price: (6 - 1) * 1e5; alive totals (1+..+5) * 1e5
    assert got["peak_long_usd"].to_list() == [500_000.0] * 4
    assert got["peak_short_usd"].to_list() == [500_000.0] * 4
    assert got["max_alive_long_usd"].to_list() == [1_500_000.0] * 4
    assert got["realized_long_usd"].to_list() == [330_000.0] * 4
    assert got["realized_short_usd"].to_list() == [120_000.0] * 4
    bars = query(
        warehouse_template,
        "SELECT symbol, CAST(ts AS DATE) AS day, sum(open - low) AS pl, min(low) AS lo, "
        "max(high) AS hi FROM klines GROUP BY ALL ORDER BY 1, 2",
    )
    assert got["predicted_long_usd"].to_list() == pytest.approx(bars["pl"].to_list(), rel=1e-9)
    assert got["price_low"].to_list() == bars["lo"].to_list()
    assert got["price_high"].to_list() == bars["hi"].to_list()
    # the peak long bucket lies below the close of its 15-minute bucket, the short above
    assert (got["peak_long_price"] < got["peak_short_price"]).all()


def test_ingest_gaps_lists_missing_failed_and_never_attempted_days(
    warehouse_template: Path,
) -> None:
    got = query(
        warehouse_template,
        "SELECT dataset, symbol, day, status, reason FROM v_ingest_gaps ORDER BY day",
    )
    assert got.rows() == [
        ("metrics", "BTCUSDT", date(2026, 6, 10), "missing", "404 Not Found"),
        (
            "metrics",
            "BTCUSDT",
            date(2026, 6, 11),
            "absent",
            "no ingest attempt recorded for this day",
        ),
        ("metrics", "BTCUSDT", date(2026, 6, 12), "failed", "checksum mismatch after re-download"),
    ]


def test_coverage_counts(warehouse_template: Path) -> None:
    got = query(
        warehouse_template,
        "SELECT dataset, symbol, first_day, last_day, loaded_days, missing_days, failed_days, "
        "rows_loaded FROM v_coverage WHERE symbol = 'BTCUSDT' ORDER BY dataset",
    )
    assert got.rows() == [
        ("klines", "BTCUSDT", DAYS[0], DAYS[1], 2, 0, 0, 2880),
        ("markPriceKlines", "BTCUSDT", DAYS[0], DAYS[1], 2, 0, 0, 2880),
        ("metrics", "BTCUSDT", DAYS[0], date(2026, 6, 12), 2, 1, 1, 576),
    ]


def test_backtest_compares_model_and_baseline_of_the_current_run(
    warehouse_template: Path,
) -> None:
    got = query(
        warehouse_template,
        "SELECT symbol, side, model_capture_auc, baseline_capture_auc, capture_auc_lift, "
        "beats_baseline, params_hash FROM v_backtest ORDER BY symbol, side",
    )
    expected = [
        (s, side, auc, base, pytest.approx(auc - base), True, CURRENT_RUN)
        for s in sorted(SYMBOLS)
        for side, auc, base in (("long", 0.70, 0.60), ("short", 0.65, 0.58))
    ]
    assert got.rows() == expected
