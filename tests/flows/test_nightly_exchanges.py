"""Issue 8 "Done when": the nightly over Binance, Bybit and OKX against local fakes of all three.

One synthetic market (:mod:`tests.exchange_fakes`) feeds a Binance archive mirror, a Bybit
fake (trade files + v5 REST) and an OKX fake (UTC+8 trade zips + open interest + liquidation
orders), each a real HTTP server on 127.0.0.1. The flow runs once for the module (3 UTC days:
the night plus its backfill window); the tests then check the warehouse, the aggregate
("all") outputs, the backtest on realized liquidations, the site pages, an idempotent rerun,
and the ``liqheat nightly --exchange ...`` command line in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.exchange_fakes import BYBIT_OI_SCALE, OKX_SCALE, Exchanges, serve_exchanges
from warehouse.reads import query

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "BTCUSDT"
NIGHT = date(2026, 6, 9)
#: the fakes publish 4 days; backfill_days=1 loads the night and the 2 days before it
FIRST = NIGHT - timedelta(days=3)
LOADED = [NIGHT - timedelta(days=n) for n in (2, 1, 0)]
EXCHANGES = ["binance", "bybit", "okx"]
REALIZED_LEGEND = "realized liquidations (size = USD)"


@dataclass
class Night:
    home: Path
    db: Path
    fakes: Exchanges
    summary: str
    #: requests each fake received during the first run
    requests: dict[str, int]
    ingest_log: pl.DataFrame


def _ingest_log(db: Path) -> pl.DataFrame:
    return query(
        db,
        "SELECT exchange, dataset, symbol, day, status, rows, sha256, loaded_at FROM ingest_log "
        "ORDER BY exchange, dataset, symbol, day",
    )


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory, prefect_harness: object) -> Iterator[Night]:
    from flows.pipeline import nightly_flow

    tmp = tmp_path_factory.mktemp("three-exchanges")
    home = tmp / "home"
    with (
        serve_exchanges(tmp / "fakes", [SYMBOL], first=FIRST, days=4, seed=4) as fakes,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("LIQHEAT_HOME", str(home))
        for name, value in fakes.env().items():
            mp.setenv(name, value)
        summary = nightly_flow(
            date=NIGHT.isoformat(), symbols=[SYMBOL], exchanges=EXCHANGES, backfill_days=1
        )
        db = home / "liqheat.duckdb"
        yield Night(home, db, fakes, summary, fakes.requests(), _ingest_log(db))


def test_every_exchange_is_loaded_for_every_day(night: Night) -> None:
    klines = query(
        night.db,
        "SELECT exchange, ts::DATE AS day, count(*) AS n, sum(volume) AS volume FROM klines "
        "GROUP BY 1, 2 ORDER BY 1, 2",
    )
    assert klines.select("exchange", "day", "n").rows() == [
        (ex, day, 1440) for ex in EXCHANGES for day in LOADED
    ]
    oi = query(
        night.db,
        "SELECT exchange, count(*) AS n, count(oi_usd) AS priced FROM open_interest "
        "GROUP BY 1 ORDER BY 1",
    )
    assert oi["exchange"].to_list() == EXCHANGES
    assert oi["n"].to_list() == [3 * 288] * 3
    assert oi["priced"].to_list() == [3 * 288] * 3  # every sample priced in USD
    # the venues trade the same prices: every exchange's bars close where Binance's do
    closes = query(
        night.db,
        "SELECT b.ts, b.close AS binance, y.close AS bybit, o.close AS okx FROM klines b "
        "JOIN klines y ON y.ts = b.ts AND y.exchange = 'bybit' "
        "JOIN klines o ON o.ts = b.ts AND o.exchange = 'okx' WHERE b.exchange = 'binance'",
    )
    assert closes.height == 3 * 1440
    assert (closes["binance"] == closes["bybit"]).all()
    assert (closes["binance"] == closes["okx"]).all()
    # each exchange's own open interest: Bybit 0.4 x and OKX 0.25 x Binance's
    ratio = query(
        night.db,
        "SELECT o.exchange, avg(o.oi_base / b.oi_base) AS r FROM open_interest o "
        "JOIN open_interest b ON b.ts = o.ts AND b.exchange = 'binance' "
        "WHERE o.exchange <> 'binance' GROUP BY 1 ORDER BY 1",
    )
    assert ratio["r"].to_list() == pytest.approx([BYBIT_OI_SCALE, OKX_SCALE], rel=1e-6)
    log = query(
        night.db, "SELECT status, count(*) AS n, count(error) AS notes FROM ingest_log GROUP BY 1"
    )
    # binance: 3 days x 3 daily files + the funding month; bybit 3 x 2; okx 3 x 3; no notes
    assert log.rows() == [("loaded", 3 * 3 + 1 + 3 * 2 + 3 * 3, 0)]


def test_okx_realized_liquidations_are_stored(night: Night) -> None:
    realized = query(
        night.db,
        "SELECT exchange, source, count(*) AS n, sum(usd) AS usd, min(ts) AS first "
        "FROM realized_liquidations GROUP BY 1, 2",
    )
    assert realized.select("exchange", "source").rows() == [("okx", "okx-liquidation-orders")]
    start = datetime.combine(LOADED[0], time(), tzinfo=UTC)
    market = night.fakes.markets[SYMBOL].liquidations.filter(pl.col("ts") >= start)
    assert market.height > 100  # the synthetic market did liquidate
    # one OKX order per (minute, side) of the synthetic events, OKX's share of the USD
    assert realized["usd"][0] == pytest.approx(OKX_SCALE * float(market["usd"].sum()), rel=1e-4)
    orders = night.fakes.okx_venue.liquidation_details(SYMBOL)
    assert realized["n"][0] == orders.filter(pl.col("ms") >= int(start.timestamp() * 1000)).height


def test_models_run_per_exchange_and_summed(night: Night) -> None:
    runs = query(
        night.db, "SELECT DISTINCT exchange FROM model_runs WHERE symbol = ? ORDER BY 1", [SYMBOL]
    )
    assert runs["exchange"].to_list() == ["all", "binance", "bybit", "okx"]
    assert "[all]" in night.summary
    # the aggregate heatmap is the per-exchange sum, cell by cell (same params, same grid)
    (params_hash,) = query(
        night.db, "SELECT params_hash FROM model_runs WHERE exchange = 'all'"
    ).row(0)
    cells = query(
        night.db,
        "SELECT exchange, ts, price, long_usd, short_usd FROM heatmap_cells WHERE symbol = ? "
        "AND params_hash = ?",
        [SYMBOL, params_hash],
    )
    assert sorted(set(cells["exchange"])) == ["all", "binance", "bybit", "okx"]
    agg = cells.filter(pl.col("exchange") == "all")
    sampled = pl.concat(
        [
            agg.sort("long_usd", descending=True).head(3),
            agg.sort("short_usd", descending=True).head(3),
            agg.sample(20, seed=1),
        ]
    ).unique(["ts", "price"])
    for ts, price, long_usd, short_usd in sampled.select(
        "ts", "price", "long_usd", "short_usd"
    ).iter_rows():
        parts = cells.filter(
            (pl.col("exchange") != "all") & (pl.col("ts") == ts) & (pl.col("price") == price)
        )
        assert parts["exchange"].n_unique() == parts.height  # one cell per exchange
        assert parts["long_usd"].sum() == pytest.approx(long_usd, rel=1e-9, abs=1e-6)
        assert parts["short_usd"].sum() == pytest.approx(short_usd, rel=1e-9, abs=1e-6)
    assert agg["long_usd"].sum() == pytest.approx(
        cells.filter(pl.col("exchange") != "all")["long_usd"].sum(), rel=1e-9
    )
    # each exchange's model runs on its own open interest: same prices, scaled OI
    totals = cells.group_by("exchange").agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
    by_ex = {r["exchange"]: r for r in totals.iter_rows(named=True)}
    for ex, scale in (("bybit", BYBIT_OI_SCALE), ("okx", OKX_SCALE)):
        for side in ("long_usd", "short_usd"):
            assert by_ex[ex][side] / by_ex["binance"][side] == pytest.approx(scale, rel=0.05)


def test_backtest_scores_use_realized_liquidations_where_they_exist(night: Night) -> None:
    scores = query(
        night.db,
        "SELECT exchange, method, side, realized_source FROM backtest_scores WHERE symbol = ?",
        [SYMBOL],
    )
    assert sorted(set(scores["exchange"])) == ["all", "okx"]  # binance/bybit: none realized
    sources = dict(
        zip(scores["exchange"].to_list(), scores["realized_source"].to_list(), strict=False)
    )
    assert sources["okx"] == "okx-liquidation-orders"
    assert sources["all"] == "okx:okx-liquidation-orders"
    for ex in ("okx", "all"):
        mine = scores.filter(pl.col("exchange") == ex)
        assert set(mine["method"]) == {"model", "baseline"}
        assert set(mine["side"]) >= {"long", "short"}


def test_site_has_aggregate_and_per_exchange_pages_with_realized_circles(night: Night) -> None:
    site = night.home / "site" / SYMBOL
    aggregate = sorted(p.name for p in site.glob("*d.html"))
    assert aggregate
    for ex in EXCHANGES:
        assert sorted(p.name for p in (site / ex).glob("*d.html")) == aggregate, ex
    page = (site / aggregate[0]).read_text()
    assert "All exchanges" in page
    assert REALIZED_LEGEND in page  # realized circles are drawn on the aggregate
    assert "okx-liquidation-orders" in page
    assert REALIZED_LEGEND in (site / "okx" / aggregate[0]).read_text()
    # a venue without realized data draws none
    assert REALIZED_LEGEND not in (site / "bybit" / aggregate[0]).read_text()
    assert REALIZED_LEGEND not in (site / "binance" / aggregate[0]).read_text()
    for ex in ("Binance", "Bybit", "OKX"):
        assert ex in page  # the exchange switch


def test_cli_rerun_of_the_same_night_loads_nothing_new(night: Night) -> None:
    """``python -m flows.cli nightly --exchange binance --exchange bybit --exchange okx`` in a
    child process, on the same home and night: exits 0, plans all three exchanges, finds every
    unit loaded (no request reaches any fake, ingest_log unchanged) and remodels."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, **night.fakes.env(), "LIQHEAT_HOME": str(night.home)}
    api_url = PREFECT_API_URL.value()
    if api_url:  # the session's test server: the child starts no Prefect server of its own
        env["PREFECT_API_URL"] = str(api_url)
    before = night.fakes.requests()
    assert before == night.requests  # nothing else has used the fakes since the first run
    cmd = [sys.executable, "-m", "flows.cli", "nightly"]
    cmd += [arg for ex in EXCHANGES for arg in ("--exchange", ex)]
    cmd += ["--symbol", SYMBOL, "--date", NIGHT.isoformat(), "--backfill-days", "1"]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert night.fakes.requests() == before  # no download, no REST call
    assert _ingest_log(night.db).equals(night.ingest_log)
    for tag in ("[bybit]", "[okx]", "[all]"):
        assert tag in done.stdout, done.stdout[-2000:]
    # no gap left: only the night's units (and the funding month) are planned, all skipped
    planned = night.ingest_log.filter(
        (pl.col("day") == NIGHT) | (pl.col("dataset") == "fundingRate")
    ).height
    runs = query(night.db, "SELECT days_loaded, days_skipped FROM runs ORDER BY finished_at")
    assert runs.rows()[-1] == (0, planned)
