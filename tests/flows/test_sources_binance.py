"""BinanceSource (plan/stage), the single-writer loader and the exchange registry, against a
real HTTP mirror on 127.0.0.1 and a real DuckDB file."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from flows.ingest import ingest
from flows.settings import Settings
from flows.sources.base import StagedUnit, UnitRequest
from flows.sources.binance.paths import daily_path
from flows.sources.binance.source import BinanceSource, from_settings
from flows.sources.loader import Outcome, load_staged, outcome_of
from flows.sources.registry import EXCHANGES, get_source
from tests.httpmirror import Fault, serve_mirror, write_day, write_funding
from warehouse.reads import query

SYM = "BTCUSDT"
D1, D2 = date(2024, 1, 1), date(2024, 1, 2)
TODAY = date(2024, 3, 15)
FAST: dict[str, Any] = {"retries": 1, "backoff_s": 0.001, "backoff_max_s": 0.002, "today": TODAY}


def req(dataset: str, day: date = D1, symbol: str = SYM) -> UnitRequest:
    return UnitRequest("binance", dataset, symbol, day)


def test_plan_units_per_symbol_day_and_funding_months() -> None:
    src = BinanceSource("file:///nowhere", Path("raw"))
    plan = src.plan([SYM, "ETHUSDT"], [D2, D1, D2], with_trades=True)
    assert len(plan) == 2 * (2 * 4 + 1)
    assert plan[0] == req("klines")
    assert plan[8] == req("fundingRate", date(2024, 1, 1))
    assert {r.exchange for r in plan} == {"binance"}
    assert [r.dataset for r in src.plan([SYM], [D1])] == [
        "klines",
        "markPriceKlines",
        "metrics",
        "fundingRate",
    ]
    with pytest.raises(ValueError, match="bad symbol"):
        src.plan(["btc/../x"], [D1])


def test_stage_writes_canonical_parquet_and_classifies_problems(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, D1, seed=3)
    write_funding(root, SYM, 2024, 1)
    staging = tmp_path / "staging"
    bad = daily_path("metrics", SYM, D1)
    faults = {bad: [Fault(body=b"PK\x03\x04 nope", times=5)]}
    with (
        serve_mirror(root, faults) as mirror,
        BinanceSource(mirror.base_url, tmp_path / "raw", **FAST) as src,
    ):
        kl = src.stage(req("klines"), staging)
        funding = src.stage(req("fundingRate", date(2024, 1, 20)), staging)
        missing = src.stage(req("klines", D2), staging)
        failed = src.stage(req("metrics"), staging)
        current = BinanceSource(mirror.base_url, tmp_path / "raw", today=date(2024, 1, 9)).stage(
            req("fundingRate"), staging
        )

    assert kl.status == "loaded"
    assert kl.table == "klines"
    assert kl.rows == 1440
    assert kl.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert kl.end == datetime(2024, 1, 2, tzinfo=UTC)
    assert kl.downloaded
    assert kl.sha256 is not None
    assert kl.url is not None
    assert kl.url.endswith(daily_path("klines", SYM, D1))
    assert kl.parquet is not None
    frame = pl.read_parquet(kl.parquet)
    assert frame.height == 1440
    assert "exchange" not in frame.columns  # the loader adds exchange and symbol
    assert "symbol" not in frame.columns
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert Path(kl.parquet).parent == staging

    assert funding.status == "loaded"
    assert funding.day == date(2024, 1, 1)  # monthly units are keyed by the first day
    assert funding.table == "funding_rates"
    assert (missing.status, missing.kind, missing.parquet) == ("missing", "missing", None)
    assert failed.status == "failed"
    assert failed.kind == "checksum"
    assert failed.parquet is None
    assert (current.status, current.reason) == ("skipped", "month in progress: not archived")
    assert sorted(p.name.split("-")[1] for p in staging.glob("*.parquet")) == [
        "fundingRate",
        "klines",
    ]
    assert not list(staging.glob(".*.tmp"))  # atomic writes leave no temp files


def test_source_pickles_without_its_client(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, D1, datasets=("klines",))
    src = BinanceSource(root.resolve().as_uri(), tmp_path / "raw", **FAST)
    first = src.stage(req("klines"), tmp_path / "s1")
    clone = pickle.loads(pickle.dumps(src))
    again = clone.stage(req("klines"), tmp_path / "s2")
    assert first.status == again.status == "loaded"
    assert first.sha256 == again.sha256
    assert not again.downloaded  # the raw cache is shared
    src.close()
    clone.close()


def test_load_staged_is_the_single_writer(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, D1, seed=1)
    db = tmp_path / "home" / "liqheat.duckdb"
    staging = tmp_path / "staging"
    with BinanceSource(root.resolve().as_uri(), tmp_path / "raw", **FAST) as src:
        units = [src.stage(req(ds), staging) for ds in ("klines", "markPriceKlines", "metrics")]
        units.append(src.stage(req("klines", D2), staging))  # missing
        units.append(src.stage(req("fundingRate"), staging))  # missing too: no funding file
    assert not db.exists()  # staging never touches the warehouse
    outcomes = load_staged(db, units)

    assert [o.status for o in outcomes] == ["loaded"] * 3 + ["missing"] * 2
    assert [o.rows for o in outcomes] == [1440, 1440, 288, 0, 0]
    assert all(o.exchange == "binance" for o in outcomes)
    assert not list(staging.glob("*.parquet"))  # staged files are deleted once loaded
    kl = query(db, "SELECT exchange, symbol, count(*) AS n FROM klines GROUP BY 1, 2")
    assert kl.rows() == [("binance", SYM, 1440)]
    log = query(db, "SELECT dataset, day, status, rows FROM ingest_log ORDER BY dataset, day")
    assert log.rows() == [
        ("fundingRate", D1, "missing", None),
        ("klines", D1, "loaded", 1440),
        ("klines", D2, "missing", None),
        ("markPriceKlines", D1, "loaded", 1440),
        ("metrics", D1, "loaded", 288),
    ]

    # re-staging and re-loading the same day replaces its rows, never duplicates them
    write_day(root, SYM, D1, datasets=("klines",), seed=2)
    with BinanceSource(root.resolve().as_uri(), tmp_path / "raw", **FAST) as src:
        redo = src.stage(req("klines"), staging)
    assert redo.reason is not None
    assert "republished" in redo.reason
    assert load_staged(db, [redo])[0].status == "loaded"
    assert query(db, "SELECT count(*) AS n FROM klines")["n"][0] == 1440


def test_load_staged_records_an_unreadable_staged_file(tmp_path: Path) -> None:
    """A staged file the loader cannot see (e.g. a worker's local disk) fails that unit with a
    hint, and the rest still load; skipped units are not written."""
    root = tmp_path / "mirror"
    write_day(root, SYM, D1, datasets=("klines", "markPriceKlines"))
    db = tmp_path / "liqheat.duckdb"
    with BinanceSource(root.resolve().as_uri(), tmp_path / "raw", **FAST) as src:
        gone = src.stage(req("klines"), tmp_path / "staging")
        good = src.stage(req("markPriceKlines"), tmp_path / "staging")
    assert gone.parquet is not None
    Path(gone.parquet).unlink()
    skipped = StagedUnit("binance", "fundingRate", SYM, D1, "skipped", reason="not due")
    outcomes = load_staged(db, [gone, good, skipped])
    assert [o.status for o in outcomes] == ["failed", "loaded", "skipped"]
    assert outcomes[0].kind == "internal"
    assert "shared" in (outcomes[0].reason or "")
    log = query(db, "SELECT dataset, status, error FROM ingest_log ORDER BY dataset")
    assert [r[:2] for r in log.rows()] == [("klines", "failed"), ("markPriceKlines", "loaded")]
    assert query(db, "SELECT count(*) AS n FROM klines")["n"][0] == 0


def test_outcome_of_a_staged_unit() -> None:
    unit = StagedUnit("bybit", "trades", SYM, D1, "failed", reason="x", kind="network", rows=5)
    assert outcome_of(unit) == Outcome(
        "trades", SYM, D1, "failed", rows=0, reason="x", kind="network", exchange="bybit"
    )


def test_registry(tmp_path: Path) -> None:
    assert "binance" in EXCHANGES
    settings = Settings(home=tmp_path, http_retries=1, http_timeout_s=3.0)
    src = get_source("binance", settings)
    assert isinstance(src, BinanceSource)
    assert src.exchange == "binance"
    assert src.base_url == settings.binance_base_url
    assert src.raw_dir == tmp_path / "raw"
    assert (src.retries, src.timeout_s) == (1, 3.0)
    mirror = get_source("binance", settings, base_url="file:///srv/mirror")
    assert isinstance(mirror, BinanceSource)
    assert mirror.base_url == "file:///srv/mirror"
    assert isinstance(from_settings(settings), BinanceSource)
    with pytest.raises(ValueError, match="unknown exchange 'kraken'; expected one of"):
        get_source("kraken", settings)


def test_ingest_goes_through_the_registry(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    write_day(root, SYM, D1, datasets=("klines",))
    db = tmp_path / "home" / "liqheat.duckdb"
    with pytest.raises(ValueError, match="unknown exchange"):
        ingest(db, tmp_path / "raw", root.as_uri(), [SYM], [D1], exchange="kraken")
    staging = tmp_path / "my-staging"
    report = ingest(
        db,
        tmp_path / "raw",
        root.resolve().as_uri(),
        [SYM],
        [D1],
        exchange="binance",
        staging_dir=staging,
        progress=False,
        **FAST,
    )
    assert report.counts == {"loaded": 1, "missing": 3}
    assert staging.is_dir()  # a caller's staging folder is kept ...
    assert not list(staging.glob("*.parquet"))  # ... but emptied of loaded files
    assert not (db.parent / "staging").exists() or not any((db.parent / "staging").iterdir())


def test_realized_units_replace_only_their_own_source(tmp_path: Path) -> None:
    """Loading one source's liquidations for a day keeps other sources' events in that window."""
    from flows.sources.base import StagedUnit
    from warehouse.writes import replace_partition

    db = tmp_path / "w.duckdb"
    day_start = datetime(2024, 3, 5, tzinfo=UTC)
    day_end = datetime(2024, 3, 6, tzinfo=UTC)
    other = pl.DataFrame(
        {
            "exchange": ["binance"],
            "symbol": [SYM],
            "ts": [datetime(2024, 3, 5, 12, tzinfo=UTC)],
            "side": ["long"],
            "usd": [5.0],
            "source": ["csv:mine.csv"],
        }
    )
    replace_partition(db, "realized_liquidations", {"exchange": "binance", "symbol": SYM}, other)
    events = pl.DataFrame(
        {
            "ts": [datetime(2024, 3, 5, 13, tzinfo=UTC)] * 2,
            "side": ["long", "short"],
            "usd": [100.0, 7.0],
            "source": ["binance-cm-liquidationSnapshot"] * 2,
        }
    )
    path = tmp_path / "staged.parquet"
    events.write_parquet(path)

    def unit(replaces: str | None) -> StagedUnit:
        return StagedUnit(
            exchange="binance",
            dataset="liquidationSnapshot",
            symbol=SYM,
            day=day_start.date(),
            status="loaded",
            table="realized_liquidations",
            parquet=str(path),
            start=day_start,
            end=day_end,
            rows=2,
            replaces_source=replaces,
        )

    assert [o.status for o in load_staged(db, [unit("binance-cm-liquidationSnapshot")])] == [
        "loaded"
    ]
    rows = query(db, "SELECT source, sum(usd) AS usd FROM realized_liquidations GROUP BY 1")
    assert dict(rows.rows()) == {"csv:mine.csv": 5.0, "binance-cm-liquidationSnapshot": 107.0}

    events.write_parquet(path)  # the loader removed it
    outcome = load_staged(db, [unit(None)])[0]
    assert outcome.status == "failed"
    assert "source" in (outcome.reason or "")
