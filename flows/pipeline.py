"""Prefect flows: nightly, backfill and the offline demo.

Tasks are thin: they take keys and paths (exchange, symbol, ISO day, folders), call one step
in :mod:`flows.steps` or a source from :mod:`flows.sources.registry`, and return small dicts,
never DataFrames.

Ingest is **plan -> skip loaded -> stage -> load**. The flow plans each exchange's units and
skips those already loaded (reading ``ingest_log``); one ``stage-symbol-day`` task per
(exchange, symbol, day) fetches, verifies and parses its files into Parquet under
``$LIQHEAT_HOME/staging/<flow run id>/`` and returns the staged units (paths and keys). Those
tasks may run anywhere: on Prefect's thread pool (default) or on a Dask cluster
(``task_runner="dask"``, prefect-dask's ``DaskTaskRunner``; ``dask_address`` names a running
scheduler, otherwise a temporary local cluster is started). They never open the warehouse.
The flow process -- the single DuckDB writer -- loads the staged units as the staging tasks
finish (``load-staged`` tasks, :func:`flows.sources.loader.load_staged`): each load takes every
job finished since the previous one, so a slow or hung download never holds back (or, if the
run is killed, loses) the days already staged. The staging folder is removed at the end.
Staging tasks retry only for network failures (:class:`StageNetworkError`); the model and
report steps run in the flow process too, because they write.
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import progress
from flows.lock import pipeline_lock
from flows.settings import Settings
from flows.sources.base import Source, StagedUnit, UnitRequest

if TYPE_CHECKING:
    import polars as pl
    from prefect.client.schemas.objects import State, TaskRun
    from prefect.futures import PrefectFuture
    from prefect.task_runners import TaskRunner
    from prefect.tasks import Task

# Heavy warehouse modules (DuckDB) are imported inside the functions that run in the flow
# process, so a Dask worker that runs a staging task never even imports DuckDB.

TASK_RUNNERS: tuple[str, ...] = ("thread", "dask")
#: waits before the retries of a staging task that hit a network failure
STAGE_RETRY_DELAYS_S = [2.0, 10.0]

DEMO_ARCHIVE_DIR = "demo-archive-synthetic"


class PipelineError(Exception):
    """Raised at the end of a run in which something failed (the run ends Failed)."""


@dataclass
class SymbolRun:
    """One symbol's part of a run: ingest outcome counts, rows, model line and timing."""

    loaded: int = 0
    skipped: int = 0
    missing: int = 0
    failed: int = 0
    rows: int = 0
    model: str = ""
    model_seconds: float | None = None
    problems: list[str] = field(default_factory=list)
    #: the model (or the exchanges' sum) of this symbol failed
    model_failed: bool = False

    def fail(self, problem: str) -> None:
        """Record a failed step of this symbol (the run ends Failed)."""
        self.model_failed = True
        self.problems.append(f"failed: {problem}")

    @property
    def is_failed(self) -> bool:
        return bool(self.failed) or self.model_failed


