"""Prefect flows: nightly, backfill and the offline demo.

Tasks are thin: they take keys and paths (symbol, ISO day, database path), call one step in
:mod:`flows.steps` or :mod:`flows.ingest`, and return small dicts, never DataFrames. Ingest
fans out per symbol-day on Prefect's thread pool; DuckDB writes are serialized inside
:mod:`warehouse.writes` so there is a single writer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import steps
from flows.lock import pipeline_lock
from flows.settings import Settings
from warehouse import writes

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


@dataclass
class RunSummary:
    """What one pipeline run did, per symbol, with stage timings."""

    flow: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    symbols: dict[str, SymbolRun] = field(default_factory=dict)
    ingest_seconds: float = 0.0
    report_seconds: float = 0.0
    site: str | None = None

    def symbol(self, name: str) -> SymbolRun:
        return self.symbols.setdefault(name, SymbolRun())

    @property
    def problems(self) -> list[str]:
        return [p for run in self.symbols.values() for p in run.problems]

    @property
    def failed(self) -> bool:
        return any(run.failed for run in self.symbols.values())

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
                run.problems.append(f"{status}: {o['dataset']} {o['day']}: {o.get('reason')}")

    def markdown(self) -> str:
        """The run summary as a markdown table (the Prefect artifact)."""
        lines = [
            f"**{self.flow}** started {self.started_at:%Y-%m-%d %H:%M:%S} UTC; "
            f"ingest {self.ingest_seconds:.1f}s, report {self.report_seconds:.1f}s",
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
        lines.append(
            f"timings: ingest {self.ingest_seconds:.1f}s, report {self.report_seconds:.1f}s"
        )
        if self.site:
            lines.append(f"site: {self.site}")
        return "\n".join(lines)

    def rows_frame(self, run_id: str) -> pl.DataFrame:
        """One ``runs`` row per symbol."""
        finished = datetime.now(UTC)
        return pl.DataFrame(
            [
                {
                    "run_id": run_id,
                    "flow": self.flow,
                    "symbol": name,
                    "started_at": self.started_at,
                    "finished_at": finished,
                    "status": "failed" if r.failed else "completed",
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


@task(name="ingest-symbol-day", cache_policy=NO_CACHE)
def ingest_symbol_day(
    db_path: str, raw_dir: str, base_url: str, symbol: str, day: str, force: bool = False
) -> list[dict[str, Any]]:
    """Download, verify and load one symbol-day (klines, mark klines, metrics)."""
    from flows.ingest import ingest

    settings = Settings()

    report = ingest(
        Path(db_path),
        Path(raw_dir),
        base_url,
        [symbol],
        [date.fromisoformat(day)],
        force=force,
        progress=False,
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
    )
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(o).items()}
        for o in report.outcomes
    ]


@task(name="model-symbol", cache_policy=NO_CACHE)
def model_symbol_task(home: str, symbol: str, days: int | None = None) -> dict[str, Any]:
    """Recompute and store the model outputs of one symbol; return its summary line and
    timing."""
    settings = Settings(home=Path(home))
    t0 = time.perf_counter()
    line = steps.model_symbol(settings, symbol, days=days).line()
    return {"line": line, "seconds": time.perf_counter() - t0}


@task(name="build-report", cache_policy=NO_CACHE)
def report_task(home: str, symbols: list[str] | None = None) -> str:
    """Rebuild the static site; return the index path."""
    settings = Settings(home=Path(home))
    return str(steps.run_report(settings, symbols).index)


@task(name="write-demo-archive", cache_policy=NO_CACHE)
def demo_archive_task(
    root: str, symbols: list[str], start: str, days: int, seed: int
) -> dict[str, Any]:
    """Write the seeded synthetic market as a local archive mirror; return its URL and CSVs."""
    from flows.demo_data import write_demo_archive

    archive = write_demo_archive(Path(root), symbols, date.fromisoformat(start), days, seed)
    return {
        "base_url": archive.base_url,
        "days": [d.isoformat() for d in archive.days],
        "liquidations": {s: str(p) for s, p in archive.liquidation_csvs.items()},
    }


@task(name="import-realized", cache_policy=NO_CACHE)
def import_realized_task(home: str, symbol: str, csv_path: str, source: str) -> int:
    """Load realized liquidations for one symbol from a CSV."""
    settings = Settings(home=Path(home))
    return steps.import_realized(settings, symbol, Path(csv_path), source=source)


def _ingest_all(
    settings: Settings,
    pairs: Sequence[tuple[str, date]],
    base_url: str,
    summary: RunSummary,
) -> None:
    t0 = time.perf_counter()
    futures = [
        ingest_symbol_day.submit(
            str(settings.db_path), str(settings.raw_dir), base_url, symbol, day.isoformat()
        )
        for symbol, day in pairs
    ]
    for fut in futures:
        summary.add_outcomes(fut.result())
    summary.ingest_seconds = time.perf_counter() - t0


def _model_and_report(settings: Settings, symbols: Sequence[str], summary: RunSummary) -> None:
    for symbol in symbols:
        result = model_symbol_task(str(settings.home), symbol)
        run = summary.symbol(symbol)
        run.model, run.model_seconds = result["line"], result["seconds"]
    t0 = time.perf_counter()
    summary.site = report_task(str(settings.home))
    summary.report_seconds = time.perf_counter() - t0


def _record(settings: Settings, summary: RunSummary) -> None:
    """Publish the run summary: a Prefect markdown artifact and rows in ``runs``."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.runtime import flow_run

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
        raise PipelineError(f"{len(failed)} file(s) failed; first: {failed[0]}")
    return summary.render()


