"""Fixtures for the report tests: a real DuckDB warehouse filled with hand-made, realistic rows.

The rows are written through warehouse.writes (replace_many / log_ingest) as the pipeline
writes them: a 1m random walk, a small open-interest-style level model turned into heatmap
cells at 15m x price_step, the liquidation map and key levels at the last bar, backtest
scores, realized liquidations and the ingest ledger. BTCUSDT is on two exchanges (binance and
bybit, prices a little apart) plus their aggregate under exchange "all", summed with
transforms.aggregate as flows.exchange_sum.aggregate_symbol stores it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from reports.site import SiteResult, build_site
from transforms.aggregate import key_levels_from_map, sum_heatmaps, sum_liquidation_maps
from warehouse.db import write_connection
from warehouse.writes import log_ingest, replace_many

EXCHANGE = "binance"
AGGREGATE = "all"
START = datetime(2024, 5, 1, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"
HOSTILE_NOTE = "<img src=x onerror=alert(2)>"
TIERS = (5.0, 10.0, 25.0, 50.0, 100.0)
WEIGHTS = (0.30, 0.30, 0.20, 0.10, 0.10)
MMR = 0.004


@dataclass(frozen=True)
class DemoSymbol:
    """One symbol to generate: its start price, price step, and where its files came from."""

    symbol: str
    price: float
    step: float
    days: int = 3
    synthetic: bool = False
    model: bool = True
    seed: int = 7
    exchanges: tuple[str, ...] = (EXCHANGE,)


DEFAULT_SYMBOLS = (
    DemoSymbol("BTCUSDT", 61_000.0, 50.0, seed=7, exchanges=(EXCHANGE, "bybit")),
    DemoSymbol("ETHUSDT", 3_050.0, 2.5, days=1, synthetic=True, seed=11),
    DemoSymbol(HOSTILE, 1.0, 0.001, days=1, model=False, seed=3),
)


def _klines(spec: DemoSymbol, exchange: str = EXCHANGE) -> pl.DataFrame:
    rng = np.random.default_rng(spec.seed)
    n = spec.days * 1440
    # random walk with a little drift and volatility clustering, ~3% daily range
    vol = 0.0007 * np.exp(np.cumsum(rng.normal(0, 0.02, n)).clip(-1, 1))
    ret = rng.standard_t(4, n) * vol / np.sqrt(2)
    close = spec.price * np.exp(np.cumsum(ret))
    open_ = np.concatenate([[spec.price], close[:-1]])
    wick = np.abs(rng.normal(0, 0.0004, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.gamma(2.0, 40.0, n) * 60_000 / spec.price
    ts = pl.datetime_range(
        START, START + timedelta(minutes=n - 1), "1m", time_zone="UTC", eager=True
    )
    if exchange != EXCHANGE:
        # another venue: the same market a few basis points apart, its own volume
        close = close * (1 + 0.0004 * np.sin(np.arange(n) / 300.0) + 0.0003)
        open_ = np.concatenate([[close[0]], close[:-1]])
        high = np.maximum(open_, close) + wick[0] * 0.8
        low = np.minimum(open_, close) - wick[1] * 0.8
        volume = volume * 0.6
    return pl.DataFrame(
        {
            "exchange": exchange,
            "symbol": spec.symbol,
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": rng.integers(100, 5000, n),
            "taker_buy_volume": volume * rng.uniform(0.4, 0.6, n),
            "taker_buy_quote_volume": volume * close * 0.5,
        }
    )


def _model(spec: DemoSymbol, bars: pl.DataFrame, seed: int = 0) -> dict[str, pl.DataFrame]:
    """A small level model: every 15m, new longs/shorts per leverage tier; a level dies when
    price crosses it or decays away. Returns the model-output tables keyed by name."""
    rng = np.random.default_rng(spec.seed + 100 + seed)
    per = 15
    high = bars["high"].to_numpy().reshape(-1, per).max(axis=1)
    low = bars["low"].to_numpy().reshape(-1, per).min(axis=1)
    close = bars["close"].to_numpy().reshape(-1, per)[:, -1]
    nb = close.size
    tiers = np.array(TIERS)
    weights = np.array(WEIGHTS)
    opened = rng.gamma(1.5, 2.0e6, nb) * (spec.price / 61_000.0) ** 0.3
    created = np.repeat(np.arange(nb), tiers.size)
    lev = np.tile(tiers, nb)
    notional = (opened[:, None] * weights[None, :]).ravel()
    entry = close[created]
    long_p = entry * (1 - 1 / lev) / (1 - MMR)
    short_p = entry * (1 + 1 / lev) / (1 + MMR)
    grid_lo = np.floor(long_p.min() / spec.step) * spec.step
    rows = int(np.ceil((short_p.max() - grid_lo) / spec.step)) + 1
    heat = np.zeros((2, nb, rows))
    # the same split by leverage filter group (low <= 10x, medium <= 50x, high) and display band
    group_of = np.searchsorted(np.array([10.0, 50.0]), lev, side="left")
    band_of = np.searchsorted(np.array([10.0, 25.0, 50.0, 100.0]), lev, side="left")
    heat_g = np.zeros((3, 2, nb, rows))
    map_b = np.zeros((5, 2, rows))
    death = np.full((2, created.size), nb)
    # the fine cells (heatmap_fine_cells): the last 26 hours at a fifth of the step, per group
    fine_step = spec.step / 5
    recent = min(nb, 26 * 4)
    heat_f = np.zeros((3, 2, recent, rows * 5))
    for k in range(created.size):
        c = created[k]
        hit_l = np.nonzero(low[c + 1 :] <= long_p[k])[0]
        hit_s = np.nonzero(high[c + 1 :] >= short_p[k])[0]
        death[0, k] = c + 1 + hit_l[0] if hit_l.size else nb
        death[1, k] = c + 1 + hit_s[0] if hit_s.size else nb
        for side, price in ((0, long_p[k]), (1, short_p[k])):
            span = np.arange(c, death[side, k])
            j = int((price - grid_lo) // spec.step)
            add = notional[k] * np.exp(-(span - c) / 250.0)
            heat[side, span, j] += add
            heat_g[group_of[k], side, span, j] += add
            late = span >= nb - recent
            jf = int((price - grid_lo) // fine_step)
            heat_f[group_of[k], side, span[late] - (nb - recent), jf] += add[late]
            if death[side, k] == nb:  # alive at the last bucket: in the map
                map_b[band_of[k], side, j] += add[-1]
    ts_b = bars["ts"].gather(np.arange(0, bars.height, per))
    b_idx, p_idx = np.nonzero(heat.sum(axis=0) > 0)
    cells = pl.DataFrame(
        {
            "ts": ts_b.gather(b_idx),
            "price": grid_lo + p_idx * spec.step,
            "long_usd": heat[0, b_idx, p_idx],
            "short_usd": heat[1, b_idx, p_idx],
        }
    )
    last = nb - 1
    ref = float(bars["close"][-1])
    prices = grid_lo + np.arange(rows) * spec.step
    alive = heat[:, last, :]
    long_usd = np.where(prices < ref, alive[0], 0.0)
    short_usd = np.where(prices >= ref, alive[1], 0.0)
    below = prices < ref
    long_cum = np.where(below, np.cumsum(long_usd[::-1])[::-1], 0.0)
    short_cum = np.where(~below, np.cumsum(short_usd), 0.0)
    as_of = bars["ts"][-1]
    keep = (long_usd > 0) | (short_usd > 0)
    liq_map = pl.DataFrame(
        {
            "as_of": as_of,
            "ref_price": ref,
            "price": prices[keep],
            "long_usd": long_usd[keep],
            "short_usd": short_usd[keep],
            "long_cum_usd": long_cum[keep],
            "short_cum_usd": short_cum[keep],
        }
    )
    band_cells = []
    for g, name in enumerate(("low", "medium", "high")):
        gb, gp = np.nonzero(heat_g[g].sum(axis=0) > 0)
        band_cells.append(
            pl.DataFrame(
                {
                    "band": name,
                    "ts": ts_b.gather(gb),
                    "price": grid_lo + gp * spec.step,
                    "long_usd": heat_g[g, 0, gb, gp],
                    "short_usd": heat_g[g, 1, gb, gp],
                }
            )
        )
    band_rows = []
    for b, name in enumerate(("<=10x", "10-25x", "25-50x", "50-100x", ">100x")):
        lu = np.where(prices < ref, map_b[b, 0], 0.0)
        su = np.where(prices >= ref, map_b[b, 1], 0.0)
        keep_b = (lu > 0) | (su > 0)
        if keep_b.any():
            band_rows.append(
                pl.DataFrame(
                    {"band": name, "as_of": as_of, "price": prices[keep_b],
                     "long_usd": lu[keep_b], "short_usd": su[keep_b]}
                )
            )  # fmt: skip
    fine_bands = []
    ts_f = ts_b.slice(nb - recent)
    for g, name in enumerate(("low", "medium", "high")):
        fb, fp = np.nonzero(heat_f[g].sum(axis=0) > 0)
        fine_bands.append(
            pl.DataFrame(
                {
                    "band": name,
                    "ts": ts_f.gather(fb),
                    "price": grid_lo + fp * fine_step,
                    "long_usd": heat_f[g, 0, fb, fp],
                    "short_usd": heat_f[g, 1, fb, fp],
                }
            )
        )
    fine_band_cells = pl.concat(fine_bands)
    fine_cells = fine_band_cells.group_by("ts", "price").agg(
        pl.col("long_usd").sum(), pl.col("short_usd").sum()
    )
    key_rows = []
    for side_name, usd in (("long", long_usd), ("short", short_usd)):
        order = np.argsort(-usd)[:5]
        for rank, j in enumerate(order, start=1):
            key_rows.append(
                {
                    "as_of": as_of,
                    "side": side_name,
                    "rank": rank,
                    "price": float(prices[j]),
                    "usd": float(usd[j]),
                    "distance_pct": float((prices[j] / ref - 1) * 100),
                }
            )
    return {
        "heatmap_cells": cells,
        "liquidation_map": liq_map,
        "key_levels": pl.DataFrame(key_rows),
        "heatmap_band_cells": pl.concat(band_cells),
        "liquidation_map_bands": pl.concat(band_rows),
        "heatmap_fine_cells": fine_cells,
        "heatmap_fine_band_cells": fine_band_cells,
    }


def populate(db_path: Path, symbols: Sequence[DemoSymbol] = DEFAULT_SYMBOLS) -> Path:
    """Fill ``db_path`` with realistic rows for ``symbols`` through warehouse.writes."""
    for spec in symbols:
        outputs: dict[str, dict[str, pl.DataFrame]] = {}
        for k, exchange in enumerate(spec.exchanges):
            outputs[exchange] = _populate_exchange(db_path, spec, exchange, k)
        if spec.model and len(spec.exchanges) > 1:
            _populate_aggregate(db_path, spec, outputs)
    return db_path


def _params_hash(spec: DemoSymbol) -> str:
    return hashlib.sha256(spec.symbol.encode()).hexdigest()[:12]


def _run_row(spec: DemoSymbol, keys: dict[str, Any], bars: int, end: datetime) -> pl.DataFrame:
    params = {
        "leverage_tiers": list(TIERS),
        "leverage_weights": list(WEIGHTS),
        "mmr": MMR,
        "price_step": spec.step,
        "half_life_bars": 250,
        "note": HOSTILE_NOTE,
    }
    return pl.DataFrame(
        {
            **keys,
            "params_hash": _params_hash(spec),
            "params_json": json.dumps(params),
            "start_ts": START,
            "end_ts": end,
            "bars": bars,
            "levels": bars // 15 * 10,
            "price_step": spec.step,
            "seconds": 1.7,
            "computed_at": datetime(2024, 5, 4, 0, 5, tzinfo=UTC),
        }
    )


def _populate_exchange(
    db_path: Path, spec: DemoSymbol, exchange: str, k: int
) -> dict[str, pl.DataFrame]:
    bars = _klines(spec, exchange)
    end = bars["ts"][-1] + timedelta(minutes=1)
    keys = {"exchange": exchange, "symbol": spec.symbol}
    parts: list[tuple[str, dict[str, Any], pl.DataFrame]] = [
        ("klines", {**keys, "ts": (START, end)}, bars)
    ]
    with write_connection(db_path) as con:
        for d in range(spec.days):
            day = (START + timedelta(days=d)).date()
            for dataset in ("klines", "markPriceKlines", "metrics"):
                name = f"{spec.symbol}-{dataset}-{day}.zip"
                root = (
                    "file:///home/demo/demo-archive-synthetic/data/futures/um/daily"
                    if spec.synthetic
                    else f"https://data.{exchange}.example/data/futures/um/daily"
                    if exchange != EXCHANGE
                    else "https://data.binance.vision/data/futures/um/daily"
                )
                bad = spec.symbol == HOSTILE and dataset == "metrics"
                log_ingest(
                    con,
                    exchange=exchange,
                    dataset=dataset,
                    symbol=spec.symbol,
                    day=day,
                    status="failed" if bad else "loaded",
                    rows=None if bad else 1440,
                    sha256=None if bad else hashlib.sha256(name.encode()).hexdigest(),
                    error=HOSTILE_NOTE if bad else None,
                    source_url=f"{root}/{dataset}/{spec.symbol}/{name}",
                )
    if not spec.model:
        replace_many(db_path, parts)
        return {}
    run_keys = {**keys, "params_hash": _params_hash(spec)}
    parts.append(("model_runs", run_keys, _run_row(spec, keys, bars.height, end)))
    model = _model(spec, bars, seed=k)
    for table, frame in model.items():
        parts.append(
            (table, run_keys, frame.with_columns(**{c: pl.lit(v) for c, v in run_keys.items()}))
        )
    parts.append(("backtest_scores", run_keys, _scores(spec, run_keys, bars.height, end)))
    parts.append(("where_scores", run_keys, _where_scores(run_keys, end)))
    realized = bars.filter(pl.col("ts").dt.minute() % (97 + 6 * k) == 0).select(
        pl.lit(exchange).alias("exchange"),
        pl.lit(spec.symbol).alias("symbol"),
        "ts",
        pl.when(pl.col("close") < pl.col("open"))
        .then(pl.lit("long"))
        .otherwise(pl.lit("short"))
        .alias("side"),
        (pl.col("volume") * pl.col("close") * 0.05).alias("usd"),
        pl.lit("okx" if exchange == EXCHANGE else f"{exchange}-feed").alias("source"),
    )
    parts.append(("realized_liquidations", keys, realized))
    # one transaction per symbol and exchange, as the pipeline's model step writes its outputs
    replace_many(db_path, parts)
    return model


def _scores(spec: DemoSymbol, run_keys: dict[str, Any], bars: int, end: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                **run_keys,
                "method": method,
                "side": side,
                "capture_auc": auc,
                "top_decile_overlap": top,
                "log_corr": corr,
                "bars": bars,
                "realized_usd": 48_200_000.0 if side == "long" else 31_900_000.0,
                "start_ts": START,
                "end_ts": end,
                "realized_source": "synthetic truth" if spec.synthetic else "okx",
                "computed_at": datetime(2024, 5, 4, 0, 6, tzinfo=UTC),
            }
            for method, side, auc, top, corr in (
                ("model", "long", 0.81, 0.42, 0.55),
                ("baseline", "long", 0.74, 0.31, 0.47),
                ("model", "short", 0.77, 0.36, 0.49),
                ("baseline", "short", 0.79, 0.33, 0.51),
            )
        ]
    )


def _where_scores(run_keys: dict[str, Any], end: datetime) -> pl.DataFrame:
    """Stored where-scores: the magnet no better than distance (lift 1.02, 0.97-1.07)."""
    common = {**run_keys, "first_decision": START + timedelta(days=1),
              "last_decision": end - timedelta(days=1), "step_hours": 4.0, "horizon_hours": 24.0,
              "start_ts": START, "end_ts": end, "realized_source": "",
              "computed_at": datetime(2024, 5, 4, 0, 6, tzinfo=UTC)}  # fmt: skip
    rows = [
        ("magnet", "both", "all", 100, 0.48, 0.47, 1.02, 0.97, 1.07),
        ("direction_corr", "both", "all", 50, 0.07, 0.0, None, -0.05, 0.19),
        ("direction_agree", "both", "all", 50, 0.49, 0.5, 0.98, 0.42, 0.56),
    ]
    names = ("name", "side", "bin", "n", "model", "null", "lift", "lo", "hi")
    return pl.DataFrame(
        [{**common, **dict(zip(names, r, strict=True))} for r in rows],
        schema_overrides={"lift": pl.Float64},
    )


def _stored_columns(db_path: Path, table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` restricted to the columns ``table`` has in this schema version."""
    with write_connection(db_path) as con:
        names = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
            ).fetchall()
        }
    return frame.select([c for c in frame.columns if c in names])