@dataclass
class RunSummary:
    """What one pipeline run did, per symbol, with stage timings."""

    flow: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    symbols: dict[str, SymbolRun] = field(default_factory=dict)
    ingest_seconds: float = 0.0
    model_seconds: float = 0.0
    report_seconds: float = 0.0
    site: str | None = None
    #: start-up of the Prefect server this run started (None: it used a running one)
    server_seconds: float | None = None
    #: why the site could not be built (the run ends Failed)
    report_error: str | None = None
    #: where staging ran ("host:pid" of each process that staged a job) and where loading ran
    stagers: set[str] = field(default_factory=set)
    loader: str | None = None
    stage_jobs: int = 0
    #: lines from steps that never fail the run (alerts, the alert webhook)
    notes: list[str] = field(default_factory=list)

    def symbol(self, name: str) -> SymbolRun:
        return self.symbols.setdefault(name, SymbolRun())

    @property
    def problems(self) -> list[str]:
        found = [p for run in self.symbols.values() for p in run.problems]
        return found + ([f"failed: {self.report_error}"] if self.report_error else [])

    @property
    def failed(self) -> bool:
        return bool(self.report_error) or any(r.is_failed for r in self.symbols.values())

    @property
    def ok(self) -> bool:
        return not self.problems

    def add_outcomes(self, outcomes: Sequence[dict[str, Any]]) -> None:
        for o in outcomes:
            run = self.symbol(o["symbol"])
            status = o["status"]
            setattr(run, status, getattr(run, status) + 1)
            if status == "loaded":
                run.rows += int(o.get("rows") or 0)
            if status in ("missing", "failed"):
                exchange = o.get("exchange") or "binance"
                where = "" if exchange == "binance" else f"{exchange} "
                run.problems.append(
                    f"{status}: {where}{o['dataset']} {o['day']}: {o.get('reason')}"
                )

    def staging_line(self) -> str:
        """Where the staging jobs ran and where they were loaded."""
        return (
            f"staging: {self.stage_jobs} job(s) on {len(self.stagers)} process(es) "
            f"[{', '.join(sorted(self.stagers))}]; loaded by {self.loader or '-'}"
        )

    def markdown(self) -> str:
        """The run summary as a markdown table (the Prefect artifact)."""
        lines = [
            f"**{self.flow}** started {self.started_at:%Y-%m-%d %H:%M:%S} UTC; "
            f"ingest {self.ingest_seconds:.1f}s, model {self.model_seconds:.1f}s, "
            f"report {self.report_seconds:.1f}s",
            "",
            self.staging_line(),
            "",
            "| symbol | loaded | skipped | missing | failed | rows | model s | problems |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, r in sorted(self.symbols.items()):
            model_s = f"{r.model_seconds:.2f}" if r.model_seconds is not None else ""
            problems = "<br>".join(r.problems) or ""
            lines.append(
                f"| {name} | {r.loaded} | {r.skipped} | {r.missing} | {r.failed} | "
                f"{r.rows:,} | {model_s} | {problems} |"
            )
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines)

    def render(self) -> str:
        """The run summary as plain text for the terminal."""
        lines = ["symbol      loaded skipped missing failed       rows"]
        for name, r in sorted(self.symbols.items()):
            lines.append(
                f"{name:<11} {r.loaded:>6} {r.skipped:>7} {r.missing:>7} {r.failed:>6} "
                f"{r.rows:>10,}"
            )
        lines.extend(r.model for _, r in sorted(self.symbols.items()) if r.model)
        lines.extend(self.problems)
        lines.extend(self.notes)
        lines.append(
            f"timings: ingest {self.ingest_seconds:.1f}s, model {self.model_seconds:.1f}s, "
            f"report {self.report_seconds:.1f}s"
        )
        if self.stage_jobs:
            lines.append(self.staging_line())
        if self.server_seconds is not None:
            lines.append(f"prefect server start: {self.server_seconds:.1f}s")
        if self.site:
            lines.append(f"site: {self.site}")
        return "\n".join(lines)

    def rows_frame(self, run_id: str) -> pl.DataFrame:
        """One ``runs`` row per symbol."""
        import polars as pl

        finished = datetime.now(UTC)
        return pl.DataFrame(
            [
                {
                    "run_id": run_id,
                    "flow": self.flow,
                    "symbol": name,
                    "started_at": self.started_at,
                    "finished_at": finished,
                    "status": "failed" if r.is_failed or self.report_error else "completed",
                    "days_loaded": r.loaded,
                    "days_skipped": r.skipped,
                    "days_missing": r.missing,
                    "days_failed": r.failed,
                    "rows": r.rows,
                    "ingest_seconds": self.ingest_seconds,
                    "model_seconds": r.model_seconds,
                    "report_seconds": self.report_seconds,
                    "problems": "\n".join(r.problems) or None,
                }
                for name, r in sorted(self.symbols.items())
            ],
            schema_overrides={"model_seconds": pl.Float64, "problems": pl.String},
        )


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
    from flows.sources.registry import get_source

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


