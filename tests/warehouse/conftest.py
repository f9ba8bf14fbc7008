"""Fixtures for the warehouse tests: a small but complete warehouse written through
warehouse.writes (2 symbols x 2 days of 1m bars, an old and a current model run each,
an ingest ledger with a gap), built once per session and copied per test when needed."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from warehouse.db import write_connection
from warehouse.writes import log_ingest, replace_many

EXCHANGE = "binance"
SYMBOLS = {"BTCUSDT": 65_000.0, "ETHUSDT": 3_200.0}
DAYS = (date(2026, 6, 8), date(2026, 6, 9))
OLD_RUN, CURRENT_RUN = "0000aaaa0000", "1111bbbb1111"
UTC_US = pl.Datetime("us", "UTC")


def _ts(day: date, minutes: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minutes)


def bars(symbol: str, day: date, seed: int) -> pl.DataFrame:
    """1440 deterministic 1m bars (klines columns) for one symbol-day."""
    rng = np.random.default_rng(seed)
    start_price = SYMBOLS[symbol] * (1 + 0.01 * (day - DAYS[0]).days)
    close = start_price * np.exp(np.cumsum(rng.normal(0, 0.0008, 1440)))
    open_ = np.concatenate([[start_price], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0004, 1440)) * close
    volume = rng.gamma(2.0, 5.0, 1440)
    ts = pl.datetime_range(_ts(day, 0), _ts(day, 1439), "1m", eager=True, time_unit="us")
    return pl.DataFrame(
        {
            "exchange": EXCHANGE,
            "symbol": symbol,
            "ts": ts,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": rng.integers(10, 500, 1440),
            "taker_buy_volume": volume * 0.5,
            "taker_buy_quote_volume": volume * close * 0.5,
        }
    )


def day_parts(
    symbol: str, day: date, k: pl.DataFrame
) -> list[tuple[str, dict[str, object], pl.DataFrame]]:
    """The market-data partitions of one symbol-day derived from its bars."""
    rng = np.random.default_rng([len(symbol), day.toordinal()])
    day_range = (_ts(day, 0), _ts(day, 1440))
    keys = {"exchange": EXCHANGE, "symbol": symbol, "ts": day_range}
    mark = k.select("exchange", "symbol", "ts", "open", "high", "low", "close")
    oi = k.gather_every(5).select(
        "exchange",
        "symbol",
        "ts",
        pl.lit(1000.0 + rng.random()).alias("oi_base"),
        (pl.col("close") * 1000.0).alias("oi_usd"),
        pl.lit(1.1).alias("top_trader_account_ratio"),
        pl.lit(1.2).alias("top_trader_position_ratio"),
        pl.lit(0.9).alias("global_account_ratio"),
        pl.lit(1.0).alias("taker_buy_sell_ratio"),
    )
    realized = pl.DataFrame(
        {
            "exchange": EXCHANGE,
            "symbol": symbol,
            "ts": [_ts(day, 100), _ts(day, 700), _ts(day, 1300)],
            "side": ["long", "short", "long"],
            "usd": [250_000.0, 120_000.0, 80_000.0],
            "source": "csv:test",
        },
        schema_overrides={"ts": UTC_US},
    )
    return [
        ("klines", keys, k),
        ("mark_klines", keys, mark),
        ("open_interest", keys, oi),
        ("realized_liquidations", keys, realized),
    ]


def model_parts(
    symbol: str, params_hash: str, all_bars: pl.DataFrame, computed_at: datetime, scale: float
) -> list[tuple[str, dict[str, object], pl.DataFrame]]:
    """Model outputs of one run: a small heatmap, map, key levels, predictions, scores."""
    keys = {"exchange": EXCHANGE, "symbol": symbol, "params_hash": params_hash}
    last = float(all_bars["close"][-1])
    as_of = all_bars["ts"][-1]
    step = round(last * 0.001, 2)
    ids = {"exchange": EXCHANGE, "symbol": symbol, "params_hash": params_hash}
    buckets = all_bars.group_by_dynamic("ts", every="15m").agg(pl.col("close").last())
    offsets = np.arange(-5, 6)
    heat = (
        buckets.join(pl.DataFrame({"off": offsets}), how="cross")
        .filter(pl.col("off") != 0)
        .select(
            pl.col("ts"),
            ((pl.col("close") / step).round() * step + pl.col("off") * step).alias("price"),
            pl.when(pl.col("off") < 0)
            .then(scale * 1e5 * (6 + pl.col("off")))
            .otherwise(0.0)
            .alias("long_usd"),
            pl.when(pl.col("off") > 0)
            .then(scale * 1e5 * (6 - pl.col("off")))
            .otherwise(0.0)
            .alias("short_usd"),
        )
        .with_columns(**{k: pl.lit(v) for k, v in ids.items()})
    )
    prices = [last - step * i for i in range(1, 6)] + [last + step * i for i in range(1, 6)]
    lmap = pl.DataFrame(
        {
            "as_of": [as_of] * 10,
            "ref_price": [last] * 10,
            "price": prices,
            "long_usd": [scale * 1e5 * (6 - i) for i in range(1, 6)] + [0.0] * 5,
            "short_usd": [0.0] * 5 + [scale * 1e5 * (6 - i) for i in range(1, 6)],
        }
    ).with_columns(
        pl.col("long_usd").cum_sum().alias("long_cum_usd"),
        pl.col("short_usd").cum_sum().alias("short_cum_usd"),
        **{k: pl.lit(v) for k, v in ids.items()},
    )
    key = pl.DataFrame(
        {
            "as_of": [as_of] * 6,
            "side": ["long"] * 3 + ["short"] * 3,
            "rank": [1, 2, 3, 1, 2, 3],
            "price": [last + sign * i * step for sign in (-1, 1) for i in (1, 2, 3)],
            "usd": [scale * 5e5, scale * 4e5, scale * 3e5] * 2,
        }
    ).with_columns(
        (100 * (pl.col("price") / last - 1)).alias("distance_pct"),
        pl.col("rank").cast(pl.Int32),
        **{k: pl.lit(v) for k, v in ids.items()},
    )
    predicted = all_bars.select(
        "ts",
        (scale * (pl.col("open") - pl.col("low"))).alias("long_usd"),
        (scale * (pl.col("high") - pl.col("open"))).alias("short_usd"),
    ).with_columns(**{k: pl.lit(v) for k, v in ids.items()})
    scores = pl.DataFrame(
        {
            "method": ["model", "model", "baseline", "baseline"],
            "side": ["long", "short", "long", "short"],
            "capture_auc": [0.70 * scale, 0.65 * scale, 0.60, 0.58],
            "top_decile_overlap": [0.4, 0.3, 0.2, 0.2],
            "log_corr": [0.5, 0.4, 0.3, 0.3],
            "bars": [all_bars.height] * 4,
            "realized_usd": [660_000.0, 240_000.0, 660_000.0, 240_000.0],
            "start_ts": [all_bars["ts"][0]] * 4,
            "end_ts": [as_of] * 4,
            "realized_source": "csv:test",
            "computed_at": [computed_at] * 4,
        }
    ).with_columns(**{k: pl.lit(v) for k, v in ids.items()})
    run = pl.DataFrame(
        {
            "params_hash": [params_hash],
            "params_json": ['{"leverages": [5, 10, 25, 50, 100]}'],
            "start_ts": [all_bars["ts"][0]],
            "end_ts": [as_of],
            "bars": [all_bars.height],
            "levels": [heat.height],
            "price_step": [step],
            "seconds": [0.5],
            "computed_at": [computed_at],
        }
    ).with_columns(pl.lit(EXCHANGE).alias("exchange"), pl.lit(symbol).alias("symbol"))
    return [
        ("model_runs", keys, run),
        ("heatmap_cells", keys, heat),
        ("liquidation_map", keys, lmap),
        ("key_levels", keys, key),
        ("predicted_liquidations", keys, predicted),
        ("backtest_scores", keys, scores),
    ]


def build_warehouse(db: Path) -> Path:
    """Fill ``db`` (created if needed) with the test warehouse; return ``db``."""
    for s_index, symbol in enumerate(SYMBOLS):
        frames = []
        for d_index, day in enumerate(DAYS):
            k = bars(symbol, day, seed=100 * s_index + d_index)
            frames.append(k)
            replace_many(db, day_parts(symbol, day, k))
        all_bars = pl.concat(frames)
        t0 = datetime(2026, 6, 10, 1, tzinfo=UTC)
        replace_many(db, model_parts(symbol, OLD_RUN, all_bars, t0, scale=0.5))
        replace_many(
            db, model_parts(symbol, CURRENT_RUN, all_bars, t0 + timedelta(hours=1), scale=1.0)
        )
    with write_connection(db) as con:
        for symbol in SYMBOLS:
            for dataset in ("klines", "markPriceKlines", "metrics"):
                for day in DAYS:
                    log_ingest(
                        con,
                        exchange=EXCHANGE,
                        dataset=dataset,
                        symbol=symbol,
                        day=day,
                        status="loaded",
                        rows=1440 if dataset != "metrics" else 288,
                        sha256="0" * 64,
                        source_url=f"file:///tmp/liqheat-synthetic/{dataset}/{symbol}/{day}.zip",
                    )
        # a gap: BTCUSDT metrics missing on the day after, then loaded two days later
        log_ingest(
            con,
            exchange=EXCHANGE,
            dataset="metrics",
            symbol="BTCUSDT",
            day=date(2026, 6, 10),
            status="missing",
            error="404 Not Found",
        )
        log_ingest(
            con,
            exchange=EXCHANGE,
            dataset="metrics",
            symbol="BTCUSDT",
            day=date(2026, 6, 12),
            status="failed",
            error="checksum mismatch after re-download",
        )
    return db


@pytest.fixture(scope="session")
def warehouse_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The populated test warehouse (session-wide, do not modify: use ``warehouse_db``)."""
    return build_warehouse(tmp_path_factory.mktemp("warehouse") / "liqheat.duckdb")


@pytest.fixture
def warehouse_db(warehouse_template: Path, tmp_path: Path) -> Path:
    """A private copy of the populated test warehouse, at ``tmp_path/home/liqheat.duckdb``."""
    db = tmp_path / "home" / "liqheat.duckdb"
    db.parent.mkdir()
    shutil.copyfile(warehouse_template, db)
    return db
