"""Prefect flows: nightly, backfill and the offline demo.

Tasks are thin: they take keys and paths (symbol, ISO day, database path), call one step in
:mod:`flows.steps` or :mod:`flows.ingest`, and return small dicts, never DataFrames. Ingest
fans out per symbol-day on Prefect's thread pool; DuckDB writes are serialized inside
:mod:`warehouse.writes` so there is a single writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import steps
from flows.lock import pipeline_lock
from flows.settings import Settings

DEMO_ARCHIVE_DIR = "demo-archive-synthetic"


class PipelineError(Exception):
    """Raised at the end of a run in which something failed (the run ends Failed)."""


@dataclass
class RunSummary:
    """Per-symbol outcome counts of one pipeline run."""

    ingest: dict[str, dict[str, int]] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    site: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def add_outcomes(self, outcomes: Sequence[dict[str, Any]]) -> None:
        for o in outcomes:
            counts = self.ingest.setdefault(
                o["symbol"], {"loaded": 0, "skipped": 0, "missing": 0, "failed": 0, "rows": 0}
            )
            counts[o["status"]] = counts.get(o["status"], 0) + 1
            counts["rows"] += int(o.get("rows") or 0)
            if o["status"] in ("missing", "failed"):
                self.problems.append(
                    f"{o['status']}: {o['dataset']} {o['symbol']} {o['day']}: {o.get('reason')}"
                )

    def render(self) -> str:
        lines = ["symbol      loaded skipped missing failed       rows"]
        for symbol, c in sorted(self.ingest.items()):
            lines.append(
                f"{symbol:<11} {c['loaded']:>6} {c['skipped']:>7} {c['missing']:>7} "
                f"{c['failed']:>6} {c['rows']:>10,}"
            )
        lines.extend(self.models)
        lines.extend(self.problems)
        if self.site:
            lines.append(f"site: {self.site}")
        return "\n".join(lines)


@task(name="ingest-symbol-day", cache_policy=NO_CACHE)
def ingest_symbol_day(
    db_path: str, raw_dir: str, base_url: str, symbol: str, day: str, force: bool = False
) -> list[dict[str, Any]]:
    """Download, verify and load one symbol-day (klines, mark klines, metrics)."""
    from flows.ingest import ingest

    report = ingest(
        Path(db_path),
        Path(raw_dir),
        base_url,
        [symbol],
        [date.fromisoformat(day)],
        force=force,
        progress=False,
    )
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(o).items()}
        for o in report.outcomes
    ]


@task(name="model-symbol", cache_policy=NO_CACHE)
def model_symbol_task(home: str, symbol: str, days: int | None = None) -> str:
    """Recompute and store the model outputs of one symbol; return a one-line summary."""
    settings = Settings(home=Path(home))
    return steps.model_symbol(settings, symbol, days=days).line()


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
    force: bool,
    summary: RunSummary,
) -> None:
    futures = [
        ingest_symbol_day.submit(
            str(settings.db_path), str(settings.raw_dir), base_url, symbol, day.isoformat(), force
        )
        for symbol, day in pairs
    ]
    for fut in futures:
        summary.add_outcomes(fut.result())


def _model_and_report(settings: Settings, symbols: Sequence[str], summary: RunSummary) -> None:
    for symbol in symbols:
        summary.models.append(model_symbol_task(str(settings.home), symbol))
    summary.site = report_task(str(settings.home))


@flow(name="liqheat-nightly", log_prints=True)
def nightly_flow(
    date: str | None = None,
    symbols: list[str] | None = None,
    base_url: str | None = None,
    backfill_days: int | None = None,
) -> str:
    """Ingest one day plus any gap in the backfill window, recompute the model, rebuild the site."""
    from flows.ingest import gap_days

    settings = Settings()
    day = _parse_day(date) if date else _yesterday()
    symbols = symbols or list(settings.symbols)
    window = settings.backfill_days if backfill_days is None else backfill_days
    url = base_url or settings.binance_base_url
    gaps = gap_days(settings.db_path, symbols, day - timedelta(days=1), window)
    pairs = sorted({(s, day) for s in symbols} | {(s, d) for s, ds in gaps.items() for d in ds})
    summary = RunSummary()
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        _ingest_all(settings, pairs, url, False, summary)
        _model_and_report(settings, symbols, summary)
    return _finish(summary, fail_on={"failed"})


@flow(name="liqheat-backfill", log_prints=True)
def backfill_flow(symbols: list[str], start: str, end: str, base_url: str | None = None) -> str:
    """Ingest a history range (skipping days already loaded), then model and report."""
    settings = Settings()
    first, last = _parse_day(start), _parse_day(end)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    summary = RunSummary()
    url = base_url or settings.binance_base_url
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        _ingest_all(settings, [(s, d) for s in symbols for d in days], url, False, summary)
        _model_and_report(settings, symbols, summary)
    return _finish(summary, fail_on={"failed"})


@flow(name="liqheat-demo", log_prints=True)
def demo_flow(home: str, symbols: list[str], start: str, days: int, seed: int) -> RunSummary:
    """Offline demo: synthetic archive -> the normal ingest path -> model + backtest -> site."""
    settings = Settings(home=Path(home))
    summary = RunSummary()
    with pipeline_lock(settings.home, wait_s=settings.lock_wait_s):
        archive = demo_archive_task(
            str(settings.home / DEMO_ARCHIVE_DIR), symbols, start, days, seed
        )
        pairs = [(s, date.fromisoformat(d)) for s in symbols for d in archive["days"]]
        _ingest_all(settings, pairs, archive["base_url"], False, summary)
        for symbol, csv_path in archive["liquidations"].items():
            import_realized_task(str(settings.home), symbol, csv_path, "synthetic")
        _model_and_report(settings, symbols, summary)
    return summary


def _yesterday() -> date:
    from datetime import UTC, datetime

    return datetime.now(UTC).date() - timedelta(days=1)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"bad date {text!r} (expected YYYY-MM-DD)") from exc


def _finish(summary: RunSummary, fail_on: set[str]) -> str:
    text = summary.render()
    get_run_logger().info("run summary\n%s", text)
    failed = [p for p in summary.problems if p.split(":", 1)[0] in fail_on]
    if failed:
        raise PipelineError(f"{len(failed)} file(s) failed; first: {failed[0]}")
    return text


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