@task(name="model-symbol", cache_policy=NO_CACHE)
def model_symbol_task(
    home: str, symbol: str, days: int | None = None, exchange: str = "binance"
) -> dict[str, Any]:
    """Recompute and store the model outputs of one (exchange, symbol); return its summary
    line and timing."""
    from flows import steps

    settings = Settings(home=Path(home))
    t0 = time.perf_counter()
    line = steps.model_symbol(settings, symbol, exchange=exchange, days=days).line()
    if exchange != "binance":
        line = f"[{exchange}] {line}"
    return {"line": line, "seconds": time.perf_counter() - t0}


@task(name="model-symbols", cache_policy=NO_CACHE)
def model_symbols_task(
    home: str, jobs: list[tuple[str, str]], days: int | None = None
) -> list[dict[str, Any]]:
    """Model many (exchange, symbol) pairs: compute in a pool of worker processes, write in
    this process (the single writer), one transaction per pair; a failing pair is returned
    with its error and never stops the others (:func:`flows.steps.model_symbols`)."""
    from flows import steps

    settings = Settings(home=Path(home))
    logger = get_run_logger()

    pairs = [(str(exchange), str(symbol)) for exchange, symbol in jobs]
    modelled = 0
    progress.report("modelled", 0, len(pairs))

    def log(o: steps.ModelOutcome) -> None:
        nonlocal modelled
        modelled += 1
        progress.report("modelled", modelled, len(pairs))
        if o.error is not None:
            logger.warning("model %s %s failed: %s", o.exchange, o.symbol, o.error)

    out = []
    for o in steps.model_symbols(settings, pairs, days=days, on_done=log):
        line = o.summary.line() if o.summary is not None else ""
        if line and o.exchange != "binance":
            line = f"[{o.exchange}] {line}"
        out.append(
            {
                "exchange": o.exchange,
                "symbol": o.symbol,
                "line": line,
                "error": o.error,
                "seconds": o.seconds,
            }
        )
    return out


@task(name="aggregate-symbol", cache_policy=NO_CACHE)
def aggregate_symbol_task(home: str, symbol: str, exchanges: list[str]) -> str:
    """Sum the exchanges' model outputs of one symbol (exchange "all"); return its line."""
    from flows import steps

    settings = Settings(home=Path(home))
    summary = steps.aggregate_symbol(settings, symbol, exchanges)
    return f"[all] {summary.line()}"


@task(name="build-report", cache_policy=NO_CACHE)
def report_task(home: str, symbols: list[str] | None = None) -> str:
    """Rebuild the static site; return the index path. A symbol whose pages fail is logged
    (and named on the index); the other symbols and the index are still built."""
    from flows import steps

    settings = Settings(home=Path(home))
    result = steps.run_report(
        settings, symbols, progress=lambda done, total: progress.report("reported", done, total)
    )
    for symbol, error in result.failures:
        get_run_logger().error("report for %s failed: %s", symbol, error)
    return str(result.index)


@task(name="write-demo-archive", cache_policy=NO_CACHE)
def demo_archive_task(
    root: str, symbols: list[str], start: str, days: int, seed: int, written: bool = False
) -> dict[str, Any]:
    """Write the seeded synthetic market as a local archive mirror (unless ``written``: the
    caller wrote it while the Prefect server started); return its URL and CSVs."""
    from flows.demo_data import SYNTHETIC_DIR, write_demo_archive

    first = date.fromisoformat(start)
    if not written:
        write_demo_archive(Path(root), symbols, first, days, seed)
    liquidations = Path(root) / SYNTHETIC_DIR / "liquidations"
    return {
        "base_url": Path(root).resolve().as_uri(),
        "days": [(first + timedelta(days=i)).isoformat() for i in range(days)],
        "liquidations": {s: str(liquidations / f"{s}.csv") for s in dict.fromkeys(symbols)},
    }


