"""The Binance COIN-M liquidationSnapshot source against a local archive mirror.

Files are written by the tests in the archive's exact layout (zip + ``.CHECKSUM``) and served by
tests/httpmirror.py's real HTTP server; nothing talks to data.binance.vision.
"""

from __future__ import annotations

import hashlib
import pickle
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from flows.ingest import ingest
from flows.settings import Settings
from flows.sources.base import StagedUnit, UnitRequest
from flows.sources.binance.paths import write_archive_file
from flows.sources.binance_cm.parsing import SOURCE, parse_liquidation_snapshot
from flows.sources.binance_cm.source import BinanceCmSource, archive_path, from_settings
from flows.sources.errors import ParseError
from flows.sources.files import atomic_write
from flows.sources.loader import load_staged
from flows.sources.registry import get_source
from tests.httpmirror import Fault, serve_mirror
from warehouse.reads import query, realized_liquidations

DAY = date(2023, 6, 25)
START = datetime(2023, 6, 25, tzinfo=UTC)
HEADER = (
    "time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
    "last_fill_quantity,accumulated_fill_quantity"
)
# the archive's real first rows (BTCUSD_PERP 2023-06-25), each repeated as published
ROWS = [
    "1687656471926,BUY,LIMIT,IOC,7,30741.3,30631.6,FILLED,6,7",
    "1687656471926,BUY,LIMIT,IOC,7,30741.3,30631.6,FILLED,6,7",
    "1687656473356,BUY,LIMIT,IOC,43,30756.6,30631.6,FILLED,1,43",
    "1687656473356,BUY,LIMIT,IOC,43,30756.6,30631.6,FILLED,1,43",
    "1687700000000,SELL,LIMIT,IOC,12,29900.0,29950.5,FILLED,12,12",
    "1687700000000,SELL,LIMIT,IOC,12,29900.0,29950.5,FILLED,12,12",
    "1687700000000,SELL,LIMIT,IOC,5,29900.0,29950.5,FILLED,5,5",  # same ms, another order
    "1687700000000,SELL,LIMIT,IOC,5,29900.0,29950.5,FILLED,5,5",
    "1687730000000,SELL,LIMIT,IOC,9,29800.0,0,EXPIRED,0,0",  # nothing filled: dropped
]
#: by hand: (time ms, liquidated side, USD = accumulated contracts x 100 USD)
EXPECTED = [
    (1687656471926, "short", 700.0),
    (1687656473356, "short", 4300.0),
    (1687700000000, "long", 1200.0),
    (1687700000000, "long", 500.0),
]


def write_snapshot(root: Path, day: date, rows: list[str], pair: str = "BTCUSD_PERP") -> str:
    path = archive_path(pair, day)
    write_archive_file(root, path, "\n".join([HEADER, *rows]) + "\n")
    return path


def source(base_url: str, raw: Path) -> BinanceCmSource:
    return BinanceCmSource(base_url, raw, backoff_s=0.001, backoff_max_s=0.01)


def stage(
    src: BinanceCmSource, staging: Path, day: date = DAY, symbol: str = "BTCUSDT"
) -> StagedUnit:
    return src.stage(UnitRequest("binance", "liquidationSnapshot", symbol, day), staging)


