"""Scale-out: the nightly flow on a real 2-process Dask cluster against a local HTTP mirror,
and network-only retries of the staging tasks on the thread pool.

The Dask test checks that the staging tasks ran in the worker processes (not in the flow
process), that the one load ran in the flow process, and that no worker ever opened a DuckDB
connection (every worker's ``duckdb.connect`` is wrapped to record calls before the run).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flows.demo_data import write_demo_archive
from flows.sources.binance.paths import daily_path
from tests.httpmirror import Fault, serve_mirror
from warehouse.reads import query

pytestmark = pytest.mark.slow

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
FIRST = date(2026, 6, 8)
NIGHT = date(2026, 6, 9)


def _guard_duckdb() -> int:
    """On a worker: wrap ``duckdb.connect`` so every call is recorded; return the pid."""
    import duckdb

    calls: list[str] = []
    original = duckdb.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[0]) if args else str(kwargs.get("database")))
        return original(*args, **kwargs)

    duckdb.connect = connect
    duckdb._liqheat_connects = calls  # type: ignore[attr-defined]
    return os.getpid()


def _duckdb_connects() -> list[str]:
    import duckdb

    return list(getattr(duckdb, "_liqheat_connects", ["guard missing"]))


@pytest.fixture
def cluster() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as local,
        Client(local) as client,  # type: ignore[no-untyped-call]
    ):
        yield local, client


def _stagers(summary: str) -> tuple[set[int], int]:
    m = re.search(
        r"staging: (\d+) job\(s\) on \d+ process\(es\) \[([^\]]*)\]; loaded by (\S+)", summary
    )
    assert m, summary
    stagers = {int(x.rsplit(":", 1)[1]) for x in m.group(2).split(", ") if x}
    return stagers, int(m.group(3).rsplit(":", 1)[1])


def test_nightly_on_a_dask_cluster_stages_on_workers_and_loads_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: object, cluster: Any
) -> None:
    from flows.pipeline import nightly_flow

    local, client = cluster
    worker_pids = set(client.run(_guard_duckdb).values())
    assert len(worker_pids) == 2
    assert os.getpid() not in worker_pids

    archive = write_demo_archive(tmp_path / "mirror", SYMBOLS, FIRST, 2, seed=4)
    home = tmp_path / "home"
    monkeypatch.setenv("LIQHEAT_HOME", str(home))
    db = home / "liqheat.duckdb"
    with serve_mirror(archive.root) as mirror:
        summary = nightly_flow(
            date=NIGHT.isoformat(),
            symbols=SYMBOLS,
            base_url=mirror.base_url,
            backfill_days=0,
            task_runner="dask",
            dask_address=local.scheduler_address,
        )
        # 2 symbols x (2 days x 3 daily files + the funding month)
        assert mirror.zip_downloads() == 2 * (2 * 3 + 1)

    # every staging job ran on a worker process; the single load ran in the flow process
    stagers, loader = _stagers(summary)
    assert stagers, summary
    assert stagers <= worker_pids, (stagers, worker_pids)
    assert loader == os.getpid()
    assert f"{socket.gethostname()}:{os.getpid()}" in summary
    # ... and no worker ever opened a DuckDB connection
    assert client.run(_duckdb_connects) == {addr: [] for addr in client.run(os.getpid)}

    # the warehouse and the site
    klines = query(db, "SELECT symbol, count(*) AS n FROM klines GROUP BY 1 ORDER BY 1")
    assert klines.rows() == [("BTCUSDT", 2 * 1440), ("ETHUSDT", 2 * 1440)]
    log = query(db, "SELECT status, count(*) AS n FROM ingest_log GROUP BY 1")
    assert log.rows() == [("loaded", 2 * (2 * 3 + 1))]
    assert query(db, "SELECT count(*) AS n FROM funding_rates")["n"][0] > 0
    symbol_map = query(db, "SELECT instrument FROM symbol_map WHERE exchange = 'okx'")
    assert "BTC-USDT-SWAP" in symbol_map["instrument"].to_list()  # refreshed by the load
    runs = query(db, "SELECT symbol, status, days_loaded FROM runs ORDER BY symbol")
    assert runs.rows() == [("BTCUSDT", "completed", 7), ("ETHUSDT", "completed", 7)]
    assert query(db, "SELECT count(DISTINCT symbol) AS n FROM heatmap_cells")["n"][0] == 2
    index = (home / "site" / "index.html").read_text()
    assert "BTCUSDT" in index
    assert "ETHUSDT" in index
    # staged Parquet files were consumed and the run's staging folder removed
    staging = home / "staging"
    assert not staging.exists() or not any(staging.rglob("*.parquet"))
    assert not staging.exists() or not any(staging.iterdir())


def test_staging_retries_network_failures_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: object
) -> None:
    """One transient 503 (the client itself does not retry here) is retried by Prefect and
    loads; a persistent one ends failed after the retries while the job's other files load;
    a corrupt file (not a network failure) is not retried."""
    import flows.pipeline as pipeline
    import flows.staging as staging

    archive = write_demo_archive(tmp_path / "mirror", ["BTCUSDT"], FIRST, 2, seed=6)
    home = tmp_path / "home"
    monkeypatch.setenv("LIQHEAT_HOME", str(home))
    monkeypatch.setenv("LIQHEAT_HTTP_RETRIES", "0")
    monkeypatch.setattr(
        staging,
        "stage_symbol_day",
        staging.stage_symbol_day.with_options(retries=2, retry_delay_seconds=[0.05, 0.05]),
    )
    db = home / "liqheat.duckdb"
    transient = daily_path("klines", "BTCUSDT", FIRST)
    persistent = daily_path("metrics", "BTCUSDT", NIGHT)
    corrupt = daily_path("markPriceKlines", "BTCUSDT", NIGHT)
    faults = {
        transient + ".CHECKSUM": [Fault(status=503)],
        persistent + ".CHECKSUM": [Fault(status=503, times=50)],
        corrupt: [Fault(body=b"PK\x03\x04 not a zip", times=50)],
    }
    with serve_mirror(archive.root, faults) as mirror:
        state = pipeline.nightly_flow(
            date=NIGHT.isoformat(),
            symbols=["BTCUSDT"],
            base_url=mirror.base_url,
            backfill_days=0,
            return_state=True,
        )
        assert state.is_failed()
        assert mirror.hits[transient + ".CHECKSUM"] == 2  # failed once, retried once
        assert mirror.hits[persistent + ".CHECKSUM"] == 3  # the first try and 2 retries
        # the corrupt zip's job was retried only because its sibling failed on the network:
        # it is fetched twice per attempt (one re-download after a mismatch)
        assert mirror.hits[corrupt] == 2 * 3

    log = query(db, "SELECT dataset, day, status, error FROM ingest_log ORDER BY day, dataset")
    status = {(r[0], r[1]): (r[2], r[3]) for r in log.rows()}
    assert status[("klines", FIRST)][0] == "loaded"
    assert status[("metrics", NIGHT)][0] == "failed"
    assert "network" in status[("metrics", NIGHT)][1]
    assert status[("markPriceKlines", NIGHT)][0] == "failed"
    assert "checksum" in status[("markPriceKlines", NIGHT)][1]
    assert status[("klines", NIGHT)][0] == "loaded"  # same job as the failures, still loaded
    assert query(db, "SELECT count(*) AS n FROM klines")["n"][0] == 2 * 1440


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nightly", "--dask-address", "tcp://127.0.0.1:8786"], "needs the dask task runner"),
        (
            [
                "backfill",
                "--symbol",
                "BTCUSDT",
                "--start",
                "2026-01-01",
                "--end",
                "2026-01-02",
                "--task-runner",
                "ray",
            ],
            "'ray' is not one of",
        ),
        (
            ["nightly", "--task-runner", "dask", "--dask-address", "127.0.0.1:8786"],
            "expected tcp://HOST:PORT",
        ),
        (["nightly", "--exchange", "kraken"], "unknown exchange 'kraken'"),
        (
            [
                "ingest",
                "--symbol",
                "BTCUSDT",
                "--start",
                "2026-01-01",
                "--end",
                "2026-01-01",
                "--exchange",
                "kraken",
            ],
            "unknown exchange 'kraken'",
        ),
        (["serve", "--dask-address", "tcp://127.0.0.1:8786"], "needs the dask task runner"),
    ],
)
def test_scale_out_usage_errors(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bad scale-out options are usage errors: one line on stderr, exit code 2, nothing run."""
    from flows.cli import main

    monkeypatch.setenv("LIQHEAT_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert err.startswith("liqheat: error: ")
    assert not (tmp_path / "home").exists()


def test_flow_parameters_are_checked() -> None:
    from flows.options import check_task_runner

    check_task_runner("thread", None)
    check_task_runner("dask", None)
    check_task_runner("dask", "tcp://10.0.0.5:8786")
    with pytest.raises(ValueError, match="unknown task runner 'ray'"):
        check_task_runner("ray", None)
    with pytest.raises(ValueError, match="needs the dask task runner"):
        check_task_runner("thread", "tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="expected tcp://HOST:PORT"):
        check_task_runner("dask", "127.0.0.1:8786")


def test_daily_datasets_and_staging_jobs() -> None:
    """Gap detection never waits for a monthly file, even on the 1st; a job is one
    (exchange, symbol, day), a funding month joining its first day's job."""
    from flows.sources.binance.source import BinanceSource
    from flows.staging import _jobs, daily_datasets

    src = BinanceSource("file:///mirror", Path("raw"))
    core = ["klines", "markPriceKlines", "metrics"]
    assert daily_datasets(src, "BTCUSDT", date(2024, 2, 1)) == core
    assert daily_datasets(src, "BTCUSDT", date(2024, 2, 15)) == core
    plan = src.plan(["BTCUSDT", "ETHUSDT"], [date(2024, 1, 31), date(2024, 2, 1)])
    jobs = _jobs(plan)
    assert len(jobs) == 2 * 2 + 2  # symbol-days, plus January's funding file per symbol
    assert jobs[("binance", "BTCUSDT", date(2024, 2, 1))] == [
        ("klines", "BTCUSDT", "2024-02-01"),
        ("markPriceKlines", "BTCUSDT", "2024-02-01"),
        ("metrics", "BTCUSDT", "2024-02-01"),
        ("fundingRate", "BTCUSDT", "2024-02-01"),
    ]
    assert jobs[("binance", "ETHUSDT", date(2024, 1, 1))] == [
        ("fundingRate", "ETHUSDT", "2024-01-01")
    ]
    assert sum(len(j) for j in jobs.values()) == len(plan)


def test_nightly_with_two_exchanges_models_each_and_the_sum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: object
) -> None:
    """Two registered exchanges in one run: each is planned, staged and loaded under its own
    exchange id, modelled on its own bars, and summed into exchange "all"."""
    from flows.pipeline import nightly_flow
    from flows.sources.registry import EXCHANGES

    monkeypatch.setitem(EXCHANGES, "mirror", "tests.flows._mirror_source:from_settings")
    main = write_demo_archive(tmp_path / "main", ["BTCUSDT"], FIRST, 2, seed=8)
    other = write_demo_archive(tmp_path / "other", ["BTCUSDT"], FIRST, 2, seed=9)
    home = tmp_path / "home"
    monkeypatch.setenv("LIQHEAT_HOME", str(home))
    monkeypatch.setenv("LIQHEAT_TEST_MIRROR_URL", other.base_url)
    db = home / "liqheat.duckdb"
    with serve_mirror(main.root) as mirror:
        summary = nightly_flow(
            date=NIGHT.isoformat(),
            symbols=["BTCUSDT"],
            base_url=mirror.base_url,
            backfill_days=0,
            exchanges=["binance", "mirror"],
        )
    assert "[mirror] BTCUSDT:" in summary
    assert "[all] BTCUSDT:" in summary
    klines = query(db, "SELECT exchange, count(*) AS n, sum(close) AS s FROM klines GROUP BY 1")
    rows = {r[0]: r[1:] for r in klines.rows()}
    assert rows["binance"][0] == rows["mirror"][0] == 2 * 1440
    assert rows["binance"][1] != rows["mirror"][1]  # each exchange's own files
    log = query(
        db, "SELECT exchange, count(*) AS n FROM ingest_log WHERE status = 'loaded' GROUP BY 1"
    )
    assert sorted(log.rows()) == [("binance", 7), ("mirror", 7)]
    runs = query(db, "SELECT DISTINCT exchange FROM model_runs ORDER BY 1")
    assert runs["exchange"].to_list() == ["all", "binance", "mirror"]
    assert query(db, "SELECT days_loaded FROM runs")["days_loaded"].to_list() == [14]
    assert (home / "site" / "index.html").is_file()
