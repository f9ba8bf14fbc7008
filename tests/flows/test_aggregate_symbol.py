"""aggregate_symbol against a real DuckDB file holding two exchanges' bars and open interest."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from flows.calibration import resolve_params
from flows.exchange_sum import aggregate_symbol
from flows.modelling import model_symbol
from flows.settings import Settings
from transforms.levels import warmup_hours
from transforms.params import ModelParams
from warehouse import writes
from warehouse.reads import query

START = datetime(2024, 6, 1, tzinfo=UTC)
SYMBOL = "BTCUSDT"


def _write_market(db: Path, exchange: str, price: float, days: float, seed: int) -> pl.DataFrame:
    """1m bars, mark bars and 5-minute open interest for one exchange, through writes."""
    rng = np.random.default_rng(seed)
    n = int(days * 1440)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.0012, n)))
    open_ = np.r_[price, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0003, n)))
    ts = pl.datetime_range(
        START, START + timedelta(minutes=n - 1), "1m", time_zone="UTC", eager=True
    )
    volume = rng.gamma(2.0, 5.0, n)
    keys = {"exchange": exchange, "symbol": SYMBOL}
    klines = pl.DataFrame(
        {
            **keys,
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": 100,
            "taker_buy_volume": volume * 0.5,
            "taker_buy_quote_volume": volume * close * 0.5,
        }
    )
    marks = klines.select("exchange", "symbol", "ts", "open", "high", "low", "close")
    oi = 5e8 * np.exp(np.cumsum(rng.normal(0.0002, 0.003, n)))
    every5 = np.arange(0, n, 5)
    open_interest = pl.DataFrame(
        {
            **keys,
            "ts": ts.gather(every5),
            "oi_base": oi[every5] / close[every5],
            "oi_usd": oi[every5],
        }
    )
    window = (START, START + timedelta(minutes=n))
    writes.replace_many(
        db,
        [
            ("klines", {**keys, "ts": window}, klines),
            ("mark_klines", {**keys, "ts": window}, marks),
            ("open_interest", {**keys, "ts": window}, open_interest),
        ],
    )
    return klines


def _count(db: Path, table: str, exchange: str) -> int:
    return int(
        query(db, f"SELECT count(*) AS n FROM {table} WHERE exchange = ?", [exchange]).item()
    )


@pytest.fixture
def two_exchanges(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path)
    settings.home.mkdir(parents=True, exist_ok=True)
    # binance: 4 days (15m heatmap buckets); bybit: 2 days, prices 0.05 % higher (5m buckets)
    _write_market(settings.db_path, "binance", 60_000.0, 4, seed=1)
    _write_market(settings.db_path, "bybit", 60_030.0, 2, seed=2)
    return settings


def test_model_symbol_price_step_keyword(two_exchanges: Settings) -> None:
    summary = model_symbol(two_exchanges, SYMBOL, exchange="bybit", price_step=20.0)
    expected = resolve_params(two_exchanges, SYMBOL, ModelParams(price_step=20.0))
    assert expected.brackets is not None  # the symbol's notional brackets are filled in
    assert summary.params_hash == expected.params_hash()
    run = query(
        two_exchanges.db_path,
        "SELECT price_step FROM model_runs WHERE exchange = 'bybit' AND params_hash = ?",
        [summary.params_hash],
    )
    assert run["price_step"].to_list() == [20.0]
    prices = query(
        two_exchanges.db_path,
        "SELECT DISTINCT price FROM heatmap_cells WHERE exchange = 'bybit' AND params_hash = ?",
        [summary.params_hash],
    )["price"]
    assert ((prices / 20.0 - (prices / 20.0).round()).abs() < 1e-9).all()


def test_aggregate_equals_sum_of_exchanges(two_exchanges: Settings) -> None:
    db = two_exchanges.db_path
    summary = aggregate_symbol(two_exchanges, SYMBOL)
    assert summary.exchange == "all"
    # one step for both: the auto step of the binance bars (0.1 % of ~60k -> 50)
    expected = resolve_params(two_exchanges, SYMBOL, ModelParams(price_step=50.0))
    assert summary.params_hash == expected.params_hash()
    hashes = query(
        db, "SELECT exchange, params_hash, params_json FROM model_runs ORDER BY exchange"
    )
    assert hashes["exchange"].to_list() == ["all", "binance", "bybit"]
    assert set(hashes["params_hash"]) == {summary.params_hash}
    assert hashes["params_json"].n_unique() == 1

    # expected "all" cells computed independently in SQL: bybit's 5m cells averaged onto the
    # 15m grid of binance (3 per bucket), then summed with binance's cells on (ts, price)
    expected = query(
        db,
        """
        WITH parts AS (
            SELECT ts, price, long_usd, short_usd FROM heatmap_cells
            WHERE exchange = 'binance' AND params_hash = $h
            UNION ALL
            SELECT time_bucket(INTERVAL 15 MINUTE, ts) AS ts, price,
                   long_usd / 3 AS long_usd, short_usd / 3 AS short_usd
            FROM heatmap_cells WHERE exchange = 'bybit' AND params_hash = $h
        )
        SELECT ts, round(price / 50) AS pb, sum(long_usd) AS l, sum(short_usd) AS s
        FROM parts GROUP BY ALL ORDER BY ts, pb
        """.replace("$h", "?"),
        [summary.params_hash, summary.params_hash],
    )
    got = query(
        db,
        "SELECT ts, round(price / 50) AS pb, long_usd AS l, short_usd AS s FROM heatmap_cells "
        "WHERE exchange = 'all' AND params_hash = ? ORDER BY ts, pb",
        [summary.params_hash],
    )
    assert got.height == expected.height > 1000
    assert got["ts"].equals(expected["ts"])
    assert got["pb"].equals(expected["pb"])
    np.testing.assert_allclose(got["l"].to_numpy(), expected["l"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(got["s"].to_numpy(), expected["s"].to_numpy(), rtol=1e-9)
    # both exchanges really contribute: some cells hold both, more than either alone
    per_ex = query(
        db,
        "SELECT exchange, count(*) AS n FROM heatmap_cells WHERE params_hash = ? GROUP BY 1",
        [summary.params_hash],
    )
    counts = dict(per_ex.iter_rows())
    assert counts["all"] > counts["binance"]

    # the liquidation map and the predictions are sums too
    totals = query(
        db,
        "SELECT exchange, sum(long_usd) AS l, sum(short_usd) AS s FROM liquidation_map "
        "GROUP BY 1 ORDER BY 1",
    )
    t = {r[0]: r[1:] for r in totals.iter_rows()}
    assert t["all"][0] == pytest.approx(t["binance"][0] + t["bybit"][0], rel=1e-9)
    assert t["all"][1] == pytest.approx(t["binance"][1] + t["bybit"][1], rel=1e-9)
    pred = query(
        db,
        "SELECT exchange, count(DISTINCT ts) AS n, sum(long_usd + short_usd) AS usd "
        "FROM predicted_liquidations GROUP BY 1",
    )
    p = {r[0]: r[1:] for r in pred.iter_rows()}
    assert p["all"][0] == 4 * 1440  # bybit's 2 days lie inside binance's 4
    assert p["all"][1] == pytest.approx(p["binance"][1] + p["bybit"][1], rel=1e-9)
    levels = query(db, "SELECT side, rank, price, usd FROM key_levels WHERE exchange = 'all'")
    assert sorted(set(levels["side"])) == ["long", "short"]
    assert levels["rank"].max() == 5
    run = query(db, "SELECT bars, levels, price_step FROM model_runs WHERE exchange = 'all'")
    assert run.row(0)[0] == 4 * 1440
    assert run.row(0)[2] == 50.0
    assert summary.heatmap_cells == got.height


def test_rerun_replaces_and_reuses_fresh_runs(two_exchanges: Settings) -> None:
    db = two_exchanges.db_path
    tables = ("heatmap_cells", "liquidation_map", "key_levels", "predicted_liquidations")
    aggregate_symbol(two_exchanges, SYMBOL)
    before = {t: _count(db, t, "all") for t in tables}
    stamps = query(db, "SELECT exchange, computed_at FROM model_runs ORDER BY exchange")
    aggregate_symbol(two_exchanges, SYMBOL)  # per-exchange runs are fresh: reused
    assert {t: _count(db, t, "all") for t in tables} == before
    again = query(db, "SELECT exchange, computed_at FROM model_runs ORDER BY exchange")
    assert again.filter(pl.col("exchange") != "all").equals(
        stamps.filter(pl.col("exchange") != "all")
    )
    aggregate_symbol(two_exchanges, SYMBOL, rerun=True)  # forced: everything rerun, replaced
    assert {t: _count(db, t, "all") for t in tables} == before
    assert _count(db, "model_runs", "all") == 1
    third = query(db, "SELECT exchange, computed_at FROM model_runs ORDER BY exchange")
    assert (third["computed_at"] > stamps["computed_at"]).all()


def test_backtest_for_all_uses_every_exchanges_realized(tmp_path: Path) -> None:
    # both exchanges 4 days: bybit's realized must reach past the model's warm-up
    # (log2(10) x 24 h = 3.3 days)
    two_exchanges = Settings(home=tmp_path)
    two_exchanges.home.mkdir(parents=True, exist_ok=True)
    _write_market(two_exchanges.db_path, "binance", 60_000.0, 4, seed=1)
    _write_market(two_exchanges.db_path, "bybit", 60_030.0, 4, seed=2)
    db = two_exchanges.db_path
    bybit = query(db, "SELECT ts, open, close FROM klines WHERE exchange = 'bybit' ORDER BY ts")
    events = bybit.gather_every(37).select(
        pl.lit("bybit").alias("exchange"),
        pl.lit(SYMBOL).alias("symbol"),
        "ts",
        pl.when(pl.col("close") < pl.col("open"))
        .then(pl.lit("long"))
        .otherwise(pl.lit("short"))
        .alias("side"),
        pl.lit(25_000.0).alias("usd"),
        pl.lit("test").alias("source"),
    )
    writes.replace_partition(
        db, "realized_liquidations", {"exchange": "bybit", "symbol": SYMBOL}, events
    )
    summary = aggregate_symbol(two_exchanges, SYMBOL)
    assert {(s["method"], s["side"]) for s in summary.scores} == {
        ("model", "long"),
        ("model", "short"),
        ("baseline", "long"),
        ("baseline", "short"),
    }
    scores = query(
        db,
        "SELECT method, side, realized_usd, bars, realized_source FROM backtest_scores "
        "WHERE exchange = 'all' ORDER BY method, side",
    )
    assert scores.height == 4
    assert scores["realized_source"].unique().to_list() == ["bybit:test"]
    # the model's warm-up (log2(10) x the half-life: 4,785 min at 24 h) is dropped from all
    warm = math.ceil(warmup_hours(ModelParams()) * 60)
    assert scores["bars"].unique().to_list() == [4 * 1440 - warm]
    realized = scores.filter(pl.col("method") == "model")["realized_usd"].sum()
    first = query(db, "SELECT min(ts) AS t FROM klines WHERE exchange = 'binance'")["t"][0]
    scored = events.filter(pl.col("ts") >= first + timedelta(minutes=warm))
    assert 0 < scored.height < events.height  # part of bybit's realized lies in the warm-up
    assert realized == pytest.approx(25_000.0 * scored.height)
    # binance has no realized rows: no scores of its own
    assert _count(db, "backtest_scores", "binance") == 0


def test_no_bars_no_aggregate(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    summary = aggregate_symbol(settings, SYMBOL, ["binance"])
    assert summary.bars == 0
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_symbol(settings, SYMBOL, ["all"])


def test_liqheat_model_runs_every_exchange_then_the_sum(tmp_path: Path) -> None:
    """``liqheat model`` takes the nightly's route: every exchange with data, then "all";
    with ``--profile`` each of their runs carries the profile's params."""
    from tests.cli import liqheat
    from warehouse.profiles import write_profile

    settings = Settings(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    for seed, (exchange, price) in enumerate(
        (("binance", 60_000.0), ("okx", 60_020.0), ("bybit", 60_030.0)), start=1
    ):
        _write_market(settings.db_path, exchange, price, 0.25, seed=seed)
    profile = ModelParams(turnover_half_life_hours=6.0)
    day = (START, START + timedelta(days=1))
    write_profile(
        settings.db_path,
        name="quick",
        params_json=profile.to_json(),
        params_hash=profile.params_hash(),
        fitted_on="test",
        train=day,
        test=day,
        size_ratio={},
        scores=pl.DataFrame(),
    )
    result = liqheat(settings.home, "model", "--symbol", SYMBOL, "--profile", "quick")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{SYMBOL}: 360 bars")
    assert any(line.startswith(f"[okx] {SYMBOL}: 360 bars") for line in lines)
    assert any(line.startswith(f"[bybit] {SYMBOL}: 360 bars") for line in lines)
    assert any(line.startswith(f"[all] {SYMBOL}: 360 bars") for line in lines)
    runs = query(settings.db_path, "SELECT exchange, params_hash, params_json FROM model_runs")
    assert set(runs["exchange"]) == {"binance", "okx", "bybit", "all"}
    own = resolve_params(settings, SYMBOL, profile).params_hash()  # each exchange's own step
    for exchange in ("binance", "okx", "bybit"):
        mine = runs.filter(pl.col("exchange") == exchange)
        assert own in mine["params_hash"].to_list(), exchange
    summed = runs.filter(pl.col("exchange") == "all").row(0, named=True)
    assert ModelParams.model_validate_json(summed["params_json"]).turnover_half_life_hours == 6.0
    # the sum's params (one price step for every exchange) are each exchange's too
    assert (runs["params_hash"] == summed["params_hash"]).sum() == 4