@task(name="import-realized", cache_policy=NO_CACHE)
def import_realized_task(home: str, symbol: str, csv_path: str, source: str) -> int:
    """Load realized liquidations for one symbol from a CSV."""
    from flows import steps

    settings = Settings(home=Path(home))
    return steps.import_realized(settings, symbol, Path(csv_path), source=source)


def check_task_runner(task_runner: str, dask_address: str | None) -> None:
    """Raise ``ValueError`` for an unknown runner or a malformed Dask address.

    Examples
    --------
    >>> check_task_runner("dask", "tcp://127.0.0.1:8786")
    >>> check_task_runner("ray", None)
    Traceback (most recent call last):
    ...
    ValueError: unknown task runner 'ray'; expected thread or dask
    """
    if task_runner not in TASK_RUNNERS:
        raise ValueError(f"unknown task runner {task_runner!r}; expected thread or dask")
    if dask_address is not None:
        if task_runner != "dask":
            raise ValueError("a Dask address needs the dask task runner")
        if not dask_address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise ValueError(f"bad Dask address {dask_address!r} (expected tcp://HOST:PORT)")


@contextmanager
def _stage_runner(task_runner: str, dask_address: str | None) -> Iterator[TaskRunner[Any] | None]:
    """Yield the runner staging tasks go to: None means the flow's own (thread pool, or
    whatever ``flow.with_options(task_runner=...)`` set); "dask" a DaskTaskRunner on
    ``dask_address`` (or on a temporary local cluster)."""
    check_task_runner(task_runner, dask_address)
    if task_runner == "thread":
        yield None
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask.task_runners import DaskTaskRunner

    runner = DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner()
    # Without PREFECT_API_URL this process talks to a temporary Prefect server; hand its URL
    # to the workers (through the task context) so their task runs land in the same place
    # instead of each worker starting a temporary server of its own.
    updates = {} if PREFECT_API_URL.value() else {PREFECT_API_URL: _api_url()}
    with temporary_settings(updates=updates), runner:
        yield runner


def _api_url() -> str:
    from prefect.client.orchestration import get_client

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
    """Plan an exchange's units for (symbol, day) pairs; record already-loaded ones as
    skipped; return the rest."""
    from flows.ingest import loaded_units, split_loaded
    from flows.sources.registry import get_source

    source = get_source(exchange, settings, base_url=base_url)
    by_symbol: dict[str, list[date]] = {}
    for symbol, day in pairs:
        by_symbol.setdefault(symbol, []).append(day)
    requests: list[UnitRequest] = []
    for symbol, days in by_symbol.items():
        requests += source.plan([symbol], sorted(set(days)))
    # the id rows are stored under (binance-cm stores as "binance"), not the registry name
    loaded = loaded_units(settings.db_path, list(by_symbol), exchange=source.exchange)
    skipped, todo = split_loaded(requests, loaded)
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


