"""Ingest in the flows: plan -> skip loaded -> stage (fanned out) -> load (the single writer).

The flow plans each exchange's units and skips those already loaded (reading ``ingest_log``);
one ``stage-symbol-day`` task per (exchange, symbol, day) fetches, verifies and parses its
files into Parquet under ``$LIQHEAT_HOME/staging/<flow run id>/`` and returns the staged
units (paths and keys). Those tasks may run anywhere: on Prefect's thread pool (default) or
on a Dask cluster (``task_runner="dask"``, prefect-dask's ``DaskTaskRunner``;
``dask_address`` names a running scheduler, otherwise a temporary local cluster is started).
They never open the warehouse. The flow process -- the single DuckDB writer -- loads the
staged units as the staging tasks finish (``load-staged`` tasks,
:func:`flows.sources.loader.load_staged`): each load takes every job finished since the
previous one, so a slow or hung download never holds back (or, if the run is killed, loses)
the days already staged. The staging folder is removed at the end.
Staging tasks retry only for network failures (:class:`StageNetworkError`).
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import progress
from flows.options import check_task_runner
from flows.settings import Settings
from flows.sources.base import Source, StagedUnit, UnitRequest
from flows.sources.registry import get_source

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State, TaskRun
    from prefect.futures import PrefectFuture
    from prefect.task_runners import TaskRunner
    from prefect.tasks import Task

    from flows.run_summary import RunSummary

# The warehouse (DuckDB) is imported inside the functions that run in the flow process, so a
# Dask worker that runs a staging task (and imports this module) never even imports DuckDB.

#: waits before the retries of a staging task that hit a network failure
STAGE_RETRY_DELAYS_S = [2.0, 10.0]


class StageNetworkError(Exception):
    """A staging job hit a network failure: Prefect retries the task (and only then).

    Carries the job's staged units (as dicts) so that, once the retries are used up, the
    units that did stage are still loaded and the failures are logged.
    """

    def __init__(self, message: str, units: list[dict[str, Any]]) -> None:
        super().__init__(message, units)
        self.units = units

    def __str__(self) -> str:
        return str(self.args[0])


def _retry_on_network(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """``retry_condition_fn`` of the staging task: retry network failures only."""
    return isinstance(state.data, StageNetworkError)


def _unit_dict(unit: StagedUnit) -> dict[str, Any]:
    return asdict(unit)


def _staged(data: dict[str, Any]) -> StagedUnit:
    return StagedUnit(**data)


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@task(
    name="stage-symbol-day",
    cache_policy=NO_CACHE,
    retries=len(STAGE_RETRY_DELAYS_S),
    retry_delay_seconds=STAGE_RETRY_DELAYS_S,
    retry_condition_fn=_retry_on_network,
)
def stage_symbol_day(
    exchange: str,
    settings_json: dict[str, Any],
    base_url: str | None,
    requests: list[tuple[str, str, str]],
    staging_dir: str,
) -> dict[str, Any]:
    """Fetch, verify and parse one job's units (``(dataset, symbol, ISO day)``; a symbol-day
    or a monthly file) into Parquet under ``staging_dir``. Runs on any worker; never opens the
    warehouse. Returns ``{"units": [StagedUnit as dict], "where": "host:pid"}``; raises
    :class:`StageNetworkError` (so the task is retried) when a unit failed on the network."""
    source = get_source(exchange, Settings.model_validate(settings_json), base_url=base_url)
    try:
        staged = [
            source.stage(UnitRequest(exchange, ds, sym, date.fromisoformat(day)), Path(staging_dir))
            for ds, sym, day in requests
        ]
    finally:
        close = getattr(source, "close", None)
        if callable(close):
            close()
    units = [_unit_dict(u) for u in staged]
    network = [u for u in staged if u.kind == "network"]
    if network:
        first = network[0]
        raise StageNetworkError(
            f"{len(network)} of {len(staged)} unit(s) failed on the network; first: "
            f"{first.dataset} {first.symbol} {first.day}: {first.reason}",
            units,
        )
    return {"units": units, "where": _where()}


@task(name="load-staged", cache_policy=NO_CACHE)
def load_staged_task(
    db_path: str, units: list[dict[str, Any]], symbol_map: bool = True
) -> dict[str, Any]:
    """The single writer: refresh ``symbol_map`` (unless ``symbol_map`` is false: an earlier
    load of the run did) and load the staged units into the warehouse (in the flow
    process)."""
    from flows.sources.loader import load_staged
    from flows.sources.symbols import symbol_map_frame
    from warehouse.writes import write_symbol_map

    if symbol_map:
        write_symbol_map(Path(db_path), symbol_map_frame())
    outcomes = load_staged(Path(db_path), [_staged(u) for u in units])
    return {
        "outcomes": [
            {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(o).items()}
            for o in outcomes
        ],
        "where": _where(),
    }


@contextmanager
def _stage_runner(task_runner: str, dask_address: str | None) -> Iterator[TaskRunner[Any] | None]:
    """Yield the runner staging tasks go to: None means the flow's own (thread pool, or
    whatever ``flow.with_options(task_runner=...)`` set); "dask" a DaskTaskRunner on
    ``dask_address`` (or on a temporary local cluster)."""
    check_task_runner(task_runner, dask_address)
    if task_runner == "thread":
        yield None
        return
    from prefect_dask.task_runners import DaskTaskRunner  # dask only when asked for

    runner = DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner()
    # Without PREFECT_API_URL this process talks to a temporary Prefect server; hand its URL
    # to the workers (through the task context) so their task runs land in the same place
    # instead of each worker starting a temporary server of its own.
    updates = {} if PREFECT_API_URL.value() else {PREFECT_API_URL: _api_url()}
    with temporary_settings(updates=updates), runner:
        yield runner


def _api_url() -> str:
    with get_client(sync_client=True) as client:
        return str(client.api_url)


def _jobs(
    requests: Sequence[UnitRequest],
) -> dict[tuple[str, str, date], list[tuple[str, str, str]]]:
    """Group units into staging jobs, one per (exchange, symbol, day); a monthly file (keyed
    by the first of its month) joins that day's job."""
    jobs: dict[tuple[str, str, date], list[tuple[str, str, str]]] = {}
    for r in requests:
        key = (r.exchange, r.symbol, r.day)
        jobs.setdefault(key, []).append((r.dataset, r.symbol, r.day.isoformat()))
    return jobs