@flow(name="liqheat-nightly", log_prints=True)
def nightly_flow(
    date: str | None = None,
    symbols: list[str] | None = None,
    base_url: str | None = None,
    backfill_days: int | None = None,
) -> str:
    """Ingest one day (default: yesterday, UTC) plus any gap in the backfill window, recompute
    the model, rebuild the site. Ends Failed when any file failed; other symbols still run."""
    from flows.ingest import gap_days

    settings = Settings()
    day = _parse_day(date) if date else _yesterday()
    chosen = symbols or list(settings.symbols)
    window = settings.backfill_days if backfill_days is None else backfill_days
    url = base_url or settings.binance_base_url
    summary = RunSummary(flow="liqheat-nightly")
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        gaps = gap_days(settings.db_path, chosen, day - timedelta(days=1), window)
        pairs = sorted({(s, day) for s in chosen} | {(s, d) for s, ds in gaps.items() for d in ds})
        _ingest_all(settings, pairs, url, summary)
        _model_and_report(settings, chosen, summary)
        return _finish(settings, summary)


@flow(name="liqheat-backfill", log_prints=True)
def backfill_flow(symbols: list[str], start: str, end: str, base_url: str | None = None) -> str:
    """Ingest a history range (resumable: days already loaded are skipped), then model and
    report."""
    settings = Settings()
    first, last = _parse_day(start), _parse_day(end)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    summary = RunSummary(flow="liqheat-backfill")
    url = base_url or settings.binance_base_url
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        _ingest_all(settings, [(s, d) for s in symbols for d in days], url, summary)
        _model_and_report(settings, symbols, summary)
        return _finish(settings, summary)


@flow(name="liqheat-demo", log_prints=True)
def demo_flow(home: str, symbols: list[str], start: str, days: int, seed: int) -> RunSummary:
    """Offline demo: synthetic archive -> the normal ingest path -> model + backtest -> site."""
    settings = Settings(home=Path(home))
    summary = RunSummary(flow="liqheat-demo")
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        archive = demo_archive_task(
            str(settings.home / DEMO_ARCHIVE_DIR), symbols, start, days, seed
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


def run_demo(
    settings: Settings, symbols: Sequence[str], *, days: int, seed: int, end: date
) -> RunSummary:
    """Run :func:`demo_flow` for ``days`` synthetic days ending at ``end``."""
    start = end - timedelta(days=days - 1)
    return demo_flow(str(settings.home), list(symbols), start.isoformat(), days, seed)


def serve_nightly(
    settings: Settings,
    *,
    cron: str,
    symbols: Sequence[str] | None,
    base_url: str | None,
) -> None:
    """Serve :func:`nightly_flow` as the deployment ``liqheat-nightly`` on ``cron`` (UTC).

    Uses ``PREFECT_API_URL`` when set; otherwise starts a local Prefect server on 127.0.0.1
    (state under ``$LIQHEAT_HOME/prefect``) and stops it on exit.
    """
    import os

    if os.environ.get("PREFECT_API_URL"):
        _serve(cron, symbols or settings.symbols, base_url)
        return

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import local_prefect_server

    home = Path(os.environ.get("PREFECT_HOME", settings.prefect_home))
    with local_prefect_server(home) as api_url:
        print(f"local Prefect server (UI and API) at {api_url.removesuffix('/api')}")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            _serve(cron, symbols or settings.symbols, base_url)


def _serve(cron: str, symbols: Sequence[str], base_url: str | None) -> None:
    from prefect.schedules import Cron

    params: dict[str, Any] = {"symbols": list(symbols)}
    if base_url:
        params["base_url"] = base_url
    nightly_flow.serve(
        name="liqheat-nightly",
        schedules=[Cron(cron, timezone="UTC")],
        parameters=params,
        pause_on_shutdown=False,
        global_limit=1,
    )