def test_snapshot_deduped_sides_mapped_checksum_verified(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    path = write_snapshot(root, DAY, ROWS)
    with serve_mirror(root) as mirror, source(mirror.base_url, tmp_path / "raw") as src:
        unit = stage(src, tmp_path / "staging")
        again = stage(src, tmp_path / "staging")
        assert mirror.hits[path] == 1  # the second stage used the verified raw cache
        assert mirror.hits[path + ".CHECKSUM"] == 2
    assert unit.status == "loaded", unit.reason
    assert unit.exchange == "binance"
    assert (unit.table, unit.start, unit.end, unit.rows) == (
        "realized_liquidations",
        START,
        START + timedelta(days=1),
        4,
    )
    assert unit.sha256 == hashlib.sha256((root / path).read_bytes()).hexdigest()
    assert unit.url == f"{mirror.base_url}/{path}"
    assert unit.downloaded
    assert not again.downloaded
    events = pl.read_parquet(str(unit.parquet))
    assert events.columns == ["ts", "side", "usd", "source"]
    got = [(int(t.timestamp() * 1000), s, u) for t, s, u, _ in events.iter_rows()]
    assert got == EXPECTED
    assert set(events["source"]) == {SOURCE}


def test_contract_size_per_pair_and_headerless_files() -> None:
    body = ("\n".join(ROWS[:2]) + "\n").encode()
    eth = parse_liquidation_snapshot(body, DAY, 10.0)  # ETHUSD_PERP: 10 USD contracts
    assert eth.select("side", "usd").rows() == [("short", 70.0)]
    with_header = parse_liquidation_snapshot(f"{HEADER}\n".encode() + body, DAY, 10.0)
    assert with_header.equals(eth)
    empty = parse_liquidation_snapshot(f"{HEADER}\n".encode(), DAY, 100.0)
    assert empty.height == 0
    assert empty.columns == ["ts", "side", "usd", "source"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,side,qty\n1687656471926,BUY,1\n", "unexpected header"),
        (f"{HEADER}\n1687656471926,HOLD,LIMIT,IOC,7,1,1,FILLED,6,7\n", "unknown side"),
        (f"{HEADER}\n1687656471926,BUY,LIMIT,IOC,7,1,1,FILLED,6\n", "ragged"),
        (f"{HEADER}\n1687570000000,BUY,LIMIT,IOC,7,1,1,FILLED,6,7\n", "outside 2023-06-25"),
        (f"{HEADER}\n1687656471926,BUY,LIMIT,IOC,7,1,1,FILLED,6,x\n", "bad value"),
    ],
)
def test_bad_files_raise_parse_errors(text: str, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        parse_liquidation_snapshot(text.encode(), DAY, 100.0)


def test_404_is_missing_and_bad_checksum_fails(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    path = write_snapshot(root, DAY + timedelta(days=1), ROWS[:2])
    atomic_write(root / path, (root / path).read_bytes() + b"tampered")  # .CHECKSUM unchanged
    with serve_mirror(root) as mirror, source(mirror.base_url, tmp_path / "raw") as src:
        gap = stage(src, tmp_path / "staging")  # 2023-06-25 not in the mirror
        bad = stage(src, tmp_path / "staging", DAY + timedelta(days=1))
    assert gap.status == "missing"
    assert gap.kind == "missing"
    assert gap.parquet is None
    assert bad.status == "failed"
    assert bad.kind == "checksum"
    assert not (tmp_path / "raw" / path).exists()


def test_transient_errors_are_retried(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    path = write_snapshot(root, DAY, ROWS)
    faults = {path: [Fault(status=503), Fault(drop=True)]}
    with serve_mirror(root, faults) as mirror, source(mirror.base_url, tmp_path / "raw") as src:
        unit = stage(src, tmp_path / "staging")
        assert mirror.hits[path] == 3
    assert unit.status == "loaded"
    assert unit.rows == 4


def test_plan_keeps_to_the_archive_span(tmp_path: Path) -> None:
    src = BinanceCmSource("http://127.0.0.1:9", tmp_path)
    days = [date(2023, 6, 24), DAY, date(2024, 10, 14), date(2024, 10, 15)]
    reqs = src.plan(["BTCUSDT", "ETHUSDT"], days)
    assert [(r.exchange, r.dataset, r.symbol, r.day) for r in reqs] == [
        ("binance", "liquidationSnapshot", "BTCUSDT", DAY),
        ("binance", "liquidationSnapshot", "BTCUSDT", date(2024, 10, 14)),
        ("binance", "liquidationSnapshot", "ETHUSDT", DAY),
        ("binance", "liquidationSnapshot", "ETHUSDT", date(2024, 10, 14)),
    ]
    with pytest.raises(ValueError, match="not mapped"):
        src.plan(["FOOUSDT"], [DAY])
    src.client()
    clone = pickle.loads(pickle.dumps(src))
    assert clone._client is None
    assert clone.base_url == src.base_url
    src.close()
    bad = src.stage(UnitRequest("binance", "klines", "BTCUSDT", DAY), tmp_path)
    assert bad.status == "failed"
    assert bad.kind == "internal"
    built = from_settings(Settings(home=tmp_path), base_url="file:///srv/mirror")
    assert isinstance(get_source("binance-cm", Settings(home=tmp_path)), BinanceCmSource)
    assert (built.base_url, built.raw_dir) == ("file:///srv/mirror", tmp_path / "raw")


def test_loaded_rows_are_what_the_binance_backtest_reads(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    root = tmp_path / "mirror"
    write_snapshot(root, DAY, ROWS)
    write_snapshot(root, DAY, ROWS[:2], pair="ETHUSD_PERP")
    with serve_mirror(root) as mirror, source(mirror.base_url, tmp_path / "raw") as src:
        units = [stage(src, tmp_path / "staging", symbol=s) for s in ("BTCUSDT", "ETHUSDT")]
    outcomes = load_staged(db, units)
    assert [(o.exchange, o.symbol, o.status, o.rows) for o in outcomes] == [
        ("binance", "BTCUSDT", "loaded", 4),
        ("binance", "ETHUSDT", "loaded", 1),
    ]
    # flows.modelling.model_symbol reads exactly this for the (binance, BTCUSDT) backtest
    events = realized_liquidations(db, "binance", "BTCUSDT", START, START + timedelta(days=1))
    assert events["usd"].sum() == pytest.approx(6700.0)
    assert events.filter(pl.col("side") == "long")["usd"].sum() == pytest.approx(1700.0)
    assert set(events["source"]) == {SOURCE}
    log = query(
        db, "SELECT exchange, dataset, symbol, status FROM ingest_log ORDER BY symbol"
    ).rows()
    assert log == [
        ("binance", "liquidationSnapshot", "BTCUSDT", "loaded"),
        ("binance", "liquidationSnapshot", "ETHUSDT", "loaded"),
    ]
    assert list((tmp_path / "staging").glob("*.parquet")) == []


def test_ingest_through_the_interface_skips_loaded_days(tmp_path: Path) -> None:
    db = tmp_path / "liqheat.duckdb"
    root = tmp_path / "mirror"
    path = write_snapshot(root, DAY, ROWS)
    with serve_mirror(root) as mirror:
        src = source(mirror.base_url, tmp_path / "raw")
        days = [DAY, DAY + timedelta(days=1), date(2025, 1, 1)]
        first = ingest(db, tmp_path / "raw", mirror.base_url, ["BTCUSDT"], days, source=src)
        # the second run goes through the registry, as `--exchange binance-cm` does
        second = ingest(
            db, tmp_path / "raw", mirror.base_url, ["BTCUSDT"], days, exchange="binance-cm"
        )
        src.close()
        assert mirror.hits[path] == 1
    assert sorted((o.day, o.status) for o in first.outcomes) == [
        (DAY, "loaded"),
        (DAY + timedelta(days=1), "missing"),
    ]
    assert sorted((o.day, o.status) for o in second.outcomes) == [
        (DAY, "skipped"),
        (DAY + timedelta(days=1), "missing"),
    ]
    total = query(
        db, "SELECT sum(usd) AS usd FROM realized_liquidations WHERE exchange = 'binance'"
    )
    assert total.item() == pytest.approx(6700.0)