def _plan(
    settings: Settings,
    exchange: str,
    pairs: Sequence[tuple[str, date]],
    base_url: str | None,
    summary: RunSummary,
) -> list[UnitRequest]:
    """Plan an exchange's units for (symbol, day) pairs (:func:`flows.ingest.plan_ingest`, the
    planner of ``liqheat ingest`` too); record already-loaded ones as skipped; return the
    rest."""
    from flows.ingest import plan_ingest

    skipped, todo = plan_ingest(
        get_source(exchange, settings, base_url=base_url), settings.db_path, pairs
    )
    summary.add_outcomes([_outcome_dict(asdict(o)) for o in skipped])
    return todo


def _outcome_dict(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}


def _failed_units(
    exchange: str, job: list[tuple[str, str, str]], exc: BaseException
) -> list[dict[str, Any]]:
    """A staging job that died (not a data problem): every unit failed, with the reason."""
    text = (str(exc).strip().splitlines() or [""])[0][:160]
    reason = f"staging task failed: {type(exc).__name__}: {text}"
    return [
        _unit_dict(
            StagedUnit(
                exchange, ds, sym, date.fromisoformat(day), "failed", reason=reason, kind="internal"
            )
        )
        for ds, sym, day in job
    ]


#: while a job of one of these exchanges waits on the Binance job of the same symbol-day, its
#: units wait too: the Bybit open-interest check compares with Binance's day in the same load
_WAITS_FOR_BINANCE = ("bybit",)
#: how often the batching loop looks at the futures' states besides their done callbacks
_POLL_S = 5.0


def _put_index(
    finished: queue.SimpleQueue[int], index: int
) -> Callable[[PrefectFuture[dict[str, Any]]], None]:
    def done(_future: PrefectFuture[dict[str, Any]]) -> None:
        finished.put(index)

    return done


def _is_done(future: PrefectFuture[Any]) -> bool:
    wrapped = getattr(future, "wrapped_future", None)
    if wrapped is not None and callable(getattr(wrapped, "done", None)):
        return bool(wrapped.done())
    return bool(future.state.is_final())