def _populate_aggregate(
    db_path: Path, spec: DemoSymbol, outputs: dict[str, dict[str, pl.DataFrame]]
) -> None:
    """Store the exchanges' sum under exchange "all" with the same params hash."""
    keys = {"exchange": AGGREGATE, "symbol": spec.symbol}
    run_keys = {**keys, "params_hash": _params_hash(spec)}
    heat = sum_heatmaps(
        [(o["heatmap_cells"], "15m") for o in outputs.values()], price_step=spec.step
    )
    liq_map = sum_liquidation_maps(
        [o["liquidation_map"] for o in outputs.values()], price_step=spec.step
    )
    frames = {
        "heatmap_cells": heat,
        "liquidation_map": liq_map,
        "key_levels": _stored_columns(
            db_path, "key_levels", key_levels_from_map(liq_map, price_step=spec.step)
        ),
        "heatmap_band_cells": pl.concat([o["heatmap_band_cells"] for o in outputs.values()])
        .group_by("band", "ts", "price")
        .agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .sort("band", "ts", "price"),
        "liquidation_map_bands": pl.concat([o["liquidation_map_bands"] for o in outputs.values()])
        .group_by("band", "price")
        .agg(pl.col("as_of").max(), pl.col("long_usd").sum(), pl.col("short_usd").sum())
        .sort("band", "price"),
    }
    end = START + timedelta(days=spec.days)
    parts: list[tuple[str, dict[str, Any], pl.DataFrame]] = [
        ("model_runs", run_keys, _run_row(spec, keys, spec.days * 1440, end))
    ]
    for table, frame in frames.items():
        parts.append(
            (table, run_keys, frame.with_columns(**{c: pl.lit(v) for c, v in run_keys.items()}))
        )
    scores = _scores(spec, run_keys, spec.days * 1440, end).with_columns(
        pl.col("capture_auc") + 0.01, realized_source=pl.lit("binance:okx,bybit:bybit-feed")
    )
    parts.append(("backtest_scores", run_keys, scores))
    # an alert of the run: the nearest short cluster (as flows.alerts raises them)
    levels = frames["key_levels"]
    near = levels.filter(pl.col("side") == "short").sort("distance_pct").row(0, named=True)
    ref = float(liq_map["ref_price"][0])
    alert = pl.DataFrame(
        {
            "run_id": "run-1",
            "created_at": datetime(2024, 5, 4, 0, 10, tzinfo=UTC),
            "ts": liq_map["as_of"][0],
            **run_keys,
            "side": "short",
            "price": near["price"],
            "price_low": near.get("price_low") or near["price"],
            "price_high": near.get("price_high") or near["price"],
            "usd": near["usd"],
            "distance_pct": near["distance_pct"],
            "ref_price": ref,
            "message": f"{spec.symbol}: shorts at {near['price']:,.0f}",
        }
    )
    parts.append(("alerts", {"run_id": "run-1", **keys}, alert))
    replace_many(db_path, parts)


@pytest.fixture(scope="session")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with three symbols: BTCUSDT (real-looking), ETHUSDT (synthetic), and a
    one-day symbol with a hostile name and a hostile error note."""
    return populate(tmp_path_factory.mktemp("warehouse") / "liqheat.duckdb")


@dataclass(frozen=True)
class BuiltSite:
    """A site built once per session from :func:`report_db`."""

    db: Path
    root: Path
    result: SiteResult


@pytest.fixture(scope="session")
def built_site(report_db: Path, tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The report site built from ``report_db`` with the default ranges."""
    root = tmp_path_factory.mktemp("site")
    return BuiltSite(db=report_db, root=root, result=build_site(report_db, root))