def _ingest_all(
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
    from prefect.runtime import flow_run

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


def _model_and_report(
    settings: Settings,
    symbols: Sequence[str],
    summary: RunSummary,
    exchanges: Sequence[str] = ("binance",),
) -> None:
    """The model route (:func:`flows.steps.model_plan`, the same as ``liqheat model``): model
    each (exchange, symbol) with data (binance always) -- computed in parallel worker
    processes, written here -- sum the exchanges (exchange "all") when several have data, then
    rebuild the site. A symbol whose model or sum fails is recorded as failed with the reason;
    the other symbols and the site are still done."""
    from flows import steps

    t0 = time.perf_counter()
    plan = steps.model_plan(settings, symbols, exchanges)
    outcomes = model_symbols_task(str(settings.home), plan.jobs)
    for o in outcomes:
        run = summary.symbol(o["symbol"])
        run.model_seconds = (run.model_seconds or 0.0) + o["seconds"]
        if o["error"] is not None:
            run.fail(f"model {o['exchange']} {o['symbol']}: {o['error']}")
        else:
            run.model = "\n".join(filter(None, [run.model, o["line"]]))
    for symbol, found in plan.sums.items():
        run = summary.symbol(symbol)
        t1 = time.perf_counter()
        try:
            line = aggregate_symbol_task(str(settings.home), symbol, found)
        except Exception as exc:
            run.fail(f"model all {symbol}: {_first_line(exc)}")
        else:
            run.model = "\n".join(filter(None, [run.model, line]))
        run.model_seconds = (run.model_seconds or 0.0) + time.perf_counter() - t1
    summary.model_seconds = time.perf_counter() - t0
    from flows.alerts import alerts_task

    summary.notes += alerts_task(str(settings.home), list(symbols))
    t0 = time.perf_counter()
    try:
        summary.site = report_task(str(settings.home))
    except Exception as exc:
        summary.report_error = f"report: {_first_line(exc)}"
    summary.report_seconds = time.perf_counter() - t0


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _record(settings: Settings, summary: RunSummary) -> None:
    """Publish the run summary: a Prefect markdown artifact and rows in ``runs``."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.runtime import flow_run

    from warehouse import writes

    run_id = str(flow_run.get_id() or uuid.uuid4())
    create_markdown_artifact(
        key="liqheat-run-summary", markdown=summary.markdown(), description="liqheat run summary"
    )
    writes.replace_partition(
        settings.db_path, "runs", {"run_id": run_id}, summary.rows_frame(run_id)
    )
    get_run_logger().info(
        "run summary recorded: runs table (run_id %s) and artifact liqheat-run-summary", run_id
    )


def _finish(settings: Settings, summary: RunSummary) -> str:
    """Record the summary; end the run Failed (by raising) when any file failed."""
    _record(settings, summary)
    if summary.failed:
        failed = [p for p in summary.problems if p.startswith("failed")]
        raise PipelineError(f"{len(failed)} failure(s); first: {failed[0]}")
    return summary.render()


def _check_exchanges(exchanges: Sequence[str]) -> list[str]:
    from flows.sources.registry import EXCHANGES

    chosen = list(dict.fromkeys(exchanges)) or ["binance"]
    unknown = [e for e in chosen if e not in EXCHANGES]
    if unknown:
        known = ", ".join(sorted(EXCHANGES))
        raise ValueError(f"unknown exchange {unknown[0]!r}; expected one of {known}")
    return chosen


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


@flow(name="liqheat-nightly", log_prints=True)
def nightly_flow(
    date: str | None = None,
    symbols: list[str] | None = None,
    base_url: str | None = None,
    backfill_days: int | None = None,
    exchanges: list[str] | None = None,
    task_runner: str = "thread",
    dask_address: str | None = None,
    today: bool = False,
) -> str:
    """Ingest one day (default: yesterday, UTC) plus any gap in the backfill window for each
    exchange (default binance), with ``today`` top up the days not yet archived from REST
    (:mod:`flows.today`), recompute the model, rebuild the site. Staging fans out per
    symbol-day on ``task_runner`` ("thread", or "dask" on ``dask_address``); one load task
    writes. Ends Failed when any file failed; other symbols still run. ``base_url`` is the
    Binance archive root (or, with a single exchange, that exchange's)."""
    from flows.ingest import gap_days
    from flows.sources.registry import get_source
    from flows.today import topup_task

    settings = Settings()
    day = _parse_day(date) if date else _yesterday()
    chosen = symbols or list(settings.symbols)
    window = settings.backfill_days if backfill_days is None else backfill_days
    chosen_exchanges = _check_exchanges(exchanges or ["binance"])
    check_task_runner(task_runner, dask_address)
    url = base_url or (settings.binance_base_url if chosen_exchanges == ["binance"] else None)
    summary = RunSummary(flow="liqheat-nightly")
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        pairs = {(s, day) for s in chosen}
        for exchange in chosen_exchanges:
            source = get_source(exchange, settings, base_url=url)
            daily = daily_datasets(source, chosen[0], day)
            gaps = gap_days(
                settings.db_path,
                chosen,
                day - timedelta(days=1),
                window,
                exchange=exchange,
                datasets=daily,
            )
            pairs |= {(s, d) for s, ds in gaps.items() for d in ds}
        _ingest_all(
            settings,
            sorted(pairs),
            url,
            summary,
            exchanges=chosen_exchanges,
            task_runner=task_runner,
            dask_address=dask_address,
        )
        if today:
            summary.notes += topup_task(str(settings.home), chosen, chosen_exchanges)
        _model_and_report(settings, chosen, summary, chosen_exchanges)
        return _finish(settings, summary)


@flow(name="liqheat-backfill", log_prints=True)
def backfill_flow(
    symbols: list[str],
    start: str,
    end: str,
    base_url: str | None = None,
    exchanges: list[str] | None = None,
    task_runner: str = "thread",
    dask_address: str | None = None,
) -> str:
    """Ingest a history range for each exchange (resumable: days already loaded are skipped),
    then model and report. Staging runs on ``task_runner`` as in :func:`nightly_flow`."""
    settings = Settings()
    first, last = _parse_day(start), _parse_day(end)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    chosen_exchanges = _check_exchanges(exchanges or ["binance"])
    check_task_runner(task_runner, dask_address)
    summary = RunSummary(flow="liqheat-backfill")
    url = base_url or (settings.binance_base_url if chosen_exchanges == ["binance"] else None)
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        _ingest_all(
            settings,
            [(s, d) for s in symbols for d in days],
            url,
            summary,
            exchanges=chosen_exchanges,
            task_runner=task_runner,
            dask_address=dask_address,
        )
        _model_and_report(settings, symbols, summary, chosen_exchanges)
        return _finish(settings, summary)


@flow(name="liqheat-demo", log_prints=True)
def demo_flow(
    home: str, symbols: list[str], start: str, days: int, seed: int, written: bool = False
) -> RunSummary:
    """Offline demo: synthetic archive -> the normal ingest path -> model + backtest -> site.
    ``written``: the archive was already written (by :func:`run_demo`)."""
    settings = Settings(home=Path(home))
    summary = RunSummary(flow="liqheat-demo")
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        archive = demo_archive_task(
            str(settings.home / DEMO_ARCHIVE_DIR), symbols, start, days, seed, written
        )
        pairs = [(s, date.fromisoformat(d)) for s in symbols for d in archive["days"]]
        _ingest_all(settings, pairs, archive["base_url"], summary)
        for symbol, csv_path in archive["liquidations"].items():
            import_realized_task(str(settings.home), symbol, csv_path, "synthetic")
        _model_and_report(settings, symbols, summary)
        _record(settings, summary)
    return summary


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"bad date {text!r} (expected YYYY-MM-DD)") from exc


def _prefect_home(settings: Settings) -> Path:
    return Path(os.environ.get("PREFECT_HOME", settings.prefect_home))


def run_demo(
    settings: Settings, symbols: Sequence[str], *, days: int, seed: int, end: date
) -> RunSummary:
    """Run :func:`demo_flow` for ``days`` synthetic days ending at ``end``, on the Prefect
    server of ``PREFECT_API_URL`` or on one started for this run and tied to this process
    (see :mod:`flows.server`); its start-up time is ``summary.server_seconds``."""
    from flows.demo_data import write_demo_archive
    from flows.server import prefect_api

    start = end - timedelta(days=days - 1)
    # written before waiting for the server: with flows.server.start_early it boots meanwhile
    write_demo_archive(settings.home / DEMO_ARCHIVE_DIR, symbols, start, days, seed)
    _warm_up()
    with prefect_api(_prefect_home(settings)) as (_, server_seconds):
        try:
            summary = demo_flow(
                str(settings.home), list(symbols), start.isoformat(), days, seed, written=True
            )
        finally:
            _drain_prefect_logs()
    summary.server_seconds = server_seconds
    return summary


def _warm_up() -> None:
    """Load what the demo's flow uses in this process (Altair and the site writer, the
    model's compiled kernel, the Vega bundle) while its Prefect server boots on the other
    core: seconds the flow no longer waits for. Best effort."""
    try:
        import polars as pl

        import reports.site
        from transforms.model import run_model

        reports.site.vega_bundle()
        t = [datetime(2024, 1, 1, 0, 5 * i) for i in range(3)]
        bars = pl.DataFrame({"ts": t, "open": 100.0, "high": 101.0, "low": 99.0,
                             "close": 100.0, "oi_usd": [1.0, 2.0, 2.0]})  # fmt: skip
        run_model(bars)
    except Exception:  # the flow loads them itself
        return


def run_flow(settings: Settings, flow_fn: Any, **params: Any) -> Any:
    """Call a flow (``nightly_flow``, ``backfill_flow``) on the Prefect server of
    ``PREFECT_API_URL`` or on one started for this call and tied to this process, instead of
    Prefect's temporary server (which outlives a killed process)."""
    from flows.server import prefect_api

    with prefect_api(_prefect_home(settings)):
        try:
            return flow_fn(**params)
        finally:
            _drain_prefect_logs()


def _drain_prefect_logs() -> None:
    """Send Prefect's queued run logs while its server is still up (else, once it is stopped,
    Prefect prints 'Error logging to API' on the terminal at exit)."""
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
    except Exception:  # best effort: the logs are a convenience, the run's result stands
        return


def serve_nightly(
    settings: Settings,
    *,
    cron: str,
    symbols: Sequence[str] | None,
    base_url: str | None,
    exchanges: Sequence[str] | None = None,
    task_runner: str = "thread",
    dask_address: str | None = None,
    today: bool = False,
) -> None:
    """Serve :func:`nightly_flow` as the deployment ``liqheat-nightly`` on ``cron`` (UTC);
    ``today`` makes each run top up the days not yet archived from REST (hourly: a site at
    most an hour old).

    Uses ``PREFECT_API_URL`` when set; otherwise starts a local Prefect server on 127.0.0.1
    (state under ``$LIQHEAT_HOME/prefect``) and stops it on exit. ``exchanges``,
    ``task_runner`` and ``dask_address`` become the deployment's default parameters.
    """
    import os

    check_task_runner(task_runner, dask_address)
    params: dict[str, Any] = {"symbols": list(symbols or settings.symbols)}
    if base_url:
        params["base_url"] = base_url
    if exchanges:
        params["exchanges"] = _check_exchanges(exchanges)
    if task_runner != "thread":
        params["task_runner"] = task_runner
    if dask_address:
        params["dask_address"] = dask_address
    if today:
        params["today"] = True

    if os.environ.get("PREFECT_API_URL"):
        _serve(cron, params)
        return

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import local_prefect_server

    home = Path(os.environ.get("PREFECT_HOME", settings.prefect_home))
    with local_prefect_server(home) as api_url:
        print(f"local Prefect server (UI and API) at {api_url.removesuffix('/api')}")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            _serve(cron, params)


def _serve(cron: str, params: dict[str, Any]) -> None:
    from prefect.schedules import Cron

    nightly_flow.serve(
        name="liqheat-nightly",
        schedules=[Cron(cron, timezone="UTC")],
        parameters=params,
        pause_on_shutdown=False,
        global_limit=1,
    )
