"""Running the flows on a Prefect API: one command, one server, tied to this process.

:func:`run_flow` and :func:`run_demo` call a flow of :mod:`flows.pipeline` on the Prefect
server of ``PREFECT_API_URL`` or on one started for the call (:mod:`flows.server`: it dies with
this process) and send the run's queued logs before that server stops; :func:`serve_nightly`
serves the nightly flow as the ``liqheat-nightly`` deployment on a cron schedule.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect.logging.handlers import APILogWorker
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.demo_data import write_demo_archive
from flows.options import check_exchanges, check_task_runner
from flows.pipeline import DEMO_ARCHIVE_DIR, demo_flow, nightly_flow
from flows.run_summary import RunSummary
from flows.server import local_prefect_server, prefect_api
from flows.settings import Settings


def _prefect_home(settings: Settings) -> Path:
    return Path(os.environ.get("PREFECT_HOME", settings.prefect_home))


def run_demo(
    settings: Settings, symbols: Sequence[str], *, days: int, seed: int, end: date
) -> RunSummary:
    """Run :func:`demo_flow` for ``days`` synthetic days ending at ``end``, on the Prefect
    server of ``PREFECT_API_URL`` or on one started for this run and tied to this process
    (see :mod:`flows.server`); its start-up time is ``summary.server_seconds``."""
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
    with prefect_api(_prefect_home(settings)):
        try:
            return flow_fn(**params)
        finally:
            _drain_prefect_logs()


def _drain_prefect_logs() -> None:
    """Send Prefect's queued run logs while its server is still up (else, once it is stopped,
    Prefect prints 'Error logging to API' on the terminal at exit)."""
    try:
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
    check_task_runner(task_runner, dask_address)
    params: dict[str, Any] = {"symbols": list(symbols or settings.symbols)}
    if base_url:
        params["base_url"] = base_url
    if exchanges:
        params["exchanges"] = check_exchanges(exchanges)
    if task_runner != "thread":
        params["task_runner"] = task_runner
    if dask_address:
        params["dask_address"] = dask_address
    if today:
        params["today"] = True

    if os.environ.get("PREFECT_API_URL"):
        _serve(cron, params)
        return

    home = Path(os.environ.get("PREFECT_HOME", settings.prefect_home))
    with local_prefect_server(home) as api_url:
        print(f"local Prefect server (UI and API) at {api_url.removesuffix('/api')}")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            _serve(cron, params)


def _serve(cron: str, params: dict[str, Any]) -> None:
    nightly_flow.serve(
        name="liqheat-nightly",
        schedules=[Cron(cron, timezone="UTC")],
        parameters=params,
        pause_on_shutdown=False,
        global_limit=1,
    )