def _finished_batches(
    jobs: Sequence[tuple[str, list[tuple[str, str, str]]]],
    futures: Sequence[PrefectFuture[dict[str, Any]]],
) -> Iterator[list[int]]:
    """Yield the indexes of finished staging jobs, in batches as they finish: each batch is
    every job finished since the previous one (at least one), so the caller loads finished
    units while the others still download, in few writes when many finish together. A Bybit
    job whose symbol-day also has a pending Binance job is held back until that one is done
    (see :data:`_WAITS_FOR_BINANCE`). Every job is yielded exactly once."""
    finished: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index, fut in enumerate(futures):
        fut.add_done_callback(_put_index(finished, index))

    def key(index: int) -> tuple[str, str]:
        return jobs[index][1][0][1], jobs[index][1][0][2]  # (symbol, ISO day)

    pending_binance: Counter[tuple[str, str]] = Counter(
        key(i) for i, (exchange, job) in enumerate(jobs) if exchange == "binance" and job
    )
    seen: set[int] = set()
    held: list[int] = []
    done = 0
    while len(seen) < len(futures):
        try:
            new = [finished.get(timeout=_POLL_S)]
        except queue.Empty:  # a missed callback never hangs the run: look at the states
            new = [i for i, fut in enumerate(futures) if i not in seen and _is_done(fut)]
        while True:
            try:
                new.append(finished.get_nowait())
            except queue.Empty:
                break
        ready: list[int] = []
        for index in dict.fromkeys(new):
            if index in seen:
                continue
            seen.add(index)
            done += 1
            if jobs[index][0] == "binance" and jobs[index][1]:
                pending_binance[key(index)] -= 1
            ready.append(index)
        progress.report("staged", done, len(futures))
        waiting = [
            i
            for i in ready + held
            if jobs[i][0] in _WAITS_FOR_BINANCE and jobs[i][1] and pending_binance[key(i)] > 0
        ]
        batch = [i for i in held + ready if i not in waiting]
        held = waiting
        if batch:
            yield batch
    if held:
        yield held


def ingest_all(
    settings: Settings,
    pairs: Sequence[tuple[str, date]],
    base_url: str | None,
    summary: RunSummary,
    *,
    exchanges: Sequence[str] = ("binance",),
    task_runner: str = "thread",
    dask_address: str | None = None,
) -> None:
    """Plan, skip loaded, stage (fan-out per symbol-day), and load in this process what the
    staging jobs finished, as they finish (:func:`_finished_batches`)."""
    t0 = time.perf_counter()
    home = settings.home.resolve()
    settings = settings.model_copy(update={"home": home})
    run_id = str(flow_run.get_id() or uuid.uuid4())
    staging = home / "staging" / run_id
    settings_json = settings.model_dump(mode="json")
    jobs: list[tuple[str, list[tuple[str, str, str]]]] = []
    for exchange in dict.fromkeys(exchanges):
        url = base_url if exchange == "binance" or len(exchanges) == 1 else None
        todo = _plan(settings, exchange, pairs, url, summary)
        jobs += [(exchange, job) for job in _jobs(todo).values()]
    try:
        with _stage_runner(task_runner, dask_address) as runner:
            futures: list[PrefectFuture[dict[str, Any]]] = []
            for exchange, job in jobs:
                url = base_url if exchange == "binance" or len(exchanges) == 1 else None
                params: dict[str, Any] = {
                    "exchange": exchange,
                    "settings_json": settings_json,
                    "base_url": url,
                    "requests": job,
                    "staging_dir": str(staging),
                }
                futures.append(
                    runner.submit(stage_symbol_day, params)
                    if runner is not None
                    else stage_symbol_day.submit(**params)
                )
            loads = 0
            loaded_units = 0
            total_units = sum(len(job) for _, job in jobs)
            progress.report("staged", 0, len(jobs))
            progress.report("loaded", 0, total_units)
            for ready in _finished_batches(jobs, futures):
                units: list[dict[str, Any]] = []
                for index in ready:
                    exchange, job = jobs[index]
                    try:
                        result = futures[index].result()
                    except StageNetworkError as exc:
                        units += exc.units
                    except Exception as exc:  # a crashed worker, a bug: the job's units failed
                        units += _failed_units(exchange, job, exc)
                    else:
                        units += result["units"]
                        summary.stagers.add(result["where"])
                loaded = load_staged_task(str(settings.db_path), units, symbol_map=loads == 0)
                loads += 1
                loaded_units += len(units)
                summary.loader = loaded["where"]
                summary.add_outcomes(loaded["outcomes"])
                progress.report("loaded", loaded_units, total_units)
        summary.stage_jobs = len(jobs)
        if not loads:  # nothing to stage: the symbol map is still refreshed, as before
            summary.loader = load_staged_task(str(settings.db_path), [])["where"]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.ingest_seconds = time.perf_counter() - t0


def daily_datasets(source: Source, symbol: str, day: date) -> list[str]:
    """The datasets that make a day complete for ``source``: the daily units it plans for one
    day (probing a day that is not the 1st, where monthly units are keyed).

    Examples
    --------
    >>> from flows.sources.binance.source import BinanceSource
    >>> src = BinanceSource("file:///mirror", Path("raw"))
    >>> daily_datasets(src, "BTCUSDT", date(2024, 2, 1))
    ['klines', 'markPriceKlines', 'metrics']
    """
    probe = day if day.day != 1 else day + timedelta(days=1)
    return [r.dataset for r in source.plan([symbol], [probe]) if r.day == probe]
